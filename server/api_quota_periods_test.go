package server_test

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// periodQuotaJSON is a quota status with its period fields.
type periodQuotaJSON struct {
	quotaJSON
	Granted     int64     `json:"granted"`
	AnchorDay   int       `json:"anchor_day"`
	PeriodStart time.Time `json:"period_start"`
}

// TestAPIQuotaPeriods: a tenant in New York sets weekly, monthly and
// billing quotas; the answers carry the period in the tenant's zone, a
// refused consume the period's Retry-After and RateLimit fields; a PUT
// replaces the override whole and a DELETE returns to the default.
func TestAPIQuotaPeriods(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withQuotaDefaults(map[string]int64{"builds_daily": 10}))
	o := h.newTenant("acme")
	h.do("PATCH", "/api/tenants/acme", map[string]any{"timezone": "America/New_York"}, hdr(o.token, "")).want(t, http.StatusOK)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().In(ny)
	y, m, d := now.Date()
	monday := time.Date(y, m, d-(int(now.Weekday())+6)%7, 0, 0, 0, 0, ny)
	anchor := func(y int, m time.Month) time.Time { // anchor 31, clamped
		first := time.Date(y, m, 1, 0, 0, 0, 0, ny)
		return time.Date(first.Year(), first.Month(), first.AddDate(0, 1, -1).Day(), 0, 0, 0, 0, ny)
	}
	billStart, billEnd := anchor(y, m), anchor(y, m+1)
	if now.Before(billStart) {
		billStart, billEnd = anchor(y, m-1), anchor(y, m)
	}
	for _, tt := range []struct {
		body       map[string]any
		start, end time.Time
	}{
		{map[string]any{"limit": 3, "enforced": true}, time.Date(y, m, d, 0, 0, 0, 0, ny), time.Date(y, m, d+1, 0, 0, 0, 0, ny)},
		{map[string]any{"limit": 3, "enforced": true, "period": "week"}, monday, monday.AddDate(0, 0, 7)},
		{map[string]any{"limit": 3, "enforced": true, "period": "month"}, time.Date(y, m, 1, 0, 0, 0, 0, ny), time.Date(y, m+1, 1, 0, 0, 0, 0, ny)},
		{map[string]any{"limit": 3, "enforced": true, "period": "billing", "anchor_day": 31}, billStart, billEnd},
	} {
		var q periodQuotaJSON
		h.do("PUT", "/api/analytics/quotas/gen_units", tt.body, o.h()).want(t, http.StatusOK).decode(t, &q)
		if !q.PeriodStart.Equal(tt.start) || !q.ResetsAt.Equal(tt.end) || !q.Enforced || q.Limit != 3 {
			t.Errorf("PUT %v: %+v, want [%s, %s)", tt.body, q, tt.start, tt.end)
		}
		if p, _ := tt.body["period"].(string); (p == "" && q.Period != "day") || (p != "" && q.Period != p) {
			t.Errorf("PUT %v: period %q", tt.body, q.Period)
		}
	}
	// The billing quota: 3 units fit, the fourth is refused until billEnd.
	r := h.do("POST", "/api/analytics/quotas/gen_units/consume", map[string]any{"amount": 3}, o.h())
	r.want(t, http.StatusOK)
	r = h.do("POST", "/api/analytics/quotas/gen_units/consume", nil, o.h())
	wantProblem(t, r, http.StatusTooManyRequests)
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if want := time.Until(billEnd).Seconds(); err != nil || float64(retry) < want-2 || float64(retry) > want+2 {
		t.Errorf("Retry-After %q, want about %.0f", r.Header.Get("Retry-After"), want)
	}
	wantPolicy := `"gen_units";q=3;w=` + strconv.FormatInt(int64(billEnd.Sub(billStart)/time.Second), 10)
	if got := r.Header.Get("RateLimit-Policy"); got != wantPolicy {
		t.Errorf("RateLimit-Policy %q, want %q", got, wantPolicy)
	}
	if got := r.Header.Get("RateLimit"); got != `"gen_units";r=0;t=`+strconv.Itoa(retry) {
		t.Errorf("RateLimit %q (Retry-After %d)", got, retry)
	}

	// A PUT is a full replacement: without enforced the quota is soft,
	// without period it is daily again; the usage of today stays.
	var q periodQuotaJSON
	h.do("PUT", "/api/analytics/quotas/gen_units", map[string]any{"limit": 2}, o.h()).want(t, http.StatusOK).decode(t, &q)
	if q.Enforced || q.Period != "day" || q.AnchorDay != 0 || q.Current != 3 || !q.Exceeded {
		t.Errorf("PUT {limit: 2} after a billing override: %+v", q)
	}
	h.do("POST", "/api/analytics/quotas/gen_units/consume", nil, o.h()).want(t, http.StatusTooManyRequests) // soft: still no room

	// DELETE: the override goes; a metric with a default gets it back,
	// one without has no quota; a second DELETE is 404.
	h.do("PUT", "/api/analytics/quotas/builds_daily", map[string]any{"limit": 1, "enforced": true, "period": "week"}, o.h()).want(t, http.StatusOK)
	r = h.do("DELETE", "/api/analytics/quotas/builds_daily", nil, o.h())
	r.want(t, http.StatusOK).decode(t, &q)
	if q.Limit != 10 || q.Enforced || q.Period != "day" {
		t.Errorf("builds_daily after DELETE %+v, want the default", q)
	}
	h.do("DELETE", "/api/analytics/quotas/gen_units", nil, o.h()).want(t, http.StatusNoContent)
	wantProblem(t, h.do("GET", "/api/analytics/quotas/gen_units", nil, o.h()), http.StatusNotFound)
	wantProblem(t, h.do("DELETE", "/api/analytics/quotas/gen_units", nil, o.h()), http.StatusNotFound)
	wantProblem(t, h.do("DELETE", "/api/analytics/quotas/Bad-Name", nil, o.h()), http.StatusNotFound)
	r = h.do("GET", "/api/analytics/audit?action=quota.deleted", nil, o.h())
	var audit struct {
		Entries []struct {
			Target string `json:"target"`
		} `json:"entries"`
	}
	r.want(t, http.StatusOK).decode(t, &audit)
	if len(audit.Entries) != 2 {
		t.Errorf("quota.deleted audit %s", r.Body)
	}
	// A member may not delete.
	memberTok, _ := h.member(o, "member")
	wantProblem(t, h.do("DELETE", "/api/analytics/quotas/builds_daily", nil, hdr(memberTok, "acme")), http.StatusForbidden)
}

