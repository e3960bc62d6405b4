package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

const hourMicros = int64(time.Hour / time.Microsecond)

// InsertEvents implements tally.EventStore.
func (db *DB) InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error) {
	inserted := make([]bool, len(events))
	// Exec and LastInsertId, not RETURNING through QueryRow: a row result
	// costs a statement step and a scan per event, about a third of the
	// writer's time.
	insert, err := db.hotW.get(ctx, `INSERT INTO events (tenant_id, event_id, event, user_id, source, ts, received_at, value, props, metric)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, event_id) DO NOTHING`)
	if err != nil {
		return nil, wrap(err, "event")
	}
	markDirty, err := db.hotW.get(ctx, markDirtySQL)
	if err != nil {
		return nil, wrap(err, "event")
	}
	takeStamp, err := db.hotW.get(ctx, nextStampSQL)
	if err != nil {
		return nil, wrap(err, "event")
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		ins := tx.StmtContext(ctx, insert)
		type th struct{ tenant, hour int64 }
		dirty := map[th]bool{}
		for i := range events {
			e := &events[i]
			props := string(e.Props)
			if props == "" {
				props = "{}" // as the column default: no props is an empty object, never invalid JSON
			}
			metric := e.CountedMetric() // an increment\'s metric, or the one a consume settled it for
			res, err := ins.ExecContext(ctx, e.TenantID, e.EventID, e.Name, e.UserID, e.Source,
				micros(e.Timestamp), micros(e.ReceivedAt), e.Value, props, metric)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				continue // a duplicate: the first stored wins
			}
			if e.ID, err = res.LastInsertId(); err != nil {
				return err
			}
			inserted[i] = true
			dirty[th{e.TenantID, micros(e.Timestamp) / hourMicros * hourMicros}] = true
		}
		if len(dirty) == 0 {
			return nil
		}
		var stamp int64
		if err := tx.StmtContext(ctx, takeStamp).QueryRowContext(ctx).Scan(&stamp); err != nil {
			return err
		}
		now := micros(db.now())
		mark := tx.StmtContext(ctx, markDirty)
		for k := range dirty {
			if _, err := mark.ExecContext(ctx, k.tenant, k.hour, now, stamp); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrap(err, "event")
	}
	return inserted, nil
}

const markDirtySQL = `INSERT INTO rollup_dirty (tenant_id, hour, marked_at, seq) VALUES (?, ?, ?, ?)
	ON CONFLICT (tenant_id, hour) DO UPDATE SET marked_at = excluded.marked_at, seq = excluded.seq`

// nextStamp takes the next change stamp in tx (see InRollupTx): every
// write transaction that changes the log takes one, so a stamp tells
// whether a snapshot saw the change.
func nextStamp(ctx context.Context, tx *sql.Tx) (int64, error) {
	var s int64
	err := tx.QueryRowContext(ctx, nextStampSQL).Scan(&s)
	return s, err
}

const nextStampSQL = `INSERT INTO rollup_stamps (tenant_id, seq) VALUES (0, 1)
	ON CONFLICT (tenant_id) DO UPDATE SET seq = rollup_stamps.seq + 1 RETURNING seq`

