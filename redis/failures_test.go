package redis_test

import (
	"testing"
	"time"

	"github.com/tallyhq/tally/redis"
)

// TestFailures checks the login failure counts in Redis: counts per key,
// each key's expiry (a window after the last failure, a block's length),
// and a reset that forgets both.
func TestFailures(t *testing.T) {
	t.Parallel()
	client := openTest(t)
	prefix := newPrefix(t, client)
	f := redis.NewFailures(client, prefix)
	ctx := t.Context()
	for want := int64(1); want <= 3; want++ {
		n, err := f.Fail(ctx, "addr:10.0.0.1", time.Minute)
		if err != nil || n != want {
			t.Fatalf("failure %d: count %d, %v", want, n, err)
		}
	}
	if n, _ := f.Fail(ctx, "addr:10.0.0.2", time.Minute); n != 1 {
		t.Fatalf("another key counted %d", n)
	}
	if ttl := client.PTTL(ctx, prefix+"fail:addr:10.0.0.1").Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Errorf("count expires in %s, want the window", ttl)
	}
	if d, err := f.Blocked(ctx, "addr:10.0.0.1"); err != nil || d != 0 {
		t.Fatalf("blocked %s before a block, %v", d, err)
	}
	if err := f.Block(ctx, "addr:10.0.0.1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if d, err := f.Blocked(ctx, "addr:10.0.0.1"); err != nil || d <= 20*time.Second || d > 30*time.Second {
		t.Fatalf("blocked %s, %v; want about 30s", d, err)
	}
	if d, _ := f.Blocked(ctx, "addr:10.0.0.2"); d != 0 {
		t.Fatalf("another key blocked %s", d)
	}
	if err := f.Reset(ctx, "addr:10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.Blocked(ctx, "addr:10.0.0.1"); d != 0 {
		t.Fatalf("blocked %s after a reset", d)
	}
	if n, _ := f.Fail(ctx, "addr:10.0.0.1", time.Minute); n != 1 {
		t.Fatalf("after a reset: count %d", n)
	}
}
