package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/ordinal"
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

// InRollupTx implements tally.RollupStore without holding the single
// writer for the reads. fn runs first over a read snapshot of the tenant's
// log, its writes queued; a short write transaction then applies them,
// keeping the promise of one transaction with change stamps (migration
// 0010). The snapshot tells the last stamp S it saw; every later change
// took a greater one. At the apply:
//
//   - a rollup written or a purge of the tenant after S (its stamp row is
//     past S) may have changed what fn read beyond the dirty marks: the
//     attempt is dropped and fn runs again;
//   - an hour whose mark is past S changed after the snapshot: its mark
//     stays, and nothing fn wrote for it (its hourly rows and user set, the
//     daily rows and user set of its day) is written, so the hour reads
//     from the raw log until the next rollup;
//   - every other hour is as fn saw it, so its rows are exact and its mark
//     is cleared.
//
// After a few dropped attempts, or when fn purges (RollupTx.PurgeEvents),
// fn runs in one write transaction as before.
func (db *DB) InRollupTx(ctx context.Context, tenantID int64, fn func(tx tally.RollupTx) error) error {
	for range snapshotAttempts {
		applied, err := db.rollupSnapshot(ctx, tenantID, fn)
		if applied || (err != nil && !errors.Is(err, errNeedsWriter)) {
			return err
		}
		if errors.Is(err, errNeedsWriter) {
			break
		}
	}
	var fnErr error
	err := db.inJobTx(ctx, func(tx *sql.Tx) error {
		t := &rollupTx{rd: tx, wr: tx, tenantID: tenantID}
		if fnErr = fn(t); fnErr != nil {
			return fnErr
		}
		return stampTenant(ctx, tx, tenantID)
	})
	if fnErr != nil {
		return fnErr
	}
	return wrap(err, "rollup")
}

// snapshotAttempts bounds the snapshot runs of one InRollupTx.
const snapshotAttempts = 3

// errNeedsWriter ends a snapshot run whose fn must write at once.
var errNeedsWriter = errors.New("sqlite: the rollup needs the writer")

// rollupSnapshot runs fn over a snapshot and applies its writes (see
// InRollupTx); applied is false when a change since the snapshot dropped
// them.
func (db *DB) rollupSnapshot(ctx context.Context, tenantID int64, fn func(tx tally.RollupTx) error) (applied bool, err error) {
	rd, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return false, wrap(err, "rollup")
	}
	defer rd.Rollback()
	t := &rollupTx{rd: rd, tenantID: tenantID}
	// The first read starts the snapshot, so S is the stamp it holds.
	if err := rd.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM rollup_stamps WHERE tenant_id = 0`).Scan(&t.seen); err != nil {
		return false, wrap(err, "rollup")
	}
	if err := fn(t); err != nil {
		return false, err
	}
	if err := rd.Rollback(); err != nil {
		return false, wrap(err, "rollup")
	}
	if len(t.queue) == 0 {
		return true, nil // nothing to write
	}
	err = db.inJobTx(ctx, func(tx *sql.Tx) error {
		var last int64
		err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM rollup_stamps WHERE tenant_id = ?`, tenantID).Scan(&last)
		if err != nil || last > t.seen {
			return err
		}
		rows, err := tx.QueryContext(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = ? AND seq > ?`, tenantID, t.seen)
		if err != nil {
			return err
		}
		defer rows.Close()
		t.changed = map[int64]bool{}
		for rows.Next() {
			var h int64
			if err := rows.Scan(&h); err != nil {
				return err
			}
			t.changed[h] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		t.wr = tx
		for _, w := range t.queue {
			if err := w(ctx, tx); err != nil {
				return err
			}
		}
		applied = true
		return stampTenant(ctx, tx, tenantID)
	})
	if err != nil {
		return false, wrap(err, "rollup")
	}
	return applied, nil
}

// rollupTx implements tally.RollupTx: reads in rd, writes in wr, or queued
// until the apply of a snapshot run while wr is nil (see InRollupTx).
type rollupTx struct {
	rd, wr   *sql.Tx
	tenantID int64
	seen     int64          // the snapshot's last stamp
	changed  map[int64]bool // hours (Unix µs) changed after the snapshot
	queue    []func(context.Context, *sql.Tx) error
	ords     ordinal.Tx
}

// write runs w in the write transaction, now or at the apply.
func (t *rollupTx) write(ctx context.Context, w func(context.Context, *sql.Tx) error) error {
	if t.wr == nil {
		t.queue = append(t.queue, w)
		return nil
	}
	return wrap(w(ctx, t.wr), "rollup")
}

// stale tells whether any hour of [start, start+size) changed after the
// snapshot, so that rows of that bucket must not be written.
func (t *rollupTx) stale(start time.Time, size time.Duration) bool {
	for h := micros(start); h < micros(start.Add(size)); h += hourMicros {
		if t.changed[h] {
			return true
		}
	}
	return false
}

func (t *rollupTx) AggregateEvents(ctx context.Context, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	rows, err := aggregate(ctx, t.rd, t.tenantID, from, to, bucket)
	return rows, wrap(err, "rollup")
}

func (t *rollupTx) BucketUsers(ctx context.Context, bounds []time.Time, fn func(bucket int, user []byte) error) error {
	if err := checkBounds(bounds); err != nil || len(bounds) < 2 {
		return err
	}
	return bucketUsers(ctx, t.rd, t.tenantID, bounds, func(bucket int, user []byte, _ func() string) error {
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
	return t.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, r := range rollupTables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+r.table+` WHERE tenant_id = ? AND `+r.col+` >= ? AND `+r.col+` < ?`,
				t.tenantID, micros(from), micros(to)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (t *rollupTx) DirtyHours(ctx context.Context, before time.Time) ([]time.Time, error) {
	rows, err := t.rd.QueryContext(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = ? AND hour < ? ORDER BY hour`, t.tenantID, micros(before))
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
	if t.wr == nil {
		return 0, errNeedsWriter
	}
	n, err := purge(ctx, t.wr, t.tenantID, before)
	return n, wrap(err, "rollup")
}

