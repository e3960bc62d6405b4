package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
)

// defaultRules returns the rules in force unless configured otherwise.
func defaultRules() tally.UsageRules { return tally.DefaultUsageRules() }

// rollupFixture stores events of a in hours 1, 5, 7 and (its last instant)
// 23 of the day d and in the next day, and one event of b in hour 1.
func rollupFixture(t *testing.T, s tally.Store, a, b int64, d time.Time) {
	t.Helper()
	h1, h5, h7 := d.Add(time.Hour), d.Add(5*time.Hour), d.Add(7*time.Hour)
	insertNew(t, s,
		ev(a, "r1", tally.EventAPIRequest, "u1", h1),
		withValue(ev(a, "r2", tally.EventAPIRequest, "u2", h1.Add(time.Minute)), 2.5),
		ev(a, "r3", "builder.generate.completed", "u1", h1.Add(2*time.Minute)),
		withValue(ev(a, "r4", "files.uploaded", "u2", h1.Add(3*time.Minute)), 3),
		increment(a, "r5", "builds", "u1", h1.Add(4*time.Minute), 2),
		ev(a, "r6", tally.EventAPIRequest, "u3", h5.Add(30*time.Minute)),
		ev(a, "r7", "custom.event", "u1", h5.Add(59*time.Minute)),
		ev(a, "r8", "files.uploaded", "u4", h7),
		ev(a, "r10", "custom.event", "u5", d.Add(24*time.Hour-time.Microsecond)),
		ev(a, "r9", tally.EventAPIRequest, "u1", d.Add(26*time.Hour)),
		ev(b, "b1", tally.EventAPIRequest, "u9", h1.Add(time.Minute)),
	)
}

// rollupState is what the rollup holds for one tenant and day.
type rollupState struct {
	hours, days []tally.HourRow
	metrics     []tally.MetricPoint
	users       []hourUsers
}

// hourUsers is the user set of one hour, sorted.
type hourUsers struct {
	Hour  time.Time
	Users []string
}

// readHourUsers reads the user sets of tenantID's hours in [from, to),
// failing unless they come in order of hour, each a valid bitmap; the
// ordinals are named by the users of the tenant's raw log (UserOrdinals),
// or "#ordinal" for one no user of the log has.
func readHourUsers(t *testing.T, s tally.Store, tenantID int64, from, to time.Time) []hourUsers {
	t.Helper()
	return readUserSets(t, s, tenantID, time.Hour, from, to)
}

// readUserSets is readHourUsers for buckets of an hour or a day.
func readUserSets(t *testing.T, s tally.Store, tenantID int64, bucket time.Duration, from, to time.Time) []hourUsers {
	t.Helper()
	names := ordinalNames(t, s, tenantID, from, to)
	var out []hourUsers
	check(t, s.RollupUserSets(t.Context(), tenantID, bucket, from, to, func(start time.Time, set []byte) error {
		if n := len(out); n > 0 && !start.After(out[n-1].Hour) {
			return fmt.Errorf("set of %v after %v", start, out[n-1].Hour)
		}
		var bm roaring.Bitmap
		if len(set) > 0 { // no bytes: the empty set
			if err := bm.UnmarshalBinary(set); err != nil {
				return fmt.Errorf("set of %v: %w", start, err)
			}
		}
		h := hourUsers{Hour: start.UTC(), Users: []string{}}
		for _, o := range bm.ToArray() {
			name, ok := names[o]
			if !ok {
				name = fmt.Sprintf("#%d", o)
			}
			h.Users = append(h.Users, name)
		}
		slices.Sort(h.Users)
		out = append(out, h)
		return nil
	}))
	return out
}

// ordinalNames maps the ordinals of tenantID's users of [from, to) in the
// raw log to their ids, failing unless no two share one.
func ordinalNames(t *testing.T, s tally.Store, tenantID int64, from, to time.Time) map[uint32]string {
	t.Helper()
	var ids []string
	for _, users := range bucketUsers(t, s, tenantID, []time.Time{from, to}) {
		ids = append(ids, users...)
	}
	names := map[uint32]string{}
	check(t, s.UserOrdinals(t.Context(), tenantID, ids, func(i int, o uint32) error {
		if other, ok := names[o]; ok {
			return fmt.Errorf("users %q and %q share ordinal %d", other, ids[i], o)
		}
		names[o] = ids[i]
		return nil
	}))
	return names
}