// TestAPIQuotaThresholds: a PUT sets a quota's alert thresholds and the
// quota answers them (the defaults when none are set); thresholds out of
// range, out of order or too many are a 400 naming the field.
func TestAPIQuotaThresholds(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("acme")
		var q struct {
			Thresholds []int `json:"thresholds"`
		}
		h.do("PUT", "/api/analytics/quotas/gen_units", map[string]any{"limit": 10}, o.h()).want(t, http.StatusOK).decode(t, &q)
		if !slices.Equal(q.Thresholds, []int{80, 100}) {
			t.Errorf("default thresholds %v, want [80 100]", q.Thresholds)
		}
		h.do("PUT", "/api/analytics/quotas/gen_units", map[string]any{"limit": 10, "thresholds": []int{50, 90, 100, 120}}, o.h()).want(t, http.StatusOK)
		h.do("GET", "/api/analytics/quotas/gen_units", nil, o.h()).want(t, http.StatusOK).decode(t, &q)
		if !slices.Equal(q.Thresholds, []int{50, 90, 100, 120}) {
			t.Errorf("thresholds read back %v", q.Thresholds)
		}
		for _, tt := range []struct {
			thresholds []int
			field      string
		}{{[]int{0}, "thresholds[0]"}, {[]int{80, 80}, "thresholds[1]"}, {[]int{1001}, "thresholds[0]"},
			{[]int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, "thresholds"}} {
			r := h.do("PUT", "/api/analytics/quotas/gen_units", map[string]any{"limit": 10, "thresholds": tt.thresholds}, o.h()).want(t, http.StatusBadRequest)
			if !strings.Contains(r.String(), `"field":"`+tt.field+`"`) {
				t.Errorf("thresholds %v: %s does not name %s", tt.thresholds, r, tt.field)
			}
		}
		// A PUT without thresholds is back to the defaults (a full replacement).
		h.do("PUT", "/api/analytics/quotas/gen_units", map[string]any{"limit": 10}, o.h()).want(t, http.StatusOK).decode(t, &q)
		if !slices.Equal(q.Thresholds, []int{80, 100}) {
			t.Errorf("after a PUT without thresholds: %v", q.Thresholds)
		}
		h.noPanic(t)
	})
}

// TestAPIQuotaRetryAfterIsThePeriods: events and increments refused by an
// enforced monthly quota answer Retry-After until the month ends (the
// quota's resets_at), not until the next UTC midnight.
func TestAPIQuotaRetryAfterIsThePeriods(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	var q periodQuotaJSON
	h.do("PUT", "/api/analytics/quotas/builds_daily", map[string]any{"limit": 1, "enforced": true, "period": "month"}, o.h()).want(t, http.StatusOK).decode(t, &q)
	h.do("PUT", "/api/analytics/quotas/gen_units", map[string]any{"limit": 1, "enforced": true, "period": "month"}, o.h()).want(t, http.StatusOK)
	build := func(id string) *apiResponse {
		return h.do("POST", "/api/analytics/events", map[string]any{"event": "builder.generate.completed", "event_id": id}, o.h())
	}
	build("b1").want(t, http.StatusAccepted)
	h.do("POST", "/api/analytics/usage", map[string]any{"metric": "gen_units"}, o.h()).want(t, http.StatusAccepted)
	for name, r := range map[string]*apiResponse{
		"events": build("b2").want(t, http.StatusTooManyRequests),
		"usage":  h.do("POST", "/api/analytics/usage", map[string]any{"metric": "gen_units"}, o.h()).want(t, http.StatusTooManyRequests),
	} {
		secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
		want := time.Until(q.ResetsAt).Seconds()
		if err != nil || float64(secs) < want-30 || float64(secs) > want+30 {
			t.Errorf("%s: Retry-After %q, want about %.0f s (until %s)", name, r.Header.Get("Retry-After"), want, q.ResetsAt)
		}
	}
	h.noPanic(t)
}
