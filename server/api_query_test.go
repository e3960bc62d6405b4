package server_test

import (
	"encoding/base64"
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestQueryValuesLiteral filters by values holding ';' (and other
// separators Go's query parser treats specially): lists and exports
// match the literal value, never the whole tenant.
func TestQueryValuesLiteral(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("literal")
		var batch []map[string]any
		for _, u := range []string{"x;y", "x", "y", "x y", "x+y", "other"} {
			batch = append(batch, map[string]any{"event": "lit.test", "event_id": "e-" + u, "user_id": u})
		}
		if res := h.send(o.h(), map[string]any{"batch": batch}); res.Accepted != len(batch) {
			t.Fatalf("accepted %+v", res)
		}
		for raw, want := range map[string]string{
			"x;y":   "x;y",
			"x%3By": "x;y",
			"x+y":   "x y", // '+' is a space in a query, as everywhere
			"x%2By": "x+y",
			"x%20y": "x y",
		} {
			p := h.listEvents(o.h(), "event=lit.test&user_id="+raw)
			if len(p.Events) != 1 || p.Events[0].UserID != want {
				t.Errorf("user_id=%s lists %+v, want the one event of %q", raw, p.Events, want)
			}
			r := h.do("GET", "/api/analytics/export.csv?event=lit.test&user_id="+raw, nil, o.h()).want(t, http.StatusOK)
			rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
			if err != nil || len(rows) != 2 || rows[1][3] != want {
				t.Errorf("export user_id=%s: %q (err %v), want the header and %q", raw, rows, err, want)
			}
		}
		// A filter value Go's parser would drop is never dropped: it
		// matches nothing here rather than everything.
		if p := h.listEvents(o.h(), "event=lit.test&user_id=nobody;x"); len(p.Events) != 0 {
			t.Errorf("user_id=nobody;x lists %d events", len(p.Events))
		}
		h.noPanic(t)
	})
}

// TestQueryParamsRefused sends unknown, repeated and badly encoded query
// parameters to API routes: 400 naming each.
func TestQueryParamsRefused(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("strict")
		cases := []struct {
			path   string
			fields []string
		}{
			{"/api/analytics/events?evnt=x", []string{"evnt"}},
			{"/api/analytics/events?limit=1&limit=2", []string{"limit"}},
			{"/api/analytics/events?user_id=%zz", []string{"user_id"}},
			{"/api/analytics/events?user_id=a%00b", []string{"user_id"}},
			{"/api/analytics/events?source=%ff", []string{"source"}},
			{"/api/analytics/events?%ff=1", []string{"query"}},
			{"/api/analytics/events?a=1&b=2", []string{"a", "b"}},
			{"/api/analytics/export.csv?format=json", []string{"format"}},
			{"/api/analytics/usage?range=7d", []string{"range"}},
			{"/api/analytics/metrics?from=2026-01-01", []string{"from"}},
			{"/api/analytics/audit?user_id=1", []string{"user_id"}},
			{"/api/analytics/webhooks/deliveries?status=failed", []string{"status"}},
			{"/api/analytics/quotas?limit=1", []string{"limit"}},
			{"/api/keys?all=1", []string{"all"}},
			{"/api/tenants?x", []string{"x"}},
			{"/api/auth/me?debug=1", []string{"debug"}},
		}
		for _, c := range cases {
			p := wantProblem(t, h.do("GET", c.path, nil, o.h()), http.StatusBadRequest)
			for _, f := range c.fields {
				if !p.hasField(f) {
					t.Errorf("GET %s: problem %+v does not name %s", c.path, p, f)
				}
			}
		}
		// POST routes take none either.
		p := wantProblem(t, h.do("POST", "/api/analytics/events?async=1", map[string]any{"event": "q.x"}, o.h()), http.StatusBadRequest)
		if !p.hasField("async") {
			t.Errorf("POST with ?async: %+v", p)
		}
		// Empty pairs are nothing.
		h.do("GET", "/api/analytics/events?&&limit=1&", nil, o.h()).want(t, http.StatusOK)
		h.noPanic(t)
	})
}

// TestQueryTimeBounds checks every explicit time bound: out of range is
// 400 naming the parameter (an explicit to is never "open"), from after to
// is 400 naming from, and cursors dated out of range are 400 naming
// cursor, on every route that takes them.
func TestQueryTimeBounds(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("bounds")
		h.send(o.h(), map[string]any{"event": "bound.test"})
		cursorAt := func(us int64) string {
			return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(us, 36) + ".1"))
		}
		year0 := time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
		cases := []struct {
			query  string
			fields []string
		}{
			{"to=0001-01-01T00:00:00Z", []string{"to"}},
			{"from=2026-01-01&to=0001-01-01T00:00:00Z", []string{"to", "from"}},
			{"from=0000-01-01T00:00:00Z", []string{"from"}},
			{"from=1969-12-31T23:59:59Z", []string{"from"}},
			{"to=9999-12-31T23:59:59-01:00", []string{"to"}},
			{"from=2026-03-02&to=2026-03-01", []string{"from"}},
			{"from=2026-03-01T00:00:01Z&to=2026-03-01T00:00:00Z", []string{"from"}},
			{"from=yesterday", []string{"from"}},
		}
		for _, route := range []string{"/api/analytics/events", "/api/analytics/export.csv", "/api/analytics/audit", "/api/analytics/usage"} {
			for _, c := range cases {
				p := wantProblem(t, h.do("GET", route+"?"+c.query, nil, o.h()), http.StatusBadRequest)
				for _, f := range c.fields {
					if !p.hasField(f) {
						t.Errorf("%s?%s: problem %+v does not name %s", route, c.query, p, f)
					}
				}
			}
			// The extremes themselves are fine (usage has its own span limit).
			if route != "/api/analytics/usage" {
				h.do("GET", route+"?from=1970-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", nil, o.h()).want(t, http.StatusOK)
			}
		}
		for _, route := range []string{"/api/analytics/events", "/api/analytics/export.csv", "/api/analytics/audit", "/api/analytics/webhooks/deliveries"} {
			for _, c := range []string{cursorAt(year0), cursorAt(-1 << 62), cursorAt(1 << 62), "zz"} {
				p := wantProblem(t, h.do("GET", route+"?cursor="+c, nil, o.h()), http.StatusBadRequest)
				if !p.hasField("cursor") {
					t.Errorf("%s?cursor=%s: %+v", route, c, p)
				}
			}
		}
		h.noPanic(t)
	})
}
