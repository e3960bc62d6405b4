package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/userset"
)

// DirtyHours implements tally.RollupStore.
func (db *DB) DirtyHours(ctx context.Context, before time.Time) ([]tally.TenantHour, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT tenant_id, hour FROM rollup_dirty WHERE hour < ? ORDER BY tenant_id, hour`, micros(before))
	if err != nil {
		return nil, wrap(err, "rollup")
	}
	defer rows.Close()
	var out []tally.TenantHour
	for rows.Next() {
		var th tally.TenantHour
		var h int64
		if err := rows.Scan(&th.TenantID, &h); err != nil {
			return nil, wrap(err, "rollup")
		}
		th.Hour = fromMicros(h)
		out = append(out, th)
	}
	return out, wrap(rows.Err(), "rollup")
}

// OldestDirty implements tally.RollupStore.
func (db *DB) OldestDirty(ctx context.Context, tenantID int64) (time.Time, error) {
	var h sql.NullInt64
	err := db.r.QueryRowContext(ctx, `SELECT min(hour) FROM rollup_dirty WHERE tenant_id = ?`, tenantID).Scan(&h)
	if err != nil || !h.Valid {
		return time.Time{}, wrap(err, "rollup")
	}
	return fromMicros(h.Int64), nil
}

// InRollupTx implements tally.RollupStore. The transaction is a write
// transaction from its start and SQLite has one writer, so no insert can
// slip between fn's reads and the commit and lose its dirty mark.
func (db *DB) InRollupTx(ctx context.Context, tenantID int64, fn func(tx tally.RollupTx) error) error {
	var fnErr error
	err := db.inJobTx(ctx, func(tx *sql.Tx) error {
		fnErr = fn(&rollupTx{tx: tx, tenantID: tenantID})
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return wrap(err, "rollup")
}

// rollupTx implements tally.RollupTx in one write transaction.
type rollupTx struct {
	tx       *sql.Tx
	tenantID int64
}

func (t *rollupTx) AggregateEvents(ctx context.Context, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	rows, err := aggregate(ctx, t.tx, t.tenantID, from, to, bucket)
	return rows, wrap(err, "rollup")
}

func (t *rollupTx) BucketUsers(ctx context.Context, bounds []time.Time, fn func(bucket int, user []byte) error) error {
	if err := checkBounds(bounds); err != nil || len(bounds) < 2 {
		return err
	}
	return bucketUsers(ctx, t.tx, t.tenantID, bounds, func(bucket int, user []byte, _ func() string) error {
		return fn(bucket, user)
	})
}

// rollupTables are the rollup tables of tally.RollupTx.DeleteRollups, each
// with its time column.
var rollupTables = []struct{ table, col string }{
	{"rollup_event_hour", "hour"}, {"rollup_metric_hour", "hour"}, {"rollup_event_day", "day"},
	{"rollup_metric_day", "day"}, {"rollup_day_users", "day"}, {"rollup_hour_users", "hour"},
}

func (t *rollupTx) DeleteRollups(ctx context.Context, from, to time.Time) error {
	for _, r := range rollupTables {
		if _, err := t.tx.ExecContext(ctx, `DELETE FROM `+r.table+` WHERE tenant_id = ? AND `+r.col+` >= ? AND `+r.col+` < ?`,
			t.tenantID, micros(from), micros(to)); err != nil {
			return wrap(err, "rollup")
		}
	}
	return nil
}

func (t *rollupTx) DirtyHours(ctx context.Context, before time.Time) ([]time.Time, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = ? AND hour < ? ORDER BY hour`, t.tenantID, micros(before))
	if err != nil {
		return nil, wrap(err, "rollup")
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var h int64
		if err := rows.Scan(&h); err != nil {
			return nil, wrap(err, "rollup")
		}
		out = append(out, fromMicros(h))
	}
	return out, wrap(rows.Err(), "rollup")
}

func (t *rollupTx) PurgeEvents(ctx context.Context, before time.Time) (int64, error) {
	n, err := purge(ctx, t.tx, t.tenantID, before)
	return n, wrap(err, "rollup")
}

