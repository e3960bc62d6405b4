package sqlite

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// TestDeferEventIndexes drops the log's secondary indexes for a bulk load
// and builds them again: in between, dedup by (tenant, event_id) still
// holds (its unique key stays), and afterwards the indexes are the ones
// the migrations made, so the query plans of TestPlans hold on a dataset.
func TestDeferEventIndexes(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "bulk.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	indexes := func() []string {
		t.Helper()
		rows, err := db.r.QueryContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL ORDER BY name`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var defs []string
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				t.Fatal(err)
			}
			defs = append(defs, d)
		}
		return defs
	}
	before := indexes()
	if len(before) < 3 {
		t.Fatalf("the events table has %d indexes: %q", len(before), before)
	}
	restore, err := db.DeferEventIndexes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if during := indexes(); len(during) != 0 {
		t.Fatalf("during the load the events table keeps %q, want only its unique key (an automatic index)", during)
	}
	u := &tally.User{Email: "o@example.com", Name: "O"}
	if err := db.CreateUser(ctx, u, "hash"); err != nil {
		t.Fatal(err)
	}
	tn := &tally.Tenant{Slug: "acme", Name: "Acme"}
	if err := db.CreateTenant(ctx, tn, u.ID); err != nil {
		t.Fatal(err)
	}
	ev := func(id string) tally.Event {
		return tally.Event{TenantID: tn.ID, EventID: id, Name: "page.view", Source: "api", Timestamp: time.Now().UTC()}
	}
	if _, err := db.InsertEvents(ctx, []tally.Event{ev("a"), ev("b")}); err != nil {
		t.Fatal(err)
	}
	inserted, err := db.InsertEvents(ctx, []tally.Event{ev("b"), ev("c")})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inserted, []bool{false, true}) {
		t.Errorf("a replayed event id during the load: inserted %v, want [false true]", inserted)
	}
	if err := restore(ctx); err != nil {
		t.Fatal(err)
	}
	if after := indexes(); !slices.Equal(after, before) {
		t.Errorf("after the load the indexes are\n%q\nwant\n%q", after, before)
	}
}
