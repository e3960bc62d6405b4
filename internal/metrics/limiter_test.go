package metrics

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := NewLimiter(3)
	for _, v := range []string{"a", "b", "c", "a"} {
		if got := l.Value(v); got != v {
			t.Errorf("Value(%q) = %q within the cap", v, got)
		}
	}
	if got := l.Value("d"); got != Other {
		t.Errorf("Value(d) past the cap = %q, want %q", got, Other)
	}
	if got := l.Value("b"); got != "b" {
		t.Errorf("a value seen before the cap became %q", got)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := NewLimiter(10)
	var wg sync.WaitGroup
	var mu sync.Mutex
	passed := map[string]bool{}
	for i := range 100 {
		wg.Go(func() {
			v := fmt.Sprint(i)
			if l.Value(v) == v {
				mu.Lock()
				passed[v] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(passed) != 10 {
		t.Fatalf("%d distinct values passed, want exactly 10", len(passed))
	}
}

func TestTenantLabels(t *testing.T) {
	t.Parallel()
	lookups := 0
	fail := true
	l := NewTenantLabels(2, func(_ context.Context, id int64) (string, error) {
		lookups++
		if id == 9 && fail {
			return "", errors.New("down")
		}
		return fmt.Sprintf("slug-%d", id), nil
	})
	ctx := context.Background()
	if got := l.Value(ctx, 9); got != Other {
		t.Errorf("a failed lookup = %q, want %q", got, Other)
	}
	fail = false
	for _, id := range []int64{1, 1, 9} {
		if got, want := l.Value(ctx, id), fmt.Sprintf("slug-%d", id); got != want {
			t.Errorf("Value(%d) = %q, want %q", id, got, want)
		}
	}
	if got := l.Value(ctx, 3); got != Other {
		t.Errorf("a tenant past the cap = %q, want %q", got, Other)
	}
	if lookups != 3 {
		t.Errorf("%d lookups, want 3 (cached, none past the cap)", lookups)
	}
	if got := NewTenantLabels(0, nil).Value(ctx, 42); got != "42" {
		t.Errorf("without a lookup the label is the id, got %q", got)
	}
}
