package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tallyhq/tally"
)

// query builds a WHERE clause and its arguments.
type query struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// and adds a condition.
func (q *query) and(cond string) { q.conds = append(q.conds, cond) }

// equal adds col = s for a text column. A string that text cannot hold
// (invalid UTF-8, or NUL) matches no stored value, and could not even be
// sent: it selects nothing instead of failing.
func (q *query) equal(col, s string) {
	if !storable(s) {
		q.and(`false`)
		return
	}
	q.and(col + ` = ` + q.arg(s))
}

// where renders the conditions.
func (q *query) where() string {
	if len(q.conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(q.conds, ` AND `)
}

// storable reports whether a PostgreSQL text value can hold s.
func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

const insertEvent = `INSERT INTO events (tenant_id, event_id, event, user_id, source, ts, received_at, value, props, metric)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id`

// markDirty marks the hours $2 of the tenants $1 (pairs, distinct, sorted
// so that concurrent marks lock rows in one order) at time $3.
const markDirty = `INSERT INTO rollup_dirty (tenant_id, hour, marked_at)
	SELECT t, h, $3 FROM unnest($1::bigint[], $2::timestamptz[]) AS d (t, h) ORDER BY t, h
	ON CONFLICT (tenant_id, hour) DO UPDATE SET marked_at = excluded.marked_at, seq = excluded.seq`

// InsertEvents implements tally.EventStore.
//
// One transaction: a pipelined batch (one round trip) takes the shared
// advisory lock of every tenant in the batch, in key order (see InRollupTx),
// and runs one INSERT … ON CONFLICT DO NOTHING RETURNING id per event; then
// one statement marks the inserted events' hours dirty. The events are inserted in (tenant,
// event_id) order, stably (so within a batch the first of two equal ids
// wins): concurrent batches that share ids then wait for each other's
// unique-index entries in one order and cannot deadlock.
func (db *DB) InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error) {
	inserted := make([]bool, len(events))
	if len(events) == 0 {
		return inserted, nil
	}
	order := make([]int, len(events))
	tenants := make([]int64, len(events))
	for i := range events {
		order[i], tenants[i] = i, events[i].TenantID
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(events[a].TenantID, events[b].TenantID), strings.Compare(events[a].EventID, events[b].EventID))
	})
	keys := tenantLockKeys(tenants)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, k := range keys {
			b.Queue(lockTenantShared, int32(lockClassTenant), k)
		}
		for _, i := range order {
			e := &events[i]
			props := string(e.Props)
			if props == "" {
				props = "{}" // as the column default: no props is an empty object, never invalid JSON
			}
			metric := e.CountedMetric() // an increment\'s metric, or the one a consume settled it for
			b.Queue(insertEvent, e.TenantID, e.EventID, e.Name, []byte(e.UserID), e.Source,
				e.Timestamp, e.ReceivedAt, e.Value, props, metric)
		}
		type th struct {
			tenant int64
			hour   time.Time
		}
		dirty := map[th]bool{}
		err := func() error {
			br := tx.SendBatch(ctx, b)
			defer br.Close()
			for range keys {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			for _, i := range order {
				e := &events[i]
				var id int64
				switch err := br.QueryRow().Scan(&id); {
				case errors.Is(err, pgx.ErrNoRows):
					continue // a duplicate: the first stored wins
				case err != nil:
					return err
				}
				e.ID, inserted[i] = id, true
				dirty[th{e.TenantID, tally.HourStart(e.Timestamp)}] = true
			}
			return br.Close()
		}()
		if err != nil || len(dirty) == 0 {
			return err
		}
		ts := make([]int64, 0, len(dirty))
		hs := make([]time.Time, 0, len(dirty))
		for k := range dirty {
			ts, hs = append(ts, k.tenant), append(hs, k.hour)
		}
		_, err = tx.Exec(ctx, markDirty, ts, hs, db.now().UTC())
		return err
	})
	if err != nil {
		return nil, wrap(err, "event")
	}
	return inserted, nil
}

