package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/ordinal"
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
//
// Holding the tenant's lock for the whole of fn would hold every writer
// of the tenant — and the group-commit writer with it — for as long as a
// day takes to aggregate, so fn first runs over a REPEATABLE READ
// snapshot without the lock, its writes kept aside, and a short
// transaction that takes the lock exclusively then applies them, keeping
// the promise above with change stamps (migration 0010; every change
// draws a new one from a sequence):
//
//   - when the tenant's stamp row (a purge, a rollup written) differs
//     from the snapshot's, fn runs again;
//   - an hour whose mark differs from the snapshot's, or that the snapshot
//     saw clean, changed after it: its mark stays, and nothing fn wrote
//     for it (its hourly rows and user set, the daily rows and user set of
//     its day) is written;
//   - every other hour is as fn saw it: its rows are written and its mark
//     cleared.
//
// After a few dropped attempts, or when fn purges (RollupTx.PurgeEvents),
// fn runs under the lock from the start, as described above.
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
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantExclusive, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		t := &rollupTx{tx: tx, tenantID: tenantID, batch: &pgx.Batch{}}
		if fnErr = fn(t); fnErr != nil {
			return fnErr
		}
		if err := t.flush(ctx); err != nil {
			return err
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
var errNeedsWriter = errors.New("postgres: the rollup needs the tenant's lock")

// rollupSnapshot runs fn over a snapshot and applies its writes (see
// InRollupTx); applied is false when a change since the snapshot dropped
// them.
func (db *DB) rollupSnapshot(ctx context.Context, tenantID int64, fn func(tx tally.RollupTx) error) (applied bool, err error) {
	rd, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return false, unavailable(err)
	}
	defer rd.Rollback(ctx)
	// The snapshot sits idle while fn computes, which on the ClickHouse
	// tier means reading a tenant-day from ClickHouse: longer than the
	// statement timeout for a big tenant. This read-only transaction may
	// idle until ctx's deadline (the rollup run's timeout) instead.
	if deadline, ok := ctx.Deadline(); ok {
		ms := strconv.FormatInt(max(time.Until(deadline).Milliseconds(), 1), 10)
		if _, err := rd.Exec(ctx, "SELECT set_config('idle_in_transaction_session_timeout', $1, true)", ms); err != nil {
			return false, wrap(err, "rollup")
		}
	}
	// The first statement took the snapshot; the stamps are read in it.
	stamp, marks, err := readStamps(ctx, rd, tenantID)
	if err != nil {
		return false, wrap(err, "rollup")
	}
	t := &rollupTx{tx: rd, tenantID: tenantID, batch: &pgx.Batch{}, snapshot: true}
	if err := fn(t); err != nil {
		return false, err
	}
	if err := rd.Rollback(ctx); err != nil {
		return false, wrap(err, "rollup")
	}
	if len(t.queue) == 0 {
		return true, nil // nothing to write
	}
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantExclusive, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		now, current, err := readStamps(ctx, tx, tenantID)
		if err != nil || now != stamp {
			return err
		}
		t.changed = map[int64]bool{}
		for h, seq := range current {
			if seen, ok := marks[h]; !ok || seen != seq {
				t.changed[h] = true
			}
		}
		t.snapshot, t.tx = false, tx
		for _, w := range t.queue {
			w(t.batch)
		}
		t.batch.Queue(`INSERT INTO rollup_stamps (tenant_id, seq) VALUES ($1, nextval('rollup_stamp_seq'))
			ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq`, tenantID)
		if err := t.flush(ctx); err != nil {
			return err
		}
		applied = true
		return nil
	})
	if err != nil {
		return false, wrap(err, "rollup")
	}
	return applied, nil
}

