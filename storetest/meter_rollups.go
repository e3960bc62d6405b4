package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/meter"
	"github.com/tallyhq/tally/rollup"
)

// meterQueryInputs are the queries each meter of testMeterRollups is held
// to, over the two UTC days from day: day windows in UTC, in a zone of
// whole hours and in two of half and three quarters of an hour (whose
// day bounds cut an hour, read raw), hour windows, a total over a range
// that starts and ends inside hours, a group_by subset and a filter on a
// group_by path. wholeHours tells which read only whole hours (so, once
// rolled up, only rollups).
func meterQueryInputs(d tally.MeterDef, day time.Time) (ins []tally.MeterQueryInput, wholeHours []bool) {
	from, to := day, day.Add(48*time.Hour)
	zones := []*time.Location{time.UTC, time.FixedZone("-07:00", -7*3600), time.FixedZone("+05:30", 5*3600+1800), time.FixedZone("+05:45", 5*3600+2700)}
	for i, z := range zones {
		ins = append(ins, tally.MeterQueryInput{From: from, To: to, Window: tally.WindowDay, Loc: z, GroupBy: d.GroupBy})
		wholeHours = append(wholeHours, i < 2)
	}
	ins = append(ins,
		tally.MeterQueryInput{From: from, To: to, Window: tally.WindowHour, Loc: time.UTC, GroupBy: d.GroupBy},
		tally.MeterQueryInput{From: from.Add(17 * time.Minute), To: from.Add(40*time.Hour + 5*time.Minute), Loc: time.UTC, GroupBy: d.GroupBy})
	wholeHours = append(wholeHours, true, false)
	if len(d.GroupBy) > 1 {
		ins = append(ins, tally.MeterQueryInput{From: from, To: to, Window: tally.WindowDay, Loc: time.UTC, GroupBy: d.GroupBy[1:],
			Filter: map[string]string{d.GroupBy[0]: "pro"}})
		wholeHours = append(wholeHours, true)
	}
	return ins, wholeHours
}

// checkServiceQuery holds one answer of the meter service to the brute
// force over events: every window of every group the events give, and no
// other group.
func checkServiceQuery(t *testing.T, svc *meter.Service, tenantID int64, d tally.MeterDef, in tally.MeterQueryInput, events []tally.Event, phase string) {
	t.Helper()
	res, err := svc.Query(t.Context(), tenantID, d.Slug, in)
	check(t, err)
	windows, err := tally.MeterWindows(in.Window, in.From, in.To, in.Loc)
	check(t, err)
	bounds := slices.Clone(windows)
	bounds[0], bounds[len(bounds)-1] = in.From.UTC(), in.To.UTC()
	want := MeterBruteForce(tally.MeterQuery{Meter: d, Bounds: bounds, GroupBy: in.GroupBy, Filter: in.Filter}, events)
	nw := len(windows) - 1
	seen := map[string]bool{}
	name := fmt.Sprintf("%s: %s %s %s by %v filter %v, window %q in %s", phase, d.Slug, d.Aggregation, d.ValueProperty, in.GroupBy, in.Filter, in.Window, in.Loc)
	for i, p := range res.Data {
		group := make([]*string, len(in.GroupBy))
		for gi, g := range in.GroupBy {
			group[gi] = p.GroupBy[g]
		}
		k := MeterRowKey(i%nw, group)
		seen[k] = true
		w, ok := want[k]
		if !ok && d.Aggregation.EmptyIsZero() {
			zero := 0.0
			w = &zero
		}
		if !SameMeterValue(p.Value, w) {
			t.Errorf("%s: %s = %s, want %s", name, k, fmtVal(p.Value), fmtVal(w))
		}
	}
	for k := range want {
		if !seen[k] {
			t.Errorf("%s: %s missing", name, k)
		}
	}
}

// testMeterRollups holds meter queries to the brute force while the
// meters' rollups come and go: meters defined after their events answer
// from the raw log, then from rollups once the job backfills them, with
// late events after a rollup, after the rollup of those, after a change of
// definition, and after the raw events are purged (then only rollups can
// give the answer).
func testMeterRollups(t *testing.T, s tally.Store) {
	ctx := t.Context()
	tn := newTenant(t, s, "meter-rollups")
	day := pastDay().Add(-24 * time.Hour)
	events := insertNew(t, s, MeterEvents(tn.ID, day, 30)...)
	svc := meter.New(meter.Config{}, s)
	var defs []tally.MeterDef
	for i, d := range meterCaseDefs() {
		d.Slug = fmt.Sprintf("m%d", i)
		m, err := svc.Create(ctx, tn.ID, d)
		check(t, err)
		defs = append(defs, *m)
	}
	checkAll := func(phase string, onlyWholeHours bool) {
		t.Helper()
		for _, d := range defs {
			ins, whole := meterQueryInputs(d, day)
			for i, in := range ins {
				if !onlyWholeHours || whole[i] {
					checkServiceQuery(t, svc, tn.ID, d, in, events, phase)
				}
			}
		}
	}
	checkAll("before any rollup", false)

	r := rollup.New(rollup.Config{}, s, nil)
	n, err := r.BackfillMeters(ctx)
	check(t, err)
	// Every day from the oldest event's to today.
	if want := (int(tally.DayStart(time.Now()).Sub(day)/(24*time.Hour)) + 1) * len(defs); n != want {
		t.Fatalf("BackfillMeters rolled up %d meter-days, want %d: the days from the events' first to today of each of %d meters", n, want, len(defs))
	}
	for _, d := range defs {
		days, err := s.MeterRollupDays(ctx, tn.ID, &d, day, day.Add(48*time.Hour))
		check(t, err)
		if len(days) != 2 || !days[0].Equal(day) {
			t.Fatalf("meter %s: rolled-up days %v, want %v and the next", d.Slug, days, day)
		}
	}
	if n, err := r.BackfillMeters(ctx); err != nil || n != 0 {
		t.Fatalf("a second BackfillMeters rolled up %d meter-days (%v), want none", n, err)
	}
	checkAll("backfilled", false)

	// Late events in hours of both days, already rolled up.
	late := MeterEvents(tn.ID, day.Add(20*time.Hour+30*time.Minute), 8)
	for i := range late {
		late[i].EventID = "late-" + late[i].EventID
	}
	events = append(events, insertNew(t, s, late...)...)
	checkAll("late events after the rollup", false)

	_, err = r.RunDirty(ctx)
	check(t, err)
	oldest, err := s.OldestDirty(ctx, tn.ID)
	check(t, err)
	if !oldest.IsZero() {
		t.Fatalf("after RunDirty the oldest dirty hour is %v", oldest)
	}
	checkAll("late events rolled up", false)

	// A new definition: the old rollups no longer answer.
	changed := defs[len(defs)-1]
	agg := tally.AggMax
	m, _, err := svc.Update(ctx, tn.ID, changed.Slug, tally.MeterPatch{Aggregation: &agg})
	check(t, err)
	defs[len(defs)-1] = *m
	checkAll("definition changed", false)
	_, err = r.RunDirty(ctx)
	check(t, err)
	days, err := s.MeterRollupDays(ctx, tn.ID, m, day, day.Add(48*time.Hour))
	check(t, err)
	if len(days) != 2 {
		t.Fatalf("the changed meter has rolled-up days %v after RunDirty, want 2", days)
	}

	// Without the raw events, whole hours can only come from rollups.
	_, err = s.PurgeEvents(ctx, tn.ID, day.Add(72*time.Hour))
	check(t, err)
	checkAll("raw events purged", true)
}
