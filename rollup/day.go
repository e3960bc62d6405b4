package rollup

import (
	"context"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/userset"
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
		sets := make([][]byte, 24) // each hour's users, encoded by userset
		dayUsers := map[string]struct{}{}
		if err := tx.BucketUsers(ctx, hourStarts, func(h int, user []byte) error {
			sets[h] = userset.Append(sets[h], user)
			if _, ok := dayUsers[string(user)]; !ok {
				dayUsers[string(user)] = struct{}{}
			}
			return nil
		}); err != nil {
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
		for h, set := range sets {
			if set == nil {
				set = []byte{} // an empty set, not none
			}
			if err := tx.WriteHourUsers(ctx, hourStarts[h], set); err != nil {
				return err
			}
			n++
		}
		if len(dayUsers) > 0 {
			if err := tx.WriteDayUsers(ctx, from, int64(len(dayUsers))); err != nil {
				return err
			}
			n++
		}
		k, err := rollMetersDay(ctx, tx, from)
		n += k
		return err
	}()
	if err != nil {
		return 0, err
	}
	return n, nil
}
