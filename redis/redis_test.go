package redis_test

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/counterstest"
	"github.com/tallyhq/tally/internal/testenv"
	"github.com/tallyhq/tally/redis"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
	"github.com/tallyhq/tally/usage"
)

// testURL is the Redis the tests use: TALLY_TEST_REDIS_URL, else the local
// default.
func testURL() string {
	if u := os.Getenv("TALLY_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// openTest returns a new client to the test Redis, closed when the test
// ends. Without a server the test is skipped, loudly, except on CI
// (CI=true), where a missing Redis is a failure.
func openTest(t testing.TB) goredis.UniversalClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	client, err := redis.OpenTimeout(ctx, testURL(), testTimeout)
	if err != nil {
		testenv.Missing(t, "Redis at "+testenv.RedactedURL(testURL()), err.Error(), "start it or set TALLY_TEST_REDIS_URL")
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// newPrefix returns a key prefix no other test uses; the keys under it are
// deleted when the test ends (before the client is closed, when openTest
// registered that cleanup first).
func newPrefix(t testing.TB, client goredis.UniversalClient) string {
	t.Helper()
	prefix := "tallytest:" + rand.Text() + ":"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("clean up %s*: %v", prefix, err)
			return
		}
		if len(keys) > 0 {
			if err := client.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("clean up %s*: %v", prefix, err)
			}
		}
	})
	return prefix
}

// newCounters returns Redis counters under a fresh prefix.
func newCounters(t testing.TB) (*redis.Counters, goredis.UniversalClient, string) {
	t.Helper()
	client := openTest(t)
	prefix := newPrefix(t, client)
	return redis.New(client, redis.Config{Prefix: prefix, Timeout: testTimeout}), client, prefix
}

// testTimeout bounds each Redis call in the tests that are not about
// timeouts: generous, as the race detector and parallel tests slow the
// machine far below production speed.
const testTimeout = 2 * time.Second

func TestCountersConformance(t *testing.T) {
	t.Parallel()
	openTest(t) // skip (or fail on CI) once, not in every case
	counterstest.Run(t, func(t *testing.T) tally.Counters {
		c, _, _ := newCounters(t)
		return c
	})
}

