package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/faults"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// TestAPIIdempotentUnderRedisFault sends usage increments and consumes
// with event ids, retried, before, during and after a Redis stall: a
// retry is a duplicate (never a second count), a soft metric keeps
// recording while Redis stalls, an enforced one answers 503 with
// Retry-After and stores nothing (fail closed), and once Redis answers
// again the counters equal what was stored.
func TestAPIIdempotentUnderRedisFault(t *testing.T) {
	t.Parallel()
	proxy, proxied, err := faults.Front(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	h := newHarness(t, withRedis(proxied), func(c *app.Config) {
		c.RedisTimeout = 200 * time.Millisecond
		c.StatementTimeout = 500 * time.Millisecond // the rebuild's settle wait is this + 1s
	})
	o := h.newTenant("acme")
	h.do("PUT", "/api/analytics/quotas/builds_daily", map[string]any{"limit": 5, "enforced": true}, o.h()).want(t, http.StatusOK)

	type current struct{ Current *int64 }
	usage := func(metric, id string, want int) *apiResponse {
		t.Helper()
		return h.do("POST", "/api/analytics/usage", map[string]any{"metric": metric, "event_id": id}, o.h()).want(t, want)
	}
	wantCurrent := func(r *apiResponse, n int64) {
		t.Helper()
		var c current
		r.decode(t, &c)
		if c.Current == nil || *c.Current != n {
			t.Errorf("%s: want current %d", r, n)
		}
	}
	consume := func(id string, want int) *apiResponse {
		t.Helper()
		return h.do("POST", "/api/analytics/quotas/builds_daily/consume", map[string]any{"event_id": id}, o.h()).want(t, want)
	}

	wantCurrent(usage("api_calls", "u-1", http.StatusAccepted), 1)
	wantCurrent(usage("api_calls", "u-1", http.StatusAccepted), 1) // a retry
	wantCurrent(consume("c-1", http.StatusOK), 1)
	wantCurrent(consume("c-1", http.StatusOK), 1) // a retry: a duplicate, its reservation released

	if err := proxy.Set(faults.Stall); err != nil {
		t.Fatal(err)
	}
	wantCurrent(usage("api_calls", "u-2", http.StatusAccepted), 2) // read from the log
	wantCurrent(usage("api_calls", "u-2", http.StatusAccepted), 2)
	for _, r := range []*apiResponse{
		usage("builds_daily", "b-1", http.StatusServiceUnavailable),
		consume("c-2", http.StatusServiceUnavailable),
	} {
		assertProblem(t, r)
		if r.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", r)
		}
	}
	var ready struct {
		Status string
		Checks map[string]struct{ OK bool }
	}
	h.do("GET", "/readiness", nil, nil).want(t, http.StatusOK).decode(t, &ready)
	if ready.Status != "degraded" || ready.Checks["redis"].OK {
		t.Errorf("readiness with Redis stalled: %+v, want 200 degraded with redis failing", ready)
	}
	if err := proxy.Set(faults.Pass); err != nil {
		t.Fatal(err)
	}

	// The breaker closes and the reconciler rebuilds from the log;
	// readiness says ok once that is done.
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.do("GET", "/readiness", nil, nil).want(t, http.StatusOK).decode(t, &ready)
		if ready.Status == "ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness after the stall: %+v", ready)
		}
		time.Sleep(100 * time.Millisecond)
	}
	wantCurrent(consume("c-2", http.StatusOK), 2)
	wantCurrent(usage("builds_daily", "b-1", http.StatusAccepted), 3) // c-1, c-2, b-1
	wantCurrent(usage("builds_daily", "b-1", http.StatusAccepted), 3)
	wantCurrent(consume("c-2", http.StatusOK), 3)
	wantCurrent(usage("api_calls", "u-2", http.StatusAccepted), 2)
	var st struct{ Current int64 }
	h.do("GET", "/api/analytics/quotas/builds_daily", nil, o.h()).want(t, http.StatusOK).decode(t, &st)
	if st.Current != 3 {
		t.Errorf("builds_daily reads %d after three distinct stored events", st.Current)
	}
}

// TestAPIQuotaChangeAcrossInstances sets an enforced limit through one
// instance and consumes through another right after: the second applies
// the new limit on its very next request (quotas are read from the shared
// database on every request, there is no per-instance cache).
func TestAPIQuotaChangeAcrossInstances(t *testing.T) {
	t.Parallel()
	pg := withPostgres(pgtest.FreshSchema(t))
	for _, redis := range []bool{false, true} {
		opts := []harnessOption{pg}
		if redis {
			opts = append(opts, withRedis(redisURL(t)))
		}
		one, two := newHarness(t, opts...), newHarness(t, opts...)
		slug := map[bool]string{false: "pg", true: "pgredis"}[redis]
		o := one.newTenant(slug)
		two.do("POST", "/api/analytics/quotas/deploys_daily/consume", nil, o.h()).want(t, http.StatusNotFound)
		for i, limit := range []int64{3, 5, 0} {
			one.do("PUT", "/api/analytics/quotas/deploys_daily", map[string]any{"limit": limit, "enforced": true}, o.h()).want(t, http.StatusOK)
			var st struct {
				Limit    int64
				Enforced bool
			}
			two.do("GET", "/api/analytics/quotas/deploys_daily", nil, o.h()).want(t, http.StatusOK).decode(t, &st)
			if st.Limit != limit || !st.Enforced {
				t.Fatalf("%s step %d: the other instance reads %+v, want limit %d enforced", slug, i, st, limit)
			}
			admitted := 0
			for range 6 {
				if r := two.do("POST", "/api/analytics/quotas/deploys_daily/consume", nil, o.h()); r.Status == http.StatusOK {
					admitted++
				} else {
					r.want(t, http.StatusTooManyRequests)
				}
			}
			// 3, then 2 more up to 5, then none.
			if want := []int{3, 2, 0}[i]; admitted != want {
				t.Errorf("%s: after the limit became %d on one instance, the other admitted %d, want %d", slug, limit, admitted, want)
			}
		}
	}
}

// TestAPIRedisOfAnotherDatabase pairs a fresh database with a Redis prefix
// that still holds another database's counters (same tenant ids, same
// day): the new instance does not read them as its own, it rebuilds from
// its own (empty) log.
func TestAPIRedisOfAnotherDatabase(t *testing.T) {
	t.Parallel()
	rd := withRedis(redisURL(t))
	quota := withQuotaDefaults(map[string]int64{"builds_daily": 10})
	old := newHarness(t, withPostgres(pgtest.FreshSchema(t)), rd, quota)
	o := old.newTenant("acme")
	for range 4 {
		old.do("POST", "/api/analytics/quotas/builds_daily/consume", nil, o.h()).want(t, http.StatusOK)
	}
	if err := old.app.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	fresh := newHarness(t, withPostgres(pgtest.FreshSchema(t)), rd, quota)
	n := fresh.newTenant("acme")
	if n.id != o.id {
		t.Logf("tenant ids differ (%d, %d): the keys do not collide, the check is weaker", o.id, n.id)
	}
	var st struct{ Current int64 }
	fresh.do("GET", "/api/analytics/quotas/builds_daily", nil, n.h()).want(t, http.StatusOK).decode(t, &st)
	if st.Current != 0 {
		t.Errorf("a fresh database reads builds_daily %d from another database's Redis counters", st.Current)
	}
	fresh.do("POST", "/api/analytics/quotas/builds_daily/consume", nil, n.h()).want(t, http.StatusOK).decode(t, &st)
	if st.Current != 1 {
		t.Errorf("the first consume on the fresh database reads %d, want 1", st.Current)
	}
}
