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

// InRollupTx implements tally.RollupStore.
//
// The invariant of tally.RollupStore (an hour with no dirty mark has exact
// rollup rows) needs that no change to the tenant's log commits between
// fn reading the log and clearing its marks: such a change
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
//   - InRollupTx takes the same lock in exclusive mode, in a statement of
//     its own, before fn reads anything. Once granted, every writer of the
//     tenant that began before has committed and none can write until
//     it commits, so the reads that follow (each statement of a READ
//     COMMITTED transaction sees what committed before it began) see one
//     unchanging log, and clearing the marks clears only marks of changes
//     counted. A writer that waits meanwhile marks its hours after the rollup
//     commits, so its mark survives.
//
// The transaction is READ COMMITTED on purpose, whatever the server's
// default: under REPEATABLE READ the snapshot would be the one of the lock
// statement, taken before the lock was granted, and would miss the events
// of the writers it waited for.
//
// The writes of fn are queued in one batch, sent before the next read
// and at the end: one round trip for a day's rows.
func (db *DB) InRollupTx(ctx context.Context, tenantID int64, fn func(tx tally.RollupTx) error) error {
	var fnErr error
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantExclusive, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		t := &rollupTx{tx: tx, tenantID: tenantID, batch: &pgx.Batch{}}
		if fnErr = fn(t); fnErr != nil {
			return fnErr
		}
		return t.flush(ctx)
	})
	if fnErr != nil {
		return fnErr
	}
	return wrap(err, "rollup")
}

// rollupTx implements tally.RollupTx in one transaction that holds the
// tenant's lock exclusively.
type rollupTx struct {
	tx       pgx.Tx
	tenantID int64
	batch    *pgx.Batch // writes not sent yet
}

// flush sends the queued writes.
func (t *rollupTx) flush(ctx context.Context) error {
	if t.batch.Len() == 0 {
		return nil
	}
	b := t.batch
	t.batch = &pgx.Batch{}
	return wrap(t.tx.SendBatch(ctx, b).Close(), "rollup")
}

func (t *rollupTx) AggregateEvents(ctx context.Context, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := aggregate(ctx, t.tx, t.tenantID, from, to, bucket)
	return rows, wrap(err, "rollup")
}

func (t *rollupTx) BucketUsers(ctx context.Context, bounds []time.Time, fn func(bucket int, user []byte) error) error {
	if err := checkBounds(bounds); err != nil || len(bounds) < 2 {
		return err
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	return bucketUsers(ctx, t.tx, t.tenantID, bounds, fn)
}

// rollupTables are the rollup tables of tally.RollupTx.DeleteRollups, each
// with its time column.
var rollupTables = []struct{ table, col string }{
	{"rollup_event_hour", "hour"}, {"rollup_metric_hour", "hour"}, {"rollup_event_day", "day"},
	{"rollup_metric_day", "day"}, {"rollup_day_users", "day"}, {"rollup_hour_users", "hour"},
}

func (t *rollupTx) DeleteRollups(_ context.Context, from, to time.Time) error {
	for _, r := range rollupTables {
		t.batch.Queue(`DELETE FROM `+r.table+` WHERE tenant_id = $1 AND `+r.col+` >= $2 AND `+r.col+` < $3`, t.tenantID, from, to)
	}
	return nil
}

func (t *rollupTx) DirtyHours(ctx context.Context, before time.Time) ([]time.Time, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	rows, err := t.tx.Query(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = $1 AND hour < $2 ORDER BY hour`, t.tenantID, before)
	if err != nil {
		return nil, wrap(err, "rollup")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (time.Time, error) {
		var h time.Time
		err := row.Scan(&h)
		return h.UTC(), err
	})
	if len(out) == 0 {
		out = nil
	}
	return out, wrap(err, "rollup")
}

func (t *rollupTx) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	n, err := purge(ctx, t.tx, t.tenantID, before)
	return n, wrap(err, "rollup")
}

func (t *rollupTx) ClearDirty(_ context.Context, from, to time.Time) error {
	t.batch.Queue(`DELETE FROM rollup_dirty WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`, t.tenantID, from, to)
	return nil
}

// bucketTable is the rollup table (prefix + "_hour" or "_day") of a bucket
// length and its time column.
func bucketTable(bucket time.Duration, prefix string) (table, col string, err error) {
	name, ok := tally.RollupBucket(bucket)
	if !ok {
		return "", "", tally.Internal(fmt.Errorf("postgres: no rollup of %v buckets", bucket))
	}
	return prefix + "_" + name, name, nil
}

func (t *rollupTx) WriteEventRows(_ context.Context, bucket time.Duration, rows []tally.HourRow) error {
	table, col, err := bucketTable(bucket, "rollup_event")
	if err != nil {
		return err
	}
	for _, r := range rows {
		t.batch.Queue(`INSERT INTO `+table+` (tenant_id, `+col+`, event, metric, count, sum_value, sum_rounded, users)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			t.tenantID, r.Start, r.Event, r.Metric, r.Count, r.Sum, r.SumRounded, r.Users)
	}
	return nil
}

func (t *rollupTx) WriteMetricRows(_ context.Context, bucket time.Duration, points []tally.MetricPoint) error {
	table, col, err := bucketTable(bucket, "rollup_metric")
	if err != nil {
		return err
	}
	for _, p := range points {
		t.batch.Queue(`INSERT INTO `+table+` (tenant_id, `+col+`, metric, value) VALUES ($1, $2, $3, $4)`,
			t.tenantID, p.Start, p.Metric, p.Value)
	}
	return nil
}

func (t *rollupTx) WriteHourUsers(_ context.Context, hour time.Time, set []byte) error {
	if set == nil {
		set = []byte{} // an empty set, not NULL
	}
	t.batch.Queue(`INSERT INTO rollup_hour_users (tenant_id, hour, users) VALUES ($1, $2, $3)`, t.tenantID, hour, set)
	return nil
}

func (t *rollupTx) WriteDayUsers(_ context.Context, day time.Time, n int64) error {
	t.batch.Queue(`INSERT INTO rollup_day_users (tenant_id, day, users) VALUES ($1, $2, $3)`, t.tenantID, day, n)
	return nil
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