func TestOpen(t *testing.T) {
	t.Parallel()
	client := openTest(t)
	if err := redis.Ping(t.Context(), client); err != nil {
		t.Errorf("Ping: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, bad := range []string{
		"http://127.0.0.1:6379",
		"redis://127.0.0.1:6379/notadb",
		"redis://user:s3cret@127.0.0.1:1/0", // nothing listens on port 1
		"redis://user:s3cret@[::1/0",
	} {
		c, err := redis.Open(ctx, bad)
		var ue *redis.UnreachableError
		if unreachable := errors.As(err, &ue); unreachable != strings.Contains(bad, "127.0.0.1:1/") {
			t.Errorf("Open(%q) = %v; an UnreachableError only when nothing answers", bad, err)
		}
		if err != nil && c != nil {
			c.Close()
		}
		if err == nil {
			c.Close()
			t.Errorf("Open(%q) succeeded, want an error", bad)
			continue
		}
		if s := err.Error(); strings.Contains(s, "s3cret") {
			t.Errorf("Open's error reveals the password: %s", s)
		}
	}
}

// TestKeysAndExpiry pins the key layout and checks that every write leaves
// its key with an expiry: today's keys live until three days after the
// day started, a long-past day's for a day from the write.
func TestKeysAndExpiry(t *testing.T) {
	t.Parallel()
	c, client, prefix := newCounters(t)
	ctx := t.Context()
	now := time.Now()
	today := tally.DayStart(now)
	past := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)

	if _, err := c.Add(ctx, 42, today, "builds_daily", 3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Consume(ctx, 42, today, "events_daily", 2, 10); err != nil {
		t.Fatal(err)
	}
	if err := c.Reset(ctx, 43, past, map[string]int64{"builds_daily": 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(ctx, 44, past, "builds_daily", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Consume(ctx, 45, past, "builds_daily", 1, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FirstCrossing(ctx, 42, today, "builds_daily", 80); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FirstCrossing(ctx, 43, past, "builds_daily", 100); err != nil {
		t.Fatal(err)
	}

	todayKey := prefix + "usage:42:" + today.Format(time.DateOnly)
	if got, err := client.HGetAll(ctx, todayKey).Result(); err != nil || got["builds_daily"] != "3" || got["events_daily"] != "2" {
		t.Errorf("HGETALL %s = %v, %v; want builds_daily 3, events_daily 2", todayKey, got, err)
	}
	untilKeep := time.Until(today.Add(72 * time.Hour))
	for _, k := range []struct {
		key      string
		min, max time.Duration
	}{
		{todayKey, untilKeep - time.Minute, untilKeep + time.Minute},
		{prefix + "alert:42:" + today.Format(time.DateOnly) + ":builds_daily:80", untilKeep - time.Minute, untilKeep + time.Minute},
		{prefix + "usage:43:2026-03-08", 23 * time.Hour, 24 * time.Hour},
		{prefix + "usage:44:2026-03-08", 23 * time.Hour, 24 * time.Hour},
		{prefix + "usage:45:2026-03-08", 23 * time.Hour, 24 * time.Hour},
		{prefix + "alert:43:2026-03-08:builds_daily:100", 23 * time.Hour, 24 * time.Hour},
	} {
		ttl, err := client.TTL(ctx, k.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ttl <= 0 || ttl < k.min || ttl > k.max {
			t.Errorf("TTL %s = %v, want in [%v, %v] (-2s: no key, -1s: no expiry)", k.key, ttl, k.min, k.max)
		}
	}
	// Nothing else was written: a refused consume and Get/All create nothing.
	if _, _, err := c.Consume(ctx, 46, today, "builds_daily", 5, 1); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Exists(ctx, prefix+"usage:46:"+today.Format(time.DateOnly)).Result(); err != nil || n != 0 {
		t.Errorf("a refused consume on a fresh day created its key (%d, %v)", n, err)
	}
}

// TestServicesShareQuota runs two tally instances, each with its own Redis
// client, over one store: together they admit exactly the quota and
// announce each threshold once.
func TestServicesShareQuota(t *testing.T) {
	t.Parallel()
	store, tn := sqlitetest.WithTenant(t)
	prefix := newPrefix(t, openTest(t))
	now := time.Now()
	cfg := usage.Config{
		Defaults:      map[string]int64{"builds_daily": 50},
		QuotasEnabled: true,
		Now:           func() time.Time { return now }, // one UTC day, even across midnight
	}
	var svcs [2]*usage.Service
	for i := range svcs {
		svcs[i] = usage.NewService(cfg, store, redis.New(openTest(t), redis.Config{Prefix: prefix, Timeout: testTimeout}), nil, 0)
	}

	const callers = 128
	var allowed [2]atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	ctx := t.Context()
	for i := range callers {
		wg.Go(func() {
			<-start
			ok, st, _, err := svcs[i%2].Consume(ctx, tn.ID, "builds_daily", 1)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				allowed[i%2].Add(1)
			} else if st.Current != 50 || st.Remaining != 0 {
				t.Errorf("a denied consume: %+v, want current 50, remaining 0", st)
			}
		})
	}
	close(start)
	wg.Wait()
	a, b := allowed[0].Load(), allowed[1].Load()
	if a+b != 50 {
		t.Fatalf("the two instances allowed %d + %d consumes, want exactly 50 in total", a, b)
	}
	for i, svc := range svcs {
		if st, err := svc.Status(ctx, tn.ID, "builds_daily"); err != nil || st.Current != 50 {
			t.Errorf("instance %d: Status = %+v, %v; want current 50", i, st, err)
		}
	}
	entries, _, err := store.ListAudit(ctx, tn.ID, tally.AuditFilter{Action: "quota.threshold", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	thresholds := map[any]int{}
	for _, e := range entries {
		thresholds[e.Meta["threshold"]]++
	}
	if len(entries) != 2 {
		t.Errorf("quota alerts audited: %d (%v), want 2: 80 %% and 100 %%, once each across both instances", len(entries), thresholds)
	}
}