// ClearDirty clears only the marks the snapshot saw (seq <= seen): a mark
// stamped later names a change the rollup did not read.
func (t *rollupTx) ClearDirty(ctx context.Context, from, to time.Time) error {
	return t.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		q := `DELETE FROM rollup_dirty WHERE tenant_id = ? AND hour >= ? AND hour < ?`
		args := []any{t.tenantID, micros(from), micros(to)}
		if t.rd != t.wr {
			q += ` AND seq <= ?`
			args = append(args, t.seen)
		}
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
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
	return t.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO `+table+` (tenant_id, `+col+`, event, metric, count, sum_value, sum_rounded, users)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, r := range rows {
			if t.stale(r.Start, bucket) {
				continue
			}
			if _, err := ins.ExecContext(ctx, t.tenantID, micros(r.Start), r.Event, r.Metric, r.Count, r.Sum, r.SumRounded, r.Users); err != nil {
				return err
			}
		}
		return nil
	})
}

func (t *rollupTx) WriteMetricRows(ctx context.Context, bucket time.Duration, points []tally.MetricPoint) error {
	table, col, err := bucketTable(bucket, "rollup_metric")
	if err != nil {
		return err
	}
	return t.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, p := range points {
			if t.stale(p.Start, bucket) {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (tenant_id, `+col+`, metric, value) VALUES (?, ?, ?, ?)`,
				t.tenantID, micros(p.Start), p.Metric, p.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

func (t *rollupTx) UserOrdinals(ctx context.Context, users [][]byte) ([]uint32, error) {
	out, err := t.ords.Ordinals(ordinals{ctx, t}, users)
	return out, wrap(err, "rollup")
}

// ordinals is ordinal.Store over a rollup transaction: reads in its
// snapshot, writes queued like the others. A rollup written since the
// snapshot drops the run (see InRollupTx), so the next ordinal it read is
// still the tenant's when its writes apply.
type ordinals struct {
	ctx context.Context
	t   *rollupTx
}

// ordinalChunk bounds the ids of one lookup statement.
const ordinalChunk = 500

func (o ordinals) Lookup(users [][]byte, fn func(i int, ordinal uint32)) error {
	return lookupOrdinals(o.ctx, o.t.rd, o.t.tenantID, users, func(i int, n uint32) error {
		fn(i, n)
		return nil
	})
}

// lookupOrdinals calls fn with (index, ordinal) of the ids of users that
// have one, a statement per ordinalChunk ids. An error from fn is
// returned as is.
func lookupOrdinals[U ~[]byte | ~string](ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, tenantID int64, users []U, fn func(i int, ordinal uint32) error) error {
	for lo := 0; lo < len(users); lo += ordinalChunk {
		chunk := users[lo:min(len(users), lo+ordinalChunk)]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, tenantID)
		at := make(map[string]int, len(chunk))
		for i, u := range chunk {
			args = append(args, string(u)) // TEXT, as events.user_id
			at[string(u)] = lo + i
		}
		rows, err := q.QueryContext(ctx, `SELECT user_id, ordinal FROM user_ordinals WHERE tenant_id = ? AND user_id IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return wrap(err, "rollup")
		}
		err = func() error {
			defer rows.Close()
			for rows.Next() {
				var u string
				var n uint32
				if err := rows.Scan(&u, &n); err != nil {
					return wrap(err, "rollup")
				}
				if err := fn(at[u], n); err != nil {
					return err
				}
			}
			return wrap(rows.Err(), "rollup")
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

func (o ordinals) Next() (uint32, error) {
	var n uint32
	err := o.t.rd.QueryRowContext(o.ctx, `SELECT coalesce(max(next), 0) FROM user_ordinal_next WHERE tenant_id = ?`, o.t.tenantID).Scan(&n)
	return n, err
}

func (o ordinals) Store(users [][]byte, first uint32) error {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = string(u)
	}
	return o.t.write(o.ctx, func(ctx context.Context, tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO user_ordinals (tenant_id, user_id, ordinal) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, u := range ids {
			if _, err := ins.ExecContext(ctx, o.t.tenantID, u, first+uint32(i)); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO user_ordinal_next (tenant_id, next) VALUES (?, ?)
			ON CONFLICT (tenant_id) DO UPDATE SET next = excluded.next`, o.t.tenantID, first+uint32(len(ids)))
		return err
	})
}

func (t *rollupTx) WriteHourUsers(ctx context.Context, hour time.Time, set []byte) error {
	return t.writeUsers(ctx, time.Hour, hour, set)
}

func (t *rollupTx) WriteDayUsers(ctx context.Context, day time.Time, set []byte) error {
	return t.writeUsers(ctx, 24*time.Hour, day, set)
}

// writeUsers writes the user set of the bucket starting at start.
func (t *rollupTx) writeUsers(ctx context.Context, bucket time.Duration, start time.Time, set []byte) error {
	table, col, err := usersTable(bucket)
	if err != nil {
		return err
	}
	if set == nil {
		set = []byte{} // an empty set, not NULL
	}
	return t.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if t.stale(start, bucket) {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO `+table+` (tenant_id, `+col+`, users) VALUES (?, ?, ?)`,
			t.tenantID, micros(start), set)
		return err
	})
}

// usersTable is the user set table of a bucket length and its time column.
func usersTable(bucket time.Duration) (table, col string, err error) {
	name, ok := tally.RollupBucket(bucket)
	if !ok {
		return "", "", tally.Internal(fmt.Errorf("sqlite: no user sets of %v buckets", bucket))
	}
	return "rollup_" + name + "_users", name, nil
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

// RollupUserSets implements tally.RollupStore.
func (db *DB) RollupUserSets(ctx context.Context, tenantID int64, bucket time.Duration, from, to time.Time, fn func(start time.Time, set []byte) error) error {
	table, col, err := usersTable(bucket)
	if err != nil {
		return err
	}
	rows, err := db.r.QueryContext(ctx,
		`SELECT `+col+`, users FROM `+table+` WHERE tenant_id = ? AND `+col+` >= ? AND `+col+` < ? ORDER BY `+col,
		tenantID, micros(from), micros(to))
	if err != nil {
		return wrap(err, "rollup")
	}
	defer rows.Close()
	var (
		start int64
		set   sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&start, &set); err != nil {
			return wrap(err, "rollup")
		}
		if err := fn(fromMicros(start), set); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "rollup")
}

// UserOrdinals implements tally.RollupStore.
func (db *DB) UserOrdinals(ctx context.Context, tenantID int64, users []string, fn func(i int, ordinal uint32) error) error {
	return lookupOrdinals(ctx, db.r, tenantID, users, fn)
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