// readStamps reads, in tx, the tenant's stamp row (0 when it has none) and
// the stamps of its dirty marks by hour (Unix µs).
func readStamps(ctx context.Context, tx pgx.Tx, tenantID int64) (int64, map[int64]int64, error) {
	var stamp int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM rollup_stamps WHERE tenant_id = $1`, tenantID).Scan(&stamp); err != nil {
		return 0, nil, err
	}
	rows, err := tx.Query(ctx, `SELECT hour, seq FROM rollup_dirty WHERE tenant_id = $1`, tenantID)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	marks := map[int64]int64{}
	for rows.Next() {
		var h time.Time
		var seq int64
		if err := rows.Scan(&h, &seq); err != nil {
			return 0, nil, err
		}
		marks[h.UnixMicro()] = seq
	}
	return stamp, marks, rows.Err()
}

// rollupTx implements tally.RollupTx: in one transaction that holds the
// tenant's lock exclusively, or over a snapshot with its writes kept in
// queue until the apply (see InRollupTx).
type rollupTx struct {
	tx       pgx.Tx
	tenantID int64
	batch    *pgx.Batch // writes not sent yet
	snapshot bool       // reading a snapshot: writes go to queue
	queue    []func(*pgx.Batch)
	changed  map[int64]bool // hours (Unix µs) changed after the snapshot
	ords     ordinal.Tx
}

// write queues w's writes in the batch, or keeps w for the apply.
func (t *rollupTx) write(w func(b *pgx.Batch)) {
	if t.snapshot {
		t.queue = append(t.queue, w)
		return
	}
	w(t.batch)
}

// stale tells whether any hour of [start, start+size) changed after the
// snapshot, so that rows of that bucket must not be written.
func (t *rollupTx) stale(start time.Time, size time.Duration) bool {
	for h := start; h.Before(start.Add(size)); h = h.Add(time.Hour) {
		if t.changed[h.UnixMicro()] {
			return true
		}
	}
	return false
}

// flush sends the queued writes.
func (t *rollupTx) flush(ctx context.Context) error {
	if t.batch.Len() == 0 || t.snapshot {
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
	t.write(func(b *pgx.Batch) {
		for _, r := range rollupTables {
			b.Queue(`DELETE FROM `+r.table+` WHERE tenant_id = $1 AND `+r.col+` >= $2 AND `+r.col+` < $3`, t.tenantID, from, to)
		}
	})
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
	if t.snapshot {
		return 0, errNeedsWriter
	}
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	n, err := purge(ctx, t.tx, t.tenantID, before)
	return n, wrap(err, "rollup")
}

// ClearDirty keeps the marks of the hours changed after the snapshot.
func (t *rollupTx) ClearDirty(_ context.Context, from, to time.Time) error {
	t.write(func(b *pgx.Batch) {
		keep := []time.Time{} // not nil: <> ALL(NULL) is never true
		for h := range t.changed {
			keep = append(keep, time.UnixMicro(h).UTC())
		}
		b.Queue(`DELETE FROM rollup_dirty WHERE tenant_id = $1 AND hour >= $2 AND hour < $3 AND hour <> ALL($4::timestamptz[])`,
			t.tenantID, from, to, keep)
	})
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
	t.write(func(b *pgx.Batch) {
		for _, r := range rows {
			if !t.stale(r.Start, bucket) {
				b.Queue(`INSERT INTO `+table+` (tenant_id, `+col+`, event, metric, count, sum_value, sum_rounded, users)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
					t.tenantID, r.Start, r.Event, r.Metric, r.Count, r.Sum, r.SumRounded, r.Users)
			}
		}
	})
	return nil
}

func (t *rollupTx) WriteMetricRows(_ context.Context, bucket time.Duration, points []tally.MetricPoint) error {
	table, col, err := bucketTable(bucket, "rollup_metric")
	if err != nil {
		return err
	}
	t.write(func(b *pgx.Batch) {
		for _, p := range points {
			if !t.stale(p.Start, bucket) {
				b.Queue(`INSERT INTO `+table+` (tenant_id, `+col+`, metric, value) VALUES ($1, $2, $3, $4)`,
					t.tenantID, p.Start, p.Metric, p.Value)
			}
		}
	})
	return nil
}

func (t *rollupTx) UserOrdinals(ctx context.Context, users [][]byte) ([]uint32, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	out, err := t.ords.Ordinals(ordinals{ctx, t}, users)
	return out, wrap(err, "rollup")
}

// ordinals is ordinal.Store over a rollup transaction: reads in it (or its
// snapshot), writes queued like the others. Rollups of a tenant apply
// one at a time under its exclusive lock, and a rollup applied since the
// snapshot drops the run (see InRollupTx), so the next ordinal read here
// is still the tenant's when the writes apply.
type ordinals struct {
	ctx context.Context
	t   *rollupTx
}

func (o ordinals) Lookup(users [][]byte, fn func(i int, ordinal uint32)) error {
	return lookupOrdinals(o.ctx, o.t.tx, o.t.tenantID, users, func(i int, n uint32) error {
		fn(i, n)
		return nil
	})
}