// stampTenant records in tx a change to tenantID's log or rollups that
// leaves no dirty mark (a purge, a rollup written) or that a rollup
// snapshot must not miss (a user deleted with its ordinal), with a new stamp.
func stampTenant(ctx context.Context, tx *sql.Tx, tenantID int64) error {
	s, err := nextStamp(ctx, tx)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO rollup_stamps (tenant_id, seq) VALUES (?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET seq = excluded.seq`, tenantID, s)
	return err
}

// badLimit rejects a page size below one: such a page holds nothing, and
// the keyset code below assumes at least one row.
func badLimit(field string) error {
	return tally.Invalid("invalid limit", tally.FieldError{Field: field, Message: "must be at least 1"})
}

// filterSQL renders f's conditions (not its cursor) for tenantID.
func filterSQL(tenantID int64, f tally.EventFilter) (string, []any) {
	var b strings.Builder
	b.WriteString(` WHERE tenant_id = ?`)
	args := []any{tenantID}
	if !f.From.IsZero() {
		b.WriteString(` AND ts >= ?`)
		args = append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		b.WriteString(` AND ts <= ?`)
		args = append(args, micros(f.To))
	}
	if prefix, ok := strings.CutSuffix(f.Name, "*"); ok {
		if prefix != "" {
			b.WriteString(` AND event >= ?`)
			args = append(args, prefix)
			if end, ok := prefixEnd(prefix); ok {
				b.WriteString(` AND event < ?`)
				args = append(args, end)
			}
		}
	} else if f.Name != "" {
		b.WriteString(` AND event = ?`)
		args = append(args, f.Name)
	}
	if f.UserID != "" {
		b.WriteString(` AND user_id = ?`)
		args = append(args, f.UserID)
	}
	if f.Source != "" {
		b.WriteString(` AND source = ?`)
		args = append(args, f.Source)
	}
	if tally.ExcludesOwn(f.Name, f.Source) {
		lo, hi := tally.OwnEventRange()
		b.WriteString(` AND (event < ? OR event >= ?)`)
		args = append(args, lo, hi)
	}
	return b.String(), args
}

// prefixEnd returns the smallest string greater than every string with
// the given prefix, comparing bytes as the BINARY collation does (so UTF-8
// names work too); ok is false when no such string exists.
func prefixEnd(p string) (end string, ok bool) {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1]), true
		}
	}
	return "", false
}

const eventCols = `id, event_id, event, user_id, source, ts, received_at, value, props`

func scanEvent(rows *sql.Rows, e *tally.Event) error {
	var ts, rcv int64
	var props string
	if err := rows.Scan(&e.ID, &e.EventID, &e.Name, &e.UserID, &e.Source, &ts, &rcv, &e.Value, &props); err != nil {
		return err
	}
	e.Timestamp, e.ReceivedAt, e.Props = fromMicros(ts), fromMicros(rcv), []byte(props)
	return nil
}

// ListEvents implements tally.EventStore.
func (db *DB) ListEvents(ctx context.Context, tenantID int64, f tally.EventFilter) ([]tally.Event, *tally.Cursor, error) {
	if f.Limit < 1 {
		return nil, nil, badLimit("limit")
	}
	where, args := filterSQL(tenantID, f)
	if f.Cursor != nil {
		where += ` AND (ts, id) < (?, ?)`
		args = append(args, micros(f.Cursor.At), f.Cursor.ID)
	}
	args = append(args, f.Limit+1)
	rows, err := db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events`+where+` ORDER BY ts DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, nil, wrap(err, "event")
	}
	defer rows.Close()
	out := make([]tally.Event, 0, min(f.Limit+1, 64))
	for rows.Next() {
		var e tally.Event
		if err := scanEvent(rows, &e); err != nil {
			return nil, nil, wrap(err, "event")
		}
		e.TenantID = tenantID
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap(err, "event")
	}
	out, next := tally.Page(out, f.Limit, tally.EventKey)
	return out, next, nil
}

// ExportEvents implements tally.EventStore.
func (db *DB) ExportEvents(ctx context.Context, tenantID int64, f tally.EventFilter, max int,
	start func(tally.ExportInfo) error, row func(*tally.Event) error) error {
	if max < 1 {
		return badLimit("max")
	}
	// One read transaction: the truncation probe and the rows see the same
	// snapshot of the WAL.
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap(err, "event")
	}
	defer tx.Rollback()
	where, args := filterSQL(tenantID, f)
	if f.Cursor != nil {
		where += ` AND (ts, id) > (?, ?)`
		args = append(args, micros(f.Cursor.At), f.Cursor.ID)
	}
	var info tally.ExportInfo
	probe, err := tx.QueryContext(ctx, `SELECT ts, id FROM events`+where+` ORDER BY ts, id LIMIT 2 OFFSET ?`, append(args, max-1)...)
	if err != nil {
		return wrap(err, "event")
	}
	var keys []tally.Cursor
	for probe.Next() {
		var ts, id int64
		if err := probe.Scan(&ts, &id); err != nil {
			probe.Close()
			return wrap(err, "event")
		}
		keys = append(keys, tally.Cursor{At: fromMicros(ts), ID: id})
	}
	probe.Close()
	if err := probe.Err(); err != nil {
		return wrap(err, "event")
	}
	if len(keys) == 2 {
		info = tally.ExportInfo{Truncated: true, Next: &keys[0]}
	}
	if err := start(info); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+eventCols+` FROM events`+where+` ORDER BY ts, id LIMIT ?`, append(args, max)...)
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
	return wrap(rows.Err(), "event")
}

// DeleteUserEvents implements tally.EventStore.
func (db *DB) DeleteUserEvents(ctx context.Context, tenantID int64, userID string) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		stamp, err := nextStamp(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO rollup_dirty (tenant_id, hour, marked_at, seq)
			 SELECT DISTINCT tenant_id, ts / ? * ?, ?, ? FROM events WHERE tenant_id = ? AND user_id = ?
			 ON CONFLICT (tenant_id, hour) DO UPDATE SET marked_at = excluded.marked_at, seq = excluded.seq`,
			hourMicros, hourMicros, micros(db.now()), stamp, tenantID, userID); err != nil {
			return err
		}
		for _, b := range []struct {
			table, col string
			size       int64
		}{{"rollup_hour_users", "hour", hourMicros}, {"rollup_day_users", "day", 24 * hourMicros}} {
			if _, err := tx.ExecContext(ctx,
				`DELETE FROM `+b.table+` WHERE tenant_id = ? AND `+b.col+` IN
				 (SELECT DISTINCT ts / ? * ? FROM events WHERE tenant_id = ? AND user_id = ?)`,
				tenantID, b.size, b.size, tenantID, userID); err != nil {
				return err
			}
		}
		// The user's ordinal goes with its events; the stamp drops a rollup
		// snapshot that may have handed the user one (see InRollupTx).
		if _, err := tx.ExecContext(ctx, `DELETE FROM user_ordinals WHERE tenant_id = ? AND user_id = ?`, tenantID, userID); err != nil {
			return err
		}
		if err := stampTenant(ctx, tx, tenantID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM identity_links WHERE tenant_id = ? AND (user_id = ? OR anonymous_id = ?)`,
			tenantID, userID, userID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE tenant_id = ? AND user_id = ?`, tenantID, userID)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, wrap(err, "event")
}