// badLimit rejects a page size below one: such a page holds nothing, and
// the keyset code below assumes at least one row.
func badLimit(field string) error {
	return tally.Invalid("invalid limit", tally.FieldError{Field: field, Message: "must be at least 1"})
}

// filter renders f's conditions (not its cursor) for tenantID.
func filter(tenantID int64, f tally.EventFilter) *query {
	q := &query{}
	q.and(`tenant_id = ` + q.arg(tenantID))
	if !f.From.IsZero() {
		q.and(`ts >= ` + q.arg(f.From))
	}
	if !f.To.IsZero() {
		q.and(`ts <= ` + q.arg(f.To))
	}
	if prefix, ok := strings.CutSuffix(f.Name, "*"); ok {
		switch {
		case prefix == "":
		case !storable(prefix):
			q.and(`false`)
		default:
			// A range on the "C"-collated column, which the
			// (tenant_id, event, ts, id) index serves; never LIKE, whose
			// _ and % the prefix would have to escape.
			q.and(`event >= ` + q.arg(prefix))
			if end, ok := prefixEnd(prefix); ok {
				q.and(`event < ` + q.arg(end))
			}
		}
	} else if f.Name != "" {
		q.equal(`event`, f.Name)
	}
	if f.UserID != "" {
		// user_id <> '' lets the partial index events_tenant_user_ts serve.
		q.and(`user_id = ` + q.arg([]byte(f.UserID)) + ` AND user_id <> ''`)
	}
	if f.Source != "" {
		q.equal(`source`, f.Source)
	}
	if tally.ExcludesOwn(f.Name, f.Source) {
		lo, hi := tally.OwnEventRange()
		q.and(`(event < ` + q.arg(lo) + ` OR event >= ` + q.arg(hi) + `)`)
	}
	return q
}

// prefixEnd returns the smallest string greater than every string with
// the given prefix, in the byte order of the "C" collation (which, for the
// valid UTF-8 that text holds, is code point order); ok is false when no
// such string exists. It is the SQLite backend's prefixEnd, but it steps
// the last code point rather than the last byte, because PostgreSQL text
// cannot hold the invalid UTF-8 that a byte step may give ("¿" is C2 BF).
func prefixEnd(p string) (end string, ok bool) {
	for len(p) > 0 {
		r, size := utf8.DecodeLastRuneInString(p)
		p = p[:len(p)-size]
		switch {
		case r == 0xD7FF: // the next code point is past the surrogates
			return p + string(rune(0xE000)), true
		case r < utf8.MaxRune:
			return p + string(r+1), true
		}
	}
	return "", false
}

const eventCols = `id, event_id, event, user_id, source, ts, received_at, value, props`

// scanEvent reads a row of eventCols into e, reusing e's Props.
func scanEvent(rows pgx.Rows, e *tally.Event) error {
	var user, props pgtype.DriverBytes
	if err := rows.Scan(&e.ID, &e.EventID, &e.Name, &user, &e.Source, &e.Timestamp, &e.ReceivedAt, &e.Value, &props); err != nil {
		return err
	}
	e.UserID = string(user)
	e.Props = append(e.Props[:0], props...)
	return nil
}

// ListEvents implements tally.EventStore.
func (db *DB) ListEvents(ctx context.Context, tenantID int64, f tally.EventFilter) ([]tally.Event, *tally.Cursor, error) {
	if f.Limit < 1 {
		return nil, nil, badLimit("limit")
	}
	q := filter(tenantID, f)
	if f.Cursor != nil {
		q.and(`(ts, id) < (` + q.arg(f.Cursor.At) + `, ` + q.arg(f.Cursor.ID) + `)`)
	}
	sql := `SELECT ` + eventCols + ` FROM events` + q.where() + ` ORDER BY ts DESC, id DESC LIMIT ` + q.arg(f.Limit+1)
	rows, err := db.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, nil, wrap(err, "event")
	}
	defer rows.Close()
	out := make([]tally.Event, 0, min(f.Limit+1, 64))
	for rows.Next() {
		e := tally.Event{TenantID: tenantID}
		if err := scanEvent(rows, &e); err != nil {
			return nil, nil, wrap(err, "event")
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap(err, "event")
	}
	out, next := tally.Page(out, f.Limit, tally.EventKey)
	return out, next, nil
}