// userSet encodes ordinals as a user set (tally.RollupTx.WriteHourUsers).
func userSet(t *testing.T, ordinals ...uint32) []byte {
	t.Helper()
	b, err := roaring.BitmapOf(ordinals...).ToBytes()
	check(t, err)
	return b
}

// rawHourUsers is what the user sets of the hours in [from, to) must be
// after RollupDay: each hour's users in the raw log, by BucketUsers.
func rawHourUsers(t *testing.T, s tally.Store, tenantID int64, from, to time.Time) []hourUsers {
	t.Helper()
	bounds := steps(from, to, time.Hour)
	var out []hourUsers
	for i, users := range bucketUsers(t, s, tenantID, bounds) {
		if users == nil {
			users = []string{}
		}
		out = append(out, hourUsers{bounds[i], users})
	}
	return out
}

func readRollup(t *testing.T, s tally.Store, tenantID int64, d time.Time) rollupState {
	t.Helper()
	ctx := t.Context()
	hours, err := s.RollupHours(ctx, tenantID, d, d.Add(24*time.Hour))
	check(t, err)
	days, err := s.RollupDays(ctx, tenantID, d, d.Add(24*time.Hour))
	check(t, err)
	metrics, err := s.RollupMetricHours(ctx, tenantID, d, d.Add(24*time.Hour))
	check(t, err)
	return rollupState{canonRows(hours), canonRows(days), canonPoints(metrics), readHourUsers(t, s, tenantID, d, d.Add(24*time.Hour))}
}

// wantRollupMatchesRaw fails unless the rollup of tenantID's day d holds
// exactly what the raw log and rules give: hour and day rows equal to
// AggregateEvents, metric points equal to the rules applied to the hours,
// a user set for every hour equal to BucketUsers by hour.
func wantRollupMatchesRaw(t *testing.T, s tally.Store, tenantID int64, d time.Time, rules tally.UsageRules) rollupState {
	t.Helper()
	ctx := t.Context()
	got := readRollup(t, s, tenantID, d)
	hours, err := s.AggregateEvents(ctx, tenantID, d, d.Add(24*time.Hour), time.Hour)
	check(t, err)
	days, err := s.AggregateEvents(ctx, tenantID, d, d.Add(24*time.Hour), 24*time.Hour)
	check(t, err)
	wantRows(t, "RollupHours vs AggregateEvents by hour", got.hours, hours)
	wantRows(t, "RollupDays vs AggregateEvents by day", got.days, days)
	wantPoints(t, "RollupMetricHours vs BucketMetrics of the hour rows", got.metrics, rules.BucketMetrics(hours))
	if want := rawHourUsers(t, s, tenantID, d, d.Add(24*time.Hour)); !reflect.DeepEqual(got.users, want) {
		t.Fatalf("RollupUserSets vs BucketUsers by hour:\ngot  %q\nwant %q", got.users, want)
	}
	return got
}

func rollupDay(t *testing.T, s tally.Store, tenantID int64, day time.Time, rules tally.UsageRules) int {
	t.Helper()
	n, err := rollup.RecomputeDay(t.Context(), s, tenantID, day, rules)
	check(t, err)
	return n
}

func dirtyHours(t *testing.T, s tally.Store, before time.Time) []tally.TenantHour {
	t.Helper()
	got, err := s.DirtyHours(t.Context(), before)
	check(t, err)
	for i := range got {
		got[i].Hour = got[i].Hour.UTC()
	}
	slices.SortFunc(got, func(x, y tally.TenantHour) int {
		return cmp.Or(cmp.Compare(x.TenantID, y.TenantID), x.Hour.Compare(y.Hour))
	})
	return got
}

