package rollup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // the zones the tests use, whatever the machine has

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/sqlite"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// newStore opens a fresh SQLite file with one tenant and returns its id.
func newStore(t testing.TB) (*sqlite.DB, int64) {
	t.Helper()
	db, tn := sqlitetest.WithTenant(t)
	return db, tn.ID
}

var seq atomic.Int64

// event returns an event of tenant named name at time at by user.
func event(tenant int64, name, user string, at time.Time) tally.Event {
	return tally.Event{
		TenantID:   tenant,
		EventID:    fmt.Sprintf("e%d", seq.Add(1)),
		Name:       name,
		UserID:     user,
		Source:     "api",
		Timestamp:  at,
		ReceivedAt: at,
		Value:      1,
		Props:      json.RawMessage(`{}`),
	}
}

func insert(t testing.TB, db tally.Store, events ...tally.Event) {
	t.Helper()
	// In batches of the writer's size: one insert of thousands of events
	// can outlast the statement timeout under the race detector.
	for batch := range slices.Chunk(events, 500) {
		if _, err := db.InsertEvents(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
}

func date(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, time.UTC)
}

func fixed(t time.Time) func() time.Time { return func() time.Time { return t } }

// sample inserts a few days of varied events from March 1, 2026.
func sample(t testing.TB, db tally.Store, tn int64) {
	var events []tally.Event
	names := []string{tally.EventAPIRequest, "builder.generate.completed", "files.uploaded", tally.EventLogin, "page.view"}
	for i := range 3 * 24 * 4 {
		at := date(2026, 3, 1, 0, 0).Add(time.Duration(i) * 15 * time.Minute)
		e := event(tn, names[i%len(names)], fmt.Sprintf("u%d", i%7), at)
		e.Value = float64(i%4) + 0.5
		events = append(events, e)
		if i%10 == 0 {
			inc := event(tn, tally.EventUsageIncrement, "", at)
			inc.Props, inc.Value = json.RawMessage(`{"metric":"seats_daily"}`), 3
			events = append(events, inc)
		}
	}
	insert(t, db, events...)
}

type snapshot struct {
	hours, days []tally.HourRow
	metrics     []tally.MetricPoint
}

func snap(t *testing.T, db tally.Store, tn int64, from, to time.Time) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err1, err2, err3 error
	s.hours, err1 = db.RollupHours(ctx, tn, from, to)
	s.days, err2 = db.RollupDays(ctx, tn, from, to)
	s.metrics, err3 = db.RollupMetricHours(ctx, tn, from, to)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunDaysIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	sample(t, db, tn)
	reg := prometheus.NewRegistry()
	r := rollup.New(rollup.Config{Now: fixed(date(2026, 3, 10, 0, 0))}, db, reg)
	from, to := date(2026, 3, 1, 0, 0), date(2026, 3, 4, 0, 0)

	var first snapshot
	var firstRes rollup.Result
	for k := range 3 {
		res, err := r.RunDays(ctx, tn, from, date(2026, 3, 3, 12, 0), "", "")
		if err != nil {
			t.Fatal(err)
		}
		res.DurationMS = 0
		s := snap(t, db, tn, from, to)
		if k == 0 {
			first, firstRes = s, res
			if res.Days != 3 || res.Rows == 0 || len(s.hours) == 0 || len(s.days) != 3*6 || len(s.metrics) == 0 {
				t.Fatalf("first run: %+v, %d hour rows, %d day rows", res, len(s.hours), len(s.days))
			}
			continue
		}
		if !reflect.DeepEqual(s, first) || res != firstRes {
			t.Errorf("run %d changed the rollups (result %+v, first %+v)", k+1, res, firstRes)
		}
	}
	// The daily rows add up to the raw counts.
	var total int64
	for _, row := range first.days {
		total += row.Count
	}
	if raw, _ := db.CountEvents(ctx, tn, from, to); total != raw {
		t.Errorf("rolled up %d events, the log has %d", total, raw)
	}
	const metrics = `
# HELP sbh_analytics_rollup_runs_total Rollup runs by kind (hourly, daily, manual).
# TYPE sbh_analytics_rollup_runs_total counter
sbh_analytics_rollup_runs_total{kind="manual"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(metrics), "sbh_analytics_rollup_runs_total"); err != nil {
		t.Error(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "sbh_analytics_rollup_duration_seconds"); n != 1 {
		t.Errorf("duration histogram: %d series", n)
	}
	if _, err := r.RunDays(ctx, tn, to, from, "", ""); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("RunDays(to, from): %v, want invalid", err)
	}
}

func TestLateEventAndRunDirty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	sample(t, db, tn)
	now := date(2026, 3, 4, 10, 30)
	var ticks atomic.Int64 // each reading of the clock a second later, so runs are ordered
	r := rollup.New(rollup.Config{Now: func() time.Time { return now.Add(time.Duration(ticks.Add(1)) * time.Second) }}, db, nil)
	q := rollup.NewReports(rollup.ReportsConfig{}, db)
	from, to := date(2026, 3, 1, 0, 0), date(2026, 3, 4, 0, 0)

	// checkReads compares the composed reads with the raw log.
	checkReads := func(when string) {
		t.Helper()
		raw, err := db.AggregateEvents(ctx, tn, from, to, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		got, err := q.HourlyRows(ctx, tn, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, raw) {
			t.Errorf("%s: HourlyRows differs from the raw log (%d vs %d rows)", when, len(got), len(raw))
		}
		points, err := q.HourlyMetrics(ctx, tn, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if want := tally.DefaultUsageRules().BucketMetrics(raw); !reflect.DeepEqual(points, want) {
			t.Errorf("%s: HourlyMetrics differs from the rules over the raw log", when)
		}
	}
	dayTotal := func() (rolled, raw int64) {
		rows, _ := db.RollupDays(ctx, tn, from, to)
		for _, row := range rows {
			rolled += row.Count
		}
		raw, _ = db.CountEvents(ctx, tn, from, to)
		return rolled, raw
	}

	checkReads("all dirty")
	res, err := r.RunDirty(ctx)
	if err != nil || res.Days != 3 {
		t.Fatalf("RunDirty = %+v, %v; want 3 days", res, err)
	}
	if rolled, raw := dayTotal(); rolled != raw {
		t.Errorf("rolled up %d events, the log has %d", rolled, raw)
	}
	checkReads("all clean")

	// A late event marks its hour; reads stay exact until RunDirty fixes the rollup.
	insert(t, db, event(tn, tally.EventAPIRequest, "late", date(2026, 3, 2, 5, 17)))
	if od, _ := db.OldestDirty(ctx, tn); !od.Equal(date(2026, 3, 2, 5, 0)) {
		t.Fatalf("OldestDirty = %v", od)
	}
	checkReads("late event")
	if rolled, raw := dayTotal(); rolled != raw-1 {
		t.Errorf("before RunDirty: rolled %d, raw %d", rolled, raw)
	}
	// An event of the current hour waits for the hour to end.
	insert(t, db, event(tn, tally.EventAPIRequest, "", now.Add(-time.Minute)))
	res, err = r.RunDirty(ctx)
	if err != nil || res.Days != 1 {
		t.Fatalf("RunDirty = %+v, %v; want 1 day", res, err)
	}
	if rolled, raw := dayTotal(); rolled != raw {
		t.Errorf("after RunDirty: rolled %d, raw %d", rolled, raw)
	}
	checkReads("after RunDirty")
	if od, _ := db.OldestDirty(ctx, tn); !od.Equal(date(2026, 3, 4, 10, 0)) {
		t.Errorf("OldestDirty = %v, want the current hour", od)
	}
	run, err := db.LastRollupRun(ctx)
	if err != nil || run == nil || run.Kind != "hourly" || run.Days != 1 {
		t.Errorf("LastRollupRun = %+v, %v", run, err)
	}
}

func TestFailedRunRecorded(t *testing.T) {
	t.Parallel()
	db, tn := newStore(t)
	reg := prometheus.NewRegistry()
	r := rollup.New(rollup.Config{Now: fixed(date(2026, 3, 10, 0, 0))}, db, reg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.RunDays(ctx, tn, date(2026, 3, 1, 0, 0), date(2026, 3, 2, 0, 0), rollup.KindManual, ""); err == nil {
		t.Fatal("RunDays with a canceled context succeeded")
	}
	const metrics = `
# HELP sbh_analytics_rollup_failures_total Rollup runs that failed, by kind.
# TYPE sbh_analytics_rollup_failures_total counter
sbh_analytics_rollup_failures_total{kind="manual"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(metrics), "sbh_analytics_rollup_failures_total"); err != nil {
		t.Error(err)
	}
	if run, _ := db.LastRollupRun(context.Background()); run != nil {
		t.Errorf("LastRollupRun = %+v, want none successful", run)
	}
}

func TestUsageZeroFilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	if err := db.SetQuota(ctx, tn, tally.Quota{Metric: "exports_daily", Limit: 5}); err != nil {
		t.Fatal(err)
	}
	inc := event(tn, tally.EventUsageIncrement, "", date(2026, 3, 1, 5, 30))
	inc.Props, inc.Value = json.RawMessage(`{"metric":"seats_daily"}`), 3
	insert(t, db,
		event(tn, tally.EventAPIRequest, "", date(2026, 3, 1, 2, 10)),
		event(tn, tally.EventAPIRequest, "", date(2026, 3, 1, 2, 20)),
		event(tn, tally.EventAPIRequest, "", date(2026, 3, 1, 5, 0)),
		inc,
		event(tn, tally.EventAPIRequest, "", date(2026, 3, 3, 23, 59)),
	)
	r := rollup.New(rollup.Config{Now: fixed(date(2026, 3, 5, 0, 0))}, db, nil)
	q := rollup.NewReports(rollup.ReportsConfig{QuotaMetrics: []string{"storage_daily"}}, db)
	for _, rolled := range []bool{false, true} {
		if rolled {
			if _, err := r.RunDays(ctx, tn, date(2026, 3, 1, 0, 0), date(2026, 3, 2, 0, 0), "", ""); err != nil {
				t.Fatal(err)
			}
		}
		series, err := q.Usage(ctx, tn, nil, date(2026, 3, 1, 0, 0), date(2026, 3, 2, 0, 0), true, nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range series {
			names = append(names, s.Metric)
			if len(s.Points) != 24 || !s.Points[23].Start.Equal(date(2026, 3, 1, 23, 0)) {
				t.Errorf("%s: %d points", s.Metric, len(s.Points))
			}
		}
		want := []string{"api_requests_daily", "builds_daily", "events_daily", "exports_daily", "file_uploads_daily", "seats_daily", "storage_daily"}
		if !slices.Equal(names, want) {
			t.Errorf("metrics = %v, want %v", names, want)
		}
		api := series[0].Points
		for i, p := range api {
			want := map[int]int64{2: 2, 5: 1}[i]
			if p.Value != want {
				t.Errorf("rolled %v: api_requests_daily hour %d = %d, want %d", rolled, i, p.Value, want)
			}
		}
		if v := series[5].Points[5].Value; v != 3 {
			t.Errorf("seats_daily at 05:00 = %d, want 3", v)
		}

		days, err := q.Usage(ctx, tn, []string{"api_requests_daily", "builds_daily"}, date(2026, 3, 1, 0, 0), date(2026, 3, 4, 0, 0), false, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if len(days) != 2 || values(days[0].Points) != "3 0 1" || values(days[1].Points) != "0 0 0" {
			t.Errorf("rolled %v: daily usage = %+v", rolled, days)
		}
	}
	if _, err := q.Usage(ctx, tn, []string{"Bad"}, date(2026, 3, 1, 0, 0), date(2026, 3, 2, 0, 0), false, nil); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("bad metric: %v", err)
	}
	if _, err := q.Usage(ctx, tn, nil, date(2026, 3, 2, 0, 0), date(2026, 3, 1, 0, 0), false, nil); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("from after to: %v", err)
	}
}

