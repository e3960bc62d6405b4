package storetest

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// aggregateFixture stores events of a in the day starting at d, one event
// either side of that day, and some of b in the same hours.
func aggregateFixture(t *testing.T, s tally.Store, a, b int64, d time.Time) {
	t.Helper()
	h1, h2 := d.Add(time.Hour), d.Add(2*time.Hour)
	insertNew(t, s,
		ev(a, "p1", tally.EventAPIRequest, "u1", d), // the first instant of the day
		ev(a, "a1", tally.EventAPIRequest, "u1", h1.Add(time.Minute)),
		withValue(ev(a, "a2", tally.EventAPIRequest, "u2", h1.Add(2*time.Minute)), 2.5),
		withValue(ev(a, "a3", tally.EventAPIRequest, "u1", h1.Add(3*time.Minute)), 0.5),
		ev(a, "a4", tally.EventAPIRequest, "", h1.Add(4*time.Minute)),
		increment(a, "i1", "builds", "u1", h1.Add(5*time.Minute), 2),
		increment(a, "i2", "builds", "u2", h1.Add(6*time.Minute), 3),
		increment(a, "i3", "storage_mb", "u1", h1.Add(7*time.Minute), 10.5),
		increment(a, "i4", "Not A Metric!", "u3", h1.Add(8*time.Minute), 4),
		ev(a, "f1", "files.uploaded", "u3", h2.Add(time.Hour-time.Microsecond)), // the last instant of h2
		ev(a, "n1", tally.EventAPIRequest, "u4", d.Add(24*time.Hour)),           // the next day
		ev(a, "n2", tally.EventAPIRequest, "u1", d.Add(25*time.Hour)),
		ev(a, "prev", tally.EventAPIRequest, "u5", d.Add(-time.Microsecond)), // the day before
		withValue(ev(b, "b1", tally.EventAPIRequest, "u9", h1.Add(time.Minute)), 7),
		increment(b, "b2", "builds", "", h1.Add(2*time.Minute), 100),
	)
}

func aggregateCases() []testCase {
	return []testCase{
		{"SumRoundedClampsLikeRules", func(t *testing.T, s tally.Store) {
			a := newTenant(t, s, "tenant-a")
			d := tally.DayStart(time.Now()).Add(-72 * time.Hour)
			var events []tally.Event
			var want int64
			rules := tally.UsageRules{{Event: "files.uploaded", Metric: "bytes", Sum: true}}
			for i, v := range []float64{-5, 0, 0.4, 0.49999999999999994, 0.5, 2.5, 1e20, 1 << 40, 123456.7} {
				e := withValue(ev(a.ID, "v"+string(rune('a'+i)), "files.uploaded", "u1", d.Add(time.Duration(i)*time.Minute)), v)
				events = append(events, e)
				for _, am := range rules.Apply(&e) {
					want += am.N
				}
			}
			insertNew(t, s, events...)
			rows, err := s.AggregateEvents(t.Context(), a.ID, d, d.Add(time.Hour), time.Hour)
			check(t, err)
			if len(rows) != 1 || rows[0].SumRounded != want {
				t.Fatalf("SumRounded = %+v, want %d (what UsageRules.Apply adds event by event)", rows, want)
			}
			if got := rules.ApplyRows(rows)["bytes"]; got != want {
				t.Fatalf("ApplyRows gives %d, Apply summed gives %d", got, want)
			}
		}},
		{"ByHourAndDay", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			h1, h2 := d.Add(time.Hour), d.Add(2*time.Hour)
			aggregateFixture(t, s, a.ID, b.ID, d)
			const inc = tally.EventUsageIncrement
			for _, c := range []struct {
				name     string
				tenant   int64
				from, to time.Time
				bucket   time.Duration
				want     []tally.HourRow
			}{
				{"a by hour", a.ID, d, d.Add(24 * time.Hour), time.Hour, []tally.HourRow{
					{Start: d, Event: tally.EventAPIRequest, Count: 1, Sum: 1, SumRounded: 1, Users: 1},
					// round(2.5) = 3 and round(0.5) = 1: halves round away from zero, as in Go.
					{Start: h1, Event: tally.EventAPIRequest, Count: 4, Sum: 5, SumRounded: 6, Users: 2},
					{Start: h1, Event: inc, Count: 1, Sum: 4, SumRounded: 4, Users: 1}, // names no valid metric
					{Start: h1, Event: inc, Metric: "builds", Count: 2, Sum: 5, SumRounded: 5, Users: 2},
					{Start: h1, Event: inc, Metric: "storage_mb", Count: 1, Sum: 10.5, SumRounded: 11, Users: 1},
					{Start: h2, Event: "files.uploaded", Count: 1, Sum: 1, SumRounded: 1, Users: 1},
				}},
				{"a by day", a.ID, d, d.Add(48 * time.Hour), 24 * time.Hour, []tally.HourRow{
					{Start: d, Event: tally.EventAPIRequest, Count: 5, Sum: 6, SumRounded: 7, Users: 2},
					{Start: d, Event: "files.uploaded", Count: 1, Sum: 1, SumRounded: 1, Users: 1},
					{Start: d, Event: inc, Count: 1, Sum: 4, SumRounded: 4, Users: 1},
					{Start: d, Event: inc, Metric: "builds", Count: 2, Sum: 5, SumRounded: 5, Users: 2},
					{Start: d, Event: inc, Metric: "storage_mb", Count: 1, Sum: 10.5, SumRounded: 11, Users: 1},
					{Start: d.Add(24 * time.Hour), Event: tally.EventAPIRequest, Count: 2, Sum: 2, SumRounded: 2, Users: 2},
				}},
				{"a one hour", a.ID, h1, h2, time.Hour, []tally.HourRow{
					{Start: h1, Event: tally.EventAPIRequest, Count: 4, Sum: 5, SumRounded: 6, Users: 2},
					{Start: h1, Event: inc, Count: 1, Sum: 4, SumRounded: 4, Users: 1},
					{Start: h1, Event: inc, Metric: "builds", Count: 2, Sum: 5, SumRounded: 5, Users: 2},
					{Start: h1, Event: inc, Metric: "storage_mb", Count: 1, Sum: 10.5, SumRounded: 11, Users: 1},
				}},
				{"a day before", a.ID, d.Add(-24 * time.Hour), d, 24 * time.Hour, []tally.HourRow{
					{Start: d.Add(-24 * time.Hour), Event: tally.EventAPIRequest, Count: 1, Sum: 1, SumRounded: 1, Users: 1},
				}},
				{"b by hour", b.ID, d, d.Add(24 * time.Hour), time.Hour, []tally.HourRow{
					{Start: h1, Event: tally.EventAPIRequest, Count: 1, Sum: 7, SumRounded: 7, Users: 1},
					{Start: h1, Event: inc, Metric: "builds", Count: 1, Sum: 100, SumRounded: 100, Users: 0},
				}},
				{"nothing", a.ID, d.Add(3 * time.Hour), d.Add(24 * time.Hour), time.Hour, nil},
			} {
				got, err := s.AggregateEvents(ctx, c.tenant, c.from, c.to, c.bucket)
				check(t, err)
				wantRows(t, "AggregateEvents "+c.name, got, c.want)
			}
		}},
	}
}