// PurgeEvents implements tally.EventStore. Rollups of purged hours stay:
// aggregates outlive the raw retention; user sets and dirty marks do not.
func (db *DB) PurgeEvents(ctx context.Context, tenantID int64, before time.Time) (int64, error) {
	var n int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		n, err = purge(ctx, tx, tenantID, before)
		return err
	})
	return n, wrap(err, "event")
}

// purge deletes tenantID's events before the given time, the user sets of
// the hours and days that start before it and the dirty marks of the hours that end
// by it, in tx.
func purge(ctx context.Context, tx *sql.Tx, tenantID int64, before time.Time) (int64, error) {
	if err := stampTenant(ctx, tx, tenantID); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM events WHERE tenant_id = ? AND ts < ?`, tenantID, micros(before))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if _, err = tx.ExecContext(ctx, `DELETE FROM rollup_hour_users WHERE tenant_id = ? AND hour < ?`, tenantID, micros(before)); err != nil {
		return 0, err
	}
	if _, err = tx.ExecContext(ctx, `DELETE FROM rollup_day_users WHERE tenant_id = ? AND day < ?`, tenantID, micros(before)); err != nil {
		return 0, err
	}
	// Hours wholly purged are never rolled up again (see
	// tally.Tenant.RetentionStart): their dirty marks would stay forever.
	_, err = tx.ExecContext(ctx, `DELETE FROM rollup_dirty WHERE tenant_id = ? AND hour + ? <= ?`, tenantID, hourMicros, micros(before))
	return n, err
}

// CountEvents implements tally.EventStore.
func (db *DB) CountEvents(ctx context.Context, tenantID int64, from, to time.Time) (int64, error) {
	var n int64
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE tenant_id = ? AND ts >= ? AND ts < ?`,
		tenantID, micros(from), micros(to)).Scan(&n)
	return n, wrap(err, "event")
}

