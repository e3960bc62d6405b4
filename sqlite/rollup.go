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

// RollupDay implements tally.RollupStore. Reading the log and writing the
// rollup happen in one write transaction, so no insert can slip between
// them and lose its dirty mark.
func (db *DB) RollupDay(ctx context.Context, tenantID int64, day time.Time, rules tally.UsageRules) (int, error) {
	from := tally.DayStart(day)
	to := from.Add(24 * time.Hour)
	n := 0
	err := db.inTx(ctx, func(tx *sql.Tx) error {
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
		if err := bucketUsers(ctx, tx, tenantID, hourStarts, func(h int, user []byte, _ func() string) error {
			sets[h] = userset.Append(sets[h], user)
			return nil
		}); err != nil {
			return err
		}
		var users int64
		if err := tx.QueryRowContext(ctx,
			`SELECT count(DISTINCT user_id) FROM events WHERE tenant_id = ? AND ts >= ? AND ts < ? AND user_id <> ''`,
			tenantID, micros(from), micros(to)).Scan(&users); err != nil {
			return err
		}
		f, t := micros(from), micros(to)
		for _, q := range []string{
			`DELETE FROM rollup_event_hour WHERE tenant_id = ? AND hour >= ? AND hour < ?`,
			`DELETE FROM rollup_metric_hour WHERE tenant_id = ? AND hour >= ? AND hour < ?`,
			`DELETE FROM rollup_event_day WHERE tenant_id = ? AND day >= ? AND day < ?`,
			`DELETE FROM rollup_metric_day WHERE tenant_id = ? AND day >= ? AND day < ?`,
			`DELETE FROM rollup_day_users WHERE tenant_id = ? AND day >= ? AND day < ?`,
			`DELETE FROM rollup_hour_users WHERE tenant_id = ? AND hour >= ? AND hour < ?`,
			`DELETE FROM rollup_dirty WHERE tenant_id = ? AND hour >= ? AND hour < ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, tenantID, f, t); err != nil {
				return err
			}
		}
		for _, set := range []struct {
			table string
			rows  []tally.HourRow
		}{{"rollup_event_hour (tenant_id, hour,", hours}, {"rollup_event_day (tenant_id, day,", days}} {
			for _, r := range set.rows {
				if _, err := tx.ExecContext(ctx, `INSERT INTO `+set.table+` event, metric, count, sum_value, sum_rounded, users)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
					tenantID, micros(r.Start), r.Event, r.Metric, r.Count, r.Sum, r.SumRounded, r.Users); err != nil {
					return err
				}
				n++
			}
		}
		for _, set := range []struct {
			table  string
			points []tally.MetricPoint
		}{{"rollup_metric_hour (tenant_id, hour,", rules.BucketMetrics(hours)}, {"rollup_metric_day (tenant_id, day,", rules.BucketMetrics(days)}} {
			for _, p := range set.points {
				if _, err := tx.ExecContext(ctx, `INSERT INTO `+set.table+` metric, value) VALUES (?, ?, ?, ?)`,
					tenantID, micros(p.Start), p.Metric, p.Value); err != nil {
					return err
				}
				n++
			}
		}
		for h, set := range sets {
			if set == nil {
				set = []byte{} // an empty set, not NULL
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_hour_users (tenant_id, hour, users) VALUES (?, ?, ?)`,
				tenantID, micros(hourStarts[h]), set); err != nil {
				return err
			}
			n++
		}
		if users > 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO rollup_day_users (tenant_id, day, users) VALUES (?, ?, ?)`, tenantID, f, users); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, wrap(err, "rollup")
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