// ExportEvents implements tally.EventStore. The truncation probe and the
// rows are read in one REPEATABLE READ READ ONLY transaction: one snapshot,
// whatever commits while the rows stream. The rows are streamed from the
// server as the caller consumes them.
func (db *DB) ExportEvents(ctx context.Context, tenantID int64, f tally.EventFilter, max int,
	start func(tally.ExportInfo) error, row func(*tally.Event) error) error {
	if max < 1 {
		return badLimit("max")
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return wrap(err, "event")
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// The export streams as fast as the client reads: no statement
	// timeout on it (a stalled server is still caught by the connection's
	// read deadline).
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
		return wrap(err, "event")
	}
	q := filter(tenantID, f)
	if f.Cursor != nil {
		q.and(`(ts, id) > (` + q.arg(f.Cursor.At) + `, ` + q.arg(f.Cursor.ID) + `)`)
	}
	where, args := q.where(), q.args
	n := len(args)
	// The keys of rows max and max+1: two of them mean max cuts the
	// export short, after the first.
	probe, err := tx.Query(ctx, `SELECT ts, id FROM events`+where+` ORDER BY ts, id LIMIT 2 OFFSET $`+strconv.Itoa(n+1),
		append(args[:n:n], max-1)...)
	if err != nil {
		return wrap(err, "event")
	}
	keys, err := pgx.CollectRows(probe, func(r pgx.CollectableRow) (tally.Cursor, error) {
		var c tally.Cursor
		err := r.Scan(&c.At, &c.ID)
		return c, err
	})
	if err != nil {
		return wrap(err, "event")
	}
	var info tally.ExportInfo
	if len(keys) == 2 {
		info = tally.ExportInfo{Truncated: true, Next: &keys[0]}
	}
	if err := start(info); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT `+eventCols+` FROM events`+where+` ORDER BY ts, id LIMIT $`+strconv.Itoa(n+1),
		append(args[:n:n], max)...)
	if err != nil {
		return wrap(err, "event")
	}
	defer rows.Close()
	e := tally.Event{TenantID: tenantID}
	for rows.Next() {
		if err := scanEvent(rows, &e); err != nil {
			return wrap(err, "event")
		}
		if err := row(&e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return wrap(err, "event")
	}
	return wrap(tx.Commit(ctx), "event")
}

// DeleteUserEvents implements tally.EventStore. One statement deletes the
// events, marks their hours dirty and drops the user sets of those hours
// and their days, under the tenant's shared advisory lock (see
// InRollupTx); the user's ordinal goes in the same transaction.
func (db *DB) DeleteUserEvents(ctx context.Context, tenantID int64, userID string) (int64, error) {
	named := ``
	if userID != "" {
		named = ` AND user_id <> ''` // so that the partial index events_tenant_user_ts serves
	}
	var n int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantShared, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM identity_links WHERE tenant_id = $1 AND (user_id = $2 OR anonymous_id = $2)`,
			tenantID, []byte(userID)); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `
			WITH gone AS (
				DELETE FROM events WHERE tenant_id = $1 AND user_id = $2`+named+` RETURNING ts
			), hours AS (
				SELECT DISTINCT date_trunc('hour', ts, 'UTC') AS hour FROM gone
			), marked AS (
				INSERT INTO rollup_dirty (tenant_id, hour, marked_at) SELECT $1, hour, $3 FROM hours ORDER BY hour
				ON CONFLICT (tenant_id, hour) DO UPDATE SET marked_at = excluded.marked_at, seq = excluded.seq
			), dropped AS (
				DELETE FROM rollup_hour_users WHERE tenant_id = $1 AND hour IN (SELECT hour FROM hours)
			), dropped_days AS (
				DELETE FROM rollup_day_users WHERE tenant_id = $1 AND day IN (SELECT date_trunc('day', hour, 'UTC') FROM hours)
			)
			SELECT count(*) FROM gone`,
			tenantID, []byte(userID), db.now().UTC()).Scan(&n); err != nil {
			return err
		}
		return forgetOrdinal(ctx, tx, tenantID, userID)
	})
	return n, wrap(err, "event")
}

