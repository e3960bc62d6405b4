package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func tailCases() []testCase {
	return []testCase{
		{"TailInIDOrder", testTailOrder},
		{"TailFiltersMatchGo", testTailFilters},
		{"TailBadLimit", testTailBadLimit},
	}
}

// testTailOrder: TailEvents follows the log by id within one tenant, pages
// by afterID, and LastEventID is the largest id of any tenant.
func testTailOrder(t *testing.T, s tally.Store) {
	ctx := t.Context()
	if id, err := s.LastEventID(ctx); err != nil || id != 0 {
		t.Fatalf("LastEventID of an empty log = %d, %v; want 0", id, err)
	}
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	t0 := now().Add(-time.Hour)
	var mine []tally.Event
	for i := range 7 {
		// Timestamps out of order: the tail is by id, not by time.
		ts := t0.Add(time.Duration((i*5)%7) * time.Minute)
		mine = append(mine, insertNew(t, s, ev(a.ID, "a-"+string(rune('0'+i)), "x", "u", ts))...)
		insertNew(t, s, ev(b.ID, "b-"+string(rune('0'+i)), "x", "u", ts))
	}
	last, err := s.LastEventID(ctx)
	check(t, err)
	all, err := s.TailEvents(ctx, b.ID, tally.EventFilter{}, 0, 100)
	check(t, err)
	if max := all[len(all)-1].ID; last != max {
		t.Fatalf("LastEventID = %d, want %d (tenant b's last)", last, max)
	}
	var got []tally.Event
	after := int64(0)
	for {
		page, err := s.TailEvents(ctx, a.ID, tally.EventFilter{}, after, 3)
		check(t, err)
		if len(page) > 3 {
			t.Fatalf("TailEvents returned %d events, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].ID
	}
	wantEvents(t, "tail of tenant a", got, mine)
	if !slices.IsSortedFunc(got, func(x, y tally.Event) int { return int(x.ID - y.ID) }) {
		t.Fatalf("tail not in id order: %v", keys(got))
	}
	rest, err := s.TailEvents(ctx, a.ID, tally.EventFilter{}, mine[4].ID, 100)
	check(t, err)
	wantEvents(t, "tail after the fifth", rest, mine[5:])
}

// testTailFilters: the store's filter selects what EventFilter.Match
// selects, for each filter alone and together.
func testTailFilters(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "tenant-a")
	t0 := now().Add(-2 * time.Hour)
	var events []tally.Event
	names := []string{"files.uploaded", "files.deleted", "auth.login", "filesx"}
	users := []string{"u1", "u2", ""}
	for i := range 24 {
		e := ev(a.ID, "e"+string(rune('A'+i)), names[i%len(names)], users[i%len(users)], t0.Add(time.Duration(i)*5*time.Minute))
		if i%2 == 0 {
			e.Source = "sdk"
		}
		events = append(events, e)
	}
	stored := insertNew(t, s, events...)
	filters := []tally.EventFilter{
		{},
		{Name: "files.*"},
		{Name: "files.uploaded"},
		{UserID: "u2"},
		{Source: "sdk"},
		{From: t0.Add(30 * time.Minute), To: t0.Add(80 * time.Minute)},
		{Name: "files.*", UserID: "u1", Source: "sdk", From: t0.Add(10 * time.Minute)},
	}
	for _, f := range filters {
		got, err := s.TailEvents(ctx, a.ID, f, 0, 100)
		check(t, err)
		var want []tally.Event
		for i := range stored {
			if f.Match(&stored[i]) {
				want = append(want, stored[i])
			}
		}
		wantEvents(t, "tail filtered", got, want)
	}
}

func testTailBadLimit(t *testing.T, s tally.Store) {
	a := newTenant(t, s, "tenant-a")
	_, err := s.TailEvents(t.Context(), a.ID, tally.EventFilter{}, 0, 0)
	wantCode(t, err, tally.EInvalid, "TailEvents with limit 0")
}