func wantDirty(t *testing.T, what string, got []tally.TenantHour, want ...tally.TenantHour) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s: DirtyHours = %v, want %v", what, got, want)
	}
}

func wantDirtyIncludes(t *testing.T, what string, got []tally.TenantHour, want ...tally.TenantHour) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Fatalf("%s: DirtyHours = %v, missing %v", what, got, w)
		}
	}
}

func oldestDirty(t *testing.T, s tally.Store, tenantID int64) time.Time {
	t.Helper()
	h, err := s.OldestDirty(t.Context(), tenantID)
	check(t, err)
	if h.IsZero() {
		return time.Time{}
	}
	return h.UTC()
}

func sumCounts(rows []tally.HourRow) int64 {
	var n int64
	for _, r := range rows {
		n += r.Count
	}
	return n
}

func rollupCases() []testCase {
	return []testCase{
		{"InsertMarksDirty", func(t *testing.T, s tally.Store) {
			a, b, c := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b"), newTenant(t, s, "tenant-c")
			wantDirty(t, "fresh store", dirtyHours(t, s, now()))
			if h := oldestDirty(t, s, a.ID); !h.IsZero() {
				t.Fatalf("OldestDirty of a fresh store = %v, want zero", h)
			}
			d := pastDay()
			rollupFixture(t, s, a.ID, b.ID, d)
			h1, h5, h7 := d.Add(time.Hour), d.Add(5*time.Hour), d.Add(7*time.Hour)
			wantDirty(t, "after inserts", dirtyHours(t, s, now()),
				tally.TenantHour{TenantID: a.ID, Hour: h1}, tally.TenantHour{TenantID: a.ID, Hour: h5},
				tally.TenantHour{TenantID: a.ID, Hour: h7}, tally.TenantHour{TenantID: a.ID, Hour: d.Add(23 * time.Hour)},
				tally.TenantHour{TenantID: a.ID, Hour: d.Add(26 * time.Hour)},
				tally.TenantHour{TenantID: b.ID, Hour: h1})
			wantDirty(t, "before hour 5", dirtyHours(t, s, h5),
				tally.TenantHour{TenantID: a.ID, Hour: h1}, tally.TenantHour{TenantID: b.ID, Hour: h1})
			wantDirty(t, "before hour 1", dirtyHours(t, s, h1))
			for _, x := range []struct {
				tenant int64
				want   time.Time
			}{{a.ID, h1}, {b.ID, h1}, {c.ID, time.Time{}}} {
				if got := oldestDirty(t, s, x.tenant); !got.Equal(x.want) {
					t.Fatalf("OldestDirty(%d) = %v, want %v", x.tenant, got, x.want)
				}
			}
		}},
		{"RollupDayMatchesRaw", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			h1, h5, h7 := d.Add(time.Hour), d.Add(5*time.Hour), d.Add(7*time.Hour)
			rollupFixture(t, s, a.ID, b.ID, d)

			n := rollupDay(t, s, a.ID, d.Add(13*time.Hour), defaultRules()) // any instant of the day names it
			got := wantRollupMatchesRaw(t, s, a.ID, d, defaultRules())
			if len(got.hours) != 8 || len(got.days) != 5 {
				t.Fatalf("rollup of the day has %d hour and %d day rows, want 8 and 5", len(got.hours), len(got.days))
			}
			if n < len(got.hours)+len(got.days)+len(got.metrics) {
				t.Fatalf("RollupDay reported %d rows, but wrote %d hour, %d day rows and %d metric points",
					n, len(got.hours), len(got.days), len(got.metrics))
			}
			wantPoints(t, "metric points (by hand)", got.metrics, []tally.MetricPoint{
				{Start: h1, Metric: "api_requests_daily", Value: 2},
				{Start: h1, Metric: "builds", Value: 2},
				{Start: h1, Metric: "builds_daily", Value: 1},
				{Start: h1, Metric: "events_daily", Value: 5},
				{Start: h1, Metric: "file_uploads_daily", Value: 1},
				{Start: h5, Metric: "api_requests_daily", Value: 1},
				{Start: h5, Metric: "events_daily", Value: 2},
				{Start: h7, Metric: "events_daily", Value: 1},
				{Start: h7, Metric: "file_uploads_daily", Value: 1},
				{Start: d.Add(23 * time.Hour), Metric: "events_daily", Value: 1},
			})

			// Only a's marks of that day are cleared.
			wantDirty(t, "after rolling up a's day", dirtyHours(t, s, now()),
				tally.TenantHour{TenantID: a.ID, Hour: d.Add(26 * time.Hour)}, tally.TenantHour{TenantID: b.ID, Hour: h1})
			if h := oldestDirty(t, s, a.ID); !h.Equal(d.Add(26 * time.Hour)) {
				t.Fatalf("OldestDirty(a) = %v, want the next day's hour", h)
			}
			if st := readRollup(t, s, b.ID, d); st.hours != nil || st.days != nil || st.metrics != nil || st.users != nil {
				t.Fatalf("rolling up a wrote b's rollup: %+v", st)
			}

			rollupDay(t, s, b.ID, d, defaultRules())
			wantRollupMatchesRaw(t, s, b.ID, d, defaultRules())
			if again := readRollup(t, s, a.ID, d); !reflect.DeepEqual(again, got) {
				t.Fatalf("rolling up b changed a's rollup:\n%+v\nwant\n%+v", again, got)
			}
			rollupDay(t, s, a.ID, d.Add(24*time.Hour), defaultRules())
			wantRollupMatchesRaw(t, s, a.ID, d.Add(24*time.Hour), defaultRules())
			wantDirty(t, "after rolling up everything", dirtyHours(t, s, now()))
		}},
		{"Idempotent", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			rollupFixture(t, s, a.ID, b.ID, d)
			var first rollupState
			var firstN int
			for k := range 3 {
				n := rollupDay(t, s, a.ID, d, defaultRules())
				st := readRollup(t, s, a.ID, d)
				if k == 0 {
					first, firstN = st, n
					continue
				}
				if n != firstN {
					t.Fatalf("run %d of RollupDay wrote %d rows, the first %d", k+1, n, firstN)
				}
				if !reflect.DeepEqual(st, first) {
					t.Fatalf("run %d of RollupDay changed the rollup:\n%+v\nwant\n%+v", k+1, st, first)
				}
			}
			wantRollupMatchesRaw(t, s, a.ID, d, defaultRules())
		}},
		{"LateEventRemarks", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			h3, h5 := d.Add(3*time.Hour), d.Add(5*time.Hour)
			rollupFixture(t, s, a.ID, b.ID, d)
			rollupDay(t, s, a.ID, d, defaultRules())

			insertNew(t, s,
				ev(a.ID, "late-5", tally.EventAPIRequest, "u7", h5.Add(10*time.Minute)),
				ev(a.ID, "late-3", "custom.event", "u7", h3),
				ev(a.ID, "late-prev", "custom.event", "u7", d.Add(-21*time.Hour)))
			prev := tally.TenantHour{TenantID: a.ID, Hour: d.Add(-21 * time.Hour)}
			wantDirtyIncludes(t, "after late events", dirtyHours(t, s, now()),
				tally.TenantHour{TenantID: a.ID, Hour: h3}, tally.TenantHour{TenantID: a.ID, Hour: h5}, prev)
			if h := oldestDirty(t, s, a.ID); !h.Equal(prev.Hour) {
				t.Fatalf("OldestDirty(a) = %v, want %v", h, prev.Hour)
			}

			rollupDay(t, s, a.ID, d, defaultRules())
			st := wantRollupMatchesRaw(t, s, a.ID, d, defaultRules())
			raw, err := s.CountEvents(ctx, a.ID, d, d.Add(24*time.Hour))
			check(t, err)
			if raw != 11 || sumCounts(st.hours) != raw || sumCounts(st.days) != raw {
				t.Fatalf("after the late events: %d raw events (want 11), hour rows count %d, day rows %d",
					raw, sumCounts(st.hours), sumCounts(st.days))
			}
			dirty := dirtyHours(t, s, now())
			wantDirtyIncludes(t, "the day before stays dirty", dirty, prev)
			for _, th := range dirty {
				if th.TenantID == a.ID && !th.Hour.Before(d) && th.Hour.Before(d.Add(24*time.Hour)) {
					t.Fatalf("after RollupDay, hour %v of that day is still dirty", th.Hour)
				}
			}
		}},
		{"DeleteUserEventsMarksDirty", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			h1, h7 := d.Add(time.Hour), d.Add(7*time.Hour)
			rollupFixture(t, s, a.ID, b.ID, d)
			rollupDay(t, s, a.ID, d, defaultRules())
			rollupDay(t, s, a.ID, d.Add(24*time.Hour), defaultRules())
			rollupDay(t, s, b.ID, d, defaultRules())
			wantDirty(t, "after rolling up everything", dirtyHours(t, s, now()))

			for _, u := range []string{"u2", "u4"} {
				_, err := s.DeleteUserEvents(ctx, a.ID, u)
				check(t, err)
			}
			wantDirtyIncludes(t, "after deleting users", dirtyHours(t, s, now()),
				tally.TenantHour{TenantID: a.ID, Hour: h1}, tally.TenantHour{TenantID: a.ID, Hour: h7})
			rollupDay(t, s, a.ID, d, defaultRules())
			st := wantRollupMatchesRaw(t, s, a.ID, d, defaultRules())
			for _, r := range st.hours {
				if r.Start.Equal(h7) {
					t.Fatalf("hour 7 lost its only event but kept rollup row %v", r)
				}
				if r.Start.Equal(h1) && r.Event == tally.EventAPIRequest && (r.Count != 1 || r.Users != 1) {
					t.Fatalf("hour 1 api.request after deleting u2: %v, want count 1, users 1", r)
				}
			}
			for _, p := range st.metrics {
				if p.Start.Equal(h7) {
					t.Fatalf("hour 7 lost its only event but kept metric point %+v", p)
				}
			}
			if b := readRollup(t, s, b.ID, d); len(b.hours) != 1 {
				t.Fatalf("b's rollup after a's deletions = %+v", b)
			}
		}},
		{"RulesChange", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			h1 := d.Add(time.Hour)
			rollupFixture(t, s, a.ID, b.ID, d)
			custom := tally.UsageRules{{Event: "files.*", Metric: "file_units", Sum: true}}
			rollupDay(t, s, a.ID, d, custom)
			st := wantRollupMatchesRaw(t, s, a.ID, d, custom)
			wantPoints(t, "custom rules (by hand)", st.metrics, []tally.MetricPoint{
				{Start: h1, Metric: "builds", Value: 2}, // explicit increments apply whatever the rules
				{Start: h1, Metric: "file_units", Value: 3},
				{Start: d.Add(7 * time.Hour), Metric: "file_units", Value: 1},
			})
			// Rolling up again with other rules replaces the metric points.
			rollupDay(t, s, a.ID, d, defaultRules())
			wantRollupMatchesRaw(t, s, a.ID, d, defaultRules())
		}},
		{"HourUsers", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			h := func(i int) time.Time { return d.Add(time.Duration(i) * time.Hour) }
			rollupFixture(t, s, a.ID, b.ID, d)
			if got := readHourUsers(t, s, a.ID, h(-24), h(48)); got != nil {
				t.Fatalf("user sets before any rollup: %q", got)
			}
			rollupDay(t, s, a.ID, d, defaultRules())
			rollupDay(t, s, a.ID, h(24), defaultRules())
			// By hand: every hour has a set, empty when it has no users.
			want := make([]hourUsers, 24)
			for i := range want {
				want[i] = hourUsers{h(i), []string{}}
			}
			want[1].Users, want[5].Users, want[7].Users, want[23].Users = []string{"u1", "u2"}, []string{"u1", "u3"}, []string{"u4"}, []string{"u5"}
			if got := readHourUsers(t, s, a.ID, d, h(24)); !reflect.DeepEqual(got, want) {
				t.Fatalf("user sets of the day:\ngot  %q\nwant %q", got, want)
			}
			if got := readHourUsers(t, s, a.ID, h(1).Add(time.Microsecond), h(5)); !reflect.DeepEqual(got, want[2:5]) {
				t.Fatalf("user sets of hours starting in (01:00, 05:00): %q, want hours 2 to 4", got)
			}
			if got := readHourUsers(t, s, b.ID, h(-24), h(48)); got != nil {
				t.Fatalf("b's user sets before b's rollup: %q", got)
			}
			stop, calls := errors.New("stop"), 0
			err := s.RollupUserSets(ctx, a.ID, time.Hour, d, h(24), func(time.Time, []byte) error { calls++; return stop })
			if err != stop || calls != 1 {
				t.Fatalf("RollupUserSets with fn failing: err %v after %d calls, want the error of fn after 1", err, calls)
			}

			// Deleting a user's events drops the sets of that user's hours at once.
			_, err = s.DeleteUserEvents(ctx, a.ID, "u2")
			check(t, err)
			if got := readHourUsers(t, s, a.ID, d, h(24)); !reflect.DeepEqual(got, slices.Delete(slices.Clone(want), 1, 2)) {
				t.Fatalf("user sets after deleting u2 (of hour 1):\n%q", got)
			}
			rollupDay(t, s, a.ID, d, defaultRules())
			want[1].Users = []string{"u1"}
			if got := readHourUsers(t, s, a.ID, d, h(24)); !reflect.DeepEqual(got, want) {
				t.Fatalf("user sets rolled up again after deleting u2:\n%q", got)
			}

			// Purging events drops the sets of the hours that start before the cut.
			_, err = s.PurgeEvents(ctx, a.ID, h(5).Add(30*time.Minute))
			check(t, err)
			if got := readHourUsers(t, s, a.ID, d, h(48)); len(got) != 42 || !reflect.DeepEqual(got[:18], want[6:]) {
				t.Fatalf("user sets after purging before 05:30: %d hours from %v, want 42 from %v", len(got), got[0].Hour, h(6))
			}
		}},
		{"Runs", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			last := func() *tally.RollupRun {
				t.Helper()
				r, err := s.LastRollupRun(ctx)
				check(t, err)
				return r
			}
			if r := last(); r != nil {
				t.Fatalf("LastRollupRun of a fresh store = %+v, want nil", r)
			}
			t0 := now().Add(-time.Hour)
			failed := tally.RollupRun{Kind: "hourly", StartedAt: t0, FinishedAt: t0.Add(time.Second), Days: 1, Err: "database is locked"}
			check(t, s.RecordRollupRun(ctx, failed))
			if r := last(); r != nil {
				t.Fatalf("LastRollupRun after only a failed run = %+v, want nil", r)
			}
			ok := tally.RollupRun{Kind: "daily", StartedAt: t0.Add(time.Minute), FinishedAt: t0.Add(2 * time.Minute), Days: 2, Rows: 40}
			check(t, s.RecordRollupRun(ctx, ok))
			laterFailed := failed
			laterFailed.StartedAt, laterFailed.FinishedAt = t0.Add(10*time.Minute), t0.Add(11*time.Minute)
			check(t, s.RecordRollupRun(ctx, laterFailed))
			if r := last(); r == nil || !sameRun(*r, ok) {
				t.Fatalf("LastRollupRun = %+v, want the last successful %+v", r, ok)
			}
			manual := tally.RollupRun{Kind: "manual", StartedAt: t0.Add(20 * time.Minute), FinishedAt: t0.Add(21 * time.Minute), Days: 3, Rows: 7}
			check(t, s.RecordRollupRun(ctx, manual))
			if r := last(); r == nil || !sameRun(*r, manual) {
				t.Fatalf("LastRollupRun = %+v, want %+v", r, manual)
			}
		}},
	}
}

func sameRun(a, b tally.RollupRun) bool {
	return a.Kind == b.Kind && a.StartedAt.Equal(b.StartedAt) && a.FinishedAt.Equal(b.FinishedAt) &&
		a.Days == b.Days && a.Rows == b.Rows && a.Err == b.Err
}