func (t *rollupTx) ClearDirty(ctx context.Context, from, to time.Time) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM rollup_dirty WHERE tenant_id = ? AND hour >= ? AND hour < ?`,
		t.tenantID, micros(from), micros(to))
	return wrap(err, "rollup")
}

// bucketTable is the rollup table (prefix + "_hour" or "_day") of a bucket
// length and its time column.
func bucketTable(bucket time.Duration, prefix string) (table, col string, err error) {
	name, ok := tally.RollupBucket(bucket)
	if !ok {
		return "", "", tally.Internal(fmt.Errorf("sqlite: no rollup of %v buckets", bucket))
	}
	return prefix + "_" + name, name, nil
}

func (t *rollupTx) WriteEventRows(ctx context.Context, bucket time.Duration, rows []tally.HourRow) error {
	table, col, err := bucketTable(bucket, "rollup_event")
	if err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO `+table+` (tenant_id, `+col+`, event, metric, count, sum_value, sum_rounded, users)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			t.tenantID, micros(r.Start), r.Event, r.Metric, r.Count, r.Sum, r.SumRounded, r.Users); err != nil {
			return wrap(err, "rollup")
		}
	}
	return nil
}

func (t *rollupTx) WriteMetricRows(ctx context.Context, bucket time.Duration, points []tally.MetricPoint) error {
	table, col, err := bucketTable(bucket, "rollup_metric")
	if err != nil {
		return err
	}
	for _, p := range points {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO `+table+` (tenant_id, `+col+`, metric, value) VALUES (?, ?, ?, ?)`,
			t.tenantID, micros(p.Start), p.Metric, p.Value); err != nil {
			return wrap(err, "rollup")
		}
	}
	return nil
}

func (t *rollupTx) WriteHourUsers(ctx context.Context, hour time.Time, set []byte) error {
	if set == nil {
		set = []byte{} // an empty set, not NULL
	}
	_, err := t.tx.ExecContext(ctx, `INSERT INTO rollup_hour_users (tenant_id, hour, users) VALUES (?, ?, ?)`,
		t.tenantID, micros(hour), set)
	return wrap(err, "rollup")
}

func (t *rollupTx) WriteDayUsers(ctx context.Context, day time.Time, n int64) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO rollup_day_users (tenant_id, day, users) VALUES (?, ?, ?)`,
		t.tenantID, micros(day), n)
	return wrap(err, "rollup")
}

func (db *DB) readRows(ctx context.Context, table, col string, tenantID int64, from, to time.Time) ([]tally.HourRow, error) {
	rows, err := db.r.QueryContext(ctx,
		`SELECT `+col+`, event, metric, count, sum_value, sum_rounded, users FROM `+table+`
		 WHERE tenant_id = ? AND `+col+` >= ? AND `+col+` < ? ORDER BY `+col+`, event, metric`,
		tenantID, micros(from), micros(to))
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
	rows, err := db.r.QueryContext(ctx,
		`SELECT hour, users FROM rollup_hour_users WHERE tenant_id = ? AND hour >= ? AND hour < ? ORDER BY hour`,
		tenantID, micros(from), micros(to))
	if err != nil {
		return wrap(err, "rollup")
	}
	defer rows.Close()
	var (
		hour  int64
		set   sql.RawBytes
		users [][]byte
	)
	for rows.Next() {
		if err := rows.Scan(&hour, &set); err != nil {
			return wrap(err, "rollup")
		}
		if users, err = userset.Split(set, users[:0]); err != nil {
			return wrap(fmt.Errorf("sqlite: tenant %d, hour %d: %w", tenantID, hour, err), "rollup")
		}
		if err := fn(fromMicros(hour), users); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "rollup")
}

// RollupMetricHours implements tally.RollupStore.
func (db *DB) RollupMetricHours(ctx context.Context, tenantID int64, from, to time.Time) ([]tally.MetricPoint, error) {
	rows, err := db.r.QueryContext(ctx,
		`SELECT hour, metric, value FROM rollup_metric_hour WHERE tenant_id = ? AND hour >= ? AND hour < ? ORDER BY hour, metric`,
		tenantID, micros(from), micros(to))
	if err != nil {
		return nil, wrap(err, "rollup")
	}
	defer rows.Close()
	var out []tally.MetricPoint
	for rows.Next() {
		var p tally.MetricPoint
		var h int64
		if err := rows.Scan(&h, &p.Metric, &p.Value); err != nil {
			return nil, wrap(err, "rollup")
		}
		p.Start = fromMicros(h)
		out = append(out, p)
	}
	return out, wrap(rows.Err(), "rollup")
}

// RecordRollupRun implements tally.RollupStore.
func (db *DB) RecordRollupRun(ctx context.Context, run tally.RollupRun) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO rollup_runs (kind, started_at, finished_at, days, rows, err) VALUES (?, ?, ?, ?, ?, ?)`,
		run.Kind, micros(run.StartedAt), micros(run.FinishedAt), run.Days, run.Rows, run.Err)
	return wrap(err, "rollup run")
}

// LastRollupRun implements tally.RollupStore.
func (db *DB) LastRollupRun(ctx context.Context) (*tally.RollupRun, error) {
	var r tally.RollupRun
	var s, f int64
	err := db.r.QueryRowContext(ctx,
		`SELECT kind, started_at, finished_at, days, rows, err FROM rollup_runs WHERE err = '' ORDER BY finished_at DESC LIMIT 1`).
		Scan(&r.Kind, &s, &f, &r.Days, &r.Rows, &r.Err)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err, "rollup run")
	}
	r.StartedAt, r.FinishedAt = fromMicros(s), fromMicros(f)
	return &r, nil
}