func values(points []tally.MetricPoint) string {
	var s []string
	for _, p := range points {
		s = append(s, fmt.Sprint(p.Value))
	}
	return strings.Join(s, " ")
}

func TestUsageTimeZones(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		zone   string
		day    time.Time // the first local day (its date)
		every  time.Duration
		starts []string
		values string
	}{
		{"America/New_York", date(2026, 3, 7, 0, 0), time.Hour,
			[]string{"2026-03-07T05:00:00Z", "2026-03-08T05:00:00Z", "2026-03-09T04:00:00Z"}, "24 23 24"},
		{"America/New_York", date(2026, 10, 31, 0, 0), time.Hour,
			[]string{"2026-10-31T04:00:00Z", "2026-11-01T04:00:00Z", "2026-11-02T05:00:00Z"}, "24 25 24"},
		{"Europe/Berlin", date(2026, 3, 28, 0, 0), time.Hour,
			[]string{"2026-03-27T23:00:00Z", "2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"}, "24 23 24"},
		{"Europe/Berlin", date(2026, 10, 24, 0, 0), time.Hour,
			[]string{"2026-10-23T22:00:00Z", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"}, "24 25 24"},
		{"Asia/Kolkata", date(2026, 3, 7, 0, 0), 30 * time.Minute,
			[]string{"2026-03-06T18:30:00Z", "2026-03-07T18:30:00Z", "2026-03-08T18:30:00Z"}, "48 48 48"},
	} {
		t.Run(tc.zone+"/"+tc.day.Format(time.DateOnly), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			loc, err := time.LoadLocation(tc.zone)
			if err != nil {
				t.Fatal(err)
			}
			db, tn := newStore(t)
			y, m, d := tc.day.Date()
			from, to := time.Date(y, m, d, 0, 0, 0, 0, loc), time.Date(y, m, d+3, 0, 0, 0, 0, loc)
			var events []tally.Event
			for at := from.Add(-12 * time.Hour); at.Before(to.Add(12 * time.Hour)); at = at.Add(tc.every) {
				events = append(events, event(tn, tally.EventAPIRequest, "", at))
			}
			insert(t, db, events...)
			r := rollup.New(rollup.Config{Now: fixed(to.Add(24 * time.Hour))}, db, nil)
			q := rollup.NewReports(rollup.ReportsConfig{}, db)
			for _, rolled := range []bool{false, true} {
				if rolled { // all but the last UTC day: reads mix rollups and the raw log
					if _, err := r.RunDays(ctx, tn, from.Add(-24*time.Hour), to.Add(-24*time.Hour), "", ""); err != nil {
						t.Fatal(err)
					}
				}
				series, err := q.Usage(ctx, tn, []string{"api_requests_daily"}, from, to, false, loc)
				if err != nil {
					t.Fatal(err)
				}
				var starts []string
				for _, p := range series[0].Points {
					starts = append(starts, p.Start.Format(time.RFC3339))
				}
				if !slices.Equal(starts, tc.starts) || values(series[0].Points) != tc.values {
					t.Errorf("rolled %v: starts %v values %s; want %v %s", rolled, starts, values(series[0].Points), tc.starts, tc.values)
				}
			}
		})
	}
}