// CountAllEvents implements tally.EventStore.
func (db *DB) CountAllEvents(ctx context.Context, from, to time.Time) (int64, error) {
	var n int64
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE ts >= ? AND ts < ?`, micros(from), micros(to)).Scan(&n)
	return n, wrap(err, "event")
}

// AggregateEvents implements tally.EventStore.
func (db *DB) AggregateEvents(ctx context.Context, tenantID int64, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	return aggregate(ctx, db.r, tenantID, from, to, bucket)
}

// sumRounded is what sum rules add over a group of events, as
// tally.UsageRules.Apply adds it per event: each value rounded and clamped
// to [0, tally.MaxAmount].
// (SQLite's round() goes through decimal text and turns
// 0.49999999999999994 into 1; floor(v) + (v - floor(v) >= 0.5) is exact,
// as math.Round is.)
// The total is summed by total() (a double, exact for integer sums below
// 2^53) and capped at the largest INTEGER, so that no group of events can
// raise sum()'s "integer overflow".
const sumRounded = `CAST(min(total(CASE WHEN value >= 1099511627776 THEN 1099511627776 WHEN value > 0 THEN CAST(floor(value) AS INTEGER) + (value - floor(value) >= 0.5) ELSE 0 END), 9223372036854775807.0) AS INTEGER)`

// sumValue is the sum of the values of a group of events, each clamped to
// ±tally.MaxValue, as the PostgreSQL store sums them: ingestion rejects
// larger values, and rows written before that rule must not sum to an
// infinity that no answer can encode.
const sumValue = `sum(CASE WHEN value > 1e15 THEN 1e15 WHEN value < -1e15 THEN -1e15 ELSE value END)`

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func aggregate(ctx context.Context, q querier, tenantID int64, from, to time.Time, bucket time.Duration) ([]tally.HourRow, error) {
	b := bucket.Microseconds()
	rows, err := q.QueryContext(ctx,
		`SELECT ts / ? * ? AS b, event, metric, count(*), `+sumValue+`, `+sumRounded+`,
		        count(DISTINCT NULLIF(user_id, ''))
		 FROM events WHERE tenant_id = ? AND ts >= ? AND ts < ?
		 GROUP BY b, event, metric ORDER BY b, event, metric`,
		b, b, tenantID, micros(from), micros(to))
	return scanHourRows(rows, err, "event")
}

// scanHourRows reads rows of (start, event, metric, count, sum, rounded
// sum, users), from the raw log or from the rollups, closing them.
func scanHourRows(rows *sql.Rows, err error, what string) ([]tally.HourRow, error) {
	if err != nil {
		return nil, wrap(err, what)
	}
	defer rows.Close()
	var out []tally.HourRow
	for rows.Next() {
		var r tally.HourRow
		var start int64
		if err := rows.Scan(&start, &r.Event, &r.Metric, &r.Count, &r.Sum, &r.SumRounded, &r.Users); err != nil {
			return nil, wrap(err, what)
		}
		r.Start = fromMicros(start)
		out = append(out, r)
	}
	return out, wrap(rows.Err(), what)
}

// BucketUsers implements tally.EventStore.
//
// Handing SQLite's rows to Go one by one costs more than finding them, so
// each query returns one value for a slice of a bucket (at most
// bucketUsersSlice long, which bounds its size): the slice's user ids, with
// repeats, joined by NUL bytes, then \x01 and how many there are. It is read
// from the covering index events_tenant_ts_user (tenant_id, ts, id,
// user_id), with no table lookup and no sort (the plan test checks it),
// and the ids are made distinct here, each converted to a string once. A
// user id containing NUL (ingestion rejects them) makes its slice's list
// ambiguous; that slice is then read row by row, in the same transaction.
func (db *DB) BucketUsers(ctx context.Context, tenantID int64, bounds []time.Time, fn func(bucket int, user string) error) error {
	if err := checkBounds(bounds); err != nil || len(bounds) < 2 {
		return err
	}
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap(err, "event")
	}
	defer tx.Rollback()
	return bucketUsers(ctx, tx, tenantID, bounds, func(bucket int, user []byte, name func() string) error {
		return fn(bucket, name())
	})
}

// bucketUsers does BucketUsers's work in tx (bounds ascend strictly, at
// least two): fn gets each pair once, with the user id as bytes, valid
// during the call, and name, which returns it as a string allocated once
// per user id.
func bucketUsers(ctx context.Context, tx *sql.Tx, tenantID int64, bounds []time.Time,
	fn func(bucket int, user []byte, name func() string) error) error {
	stmt, err := tx.PrepareContext(ctx, bucketUsersSQL)
	if err != nil {
		return wrap(err, "event")
	}
	defer stmt.Close()
	var (
		ids    = map[string]int32{} // user id -> index in names and seen
		names  []string
		seen   []int // per user: 1 + the last bucket it was sent in
		bucket int
		id     int32
	)
	name := func() string { return names[id] }
	send := func(user []byte) error { // sends user's pair of bucket unless it was sent
		var ok bool
		id, ok = ids[string(user)]
		if !ok {
			id = int32(len(names))
			s := string(user)
			ids[s] = id
			names = append(names, s)
			seen = append(seen, 0)
		}
		if seen[id] == bucket+1 {
			return nil
		}
		seen[id] = bucket + 1
		return fn(bucket, user, name)
	}
	slice := bucketUsersSlice.Microseconds()
	for bucket = 0; bucket+1 < len(bounds); bucket++ {
		end := micros(bounds[bucket+1])
		for lo := micros(bounds[bucket]); lo < end; lo += slice {
			hi := min(end, lo+slice)
			list, err := userList(ctx, stmt, tenantID, lo, hi)
			if err != nil {
				return err
			}
			if list == nil {
				continue // no users
			}
			users, n, ok := splitUsers(list)
			if !ok {
				return wrap(errors.New("sqlite: malformed user list"), "event")
			}
			if n != bytes.Count(users, []byte{0})+1 {
				// A user id holds a NUL: read the slice row by row.
				if err := userRows(ctx, tx, tenantID, lo, hi, send); err != nil {
					return err
				}
				continue
			}
			for len(users) > 0 {
				user, rest, _ := bytes.Cut(users, []byte{0})
				if err := send(user); err != nil {
					return err
				}
				users = rest
			}
		}
	}
	return nil
}

// bucketUsersSlice is the longest time range BucketUsers reads in one query.
const bucketUsersSlice = 6 * time.Hour

// bucketUsersSQL lists the user ids of tenant ?1's events with ?2 <= ts < ?3,
// NULL for none; see BucketUsers.
const bucketUsersSQL = `SELECT group_concat(user_id, char(0)) || char(1) || count(*) FROM events
	WHERE tenant_id = ? AND ts >= ? AND ts < ? AND user_id <> ''`

// userList runs bucketUsersSQL.
func userList(ctx context.Context, stmt *sql.Stmt, tenantID, from, to int64) ([]byte, error) {
	rows, err := stmt.QueryContext(ctx, tenantID, from, to)
	if err != nil {
		return nil, wrap(err, "event")
	}
	defer rows.Close()
	var list []byte
	if rows.Next() {
		if err := rows.Scan(&list); err != nil {
			return nil, wrap(err, "event")
		}
	}
	return list, wrap(rows.Err(), "event")
}

// splitUsers splits a list into the NUL-joined user ids and their count.
func splitUsers(list []byte) (users []byte, n int, ok bool) {
	i := bytes.LastIndexByte(list, 1)
	if i < 0 || i == len(list)-1 {
		return nil, 0, false
	}
	for _, c := range list[i+1:] {
		if c < '0' || c > '9' {
			return nil, 0, false
		}
		n = n*10 + int(c-'0')
	}
	return list[:i], n, true
}

// userRows calls send with the user id of each of a tenant's events with
// a non-empty user id and from <= ts < to.
func userRows(ctx context.Context, tx *sql.Tx, tenantID, from, to int64, send func([]byte) error) error {
	rows, err := tx.QueryContext(ctx, `SELECT user_id FROM events WHERE tenant_id = ? AND ts >= ? AND ts < ? AND user_id <> ''`,
		tenantID, from, to)
	if err != nil {
		return wrap(err, "event")
	}
	defer rows.Close()
	var user sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&user); err != nil {
			return wrap(err, "event")
		}
		if err := send(user); err != nil {
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

// tailByID is how many rows of the log (of every tenant) after its cursor
// a tail reads in id order, walking the table itself; further behind, it
// reads the tenant's index.
const tailByID = 10000

// TailEvents implements tally.TailStore. No index orders one tenant's
// events by id, so a read through the tenant's index visits every event
// of the tenant and sorts those after afterID: near the end of the log,
// where the live tail reads, walking the table by id from afterID costs
// only the rows written since (of every tenant), however large the
// tenant's log.
func (db *DB) TailEvents(ctx context.Context, tenantID int64, f tally.EventFilter, afterID int64, limit int) ([]tally.Event, error) {
	if limit < 1 {
		return nil, badLimit("limit")
	}
	last, err := db.LastEventID(ctx)
	if err != nil {
		return nil, err
	}
	from := ` FROM events`
	if last-afterID <= tailByID {
		from = ` FROM events NOT INDEXED` // the rowid range, never an index
	}
	where, args := filterSQL(tenantID, f)
	rows, err := db.r.QueryContext(ctx, `SELECT `+eventCols+from+where+` AND id > ? ORDER BY id LIMIT ?`,
		append(args, afterID, limit)...)
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
	if err := db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM events`).Scan(&id); err != nil {
		return 0, wrap(err, "event")
	}
	return id, nil
}

// StoredEventIDs implements tally.EventStore on the (tenant_id, event_id)
// index.
func (db *DB) StoredEventIDs(ctx context.Context, tenantID int64, eventIDs []string) (map[string]string, error) {
	out := map[string]string{}
	for len(eventIDs) > 0 {
		chunk := eventIDs[:min(len(eventIDs), 500)]
		eventIDs = eventIDs[len(chunk):]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, tenantID)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := db.r.QueryContext(ctx, `SELECT event_id, metric FROM events WHERE tenant_id = ? AND event_id IN (?`+
			strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, wrap(err, "event")
		}
		for rows.Next() {
			var id, m string
			if err := rows.Scan(&id, &m); err != nil {
				rows.Close()
				return nil, wrap(err, "event")
			}
			out[id] = m
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, wrap(err, "event")
		}
	}
	return out, nil
}
