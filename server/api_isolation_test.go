package server_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestAPITenantIsolation fills tenant B and checks that none of it shows
// in any of tenant A's answers, for A's admin session and A's key alike,
// and that A cannot delete B's end-user events.
func TestAPITenantIsolation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.newTenant("alpha")
	b := h.newTenant("bravo")
	aKey := h.createKey(a, "analytics:read", "analytics:write", "analytics:export", "analytics:admin")
	bKey := h.createKey(b, "analytics:read", "analytics:write", "analytics:export", "analytics:admin")

	// B's data: events, usage, a quota, an export and a deletion.
	var bBatch []any
	for _, u := range []string{"shared-user", "shared-user", "shared-user", "bravo-u1", "bravo-u2", "bravo-u3", "bravo-u4", "bravo-u5"} {
		bBatch = append(bBatch, map[string]any{"event": "bravo.secret", "user_id": u, "source": "bravo_src", "props": map[string]string{"mark": "BRAVO-ONLY"}})
	}
	bBatch = append(bBatch, map[string]any{"event": "builder.generate.completed", "user_id": "bravo-u6"})
	h.send(b.h(), map[string]any{"batch": bBatch})
	h.do("POST", "/api/analytics/usage", map[string]any{"metric": "bravo_metric", "amount": 7}, hdr(bKey.Key, "")).want(t, http.StatusAccepted)
	h.do("PUT", "/api/analytics/quotas/bravo_quota", map[string]any{"limit": 9}, b.h()).want(t, http.StatusOK)
	h.do("GET", "/api/analytics/export.csv", nil, b.h()).want(t, http.StatusOK)
	h.do("DELETE", "/api/analytics/users/bravo-u5/events", nil, b.h()).want(t, http.StatusOK)
	h.do("POST", "/api/analytics/rollup", nil, b.h()).want(t, http.StatusOK)

	// A's own data.
	h.send(a.h(), map[string]any{"batch": []any{
		map[string]any{"event": "alpha.visible", "user_id": "shared-user"},
		map[string]any{"event": "alpha.visible", "user_id": "shared-user"},
	}})
	h.do("POST", "/api/analytics/rollup", nil, a.h()).want(t, http.StatusOK)

	bravoMarks := []string{"bravo", "BRAVO", bKey.Prefix, b.email}
	noBravo := func(t *testing.T, r *apiResponse) {
		t.Helper()
		for _, m := range bravoMarks {
			if strings.Contains(string(r.Body), m) {
				t.Errorf("%s shows tenant B's %q", r, m)
			}
		}
	}
	month := "from=" + time.Now().AddDate(0, 0, -30).Format(time.DateOnly)
	for name, as := range map[string]map[string]string{"session": a.h(), "key": hdr(aKey.Key, "")} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{
				"/api/analytics/events?limit=1000&" + month,
				"/api/analytics/events?user_id=shared-user",
				"/api/analytics/events?source=bravo_src",
				"/api/analytics/events?event=bravo.*",
				"/api/analytics/export.csv?" + month,
				"/api/analytics/export.csv?user_id=shared-user",
				"/api/analytics/usage?" + month,
				"/api/analytics/metrics?range=30d",
				"/api/analytics/quotas",
				"/api/analytics/audit?limit=1000",
			} {
				r := h.doT(t, "GET", path, nil, as)
				r.want(t, http.StatusOK)
				noBravo(t, r)
			}
			if evs := h.listEvents(as, "user_id=shared-user").Events; len(evs) != 2 {
				t.Errorf("A sees %d events of shared-user, want its own 2", len(evs))
			}
			r := h.doT(t, "GET", "/api/analytics/usage?metric=bravo_metric,builds_daily", nil, as)
			r.want(t, http.StatusOK)
			var u usageSeries
			r.decode(t, &u)
			for _, s := range u.Series {
				for _, p := range s.Points {
					if p.Value != 0 {
						t.Errorf("A's %s has %d on %v", s.Metric, p.Value, p.Start)
					}
				}
			}
			r = h.doT(t, "GET", "/api/analytics/metrics?range=7d", nil, as)
			var rep struct {
				KPIs map[string]struct {
					Value int64 `json:"value"`
				} `json:"kpis"`
			}
			r.decode(t, &rep)
			if rep.KPIs["builds"].Value != 0 || rep.KPIs["active_users"].Value > 3 {
				t.Errorf("A's KPIs count B: %s", r.Body)
			}
			wantProblem(t, h.doT(t, "GET", "/api/analytics/quotas/bravo_quota", nil, as), http.StatusNotFound)
		})
	}

	// A's deletion touches only A's events.
	r := h.do("DELETE", "/api/analytics/users/shared-user/events", nil, hdr(aKey.Key, ""))
	r.want(t, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != `{"deleted":2}` {
		t.Errorf("A's delete: %s", r.Body)
	}
	if evs := h.listEvents(b.h(), url.Values{"user_id": {"shared-user"}}.Encode()).Events; len(evs) != 3 {
		t.Errorf("B has %d shared-user events after A's delete, want 3", len(evs))
	}
	// And B still sees its own data.
	if q := h.quota(b.h(), "bravo_quota"); q.Limit != 9 {
		t.Errorf("B's quota %+v", q)
	}
	if got := h.usageToday(b.h(), "bravo_metric", "builds_daily"); got["bravo_metric"] != 7 || got["builds_daily"] != 1 {
		t.Errorf("B's usage %v", got)
	}
}
