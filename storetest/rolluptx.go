package storetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// rollupTxCases check the per-transaction primitives of InRollupTx on
// their own; the Rollup cases check the day recompute built on them.
func rollupTxCases() []testCase {
	return []testCase{
		{"ReadsMatchTheStore", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			rollupFixture(t, s, a.ID, b.ID, d)
			ctx := t.Context()
			wantHours, err := s.AggregateEvents(ctx, a.ID, d, d.Add(24*time.Hour), time.Hour)
			check(t, err)
			wantDays, err := s.AggregateEvents(ctx, a.ID, d, d.Add(48*time.Hour), 24*time.Hour)
			check(t, err)
			bounds := steps(d, d.Add(24*time.Hour), time.Hour)
			wantUsers := bucketUsers(t, s, a.ID, bounds)

			check(t, s.InRollupTx(ctx, a.ID, func(tx tally.RollupTx) error {
				hours, err := tx.AggregateEvents(ctx, d, d.Add(24*time.Hour), time.Hour)
				check(t, err)
				wantRows(t, "AggregateEvents by hour in the transaction", hours, wantHours)
				days, err := tx.AggregateEvents(ctx, d, d.Add(48*time.Hour), 24*time.Hour)
				check(t, err)
				wantRows(t, "AggregateEvents by day in the transaction", days, wantDays)

				users := make([][]string, len(bounds)-1)
				check(t, tx.BucketUsers(ctx, bounds, func(i int, user []byte) error {
					users[i] = append(users[i], string(user))
					return nil
				}))
				for _, u := range users {
					slices.Sort(u)
				}
				if !reflect.DeepEqual(users, wantUsers) {
					t.Fatalf("BucketUsers in the transaction = %q, want %q", users, wantUsers)
				}
				err = tx.BucketUsers(ctx, []time.Time{d.Add(time.Hour), d}, func(int, []byte) error { return nil })
				wantCode(t, err, tally.EInvalid, "BucketUsers with descending bounds")
				return nil
			}))
		}},
		{"WritesDeletesAndClears", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			rollupFixture(t, s, a.ID, b.ID, d)
			ctx := t.Context()
			h1, h5, h7 := d.Add(time.Hour), d.Add(5*time.Hour), d.Add(7*time.Hour)
			hourRows := []tally.HourRow{
				{Start: h1, Event: "x", Count: 3, Sum: 1.5, SumRounded: 2, Users: 1},
				{Start: h1, Event: tally.EventUsageIncrement, Metric: "builds", Count: 1, Sum: 2, SumRounded: 2, Users: 1},
				{Start: h5, Event: "y", Count: 1, Users: 0},
			}
			dayRows := []tally.HourRow{{Start: d, Event: "x", Count: 3, Sum: 1.5, SumRounded: 2, Users: 1}}
			points := []tally.MetricPoint{{Start: h1, Metric: "m", Value: 7}, {Start: h5, Metric: "m", Value: 1}}

			check(t, s.InRollupTx(ctx, a.ID, func(tx tally.RollupTx) error {
				check(t, tx.WriteEventRows(ctx, time.Hour, hourRows))
				check(t, tx.WriteEventRows(ctx, 24*time.Hour, dayRows))
				check(t, tx.WriteMetricRows(ctx, time.Hour, points))
				check(t, tx.WriteMetricRows(ctx, 24*time.Hour, []tally.MetricPoint{{Start: d, Metric: "m", Value: 8}}))
				ords, err := tx.UserOrdinals(ctx, [][]byte{[]byte("u1"), []byte("u2")})
				check(t, err)
				if again, err := tx.UserOrdinals(ctx, [][]byte{[]byte("u2"), []byte("u1")}); err != nil || again[0] != ords[1] || again[1] != ords[0] {
					t.Fatalf("UserOrdinals of u1, u2 = %v, then of u2, u1 = %v, %v", ords, again, err)
				}
				check(t, tx.WriteHourUsers(ctx, h1, userSet(t, ords...)))
				check(t, tx.WriteHourUsers(ctx, h5, []byte{}))
				check(t, tx.WriteDayUsers(ctx, d, userSet(t, ords...)))
				if err := tx.WriteEventRows(ctx, time.Minute, hourRows); err == nil {
					t.Fatal("WriteEventRows of minute buckets: no error")
				}
				return tx.ClearDirty(ctx, d, h7) // a's hours 1 and 5
			}))
			got, err := s.RollupHours(ctx, a.ID, d, d.Add(24*time.Hour))
			check(t, err)
			wantRows(t, "hour rows written", got, hourRows)
			got, err = s.RollupDays(ctx, a.ID, d, d.Add(24*time.Hour))
			check(t, err)
			wantRows(t, "day rows written", got, dayRows)
			gotPoints, err := s.RollupMetricHours(ctx, a.ID, d, d.Add(24*time.Hour))
			check(t, err)
			wantPoints(t, "metric hours written", gotPoints, points)
			wantUsers := []hourUsers{{Hour: h1, Users: []string{"u1", "u2"}}, {Hour: h5, Users: []string{}}}
			if users := readHourUsers(t, s, a.ID, d, d.Add(24*time.Hour)); !reflect.DeepEqual(users, wantUsers) {
				t.Fatalf("hour user sets written = %v, want %v", users, wantUsers)
			}
			wantDirty(t, "after ClearDirty of a's hours 0 to 7", dirtyHours(t, s, now()),
				tally.TenantHour{TenantID: a.ID, Hour: h7}, tally.TenantHour{TenantID: a.ID, Hour: d.Add(23 * time.Hour)},
				tally.TenantHour{TenantID: a.ID, Hour: d.Add(26 * time.Hour)}, tally.TenantHour{TenantID: b.ID, Hour: h1})
			if rows, err := s.RollupHours(ctx, b.ID, d, d.Add(24*time.Hour)); err != nil || len(rows) != 0 {
				t.Fatalf("tenant b's hour rows = %v, %v; want none", rows, err)
			}

			// DeleteRollups removes the rows that start in its range only.
			check(t, s.InRollupTx(ctx, a.ID, func(tx tally.RollupTx) error {
				return tx.DeleteRollups(ctx, h1, h5)
			}))
			got, err = s.RollupHours(ctx, a.ID, d, d.Add(24*time.Hour))
			check(t, err)
			wantRows(t, "hour rows after DeleteRollups of hours 1 to 5", got, hourRows[2:])
			gotPoints, err = s.RollupMetricHours(ctx, a.ID, d, d.Add(24*time.Hour))
			check(t, err)
			wantPoints(t, "metric hours after DeleteRollups", gotPoints, points[1:])
			got, err = s.RollupDays(ctx, a.ID, d, d.Add(24*time.Hour))
			check(t, err)
			wantRows(t, "day rows after DeleteRollups of hours 1 to 5", got, dayRows)
			if users := readHourUsers(t, s, a.ID, d, d.Add(24*time.Hour)); !reflect.DeepEqual(users, wantUsers[1:]) {
				t.Fatalf("hour user sets after DeleteRollups = %v, want %v", users, wantUsers[1:])
			}
			check(t, s.InRollupTx(ctx, a.ID, func(tx tally.RollupTx) error {
				return tx.DeleteRollups(ctx, d, d.Add(24*time.Hour))
			}))
			for _, read := range []func(tally.Store) ([]tally.HourRow, error){
				func(s tally.Store) ([]tally.HourRow, error) { return s.RollupHours(ctx, a.ID, d, d.Add(24*time.Hour)) },
				func(s tally.Store) ([]tally.HourRow, error) { return s.RollupDays(ctx, a.ID, d, d.Add(24*time.Hour)) },
			} {
				if rows, err := read(s); err != nil || len(rows) != 0 {
					t.Fatalf("rows after DeleteRollups of the day = %v, %v; want none", rows, err)
				}
			}
			if sets := readUserSets(t, s, a.ID, 24*time.Hour, d, d.Add(24*time.Hour)); len(sets) != 0 {
				t.Fatalf("day user sets after DeleteRollups of the day = %v", sets)
			}
			// A day's user set can be written again once deleted.
			check(t, s.InRollupTx(ctx, a.ID, func(tx tally.RollupTx) error {
				return tx.WriteDayUsers(ctx, d, []byte{})
			}))
		}},
		{"ErrorRollsBack", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			rollupFixture(t, s, a.ID, b.ID, d)
			ctx := t.Context()
			before := dirtyHours(t, s, now())
			stop := errors.New("stop")
			err := s.InRollupTx(ctx, a.ID, func(tx tally.RollupTx) error {
				check(t, tx.WriteEventRows(ctx, time.Hour, []tally.HourRow{{Start: d, Event: "x", Count: 1}}))
				check(t, tx.WriteHourUsers(ctx, d, []byte{}))
				check(t, tx.ClearDirty(ctx, d, d.Add(48*time.Hour)))
				return stop
			})
			if err != stop {
				t.Fatalf("InRollupTx = %v, want fn's error as is", err)
			}
			if rows, err := s.RollupHours(ctx, a.ID, d, d.Add(24*time.Hour)); err != nil || len(rows) != 0 {
				t.Fatalf("hour rows after a rolled back transaction = %v, %v; want none", rows, err)
			}
			if users := readHourUsers(t, s, a.ID, d, d.Add(24*time.Hour)); len(users) != 0 {
				t.Fatalf("hour user sets after a rolled back transaction = %v", users)
			}
			wantDirty(t, "after a rolled back transaction", dirtyHours(t, s, now()), before...)
		}},
	}
}