// lookupOrdinals calls fn with (index, ordinal) of the ids of users that
// have one. An error from fn is returned as is.
func lookupOrdinals(ctx context.Context, q querier, tenantID int64, users [][]byte, fn func(i int, ordinal uint32) error) error {
	rows, err := q.Query(ctx, `SELECT u.i, o.ordinal FROM unnest($2::bytea[]) WITH ORDINALITY AS u (id, i)
		JOIN user_ordinals o ON o.tenant_id = $1 AND o.user_id = u.id`, tenantID, users)
	if err != nil {
		return wrap(err, "rollup")
	}
	defer rows.Close()
	var (
		i int64
		n int32
	)
	for rows.Next() {
		if err := rows.Scan(&i, &n); err != nil {
			return wrap(err, "rollup")
		}
		if err := fn(int(i-1), uint32(n)); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "rollup")
}

func (o ordinals) Next() (uint32, error) {
	var n int32
	err := o.t.tx.QueryRow(o.ctx, `SELECT coalesce(max(next), 0) FROM user_ordinal_next WHERE tenant_id = $1`, o.t.tenantID).Scan(&n)
	return uint32(n), err
}

func (o ordinals) Store(users [][]byte, first uint32) error {
	o.t.write(func(b *pgx.Batch) {
		b.Queue(`INSERT INTO user_ordinals (tenant_id, user_id, ordinal)
			SELECT $1, id, $3 + i - 1 FROM unnest($2::bytea[]) WITH ORDINALITY AS u (id, i)`, o.t.tenantID, users, int32(first))
		b.Queue(`INSERT INTO user_ordinal_next (tenant_id, next) VALUES ($1, $2)
			ON CONFLICT (tenant_id) DO UPDATE SET next = excluded.next`, o.t.tenantID, int32(first)+int32(len(users)))
	})
	return nil
}

func (t *rollupTx) WriteHourUsers(_ context.Context, hour time.Time, set []byte) error {
	return t.writeUsers(time.Hour, hour, set)
}

func (t *rollupTx) WriteDayUsers(_ context.Context, day time.Time, set []byte) error {
	return t.writeUsers(24*time.Hour, day, set)
}

// writeUsers writes the user set of the bucket starting at start.
func (t *rollupTx) writeUsers(bucket time.Duration, start time.Time, set []byte) error {
	table, col, err := usersTable(bucket)
	if err != nil {
		return err
	}
	if set == nil {
		set = []byte{} // an empty set, not NULL
	}
	t.write(func(b *pgx.Batch) {
		if !t.stale(start, bucket) {
			b.Queue(`INSERT INTO `+table+` (tenant_id, `+col+`, users) VALUES ($1, $2, $3)`, t.tenantID, start, set)
		}
	})
	return nil
}

// usersTable is the user set table of a bucket length and its time column.
func usersTable(bucket time.Duration) (table, col string, err error) {
	name, ok := tally.RollupBucket(bucket)
	if !ok {
		return "", "", tally.Internal(fmt.Errorf("postgres: no user sets of %v buckets", bucket))
	}
	return "rollup_" + name + "_users", name, nil
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

// RollupUserSets implements tally.RollupStore.
func (db *DB) RollupUserSets(ctx context.Context, tenantID int64, bucket time.Duration, from, to time.Time, fn func(start time.Time, set []byte) error) error {
	table, col, err := usersTable(bucket)
	if err != nil {
		return err
	}
	rows, err := db.pool.Query(ctx,
		`SELECT `+col+`, users FROM `+table+` WHERE tenant_id = $1 AND `+col+` >= $2 AND `+col+` < $3 ORDER BY `+col,
		tenantID, from, to)
	if err != nil {
		return wrap(err, "rollup")
	}
	defer rows.Close()
	var (
		start time.Time
		set   pgtype.DriverBytes // valid until the next row
	)
	for rows.Next() {
		if err := rows.Scan(&start, &set); err != nil {
			return wrap(err, "rollup")
		}
		if err := fn(start.UTC(), set); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "rollup")
}

// UserOrdinals implements tally.RollupStore.
func (db *DB) UserOrdinals(ctx context.Context, tenantID int64, users []string, fn func(i int, ordinal uint32) error) error {
	ids := make([][]byte, len(users))
	for i, u := range users {
		ids[i] = []byte(u)
	}
	return lookupOrdinals(ctx, db.pool, tenantID, ids, fn)
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
