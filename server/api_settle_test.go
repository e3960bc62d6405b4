package server_test

import (
	"net/http"
	"testing"
)

// TestAPISettleByEventID: a consume carrying an event's id counts the
// event once for the metric, whichever arrives first, however often each
// is retried, with the quota soft or enforced, and still after a rollup;
// the events themselves are all in the log.
func TestAPISettleByEventID(t *testing.T) {
	t.Parallel()
	for _, enforced := range []bool{false, true} {
		t.Run(map[bool]string{false: "soft", true: "enforced"}[enforced], func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			o := h.newTenant("acme")
			k := h.createKey(o, "analytics:write", "analytics:read")
			auth := hdr(k.Key, "")
			h.do("PUT", "/api/analytics/quotas/builds_daily", map[string]any{"limit": 3, "enforced": enforced}, o.h()).want(t, http.StatusOK)
			build := func(id string) ingestResult {
				return h.send(auth, map[string]any{"event": "builder.generate.completed", "event_id": id})
			}
			consume := func(id string) int {
				return h.do("POST", "/api/analytics/quotas/builds_daily/consume", map[string]any{"event_id": id}, auth).Status
			}
			// Consume first, then the event (twice each).
			for range 2 {
				if code := consume("b-1"); code != http.StatusOK {
					t.Fatalf("consume b-1: %d", code)
				}
			}
			if res := build("b-1"); res.Accepted != 1 || len(res.Rejected) != 0 {
				t.Fatalf("build b-1 after its consume: %+v", res)
			}
			if res := build("b-1"); res.Duplicates != 1 {
				t.Fatalf("build b-1 again: %+v", res)
			}
			// The event first, then a consume naming it.
			if res := build("b-2"); res.Accepted != 1 {
				t.Fatalf("build b-2: %+v", res)
			}
			if code := consume("b-2"); code != http.StatusOK {
				t.Fatalf("consume after b-2: %d", code)
			}
			// A consume and its event in a batch with an unrelated event.
			consume("b-3")
			res := h.send(auth, map[string]any{"batch": []map[string]any{
				{"event": "builder.generate.completed", "event_id": "b-3"}, {"event": "not.metered", "event_id": "n-1"}}})
			if res.Accepted != 2 {
				t.Fatalf("batch: %+v", res)
			}
			check := func(when string) {
				t.Helper()
				if q := h.quota(auth, "builds_daily"); q.Current != 3 || q.Exceeded != true {
					t.Errorf("%s: quota %+v, want 3 of 3", when, q)
				}
				if u := h.usageToday(auth, "builds_daily"); u["builds_daily"] != 3 {
					t.Errorf("%s: usage %v, want builds_daily 3", when, u)
				}
				if page := h.listEvents(auth, "event=builder.generate.completed"); len(page.Events) != 3 {
					t.Errorf("%s: %d build events, want 3", when, len(page.Events))
				}
				var m struct {
					KPIs map[string]struct{ Value int64 } `json:"kpis"`
				}
				h.do("GET", "/api/analytics/metrics?range=today&tz=UTC", nil, auth).want(t, http.StatusOK).decode(t, &m)
				if m.KPIs["builds"].Value != 3 {
					t.Errorf("%s: builds KPI %d, want 3", when, m.KPIs["builds"].Value)
				}
			}
			check("live")
			h.do("POST", "/api/analytics/rollup", nil, o.h()).want(t, http.StatusOK)
			check("after a rollup")
			// A fourth consume has no room, soft or enforced.
			if code := consume("b-4"); code != http.StatusTooManyRequests {
				t.Errorf("consume past the limit: %d", code)
			}
		})
	}
}
