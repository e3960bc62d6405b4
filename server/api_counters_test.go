package server_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/tallyhq/tally/postgres/pgtest"
)

// TestAPIScaleOutPostgresOnly runs three instances on one PostgreSQL schema
// and no Redis: the counters live in the database, so concurrent consumes
// and events against an enforced limit, spread over the three, admit
// exactly the limit between them.
func TestAPIScaleOutPostgresOnly(t *testing.T) {
	t.Parallel()
	pg := withPostgres(pgtest.FreshSchema(t))
	hs := []*harness{newHarness(t, pg), newHarness(t, pg), newHarness(t, pg)}
	o := hs[0].newTenant("acme")
	k := hs[0].createKey(o, "analytics:write", "analytics:read")
	hs[1].do("PUT", "/api/analytics/quotas/builds_daily", map[string]any{"limit": 25, "enforced": true}, o.h()).want(t, http.StatusOK)
	hs[2].do("PUT", "/api/analytics/quotas/file_uploads_daily", map[string]any{"limit": 10, "enforced": true}, o.h()).want(t, http.StatusOK)

	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	accepted := 0
	for i := range 90 {
		h := hs[i%3]
		wg.Go(func() {
			r := h.do("POST", "/api/analytics/quotas/builds_daily/consume", nil, hdr(k.Key, ""))
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		})
		wg.Go(func() {
			r := h.do("POST", "/api/analytics/events", map[string]any{"event": "files.uploaded", "event_id": fmt.Sprint("up-", i)}, hdr(k.Key, ""))
			if r.Status != http.StatusAccepted && r.Status != http.StatusTooManyRequests {
				t.Errorf("event %d: %s", i, r)
			}
			mu.Lock()
			if r.Status == http.StatusAccepted {
				accepted++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 25 || codes[http.StatusTooManyRequests] != 65 {
		t.Fatalf("consume across three instances on PostgreSQL: %v, want 25 × 200 and 65 × 429", codes)
	}
	if accepted != 10 {
		t.Fatalf("%d events admitted against an enforced limit of 10 across three instances", accepted)
	}
	for i, h := range hs {
		var st struct{ Current, Limit int64 }
		h.do("GET", "/api/analytics/quotas/builds_daily", nil, o.h()).want(t, http.StatusOK).decode(t, &st)
		if st.Current != 25 {
			t.Errorf("instance %d reads builds_daily %+v, want current 25", i, st)
		}
	}
}
