package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAPIRequestID(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")

	seen := map[string]bool{}
	for _, rt := range []struct {
		method, path string
		headers      map[string]string
	}{
		{"GET", "/healthz", nil},
		{"GET", "/readiness", nil},
		{"GET", "/metrics", nil},
		{"GET", "/api/auth/me", nil},
		{"GET", "/api/auth/me", o.h()},
		{"GET", "/no/such/path", nil},
		{"POST", "/api/analytics/events", o.h()},
	} {
		r := h.do(rt.method, rt.path, nil, rt.headers)
		id := r.Header.Get("X-Request-ID")
		if len(id) < 16 || seen[id] {
			t.Errorf("%s: generated X-Request-ID %q is short or repeated", r, id)
		}
		seen[id] = true
	}

	long := strings.Repeat("r", 128)
	for _, tt := range []struct {
		name, sent string
		echoed     bool
	}{
		{"echoed", "req-123_abc.DEF:9", true},
		{"128 chars echoed", long, true},
		{"129 chars replaced", long + "r", false},
		{"tab replaced", "abc\tdef", false},
		{"space replaced", "abc def", false},
		{"non-ASCII replaced", "abcé", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/healthz", "/api/auth/me", "/nope"} {
				r := h.doT(t, "GET", path, nil, map[string]string{"X-Request-ID": tt.sent})
				got := r.Header.Get("X-Request-ID")
				if tt.echoed && got != tt.sent {
					t.Errorf("%s: X-Request-ID %q, want %q echoed", r, got, tt.sent)
				}
				if !tt.echoed && (got == tt.sent || got == "" || strings.ContainsAny(got, "\t é")) {
					t.Errorf("%s: X-Request-ID %q, want a fresh one for %q", r, got, tt.sent)
				}
			}
		})
	}
}

func TestAPIErrorsAreProblems(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")

	for _, rt := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/api"},
		{"GET", "/api/analytics/nope"},
		{"POST", "/api/auth/nope"},
		{"GET", "/api/tenants/acme/nope"},
	} {
		r := h.do(rt.method, rt.path, nil, o.h())
		wantProblem(t, r, http.StatusNotFound)
	}
	// A known path with a method it does not serve is a problem too.
	for _, rt := range []struct{ method, path, allow string }{
		{"DELETE", "/healthz", "GET"},
		{"PUT", "/api/auth/login", "POST"},
		{"GET", "/api/auth/logout", "POST"},
		{"POST", "/api/analytics/quotas/x", "GET, PUT, DELETE"},
	} {
		r := h.do(rt.method, rt.path, nil, o.h())
		wantProblem(t, r, http.StatusMethodNotAllowed)
		if got := r.Header.Get("Allow"); got != rt.allow {
			t.Errorf("%s %s: Allow %q, want %q", rt.method, rt.path, got, rt.allow)
		}
	}

	// The body limit is 1 MiB.
	padded := func(n int) string {
		body := `{"email":"not-an-email","password":"` + harnessPassword + `"}`
		return body + strings.Repeat(" ", n-len(body))
	}
	wantProblem(t, h.do("POST", "/api/auth/register", padded(1<<20), nil), http.StatusBadRequest)
	wantProblem(t, h.do("POST", "/api/auth/register", padded(1<<20+1), nil), http.StatusRequestEntityTooLarge)
	event := `{"event":"big.body","props":{"pad":"`
	big := event + strings.Repeat("x", 1<<20+1-len(event)-3) + `"}}`
	if len(big) != 1<<20+1 {
		t.Fatalf("body of %d bytes", len(big))
	}
	wantProblem(t, h.do("POST", "/api/analytics/events", big, o.h()), http.StatusRequestEntityTooLarge)
	wantProblem(t, h.do("POST", "/api/tenants", strings.Repeat(" ", 1<<20)+`{"name":"x","slug":"big"}`, o.h()), http.StatusRequestEntityTooLarge)
	wantProblem(t, h.do("PUT", "/api/analytics/quotas/builds_daily", `{"limit":1}`+strings.Repeat(" ", 2<<20), o.h()), http.StatusRequestEntityTooLarge)
}

