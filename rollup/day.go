package rollup

import (
	"context"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/tallyhq/tally"
)

// RecomputeDay recomputes, from the raw log and in one transaction of
// store.InRollupTx, a tenant's hourly and daily event rows, the metric
// values rules give, the day's distinct users (a count for the day and
// the set of user ids of each of its hours) and the hourly partials of the
// tenant's custom meters (meters.go) for the UTC day containing day, and
// clears the dirty marks of that day. Running it again changes
// nothing. It returns how many rows it wrote.
//
// The store aggregates in SQL; this reads the aggregates and the hours'
// distinct users, applies the rules, and writes the results back in the
// same transaction, which holds the tenant's log still (see InRollupTx).
func RecomputeDay(ctx context.Context, store tally.RollupStore, tenantID int64, day time.Time, rules tally.UsageRules) (int, error) {
	n := 0
	err := store.InRollupTx(ctx, tenantID, func(tx tally.RollupTx) error {
		var err error
		n, err = recomputeDay(ctx, tx, day, rules)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// recomputeDay is RecomputeDay within tx.
func recomputeDay(ctx context.Context, tx tally.RollupTx, day time.Time, rules tally.UsageRules) (int, error) {
	from := tally.DayStart(day)
	to := from.Add(24 * time.Hour)
	n := 0
	err := func() error {
		hours, err := tx.AggregateEvents(ctx, from, to, time.Hour)
		if err != nil {
			return err
		}
		days, err := tx.AggregateEvents(ctx, from, to, 24*time.Hour)
		if err != nil {
			return err
		}
		hourStarts := make([]time.Time, 25)
		for i := range hourStarts {
			hourStarts[i] = from.Add(time.Duration(i) * time.Hour)
		}
		// The day's distinct users once each, and by hour their indexes in
		// users; then their ordinals, one bitmap per hour and one for the day.
		var (
			users  [][]byte
			byHour [24][]int32
		)
		index := map[string]int32{}
		if err := tx.BucketUsers(ctx, hourStarts, func(h int, user []byte) error {
			i, ok := index[string(user)]
			if !ok {
				i = int32(len(users))
				index[string(user)] = i
				users = append(users, slices.Clone(user))
			}
			byHour[h] = append(byHour[h], i)
			return nil
		}); err != nil {
			return err
		}
		ords, err := tx.UserOrdinals(ctx, users)
		if err != nil {
			return err
		}
		var sets [25][]byte // the hours' sets, then the day's
		day := roaring.BitmapOf(ords...)
		for h, idx := range byHour {
			hour := roaring.New()
			for _, i := range idx {
				hour.Add(ords[i])
			}
			if sets[h], err = encodeSet(hour); err != nil {
				return err
			}
		}
		if sets[24], err = encodeSet(day); err != nil {
			return err
		}

		if err := tx.DeleteRollups(ctx, from, to); err != nil {
			return err
		}
		if err := tx.ClearDirty(ctx, from, to); err != nil {
			return err
		}
		for _, b := range []struct {
			size time.Duration
			rows []tally.HourRow
		}{{time.Hour, hours}, {24 * time.Hour, days}} {
			if err := tx.WriteEventRows(ctx, b.size, b.rows); err != nil {
				return err
			}
			points := rules.BucketMetrics(b.rows)
			if err := tx.WriteMetricRows(ctx, b.size, points); err != nil {
				return err
			}
			n += len(b.rows) + len(points)
		}
		for h, set := range sets[:24] {
			if err := tx.WriteHourUsers(ctx, hourStarts[h], set); err != nil {
				return err
			}
			n++
		}
		if err := tx.WriteDayUsers(ctx, from, sets[24]); err != nil {
			return err
		}
		n++
		k, err := rollMetersDay(ctx, tx, from)
		n += k
		return err
	}()
	if err != nil {
		return 0, err
	}
	return n, nil
}

// encodeSet is a user set as the stores keep it (tally.RollupTx.WriteHourUsers).
func encodeSet(b *roaring.Bitmap) ([]byte, error) {
	b.RunOptimize()
	return b.ToBytes()
}
