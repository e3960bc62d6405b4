package server_test

import (
	"net/http"
	"testing"
	"time"
)

// TestAPIGrants: an admin grants extra allowance; it shows in granted and
// remaining, lets an enforced quota admit that much more, is listed and
// audited; bad input is 400, a member 403, a metric without quota 404.
func TestAPIGrants(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	w := h.createKey(o, "analytics:write", "analytics:read")
	h.do("PUT", "/api/analytics/quotas/gen", map[string]any{"limit": 1, "enforced": true, "period": "month"}, o.h()).want(t, http.StatusOK)
	h.do("POST", "/api/analytics/quotas/gen/consume", nil, hdr(w.Key, "")).want(t, http.StatusOK)
	h.do("POST", "/api/analytics/quotas/gen/consume", nil, hdr(w.Key, "")).want(t, http.StatusTooManyRequests)

	var ans struct {
		Grant struct {
			ID          int64      `json:"id"`
			Amount      int64      `json:"amount"`
			Reason      string     `json:"reason"`
			PeriodStart time.Time  `json:"period_start"`
			ExpiresAt   *time.Time `json:"expires_at"`
			CreatedBy   string     `json:"created_by"`
		} `json:"grant"`
		Quota periodQuotaJSON `json:"quota"`
	}
	h.do("POST", "/api/analytics/quotas/gen/grants", map[string]any{"amount": 2, "reason": "launch week"}, o.h()).
		want(t, http.StatusCreated).decode(t, &ans)
	if ans.Grant.Amount != 2 || ans.Grant.Reason != "launch week" || ans.Grant.ExpiresAt != nil || ans.Grant.CreatedBy != "user:owner@acme.test" ||
		!ans.Grant.PeriodStart.Equal(ans.Quota.PeriodStart) || ans.Quota.Granted != 2 || ans.Quota.Remaining != 2 || ans.Quota.Exceeded {
		t.Fatalf("grant answer %+v", ans)
	}
	r := h.do("POST", "/api/analytics/quotas/gen/consume", map[string]any{"amount": 2}, hdr(w.Key, ""))
	r.want(t, http.StatusOK)
	if got := r.Header.Get("RateLimit-Policy"); len(got) < 12 || got[:12] != `"gen";q=3;w=` {
		t.Errorf("RateLimit-Policy %q, want the allowance 3", got)
	}
	wantProblem(t, h.do("POST", "/api/analytics/quotas/gen/reservations", map[string]any{"amount": 1}, hdr(w.Key, "")), http.StatusTooManyRequests)
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	h.do("POST", "/api/analytics/quotas/gen/grants", map[string]any{"amount": 1, "reason": "retry", "expires_at": soon}, o.h()).want(t, http.StatusCreated)
	h.do("POST", "/api/analytics/quotas/gen/reservations", map[string]any{"amount": 1}, hdr(w.Key, "")).want(t, http.StatusCreated)

	var list struct {
		Grants []struct {
			Reason    string     `json:"reason"`
			ExpiresAt *time.Time `json:"expires_at"`
		} `json:"grants"`
	}
	h.do("GET", "/api/analytics/quotas/gen/grants", nil, hdr(w.Key, "")).want(t, http.StatusOK).decode(t, &list)
	if len(list.Grants) != 2 || list.Grants[0].Reason != "retry" || list.Grants[0].ExpiresAt == nil || list.Grants[1].Reason != "launch week" {
		t.Errorf("grants %+v", list.Grants)
	}
	r = h.do("GET", "/api/analytics/audit?action=quota.grant", nil, o.h())
	var audit struct {
		Entries []struct {
			Target string         `json:"target"`
			Meta   map[string]any `json:"meta"`
		} `json:"entries"`
	}
	r.want(t, http.StatusOK).decode(t, &audit)
	if len(audit.Entries) != 2 || audit.Entries[1].Target != "gen" || audit.Entries[1].Meta["reason"] != "launch week" {
		t.Errorf("quota.grant audit %s", r.Body)
	}

	for _, tt := range []struct {
		body  any
		field string
	}{
		{map[string]any{"reason": "x"}, "amount"},
		{map[string]any{"amount": 0, "reason": "x"}, "amount"},
		{map[string]any{"amount": 1}, "reason"},
		{map[string]any{"amount": 1, "reason": "x", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"},
	} {
		r := h.do("POST", "/api/analytics/quotas/gen/grants", tt.body, o.h())
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%v: %s does not name %s", tt.body, r, tt.field)
		}
	}
	wantProblem(t, h.do("POST", "/api/analytics/quotas/gen/grants", map[string]any{"amount": 1, "reason": "x"}, hdr(w.Key, "")), http.StatusForbidden)
	wantProblem(t, h.do("POST", "/api/analytics/quotas/nothing/grants", map[string]any{"amount": 1, "reason": "x"}, o.h()), http.StatusNotFound)
	wantProblem(t, h.do("GET", "/api/analytics/quotas/nothing/grants", nil, o.h()), http.StatusNotFound)
	b := h.newTenant("bravo")
	h.do("PUT", "/api/analytics/quotas/gen", map[string]any{"limit": 1}, b.h()).want(t, http.StatusOK)
	h.do("GET", "/api/analytics/quotas/gen/grants", nil, b.h()).want(t, http.StatusOK).decode(t, &list)
	if len(list.Grants) != 0 {
		t.Errorf("another tenant sees grants %+v", list.Grants)
	}
}