// PurgeEvents implements tally.EventStore. Rollups of purged hours stay:
// aggregates outlive the raw retention; user sets and dirty marks do not.
// Hours wholly purged are never rolled up again (see
// tally.Tenant.RetentionStart): their dirty marks would stay forever.
func (db *DB) PurgeEvents(ctx context.Context, tenantID int64, before time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantShared, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		var err error
		n, err = purge(ctx, tx, tenantID, before)
		return err
	})
	return n, wrap(err, "event")
}

// purge deletes tenantID's events before the given time, the user sets of
// the hours and days that start before it, the dirty marks of the hours that end
// by it and the stored keys of an outside log's events before it
// (ReserveEventKeys), in tx, which holds the tenant's lock.
func purge(ctx context.Context, tx pgx.Tx, tenantID int64, before time.Time) (int64, error) {
	if err := stampTenant(ctx, tx, tenantID); err != nil {
		return 0, err
	}
	var n int64
	err := tx.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM events WHERE tenant_id = $1 AND ts < $2 RETURNING 1
		), sets AS (
			DELETE FROM rollup_hour_users WHERE tenant_id = $1 AND hour < $2
		), day_sets AS (
			DELETE FROM rollup_day_users WHERE tenant_id = $1 AND day < $2
		), marks AS (
			DELETE FROM rollup_dirty WHERE tenant_id = $1 AND hour + interval '1 hour' <= $2
		), keys AS (
			DELETE FROM event_keys WHERE tenant_id = $1 AND ts < $2
		)
		SELECT count(*) FROM gone`, tenantID, before).Scan(&n)
	return n, err
}

// forgetOrdinal deletes, in tx, the ordinal of a user whose events went,
// and stamps the tenant, so that a rollup snapshot that read those events
// (and may have handed the user a new ordinal) is dropped at its apply
// (see InRollupTx).
func forgetOrdinal(ctx context.Context, tx pgx.Tx, tenantID int64, userID string) error {
	if _, err := tx.Exec(ctx, `DELETE FROM user_ordinals WHERE tenant_id = $1 AND user_id = $2`, tenantID, []byte(userID)); err != nil {
		return err
	}
	return stampTenant(ctx, tx, tenantID)
}

// stampTenant records in tx a change to tenantID's log or rollups that
// leaves no dirty mark (a purge, a rollup written) or that a rollup
// snapshot must not miss (a user deleted with its ordinal), with a new stamp (see
// InRollupTx). A mark takes its stamp from its column's default.
func stampTenant(ctx context.Context, tx pgx.Tx, tenantID int64) error {
	_, err := tx.Exec(ctx, `INSERT INTO rollup_stamps (tenant_id, seq) VALUES ($1, nextval('rollup_stamp_seq'))
		ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq`, tenantID)
	return err
}

// CountEvents implements tally.EventStore.
func (db *DB) CountEvents(ctx context.Context, tenantID int64, from, to time.Time) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE tenant_id = $1 AND ts >= $2 AND ts < $3`,
		tenantID, from, to).Scan(&n)
	return n, wrap(err, "event")
}

