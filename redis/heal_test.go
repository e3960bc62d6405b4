package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/counterstest"
	"github.com/tallyhq/tally/internal/faults"
	"github.com/tallyhq/tally/redis"
)

// claimed returns counters guarded by identity "db-a" whose identity key
// is already set, as after a first rebuild.
func claimed(t *testing.T) (*redis.Counters, string) {
	t.Helper()
	client := openTest(t)
	prefix := newPrefix(t, client)
	if err := client.Set(t.Context(), prefix+"identity", "db-a", 0).Err(); err != nil {
		t.Fatal(err)
	}
	return redis.New(client, redis.Config{Prefix: prefix, Identity: "db-a", Timeout: testTimeout}), prefix
}

func TestGuardedCountersConformance(t *testing.T) {
	t.Parallel()
	openTest(t)
	counterstest.Run(t, func(t *testing.T) tally.Counters {
		c, _ := claimed(t)
		return c
	})
}

// TestGuardedCountersRefuseStale empties the identity key (a FLUSHDB, a
// restart without persistence) and then sets another database's: every
// admission and read refuses with ErrStale instead of answering from
// values that are not this database's, Check asks for a rebuild, and a
// rebuild (BeginRebuild, Reset, EndRebuild) makes them answer again.
func TestGuardedCountersRefuseStale(t *testing.T) {
	t.Parallel()
	c, prefix := claimed(t)
	client := openTest(t)
	ctx := t.Context()
	day := time.Now()
	if _, _, err := c.Consume(ctx, 1, day, "builds", 3, 10); err != nil {
		t.Fatal(err)
	}
	for _, foreign := range []string{"", "db-b"} {
		if foreign == "" {
			client.Del(ctx, prefix+"identity")
		} else {
			client.Set(ctx, prefix+"identity", foreign, 0)
		}
		if _, _, err := c.Consume(ctx, 1, day, "builds", 1, 10); !errors.Is(err, redis.ErrStale) {
			t.Errorf("identity %q: Consume error %v, want ErrStale", foreign, err)
		}
		if _, err := c.All(ctx, 1, day); !errors.Is(err, redis.ErrStale) {
			t.Errorf("identity %q: All error %v, want ErrStale", foreign, err)
		}
		if err := c.AddBatch(ctx, []tally.CounterDelta{{TenantID: 1, Day: day, Metric: "builds", N: 1}}); !errors.Is(err, redis.ErrStale) {
			t.Errorf("identity %q: AddBatch error %v, want ErrStale", foreign, err)
		}
		if need, err := c.Check(ctx); err != nil || !need {
			t.Errorf("identity %q: Check = %v, %v; want a rebuild", foreign, need, err)
		}
	}

	ok, err := c.BeginRebuild(ctx, time.Minute)
	if err != nil || !ok {
		t.Fatalf("BeginRebuild = %v, %v", ok, err)
	}
	other := redis.New(client, redis.Config{Prefix: prefix, Identity: "db-a", Timeout: testTimeout})
	if ok, err := other.BeginRebuild(ctx, time.Minute); err != nil || ok {
		t.Errorf("a second instance's BeginRebuild during a rebuild = %v, %v; want false", ok, err)
	}
	if _, _, err := other.Consume(ctx, 1, day, "builds", 1, 10); !errors.Is(err, redis.ErrStale) {
		t.Errorf("Consume during a rebuild: %v, want ErrStale (no admission on a half-rebuilt value)", err)
	}
	if _, err := other.Add(ctx, 1, day, "events", 2); err != nil {
		t.Errorf("Add during a rebuild: %v; adds keep counting", err)
	}
	if err := c.Reset(ctx, 1, day, map[string]int64{"builds": 7}); err != nil {
		t.Fatal(err)
	}
	if err := c.EndRebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if need, err := c.Check(ctx); err != nil || need {
		t.Errorf("Check after the rebuild = %v, %v; want no rebuild", need, err)
	}
	if allowed, v, err := other.Consume(ctx, 1, day, "builds", 3, 10); err != nil || !allowed || v != 10 {
		t.Errorf("Consume after the rebuild = %v, %d, %v; want allowed at 10", allowed, v, err)
	}
}

// TestCountersUnderFaults puts the fault proxy between the counters and
// Redis: stalled or resetting, every call fails within its timeout (no
// retries), the breaker then refuses at once, failed writes make Check ask
// for a rebuild, and once Redis answers again the breaker closes after its
// cool-down.
func TestCountersUnderFaults(t *testing.T) {
	t.Parallel()
	openTest(t)
	proxy, proxied, err := faults.Front(testURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	const timeout = 100 * time.Millisecond
	client, err := redis.OpenTimeout(t.Context(), proxied, timeout)
	var slow *redis.UnreachableError
	if err != nil && !errors.As(err, &slow) { // a ping slower than timeout on a loaded machine is fine
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	prefix := newPrefix(t, openTest(t))
	c := redis.New(client, redis.Config{Prefix: prefix, Timeout: timeout, BreakerCooldown: 300 * time.Millisecond})
	ctx := t.Context()
	day := time.Now()
	waitAdd := func(after string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := c.Add(ctx, 1, day, "builds", 1)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: Add still fails: %v", after, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitAdd("before the faults")
	for _, mode := range []faults.Mode{faults.Stall, faults.Reset} {
		if err := proxy.Set(mode); err != nil {
			t.Fatal(err)
		}
		var sawOpen bool
		for range 6 {
			start := time.Now()
			_, _, err := c.Consume(ctx, 1, day, "builds", 1, 100)
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("%v: Consume took %v with a %v timeout", mode, took, timeout)
			}
			if err == nil {
				t.Errorf("%v: Consume succeeded through the fault", mode)
			}
			sawOpen = sawOpen || errors.Is(err, redis.ErrOpen)
		}
		if !sawOpen {
			t.Errorf("%v: the breaker never opened after 6 failures", mode)
		}
		if err := proxy.Set(faults.Pass); err != nil {
			t.Fatal(err)
		}
		waitAdd("after " + mode.String())
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		need, err := c.Check(cctx)
		cancel()
		if err != nil || !need {
			t.Errorf("after %v: Check = %v, %v; want a rebuild (writes failed)", mode, need, err)
		}
	}
}
