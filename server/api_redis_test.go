package server_test

import (
	"crypto/rand"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/testenv"
	"github.com/tallyhq/tally/redis"
)

// redisURL returns the test Redis, skipping loudly when none answers
// (failing under CI=true, where it must be there).
func redisURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("TALLY_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	c, err := redis.Open(t.Context(), url)
	if err != nil {
		testenv.Missing(t, "Redis at "+testenv.RedactedURL(url), err.Error(), "start it or set TALLY_TEST_REDIS_URL")
	}
	c.Close()
	return url
}

func withRedis(url string) harnessOption {
	prefix := "tally-test-" + rand.Text()[:12] + ":"
	// A generous Redis timeout: these tests are about behaviour, on a
	// machine the race detector and parallel tests slow down.
	return func(c *app.Config) { c.RedisURL, c.RedisPrefix, c.RedisTimeout = url, prefix, 2*time.Second }
}

// TestAPIWithRedis runs the usage paths with counters in Redis: readiness
// reports it, and consume stays exact under concurrency.
func TestAPIWithRedis(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withRedis(redisURL(t)), withQuotaDefaults(map[string]int64{"builds_daily": 20}))
	o := h.newTenant("acme")

	var ready struct {
		Status string `json:"status"`
		Checks map[string]struct {
			Configured *bool `json:"configured"`
			OK         bool  `json:"ok"`
		} `json:"checks"`
	}
	h.do("GET", "/readiness", nil, nil).want(t, http.StatusOK).decode(t, &ready)
	if r := ready.Checks["redis"]; r.Configured == nil || !*r.Configured || !r.OK || ready.Status != "ok" {
		t.Fatalf("readiness with Redis: %+v %s", ready, h.logs.String())
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range 32 {
		wg.Go(func() {
			r := h.do("POST", "/api/analytics/quotas/builds_daily/consume", map[string]any{"amount": 1}, o.h())
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 20 || codes[http.StatusTooManyRequests] != 12 {
		t.Fatalf("consume through Redis: %v, want 20 × 200 and 12 × 429", codes)
	}
	// The counters live in Redis: what consume counted is what usage reports.
	var st struct{ Current int64 }
	h.do("GET", "/api/analytics/quotas/builds_daily", nil, o.h()).want(t, http.StatusOK).decode(t, &st)
	if st.Current != 20 {
		t.Fatalf("quota current %d after 20 admitted consumes", st.Current)
	}
}