func TestKPIs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	now := date(2026, 3, 20, 15, 30)
	at := func(d, h int) time.Time { return date(2026, 3, d, h, 0) }
	var events []tally.Event
	add := func(name, user string, times ...time.Time) {
		for _, ti := range times {
			events = append(events, event(tn, name, user, ti))
		}
	}
	// The period (March 14 to now) ...
	add(tally.EventRegister, "u1", at(14, 10))
	add(tally.EventRegister, "u2", at(16, 0))
	add(tally.EventRegister, "u3", at(20, 9))
	add(tally.EventRegister, "u4", at(20, 15))
	add(tally.EventLogin, "u1", at(15, 1))
	add(tally.EventLogin, "u2", at(17, 1))
	add(tally.EventLogin, "u5", at(20, 2))
	for i := range 10 {
		add(tally.EventAPIRequest, "", at(14+i%7, 3))
	}
	add("builder.generate.completed", "u6", at(18, 4))
	// ... the previous period (March 7 to 14) ...
	add(tally.EventRegister, "p1", at(7, 0))
	add(tally.EventRegister, "p2", date(2026, 3, 13, 23, 59))
	for i := range 4 {
		add(tally.EventAPIRequest, "", at(8+i, 3))
	}
	add("builder.generate.completed", "p1", at(9, 1), at(10, 1), at(11, 1))
	// ... and outside both.
	add(tally.EventRegister, "x", date(2026, 3, 6, 23, 59), now.Add(10*time.Minute))
	insert(t, db, events...)

	r := rollup.New(rollup.Config{Now: fixed(now)}, db, nil)
	q := rollup.NewReports(rollup.ReportsConfig{}, db)
	if _, err := r.RunDays(ctx, tn, at(6, 0), at(15, 0), "", ""); err != nil { // part rolled up
		t.Fatal(err)
	}
	rep, err := q.KPIs(ctx, tn, "7d", time.UTC, now)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.From.Equal(at(14, 0)) || !rep.To.Equal(now) || rep.Range != "7d" {
		t.Errorf("report range %s %v..%v", rep.Range, rep.From, rep.To)
	}
	pct := func(f float64) *float64 { return &f }
	want := map[string]rollup.KPI{
		"signups":      {Value: 4, Previous: 2, ChangePct: pct(100)},
		"logins":       {Value: 3, Previous: 0},
		"api_requests": {Value: 10, Previous: 4, ChangePct: pct(150)},
		"builds":       {Value: 1, Previous: 3, ChangePct: pct(-66.7)},
		"file_uploads": {Value: 0, Previous: 0},
		"active_users": {Value: 6, Previous: 2, ChangePct: pct(200)},
		"events":       {Value: 18, Previous: 9, ChangePct: pct(100)},
	}
	if !reflect.DeepEqual(rep.KPIs, want) {
		t.Errorf("KPIs:\n got %s\nwant %s", kpiString(rep.KPIs), kpiString(want))
	}
	for name, ts := range rep.Timeseries {
		if len(ts) != 7 || !ts[0].Start.Equal(at(14, 0)) || !ts[6].Start.Equal(at(20, 0)) {
			t.Errorf("timeseries %s: %d points", name, len(ts))
		}
	}
	if got := values(rep.Timeseries["signups"]); got != "1 0 1 0 0 0 2" {
		t.Errorf("signups series %s", got)
	}
	if got := values(rep.Timeseries["active_users"]); got != "1 1 1 1 1 0 3" {
		t.Errorf("active_users series %s", got)
	}

	today, err := q.KPIs(ctx, tn, "today", time.UTC, now)
	if err != nil {
		t.Fatal(err)
	}
	if k := today.KPIs["signups"]; k.Value != 2 || k.Previous != 0 || k.ChangePct != nil {
		t.Errorf("today signups %+v", k)
	}
	if k := today.KPIs["api_requests"]; k.Value != 1 || k.Previous != 1 || *k.ChangePct != 0 {
		t.Errorf("today api_requests %+v", k)
	}
	if s := today.Timeseries["signups"]; len(s) != 16 || s[9].Value != 1 || s[15].Value != 1 {
		t.Errorf("today: signups per hour %s", values(s))
	}

	// Days of loc, across the daylight-saving change of March 8.
	ny, _ := time.LoadLocation("America/New_York")
	rep, err = q.KPIs(ctx, tn, "7d", ny, date(2026, 3, 10, 12, 0))
	if err != nil {
		t.Fatal(err)
	}
	ts := rep.Timeseries["events"]
	if len(ts) != 7 || !ts[0].Start.Equal(date(2026, 3, 4, 5, 0)) || !ts[4].Start.Equal(date(2026, 3, 8, 5, 0)) || !ts[5].Start.Equal(date(2026, 3, 9, 4, 0)) {
		t.Errorf("New York days: %+v", ts)
	}

	_, err = q.KPIs(ctx, tn, "1y", time.UTC, now)
	var te *tally.Error
	if !errors.As(err, &te) || te.Code != tally.EInvalid || len(te.Fields) != 1 || te.Fields[0].Field != "range" {
		t.Errorf("range 1y: %v", err)
	}
}