// CountAllEvents implements tally.EventStore.
func (db *DB) CountAllEvents(ctx context.Context, from, to time.Time) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE ts >= $1 AND ts < $2`, from, to).Scan(&n)
	return n, wrap(err, "event")
}

// AggregateEvents implements tally.EventStore.
func (db *DB) AggregateEvents(ctx context.Context, tenantID int64, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	return aggregate(ctx, db.pool, tenantID, from, to, bucket)
}

// sumRounded is what sum rules add over a group of events, as
// tally.UsageRules.Apply adds it per event: each value rounded half away
// from zero and clamped to [0, tally.MaxAmount]; NaN adds 0. The total is
// summed as numeric and capped at the largest bigint, so no group of
// events can overflow it.
//
// The rounding is floor(v) + (v - floor(v) >= 0.5), which is exact in
// double precision and equals Go's math.Round for every positive v. Neither
// PostgreSQL round is: round(double precision) rounds half to even, and
// round(v::numeric) first converts v to 15 significant digits, which turns
// 0.49999999999999994 into 0.5 (so 1, not 0) and 1099511627775.4999 into
// 1099511627775.5. NaN is tested first: PostgreSQL orders it above every
// number.
const sumRounded = `LEAST(sum(CASE
		WHEN value = 'NaN' THEN 0
		WHEN value >= 1099511627776 THEN 1099511627776
		WHEN value > 0 THEN floor(value)::bigint + CASE WHEN value - floor(value) >= 0.5 THEN 1 ELSE 0 END
		ELSE 0 END), 9223372036854775807)::bigint`

// sumValue is the sum of the values of a group of events, each clamped to
// ±tally.MaxValue (NaN counts 0). Ingestion rejects larger values, but rows
// written before that rule (or around it) must not make the double sum
// overflow: PostgreSQL raises "value out of range: overflow" on a finite
// sum that leaves the double range, which would fail the tenant's usage,
// KPIs, rollups and the counter rebuild at start.
const sumValue = `sum(CASE
		WHEN value = 'NaN' THEN 0
		WHEN value > 1e15 THEN 1e15
		WHEN value < -1e15 THEN -1e15
		ELSE value END)`

// aggregateSQL groups the events of tenant $1 with $3 <= ts < $4 into
// buckets of $2 (an interval) from the Unix epoch.
const aggregateSQL = `SELECT date_bin($2, ts, timestamptz 'epoch') AS b, event, metric, count(*), ` + sumValue + `, ` + sumRounded + `,
		count(DISTINCT NULLIF(user_id, ''))
	FROM events WHERE tenant_id = $1 AND ts >= $3 AND ts < $4
	GROUP BY b, event, metric ORDER BY b, event, metric`

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func aggregate(ctx context.Context, q querier, tenantID int64, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	if bucket < time.Microsecond {
		return nil, tally.Invalid("invalid bucket", tally.FieldError{Field: "bucket", Message: "must be at least a microsecond"})
	}
	rows, err := q.Query(ctx, aggregateSQL, tenantID, pgtype.Interval{Microseconds: bucket.Microseconds(), Valid: true}, from, to)
	return scanHourRows(rows, err, "event")
}

// scanHourRows reads rows of (start, event, metric, count, sum, rounded
// sum, users), from the raw log or from the rollups.
func scanHourRows(rows pgx.Rows, err error, what string) ([]tally.HourRow, error) {
	if err != nil {
		return nil, wrap(err, what)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.HourRow, error) {
		var r tally.HourRow
		err := row.Scan(&r.Start, &r.Event, &r.Metric, &r.Count, &r.Sum, &r.SumRounded, &r.Users)
		return r, err
	})
	if len(out) == 0 {
		out = nil
	}
	return out, wrap(err, what)
}

// BucketUsers implements tally.EventStore: one query (so one snapshot)
// gives the distinct (bucket, user) pairs, bucket after bucket, read from
// the covering index events_tenant_ts.
func (db *DB) BucketUsers(ctx context.Context, tenantID int64, bounds []time.Time, fn func(bucket int, user string) error) error {
	if err := checkBounds(bounds); err != nil || len(bounds) < 2 {
		return err
	}
	names := map[string]string{} // one string per user id
	return bucketUsers(ctx, db.pool, tenantID, bounds, func(bucket int, user []byte) error {
		name, ok := names[string(user)]
		if !ok {
			name = string(user)
			names[name] = name
		}
		return fn(bucket, name)
	})
}

// bucketUsersSQL lists the distinct (bucket, user) pairs of tenant $1's
// events with a user and $2[0] <= ts < $2[last], by bucket: width_bucket
// numbers the bucket whose lower bound ts passes from 1.
const bucketUsersSQL = `SELECT width_bucket(ts, $2::timestamptz[]) - 1 AS b, user_id FROM events
	WHERE tenant_id = $1 AND ts >= ($2::timestamptz[])[1] AND ts < ($2::timestamptz[])[cardinality($2::timestamptz[])]
	  AND user_id <> ''
	GROUP BY b, user_id ORDER BY b`

// bucketUsers does BucketUsers's work in q (bounds ascend strictly, at
// least two): fn gets each pair once, with the user id valid during the
// call.
func bucketUsers(ctx context.Context, q querier, tenantID int64, bounds []time.Time, fn func(bucket int, user []byte) error) error {
	rows, err := q.Query(ctx, bucketUsersSQL, tenantID, bounds)
	if err != nil {
		return wrap(err, "event")
	}
	defer rows.Close()
	var (
		bucket int32
		user   pgtype.DriverBytes
	)
	for rows.Next() {
		if err := rows.Scan(&bucket, &user); err != nil {
			return wrap(err, "event")
		}
		if err := fn(int(bucket), user); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "event")
}

// checkBounds returns EInvalid unless bounds ascend strictly.
func checkBounds(bounds []time.Time) error {
	for i := 1; i < len(bounds); i++ {
		if !bounds[i-1].Before(bounds[i]) {
			return tally.Invalid("invalid bucket bounds", tally.FieldError{Field: "bounds", Message: "must ascend strictly"})
		}
	}
	return nil
}

// TailEvents implements tally.TailStore.
func (db *DB) TailEvents(ctx context.Context, tenantID int64, f tally.EventFilter, afterID int64, limit int) ([]tally.Event, error) {
	if limit < 1 {
		return nil, badLimit("limit")
	}
	q := filter(tenantID, f)
	q.and(`id > ` + q.arg(afterID))
	rows, err := db.pool.Query(ctx, `SELECT `+eventCols+` FROM events`+q.where()+` ORDER BY id LIMIT `+q.arg(limit), q.args...)
	if err != nil {
		return nil, wrap(err, "event")
	}
	defer rows.Close()
	var out []tally.Event
	for rows.Next() {
		e := tally.Event{TenantID: tenantID}
		if err := scanEvent(rows, &e); err != nil {
			return nil, wrap(err, "event")
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "event")
	}
	return out, nil
}

// LastEventID implements tally.TailStore.
func (db *DB) LastEventID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.pool.QueryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id); err != nil {
		return 0, wrap(err, "event")
	}
	return id, nil
}

// StoredEventIDs implements tally.EventStore on the (tenant_id, event_id)
// index.
func (db *DB) StoredEventIDs(ctx context.Context, tenantID int64, eventIDs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(eventIDs) == 0 {
		return out, nil
	}
	rows, err := db.pool.Query(ctx, `SELECT event_id, metric FROM events WHERE tenant_id = $1 AND event_id = ANY($2)`, tenantID, eventIDs)
	if err != nil {
		return nil, wrap(err, "event")
	}
	defer rows.Close()
	for rows.Next() {
		var id, m string
		if err := rows.Scan(&id, &m); err != nil {
			return nil, wrap(err, "event")
		}
		out[id] = m
	}
	return out, wrap(rows.Err(), "event")
}
