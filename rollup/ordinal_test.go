package rollup_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
)

// TestKPIUsersAcrossOrdinalSources checks the distinct users of KPIs
// against bruteKPIs when one report reads every kind of unit at once: whole
// UTC days (day sets), hours of days a bucket holds only in part (hour
// sets, in a +05:30 zone), hours cut by local midnights (raw log), dirty
// hours of rolled-up days whose late events bring users both with an
// ordinal and without one, and the unrolled last days (raw log).
func TestKPIUsersAcrossOrdinalSources(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 5, 20, 9, 12, 0, 0, time.UTC)
	first := now.AddDate(0, 0, -62)
	rng := rand.New(rand.NewPCG(7, 11))
	var events []tally.Event
	add := func(user string, at time.Time) {
		events = append(events, event(tn, tally.EventAPIRequest, user, at))
	}
	for range 3000 {
		at := first.Add(time.Duration(rng.Int64N(int64(62*24*time.Hour/time.Microsecond))) * time.Microsecond)
		add(fmt.Sprintf("u%d", rng.IntN(300)), at)
	}
	insert(t, db, events...)
	r := rollup.New(rollup.Config{Now: fixed(now)}, db, nil)
	if _, err := r.RunDays(ctx, tn, first.AddDate(0, 0, -1), now.AddDate(0, 0, -3), "", ""); err != nil {
		t.Fatal(err)
	}
	// Late events in rolled-up days (their hours now dirty): known users,
	// users no rollup met, and one only in the unrolled days.
	late := []tally.Event{
		event(tn, tally.EventAPIRequest, "u1", now.AddDate(0, 0, -20).Add(90*time.Minute)),
		event(tn, tally.EventAPIRequest, "newcomer", now.AddDate(0, 0, -12).Add(30*time.Minute)),
		event(tn, tally.EventAPIRequest, "newcomer", now.AddDate(0, 0, -1)),
		event(tn, tally.EventAPIRequest, "tail-only", now.Add(-time.Hour)),
	}
	insert(t, db, late...)
	events = append(events, late...)

	q := rollup.NewReports(rollup.ReportsConfig{}, db)
	wantUsers := func(state string) {
		t.Helper()
		for _, loc := range []*time.Location{time.UTC, kolkata} {
			for _, rg := range []string{"7d", "30d", "90d"} {
				got, err := q.KPIs(ctx, tn, rg, loc, now)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := activeOnly(got), activeOnly(bruteKPIs(events, rg, loc, now)); !slices.EqualFunc(
					got.Timeseries["active_users"], want.Timeseries["active_users"], func(a, b tally.MetricPoint) bool { return a == b }) ||
					got.KPIs["active_users"].Value != want.KPIs["active_users"].Value ||
					got.KPIs["active_users"].Previous != want.KPIs["active_users"].Previous {
					t.Errorf("%s, %s, %s: active users\n got %v %v\nwant %v %v", state, loc, rg,
						got.KPIs["active_users"], got.Timeseries["active_users"], want.KPIs["active_users"], want.Timeseries["active_users"])
				}
			}
		}
	}
	wantUsers("late events dirty")
	if _, err := r.RunDirty(ctx); err != nil {
		t.Fatal(err)
	}
	wantUsers("dirty hours rolled up")
}

// TestDeletedUserLeavesDistinctCounts checks that DeleteUserEvents and the
// rollup after it take a user out of every distinct count and its ordinal
// with it, and that the id met again later is a new user.
func TestDeletedUserLeavesDistinctCounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	now := time.Date(2026, 5, 20, 9, 12, 0, 0, time.UTC)
	var events []tally.Event
	for i := range 30 {
		day := now.AddDate(0, 0, -i-1)
		events = append(events, event(tn, tally.EventLogin, "gone", day.Add(time.Hour)),
			event(tn, tally.EventLogin, fmt.Sprintf("stay%d", i%5), day.Add(2*time.Hour)))
	}
	insert(t, db, events...)
	r := rollup.New(rollup.Config{Now: fixed(now)}, db, nil)
	if _, err := r.RunDays(ctx, tn, now.AddDate(0, 0, -32), now, "", ""); err != nil {
		t.Fatal(err)
	}
	q := rollup.NewReports(rollup.ReportsConfig{}, db)
	active := func() int64 {
		t.Helper()
		rep, err := q.KPIs(ctx, tn, "30d", time.UTC, now)
		if err != nil {
			t.Fatal(err)
		}
		return rep.KPIs["active_users"].Value
	}
	ordinalOf := func(user string) (uint32, bool) {
		t.Helper()
		var o uint32
		found := false
		if err := db.UserOrdinals(ctx, tn, []string{user}, func(_ int, n uint32) error { o, found = n, true; return nil }); err != nil {
			t.Fatal(err)
		}
		return o, found
	}
	if n := active(); n != 6 {
		t.Fatalf("active users before the deletion = %d, want 6", n)
	}
	old, ok := ordinalOf("gone")
	if !ok {
		t.Fatal("the user has no ordinal after its rollup")
	}
	if _, err := db.DeleteUserEvents(ctx, tn, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, ok := ordinalOf("gone"); ok {
		t.Fatal("the deleted user keeps its ordinal")
	}
	if n := active(); n != 5 {
		t.Fatalf("active users after the deletion = %d, want 5", n)
	}
	if _, err := r.RunDirty(ctx); err != nil {
		t.Fatal(err)
	}
	if n := active(); n != 5 {
		t.Fatalf("active users after the deletion and a rollup = %d, want 5", n)
	}
	insert(t, db, event(tn, tally.EventLogin, "gone", now.AddDate(0, 0, -2)))
	if _, err := r.RunDirty(ctx); err != nil {
		t.Fatal(err)
	}
	if o, ok := ordinalOf("gone"); !ok || o == old {
		t.Fatalf("the id met again has ordinal %d (%v), want a new one, not %d", o, ok, old)
	}
	if n := active(); n != 6 {
		t.Fatalf("active users once the id is met again = %d, want 6", n)
	}
}
