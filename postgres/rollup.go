package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/userset"
)

// DirtyHours implements tally.RollupStore.
func (db *DB) DirtyHours(ctx context.Context, before time.Time) ([]tally.TenantHour, error) {
	rows, err := db.pool.Query(ctx, `SELECT tenant_id, hour FROM rollup_dirty WHERE hour < $1 ORDER BY tenant_id, hour`, before)
	if err != nil {
		return nil, wrap(err, "rollup")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.TenantHour, error) {
		var th tally.TenantHour
		err := row.Scan(&th.TenantID, &th.Hour)
		return th, err
	})
	if len(out) == 0 {
		out = nil
	}
	return out, wrap(err, "rollup")
}

// OldestDirty implements tally.RollupStore.
func (db *DB) OldestDirty(ctx context.Context, tenantID int64) (time.Time, error) {
	var h pgtype.Timestamptz
	if err := db.pool.QueryRow(ctx, `SELECT min(hour) FROM rollup_dirty WHERE tenant_id = $1`, tenantID).Scan(&h); err != nil {
		return time.Time{}, wrap(err, "rollup")
	}
	if !h.Valid {
		return time.Time{}, nil
	}
	return h.Time.UTC(), nil
}

// RollupDay implements tally.RollupStore.
//
// The invariant of tally.RollupStore (an hour with no dirty mark has exact
// rollup rows) needs that no change to the tenant's log commits between
// RollupDay reading the log and clearing the day's marks: such a change
// would have its mark cleared with the others without having been counted
// (with READ COMMITTED, an insert committing between the aggregate and the
// DELETE of the marks would do exactly that). SQLite gets this from its
// single writer; here many instances write at once, so:
//
//   - every writer of a tenant's log (InsertEvents, DeleteUserEvents,
//     PurgeEvents) holds the tenant's transaction-level advisory lock in
//     shared mode, taken before it writes and held until it commits;
//     writers take the locks of several tenants in ascending key order, and
//     shared locks never wait for each other, so writers do not block
//     writers;
//   - RollupDay takes the same lock in exclusive mode, in a statement of
//     its own, before it reads anything. Once granted, every writer of the
//     tenant that began before has committed and none can write until
//     RollupDay commits, so the reads that follow (each statement of a READ
//     COMMITTED transaction sees what committed before it began) see one
//     unchanging log, and clearing the marks clears only marks of changes
//     counted. A writer that waits meanwhile marks its hours after RollupDay
//     commits, so its mark survives.
//
// The transaction is READ COMMITTED on purpose, whatever the server's
// default: under REPEATABLE READ the snapshot would be the one of the lock
// statement, taken before the lock was granted, and would miss the events
// of the writers it waited for.
func (db *DB) RollupDay(ctx context.Context, tenantID int64, day time.Time, rules tally.UsageRules) (int, error) {
	from := tally.DayStart(day)
	to := from.Add(24 * time.Hour)
	n := 0
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		n = 0
		if _, err := tx.Exec(ctx, lockTenantExclusive, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		hours, err := aggregate(ctx, tx, tenantID, from, to, time.Hour)
		if err != nil {
			return err
		}
		days, err := aggregate(ctx, tx, tenantID, from, to, 24*time.Hour)
		if err != nil {
			return err
		}
		sets := make([][]byte, 24) // each hour's users, encoded as in rollup_hour_users
		hourStarts := make([]time.Time, 25)
		for i := range hourStarts {
			hourStarts[i] = from.Add(time.Duration(i) * time.Hour)
		}
		dayUsers := map[string]struct{}{}
		if err := bucketUsers(ctx, tx, tenantID, hourStarts, func(h int, user []byte) error {
			sets[h] = userset.Append(sets[h], user)
			dayUsers[string(user)] = struct{}{}
			return nil
		}); err != nil {
			return err
		}

		b := &pgx.Batch{}
		for _, q := range []string{
			`DELETE FROM rollup_event_hour WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`,
			`DELETE FROM rollup_metric_hour WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`,
			`DELETE FROM rollup_event_day WHERE tenant_id = $1 AND day >= $2 AND day < $3`,
			`DELETE FROM rollup_metric_day WHERE tenant_id = $1 AND day >= $2 AND day < $3`,
			`DELETE FROM rollup_day_users WHERE tenant_id = $1 AND day >= $2 AND day < $3`,
			`DELETE FROM rollup_hour_users WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`,
			`DELETE FROM rollup_dirty WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`,
		} {
			b.Queue(q, tenantID, from, to)
		}
		for _, set := range []struct {
			table string
			rows  []tally.HourRow
		}{{"rollup_event_hour (tenant_id, hour,", hours}, {"rollup_event_day (tenant_id, day,", days}} {
			for _, r := range set.rows {
				b.Queue(`INSERT INTO `+set.table+` event, metric, count, sum_value, sum_rounded, users)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
					tenantID, r.Start, r.Event, r.Metric, r.Count, r.Sum, r.SumRounded, r.Users)
				n++
			}
		}
		for _, set := range []struct {
			table  string
			points []tally.MetricPoint
		}{{"rollup_metric_hour (tenant_id, hour,", rules.BucketMetrics(hours)}, {"rollup_metric_day (tenant_id, day,", rules.BucketMetrics(days)}} {
			for _, p := range set.points {
				b.Queue(`INSERT INTO `+set.table+` metric, value) VALUES ($1, $2, $3, $4)`, tenantID, p.Start, p.Metric, p.Value)
				n++
			}
		}
		for h, set := range sets {
			if set == nil {
				set = []byte{} // an empty set, not NULL
			}
			b.Queue(`INSERT INTO rollup_hour_users (tenant_id, hour, users) VALUES ($1, $2, $3)`, tenantID, hourStarts[h], set)
			n++
		}
		if len(dayUsers) > 0 {
			b.Queue(`INSERT INTO rollup_day_users (tenant_id, day, users) VALUES ($1, $2, $3)`, tenantID, from, int64(len(dayUsers)))
			n++
		}
		return tx.SendBatch(ctx, b).Close()
	})
	return n, wrap(err, "rollup")
}

func (db *DB) readRows(ctx context.Context, table, col string, tenantID int64, from, to time.Time) ([]tally.HourRow, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT `+col+`, event, metric, count, sum_value, sum_rounded, users FROM `+table+`
		 WHERE tenant_id = $1 AND `+col+` >= $2 AND `+col+` < $3 ORDER BY `+col+`, event, metric`,
		tenantID, from, to)
	return scanHourRows(rows, err, "rollup")
}

// RollupHours implements tally.RollupStore.
func (db *DB) RollupHours(ctx context.Context, tenantID int64, from, to time.Time) ([]tally.HourRow, error) {
	return db.readRows(ctx, "rollup_event_hour", "hour", tenantID, from, to)
}

// RollupDays implements tally.RollupStore.
func (db *DB) RollupDays(ctx context.Context, tenantID int64, from, to time.Time) ([]tally.HourRow, error) {
	return db.readRows(ctx, "rollup_event_day", "day", tenantID, from, to)
}

// RollupHourUsers implements tally.RollupStore.
func (db *DB) RollupHourUsers(ctx context.Context, tenantID int64, from, to time.Time, fn func(hour time.Time, users [][]byte) error) error {
	rows, err := db.pool.Query(ctx,
		`SELECT hour, users FROM rollup_hour_users WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour`,
		tenantID, from, to)
	if err != nil {
		return wrap(err, "rollup")
	}
	defer rows.Close()
	var (
		hour  time.Time
		set   pgtype.DriverBytes // valid until the next row: users point into it
		users [][]byte
	)
	for rows.Next() {
		if err := rows.Scan(&hour, &set); err != nil {
			return wrap(err, "rollup")
		}
		if users, err = userset.Split(set, users[:0]); err != nil {
			return wrap(fmt.Errorf("postgres: tenant %d, hour %v: %w", tenantID, hour, err), "rollup")
		}
		if err := fn(hour, users); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "rollup")
}

// RollupMetricHours implements tally.RollupStore.
func (db *DB) RollupMetricHours(ctx context.Context, tenantID int64, from, to time.Time) ([]tally.MetricPoint, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT hour, metric, value FROM rollup_metric_hour WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour, metric`,
		tenantID, from, to)
	if err != nil {
		return nil, wrap(err, "rollup")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.MetricPoint, error) {
		var p tally.MetricPoint
		err := row.Scan(&p.Start, &p.Metric, &p.Value)
		return p, err
	})
	if len(out) == 0 {
		out = nil
	}
	return out, wrap(err, "rollup")
}

// RecordRollupRun implements tally.RollupStore.
func (db *DB) RecordRollupRun(ctx context.Context, run tally.RollupRun) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO rollup_runs (kind, started_at, finished_at, days, rows, err) VALUES ($1, $2, $3, $4, $5, $6)`,
		run.Kind, run.StartedAt, run.FinishedAt, run.Days, run.Rows, run.Err)
	return wrap(err, "rollup run")
}

// LastRollupRun implements tally.RollupStore.
func (db *DB) LastRollupRun(ctx context.Context) (*tally.RollupRun, error) {
	var r tally.RollupRun
	err := db.pool.QueryRow(ctx,
		`SELECT kind, started_at, finished_at, days, rows, err FROM rollup_runs WHERE err = '' ORDER BY finished_at DESC LIMIT 1`).
		Scan(&r.Kind, &r.StartedAt, &r.FinishedAt, &r.Days, &r.Rows, &r.Err)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err, "rollup run")
	}
	return &r, nil
}
