package sqlite_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// TestTailEventsNearAndFarFromTheEnd: a tail reads the same events in the
// same order whether its cursor is far behind the end of the log (the
// tenant's index) or near it (the rows by id), with and without a filter,
// another tenant's events interleaved.
func TestTailEventsNearAndFarFromTheEnd(t *testing.T) {
	db, a := sqlitetest.WithTenant(t)
	ctx := t.Context()
	owner, _, err := db.UserByEmail(ctx, "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	b := &tally.Tenant{Slug: "other", Name: "Other"}
	if err := db.CreateTenant(ctx, b, owner.ID); err != nil {
		t.Fatal(err)
	}
	// More rows than a tail walks by id, a third of them tenant a's.
	const n = 12000
	now := time.Now().UTC().Truncate(time.Millisecond)
	var evs []tally.Event
	for i := range n {
		tenant, name := b.ID, "page_view"
		if i%3 == 0 {
			tenant = a.ID
		}
		if i%2 == 0 {
			name = "signup"
		}
		evs = append(evs, tally.Event{TenantID: tenant, EventID: fmt.Sprint("e", i), Name: name, Source: "server",
			Timestamp: now.Add(-time.Duration(i) * time.Second), ReceivedAt: now, Value: 1, Props: []byte(`{}`)})
	}
	for chunk := range slices.Chunk(evs, 2000) {
		if _, err := db.InsertEvents(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}
	var want []tally.Event // tenant a's, in id order
	for _, e := range evs {
		if e.TenantID == a.ID {
			want = append(want, e)
		}
	}
	ids := func(es []tally.Event, keep func(*tally.Event) bool) []int64 {
		var out []int64
		for i := range es {
			if keep(&es[i]) {
				out = append(out, es[i].ID)
			}
		}
		return out
	}
	all := func(*tally.Event) bool { return true }
	signups := func(e *tally.Event) bool { return e.Name == "signup" }
	for _, c := range []struct {
		name   string
		f      tally.EventFilter
		keep   func(*tally.Event) bool
		after  int64
		limit  int
		expect int // events wanted: all there are after the cursor, up to limit
	}{
		{"far behind", tally.EventFilter{}, all, 0, 5000, 4000},
		{"far behind, a page", tally.EventFilter{}, all, want[10].ID, 100, 100},
		{"far behind, filtered", tally.EventFilter{Name: "signup"}, signups, 0, 5000, 2000},
		{"near the end", tally.EventFilter{}, all, want[len(want)-300].ID, 5000, 299},
		{"near the end, a page", tally.EventFilter{}, all, want[len(want)-300].ID, 50, 50},
		{"near the end, filtered", tally.EventFilter{Name: "signup"}, signups, want[len(want)-300].ID, 5000, 149},
		{"at the end", tally.EventFilter{}, all, evs[n-1].ID, 10, 0},
	} {
		got, err := db.TailEvents(ctx, a.ID, c.f, c.after, c.limit)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var exp []int64
		for _, id := range ids(want, c.keep) {
			if id > c.after && len(exp) < c.limit {
				exp = append(exp, id)
			}
		}
		if gotIDs := ids(got, all); len(exp) != c.expect || !slices.Equal(gotIDs, exp) {
			t.Errorf("%s: TailEvents after %d returned %d events (%v…), want %d (%v…)", c.name, c.after,
				len(gotIDs), gotIDs[:min(5, len(gotIDs))], c.expect, exp[:min(5, len(exp))])
		}
		for _, e := range got {
			if e.TenantID != a.ID {
				t.Fatalf("%s: an event of tenant %d in tenant %d's tail", c.name, e.TenantID, a.ID)
			}
		}
	}
}
