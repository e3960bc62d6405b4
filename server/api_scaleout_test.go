package server_test

import (
	"encoding/csv"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/postgres/pgtest"
)

func withPostgres(url string) harnessOption {
	return func(c *app.Config) { c.PostgresURL = url }
}

// TestAPIScaleOut runs two tally instances on one PostgreSQL schema and
// one Redis: what one stores the other serves, deduplication holds across
// them, and quota consume is exact across both.
func TestAPIScaleOut(t *testing.T) {
	t.Parallel()
	pg, rd := withPostgres(pgtest.FreshSchema(t)), withRedis(redisURL(t))
	quota := withQuotaDefaults(map[string]int64{"builds_daily": 30})
	one, two := newHarness(t, pg, rd, quota), newHarness(t, pg, rd, quota)

	o := one.newTenant("acme")
	k := one.createKey(o, "analytics:write", "analytics:read", "analytics:export")
	batch := map[string]any{"batch": []map[string]any{
		{"event": "files.uploaded", "event_id": "up-1", "user_id": "=u1", "value": 2048},
		{"event": "auth.user.login", "event_id": "in-1", "user_id": "u2", "props": map[string]any{"password": "x"}},
	}}
	if res := one.send(hdr(k.Key, ""), batch); res.Accepted != 2 {
		t.Fatalf("first instance: %+v", res)
	}
	if res := two.send(hdr(k.Key, ""), batch); res.Duplicates != 2 || res.Accepted != 0 {
		t.Fatalf("the second instance stored events the first had: %+v", res)
	}
	page := two.listEvents(hdr(k.Key, ""), "event=auth.*")
	if len(page.Events) < 1 || !strings.Contains(string(page.Events[0].Props), "[redacted]") {
		t.Fatalf("second instance lists %+v", page.Events)
	}
	r := two.do("GET", "/api/analytics/export.csv?event=files.uploaded", nil, hdr(k.Key, "")).want(t, http.StatusOK)
	rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][3] != "'=u1" {
		t.Fatalf("export from PostgreSQL: %v %q", err, rows)
	}

	// Consume across both instances: exactly the limit, never one more.
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 48 {
		h := one
		if i%2 == 1 {
			h = two
		}
		wg.Go(func() {
			r := h.do("POST", "/api/analytics/quotas/builds_daily/consume", nil, hdr(k.Key, ""))
			mu.Lock()
			codes[r.Status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 30 || codes[http.StatusTooManyRequests] != 18 {
		t.Fatalf("consume across two instances: %v, want 30 × 200 and 18 × 429", codes)
	}

	// Rollups and reports read the shared database.
	var roll struct{ Days, Rows int }
	one.do("POST", "/api/analytics/rollup", nil, o.h()).want(t, http.StatusOK).decode(t, &roll)
	if roll.Days != 2 || roll.Rows == 0 {
		t.Fatalf("rollup on PostgreSQL: %+v", roll)
	}
	var m struct {
		KPIs map[string]struct{ Value int64 } `json:"kpis"`
	}
	two.do("GET", "/api/analytics/metrics?range=today", nil, o.h()).want(t, http.StatusOK).decode(t, &m)
	if m.KPIs["file_uploads"].Value != 1 || m.KPIs["logins"].Value < 1 {
		t.Fatalf("KPIs from PostgreSQL: %+v", m.KPIs)
	}
	var ready struct{ Status string }
	two.do("GET", "/readiness", nil, nil).want(t, http.StatusOK).decode(t, &ready)
	if ready.Status != "ok" {
		t.Fatalf("readiness on PostgreSQL and Redis: %s", ready.Status)
	}
}