func kpiString(m map[string]rollup.KPI) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// keepDays sets the retention of tenant tn to days.
func keepDays(t *testing.T, db tally.Store, tn int64, days int) {
	t.Helper()
	tenant, err := db.TenantByID(context.Background(), tn)
	if err != nil {
		t.Fatal(err)
	}
	tenant.RetentionDays = days
	if err := db.UpdateTenant(context.Background(), tenant); err != nil {
		t.Fatal(err)
	}
}

func TestPurgeExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	keepDays(t, db, tn, 30)
	now := date(2026, 3, 20, 0, 10)
	// Retention counts whole UTC days: 30 days before 2026-03-20 is the
	// start of 2026-02-18.
	insert(t, db, event(tn, "old", "", date(2026, 2, 1, 0, 0)), event(tn, "old", "", date(2026, 2, 17, 23, 59)),
		event(tn, "kept", "", date(2026, 2, 18, 0, 0)))
	// Both days were rolled up while they were within retention.
	earlier := rollup.New(rollup.Config{Now: fixed(date(2026, 2, 20, 0, 10))}, db, nil)
	if _, err := earlier.RunDays(ctx, tn, date(2026, 2, 17, 0, 0), date(2026, 2, 18, 0, 0), "manual", ""); err != nil {
		t.Fatal(err)
	}
	r := rollup.New(rollup.Config{Now: fixed(now)}, db, nil)
	n, err := r.PurgeExpired(ctx)
	if err != nil || n != 2 {
		t.Fatalf("PurgeExpired = %d, %v; want 2", n, err)
	}
	if n, _ := r.PurgeExpired(ctx); n != 0 {
		t.Errorf("second PurgeExpired deleted %d", n)
	}
	audit, _, _ := db.ListAudit(ctx, tn, tally.AuditFilter{Action: "events.purged", Limit: 10})
	if len(audit) != 1 || audit[0].Meta["deleted"] != 2.0 || audit[0].Meta["before"] != "2026-02-18T00:00:00Z" || audit[0].Actor != "system" {
		t.Errorf("audit = %+v", audit)
	}
	// The aggregates of the purged day outlive its raw events, also when
	// someone rolls that day up again.
	before, _ := db.RollupDays(ctx, tn, date(2026, 2, 17, 0, 0), date(2026, 2, 18, 0, 0))
	if len(before) != 1 || before[0].Count != 1 {
		t.Fatalf("rollup of the purged day = %+v, want its one event", before)
	}
	res, err := r.RunDays(ctx, tn, date(2026, 2, 17, 0, 0), date(2026, 2, 18, 0, 0), "manual", "")
	if err != nil || res.Days != 1 {
		t.Fatalf("RunDays over a purged and a kept day = %+v, %v; want only the kept day rolled", res, err)
	}
	after, _ := db.RollupDays(ctx, tn, date(2026, 2, 17, 0, 0), date(2026, 2, 18, 0, 0))
	if len(after) != 1 || after[0].Count != 1 {
		t.Fatalf("re-running the rollup erased the purged day's aggregates: %+v", after)
	}
}

