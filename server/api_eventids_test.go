package server_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tallyhq/tally"
)

// TestEventIDsPerTenant writes A's events one at a time with bursts of B's
// between them. Stored ids are one sequence across tenants (the gaps are
// B's write counts); the ids and cursors A's answers show are a keyed
// permutation per tenant: no gap, order or raw id of the store shows, and
// they stay the same after a restart (the key is in the database).
func TestEventIDsPerTenant(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		a, b := h.newTenant("ids-a"), h.newTenant("ids-b")
		const rounds = 12
		for i := range rounds {
			h.send(a.h(), map[string]any{"event": "ids.a", "event_id": "a" + strconv.Itoa(i)})
			var burst []map[string]any
			for j := range 3 + i {
				burst = append(burst, map[string]any{"event": "ids.b", "event_id": "b" + strconv.Itoa(i) + "-" + strconv.Itoa(j)})
			}
			h.send(b.h(), map[string]any{"batch": burst})
		}
		tn, err := h.app.Store.TenantBySlug(t.Context(), a.slug)
		if err != nil {
			t.Fatal(err)
		}
		raw, _, err := h.app.Store.ListEvents(t.Context(), tn.ID, tally.EventFilter{Name: "ids.a", Limit: 100})
		if err != nil || len(raw) != rounds {
			t.Fatalf("stored events of a: %d (err %v)", len(raw), err)
		}
		rawByEventID := map[string]int64{}
		for _, e := range raw {
			rawByEventID[e.EventID] = e.ID
		}
		// The leak being closed: underneath, A's consecutive ids differ by
		// B's writes in between, plus one.
		for i := 1; i < rounds; i++ {
			if gap := rawByEventID["a"+strconv.Itoa(i)] - rawByEventID["a"+strconv.Itoa(i-1)]; gap < int64(3+i) {
				t.Fatalf("stored ids a%d, a%d differ by %d: not one sequence with b's writes between", i-1, i, gap)
			}
		}

		page := h.listEvents(a.h(), "event=ids.a&limit=100")
		if len(page.Events) != rounds {
			t.Fatalf("a lists %d events", len(page.Events))
		}
		pub := map[string]int64{}
		for _, e := range page.Events {
			pub[e.EventID] = e.ID
			if e.ID == rawByEventID[e.EventID] {
				t.Errorf("event %s shows its stored id %d", e.EventID, e.ID)
			}
			if e.ID < 0 || e.ID > tally.MaxEventID {
				t.Errorf("event %s shows id %d, not a JSON-safe integer", e.EventID, e.ID)
			}
		}
		increasing := 0
		for i := 1; i < rounds; i++ {
			d := pub["a"+strconv.Itoa(i)] - pub["a"+strconv.Itoa(i-1)]
			if d > 0 {
				increasing++
			}
			if d == rawByEventID["a"+strconv.Itoa(i)]-rawByEventID["a"+strconv.Itoa(i-1)] {
				t.Errorf("public ids a%d, a%d differ by the stored gap %d", i-1, i, d)
			}
		}
		if increasing == rounds-1 {
			t.Errorf("a's public ids increase with every write: %v", pub)
		}

		// Cursors carry public ids only, and page through the same events.
		p1 := h.listEvents(a.h(), "event=ids.a&limit=5")
		if p1.NextCursor == nil {
			t.Fatal("no next cursor")
		}
		dec, err := base64.RawURLEncoding.DecodeString(*p1.NextCursor)
		if err != nil {
			t.Fatal(err)
		}
		_, idPart, _ := strings.Cut(string(dec), ".")
		if n, _ := strconv.ParseInt(idPart, 36, 64); n == rawByEventID[p1.Events[4].EventID] || n != p1.Events[4].ID {
			t.Errorf("cursor carries id %d; the last event shows %d (stored %d)", n, p1.Events[4].ID, rawByEventID[p1.Events[4].EventID])
		}
		all := h.allEvents(a.h(), map[string][]string{"event": {"ids.a"}, "limit": {"5"}})
		if len(all) != rounds {
			t.Errorf("paging by 5 gives %d events, want %d", len(all), rounds)
		}
		r := h.do("GET", "/api/analytics/export.csv?event=ids.a&limit=5", nil, a.h()).want(t, http.StatusOK)
		if !strings.Contains(string(r.Body), "\n"+strconv.FormatInt(pub["a0"], 10)+",") {
			t.Errorf("the export does not show a0's public id %d:\n%s", pub["a0"], r.Body)
		}
		// b's events under b's mapping; a's cursor in b lists only b's.
		for _, e := range h.listEvents(b.h(), "limit=100&cursor="+*p1.NextCursor).Events {
			if e.Event != "ids.b" && !strings.HasPrefix(e.Event, "auth.") && !strings.HasPrefix(e.Event, "tenant.") && e.Event != "api.request" {
				t.Errorf("b lists %+v", e)
			}
		}

		// Audit entries: per-tenant ids too, and their cursors page.
		storedAudit, _, err := h.app.Store.ListAudit(t.Context(), tn.ID, tally.AuditFilter{Limit: 100})
		if err != nil || len(storedAudit) == 0 {
			t.Fatalf("stored audit of a: %d (err %v)", len(storedAudit), err)
		}
		var audit struct {
			Entries []struct {
				ID     int64  `json:"id"`
				Action string `json:"action"`
			} `json:"entries"`
			NextCursor *string `json:"next_cursor"`
		}
		h.do("GET", "/api/analytics/audit?limit=1", nil, a.h()).want(t, http.StatusOK).decode(t, &audit)
		if len(audit.Entries) != 1 || audit.Entries[0].ID == storedAudit[0].ID || audit.NextCursor == nil {
			t.Errorf("audit page %+v, stored id %d", audit, storedAudit[0].ID)
		}
		first := audit.Entries[0].ID
		h.do("GET", "/api/analytics/audit?limit=1&cursor="+*audit.NextCursor, nil, a.h()).want(t, http.StatusOK).decode(t, &audit)
		if len(storedAudit) > 1 && (len(audit.Entries) != 1 || audit.Entries[0].ID == first) {
			t.Errorf("second audit page %+v", audit)
		}

		// After a restart on the same database: the same ids.
		if err := h.app.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		again := opts
		if len(opts) == 0 {
			again = []harnessOption{withSQLitePath(h.dbPath)}
		}
		h2 := newHarness(t, again...)
		for _, e := range h2.listEvents(a.h(), "event=ids.a&limit=100").Events {
			if e.ID != pub[e.EventID] {
				t.Errorf("after a restart %s shows id %d, before %d", e.EventID, e.ID, pub[e.EventID])
			}
		}
		h.noPanic(t)
		h2.noPanic(t)
	})
}