func TestAPIOperations(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")

	r := h.do("GET", "/healthz", nil, nil)
	r.want(t, http.StatusOK)
	if m := r.object(t); len(m) != 1 || m["status"] != "ok" {
		t.Errorf("healthz %s", r.Body)
	}

	type readiness struct {
		Status string `json:"status"`
		Checks struct {
			Database *struct {
				OK bool `json:"ok"`
			} `json:"database"`
			Redis *struct {
				Configured *bool `json:"configured"`
				OK         bool  `json:"ok"`
			} `json:"redis"`
		} `json:"checks"`
		Analytics *struct {
			Configured    bool       `json:"configured"`
			OK            bool       `json:"ok"`
			EventsToday   *int64     `json:"events_today"`
			RollupLastRun *time.Time `json:"rollup_last_run"`
		} `json:"analytics"`
	}
	ready := func() (readiness, []byte) {
		t.Helper()
		r := h.do("GET", "/readiness", nil, hdr(harnessMetricsToken, ""))
		r.want(t, http.StatusOK)
		var v readiness
		r.decode(t, &v)
		return v, r.Body
	}
	v, body := ready()
	if v.Status != "ok" || v.Checks.Database == nil || !v.Checks.Database.OK || v.Checks.Redis == nil || v.Checks.Redis.Configured == nil ||
		*v.Checks.Redis.Configured || v.Analytics == nil || !v.Analytics.Configured || !v.Analytics.OK || v.Analytics.EventsToday == nil {
		t.Fatalf("readiness %s", body)
	}
	if !bytes.Contains(body, []byte(`"rollup_last_run":null`)) {
		t.Errorf("rollup_last_run before any rollup: %s", body)
	}
	before := *v.Analytics.EventsToday

	h.send(o.h(), map[string]any{"batch": []map[string]any{
		{"event": "ops.test", "user_id": "u1", "source": "web"},
		{"event": "ops.test", "user_id": "u2", "source": "web"},
	}})
	v, body = ready()
	if *v.Analytics.EventsToday < before+2 || *v.Analytics.EventsToday < 2 {
		t.Errorf("events_today after ingesting 2: %s", body)
	}
	h.do("POST", "/api/analytics/rollup", nil, o.h()).want(t, http.StatusOK)
	v, body = ready()
	if v.Analytics.RollupLastRun == nil || time.Since(*v.Analytics.RollupLastRun) > time.Minute {
		t.Errorf("rollup_last_run after a rollup: %s", body)
	}

	// Metrics: HTTP by route pattern, events, queries, usage, queue.
	h.do("GET", "/api/analytics/events", nil, o.h()).want(t, http.StatusOK)
	h.do("POST", "/api/analytics/usage", map[string]string{"metric": "builds_daily"}, o.h()).want(t, http.StatusAccepted)
	h.do("GET", "/healthz", nil, nil).want(t, http.StatusOK)
	h.do("GET", "/nope/"+strings.Repeat("x", 20), nil, nil)
	r = h.do("GET", "/metrics", nil, hdr(harnessMetricsToken, ""))
	r.want(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") && !strings.Contains(ct, "openmetrics") {
		t.Errorf("metrics Content-Type %q", ct)
	}
	text := string(r.Body)
	for _, re := range []string{
		`(?m)^sbh_http_requests_total\{[^}]*route="GET /healthz"[^}]*\} [1-9]`,
		`(?m)^sbh_http_requests_total\{[^}]*route="POST /api/analytics/events"[^}]*\} [1-9]`,
		`(?m)^sbh_http_request_duration_seconds_bucket\{[^}]*route="GET /healthz"`,
		`(?m)^sbh_analytics_events_total\{(?:[^}]*,)?event="ops\.test"[^}]*\} 2$`,
		`(?m)^sbh_analytics_events_total\{[^}]*source="web"[^}]*tenant="acme"[^}]*\} 2$`,
		`(?m)^sbh_analytics_query_duration_seconds_count\{[^}]*\} [1-9]`,
		`(?m)^sbh_usage_count_total\{[^}]*metric="builds_daily"[^}]*tenant="acme"[^}]*\} [1-9]`,
		`(?m)^sbh_ingest_queue_depth `,
		`(?m)^sbh_analytics_rollup_duration_seconds_count [1-9]`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("/metrics does not match %s", re)
		}
	}
	// Unknown paths do not add a label value each.
	if strings.Contains(text, "/nope/xxxx") {
		t.Errorf("/metrics has a label per unknown path")
	}
}

// TestAPIMetricsLabelCap checks that event names past the label cap are
// counted under "other" instead of growing the metric without bound.
func TestAPIMetricsLabelCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withLabelCap(3))
	o := h.newTenant("acme")
	var batch []any
	for i := range 10 {
		batch = append(batch, map[string]string{"event": fmt.Sprintf("cap.name%d", i), "source": "web"})
	}
	h.send(o.h(), map[string]any{"batch": batch})
	text := h.metrics()
	names := map[string]bool{}
	var total float64
	for _, m := range regexp.MustCompile(`(?m)^sbh_analytics_events_total\{[^}]*event="([^"]*)"[^}]*\} (\S+)$`).FindAllStringSubmatch(text, -1) {
		names[m[1]] = true
		v, _ := strconv.ParseFloat(m[2], 64)
		total += v
	}
	if len(names) > 4 || !names["other"] {
		t.Errorf("event label values %v, want at most 3 and other", names)
	}
	if total < 10 {
		t.Errorf("sbh_analytics_events_total sums to %v, want every event counted", total)
	}
}
