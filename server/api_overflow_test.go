package server_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// withSQLitePath puts the harness on the SQLite file at path, so that a
// second app can start on the database a first one wrote.
func withSQLitePath(path string) harnessOption {
	return func(c *app.Config) { c.SQLitePath = path }
}

// TestAPIValueOverflow holds both backends to one rule on huge values:
// ingestion rejects a value beyond ±tally.MaxValue with a 400 naming the
// field, and a store that already holds such rows (written before the rule)
// still serves usage, KPIs and rollups, and an app still starts on it (the
// counter rebuild at start sums the log).
func TestAPIValueOverflow(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) harnessOption{
		"sqlite": func(t *testing.T) harnessOption {
			return withSQLitePath(filepath.Join(t.TempDir(), "shared.db"))
		},
		"postgres": func(t *testing.T) harnessOption { return withPostgres(pgtest.FreshSchema(t)) },
	}
	for name, backend := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := backend(t)
			h := newHarness(t, db)
			o := h.newTenant("acme")
			k := h.createKey(o, "analytics:write", "analytics:read")

			for _, v := range []float64{1.7976931348623157e308, -1.7976931348623157e308, 1.000000000000001e15} {
				r := h.do("POST", "/api/analytics/events", map[string]any{"event": "files.uploaded", "value": v}, hdr(k.Key, ""))
				r.want(t, http.StatusBadRequest)
				if !strings.Contains(string(r.Body), `"value: `+tally.MsgValue+`"`) {
					t.Errorf("value %v: problem %s does not name the field value", v, r)
				}
			}
			if res := h.send(hdr(k.Key, ""), map[string]any{"event": "files.uploaded", "value": tally.MaxValue}); res.Accepted != 1 {
				t.Fatalf("a value of exactly MaxValue: %+v", res)
			}

			// Rows written before the rule, straight into the store.
			tn, err := h.app.Store.TenantBySlug(t.Context(), o.slug)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			var huge []tally.Event
			for i, v := range []float64{1.7976931348623157e308, 1.7976931348623157e308, -1.7976931348623157e308} {
				huge = append(huge, tally.Event{TenantID: tn.ID, EventID: "huge-" + string(rune('a'+i)), Name: "files.uploaded",
					Source: "api", Timestamp: now.Add(-time.Duration(i) * time.Second), ReceivedAt: now, Value: v, Props: []byte(`{}`)})
			}
			if _, err := h.app.Store.InsertEvents(t.Context(), huge); err != nil {
				t.Fatal(err)
			}
			reads := func(h *harness) {
				t.Helper()
				h.do("GET", "/api/analytics/usage", nil, o.h()).want(t, http.StatusOK)
				h.do("GET", "/api/analytics/metrics?range=today", nil, o.h()).want(t, http.StatusOK)
				h.do("GET", "/api/analytics/quotas", nil, o.h()).want(t, http.StatusOK)
				h.do("POST", "/api/analytics/rollup", nil, o.h()).want(t, http.StatusOK)
				h.do("GET", "/api/analytics/metrics?range=7d", nil, o.h()).want(t, http.StatusOK)
			}
			reads(h)
			// A second app starts on the same database: the rebuild of
			// today's counters sums the huge rows and must not fail.
			again := newHarness(t, db)
			reads(again)
		})
	}
}