func TestSchedulerRunsHourly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	insert(t, db, event(tn, tally.EventAPIRequest, "", date(2026, 3, 1, 9, 0)))
	// The clock starts 50ms before 10:05 and runs at real speed.
	base, began := date(2026, 3, 1, 10, 5).Add(-50*time.Millisecond), time.Now()
	now := func() time.Time { return base.Add(time.Since(began)) }
	r := rollup.New(rollup.Config{Now: now}, db, nil)
	s := rollup.NewScheduler(rollup.SchedulerConfig{Tasks: r.Tasks(0), Now: now}, nil)
	s.Start()
	s.Start() // no second scheduler
	deadline := time.Now().Add(10 * time.Second)
	for {
		run, err := db.LastRollupRun(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if run != nil {
			if run.Kind != "hourly" || run.Days != 1 {
				t.Errorf("run = %+v", run)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no hourly run within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// oldestDirtyCounter is a store that counts its OldestDirty reads.
type oldestDirtyCounter struct {
	tally.Store
	n atomic.Int64
}

func (s *oldestDirtyCounter) OldestDirty(ctx context.Context, tenantID int64) (time.Time, error) {
	s.n.Add(1)
	return s.Store.OldestDirty(ctx, tenantID)
}

// TestReportsReadOldestDirtyOnce checks that every report splits its range
// at one reading of the tenant's oldest dirty hour.
func TestReportsReadOldestDirtyOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	now := date(2026, 3, 10, 12, 30)
	insert(t, db, event(tn, tally.EventAPIRequest, "u1", date(2026, 3, 8, 9, 0)), event(tn, tally.EventLogin, "u2", date(2026, 3, 10, 1, 0)))
	if _, err := rollup.New(rollup.Config{Now: fixed(now)}, db, nil).RunDays(ctx, tn, date(2026, 3, 8, 0, 0), date(2026, 3, 8, 0, 0), "", ""); err != nil {
		t.Fatal(err)
	}
	store := &oldestDirtyCounter{Store: db}
	q := rollup.NewReports(rollup.ReportsConfig{}, store)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	from, to := date(2026, 3, 3, 0, 0), now
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"KPIs 7d", func() error { _, err := q.KPIs(ctx, tn, "7d", ny, now); return err }},
		{"KPIs today", func() error { _, err := q.KPIs(ctx, tn, "today", time.UTC, now); return err }},
		{"Usage daily", func() error { _, err := q.Usage(ctx, tn, nil, from, to, false, ny); return err }},
		{"Usage hourly", func() error { _, err := q.Usage(ctx, tn, nil, from, to, true, nil); return err }},
		{"HourlyRows", func() error { _, err := q.HourlyRows(ctx, tn, from, to); return err }},
		{"HourlyMetrics", func() error { _, err := q.HourlyMetrics(ctx, tn, from, to); return err }},
	} {
		store.n.Store(0)
		if err := tc.run(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n := store.n.Load(); n != 1 {
			t.Errorf("%s read OldestDirty %d times, want once", tc.name, n)
		}
	}
}

// cutRecorder records the time of each RollupTx.PurgeEvents that
// deleted (a store may first try it in a snapshot, which refuses it) and
// fails the purge of the failAt-th time (from 1; 0: none).
type cutRecorder struct {
	tally.Store
	cuts    []time.Time
	deleted []int64 // by each of cuts
	tried   []time.Time
	failAt  int
}

func (s *cutRecorder) InRollupTx(ctx context.Context, tenantID int64, fn func(tally.RollupTx) error) error {
	return s.Store.InRollupTx(ctx, tenantID, func(tx tally.RollupTx) error { return fn(cutTx{tx, s}) })
}

type cutTx struct {
	tally.RollupTx
	s *cutRecorder
}

func (t cutTx) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	if !slices.ContainsFunc(t.s.tried, before.Equal) {
		t.s.tried = append(t.s.tried, before)
	}
	if len(t.s.tried) == t.s.failAt {
		return 0, errors.New("step failed")
	}
	n, err := t.RollupTx.PurgeEvents(ctx, before)
	if err == nil {
		t.s.cuts = append(t.s.cuts, before)
		t.s.deleted = append(t.s.deleted, n)
	}
	return n, err
}

// TestPurgeExpiredInSteps checks that the retention purge of more than a
// batch of events runs as one transaction per batch or so, oldest first,
// deletes what one transaction would, keeps a late event's change to a
// purged day in its rollups, and, when a step fails, reports (and audits)
// what the steps before it deleted; with a negative batch it is one
// transaction.
func TestPurgeExpiredInSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	keepDays(t, db, tn, 30)
	// Three events on each of Feb 10–19, rolled up on Feb 20.
	fill := func() {
		var evs []tally.Event
		for d := 10; d <= 19; d++ {
			for h := range 3 {
				evs = append(evs, event(tn, "page.view", "u1", date(2026, 2, d, 8*h, 30)))
			}
		}
		insert(t, db, evs...)
		early := rollup.New(rollup.Config{Now: fixed(date(2026, 2, 20, 0, 10))}, db, nil)
		if _, err := early.RunDays(ctx, tn, date(2026, 2, 10, 0, 0), date(2026, 2, 19, 0, 0), "manual", ""); err != nil {
			t.Fatal(err)
		}
	}
	fill()
	// A late event for Feb 12 after its rollup: its day is dirty.
	insert(t, db, event(tn, "page.view", "u2", date(2026, 2, 12, 23, 0)))

	now := date(2026, 3, 20, 0, 10) // retention keeps Feb 18 on
	rec := &cutRecorder{Store: db}
	n, err := rollup.New(rollup.Config{Now: fixed(now), PurgeBatch: 3}, rec, nil).PurgeExpired(ctx)
	if err != nil || n != 8*3+1 {
		t.Fatalf("PurgeExpired = %d, %v; want the 25 events of Feb 10–17", n, err)
	}
	// 25 events in batches of 3: 9 steps of equal time, the last to Feb 18.
	if len(rec.cuts) != 9 || !slices.IsSortedFunc(rec.cuts, time.Time.Compare) || !rec.cuts[8].Equal(date(2026, 2, 18, 0, 0)) {
		t.Errorf("purge steps %v, want 9 in order ending at Feb 18", rec.cuts)
	}
	for i, d := range rec.deleted {
		if d > 5 {
			t.Errorf("step %d (to %v) deleted %d events, want about 3", i, rec.cuts[i], d)
		}
	}
	if left, _ := db.CountEvents(ctx, tn, date(2026, 1, 1, 0, 0), date(2026, 2, 18, 0, 0)); left != 0 {
		t.Errorf("%d events before Feb 18 left", left)
	}
	if kept, _ := db.CountEvents(ctx, tn, date(2026, 2, 18, 0, 0), date(2026, 2, 20, 0, 0)); kept != 6 {
		t.Errorf("%d events of Feb 18–19 kept, want 6", kept)
	}
	days, _ := db.RollupDays(ctx, tn, date(2026, 2, 12, 0, 0), date(2026, 2, 13, 0, 0))
	if len(days) != 1 || days[0].Count != 4 {
		t.Errorf("rollup of Feb 12 = %+v, want its 4 events with the late one", days)
	}
	audit, _, _ := db.ListAudit(ctx, tn, tally.AuditFilter{Action: "events.purged", Limit: 10})
	if len(audit) != 1 || audit[0].Meta["deleted"] != 25.0 || audit[0].Meta["before"] != "2026-02-18T00:00:00Z" {
		t.Errorf("audit = %+v", audit)
	}

	// A step that fails: the days before it are gone and said so.
	now = date(2026, 4, 20, 0, 10) // retention keeps Mar 21 on: all of it goes
	fail := &cutRecorder{Store: db, failAt: 2}
	n, err = rollup.New(rollup.Config{Now: fixed(now), PurgeBatch: 3}, fail, nil).PurgeExpired(ctx)
	if err == nil || len(fail.cuts) != 1 || n != fail.deleted[0] || n == 0 {
		t.Fatalf("PurgeExpired with its second step failing = %d, %v (steps %v, %v); want the first step's events and the error",
			n, err, fail.cuts, fail.deleted)
	}
	audit, _, _ = db.ListAudit(ctx, tn, tally.AuditFilter{Action: "events.purged", Limit: 10})
	if len(audit) != 2 || audit[0].Meta["deleted"] != float64(n) || audit[0].Meta["before"] != fail.cuts[0].Format(time.RFC3339) {
		t.Errorf("audit after a failed step = %+v, want %d deleted before %v", audit, n, fail.cuts[0])
	}

	// One transaction with a negative step.
	fill()
	one := &cutRecorder{Store: db}
	if n, err = rollup.New(rollup.Config{Now: fixed(now), PurgeBatch: -1}, one, nil).PurgeExpired(ctx); err != nil || n != 30+6-fail.deleted[0] {
		t.Fatalf("PurgeExpired in one step = %d, %v; want the 30 new events and those the failed run left", n, err)
	}
	if len(one.cuts) != 1 || !one.cuts[0].Equal(date(2026, 3, 21, 0, 0)) {
		t.Errorf("purge steps %v, want one", one.cuts)
	}
}
