package metrics

import (
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
