package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally"
)

// KeyState is what ReserveEventKeys found for one event's (tenant,
// event_id).
type KeyState int

const (
	// KeyDuplicate: the key is stored and its event is in the log (or
	// another event of the batch took it first); the event is left out.
	KeyDuplicate KeyState = iota
	// KeyNew: the key is new, reserved under a lease, and the event got
	// its id.
	KeyNew
	// KeyRetaken: the key's earlier writer let its lease run out (it died
	// or failed); the event got the id that writer had, and the log may or
	// may not hold it: the caller checks before writing it.
	KeyRetaken
)

// EventKey is the key table's key of an event's (tenant, event_id): the
// first 16 bytes of SHA-256 over the tenant id (8 bytes, big-endian) and
// the event id (migration 0021 computes the same in SQL). A fixed 16
// bytes instead of the text keeps the table and its one unique index
// small; two different (tenant, event_id) share one only by a 128-bit
// collision (odds below 1e-15 at a trillion keys), which no tenant can
// aim at another's key.
func EventKey(tenantID int64, eventID string) [16]byte {
	h := sha256.New()
	var t [8]byte
	binary.BigEndian.PutUint64(t[:], uint64(tenantID))
	h.Write(t[:])
	io.WriteString(h, eventID)
	var sum [sha256.Size]byte
	var k [16]byte
	copy(k[:], h.Sum(sum[:0]))
	return k
}

// The statements of the key table (migrations 0018, 0021): the dedup
// keys of an event log kept outside PostgreSQL (package clickhouse).
const (
	insertBatch = `INSERT INTO event_key_batches (id, lease_until, keys)
		VALUES (nextval('event_key_batches_id_seq'), $1, $2) RETURNING id`
	// The keys go in in key order, their ids (one nextval each, drawn in
	// the order of $4, the events' places in the batch) in batch order.
	reserveKeys = `INSERT INTO event_keys (key, tenant_id, id, ts, batch_id)
		SELECT u.k, u.t, n.id, u.ts, currval('event_key_batches_id_seq')
		FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::int[]) AS u (k, t, ts, o)
		JOIN (SELECT o, nextval('event_keys_id_seq') AS id FROM generate_series(1, cardinality($4::int[])) AS o ORDER BY o) n USING (o)
		ORDER BY u.k
		ON CONFLICT (key) DO NOTHING RETURNING key, id`
	lockedKeys = `SELECT k.key, k.id, b.lease_until FROM event_keys k
		LEFT JOIN event_key_batches b ON b.id = k.batch_id
		WHERE k.key = ANY($1) ORDER BY k.key FOR UPDATE OF k`
	retakeKeys = `UPDATE event_keys SET batch_id = $2 WHERE key = ANY($1)`
)

// errNoneNew rolls back a reservation that found every key stored.
var errNoneNew = errors.New("no new key")

// ReserveEventKeys reserves, in one transaction, the keys of events
// (which a log outside PostgreSQL is about to store) as one batch leased
// until leaseUntil, and says for each event what it found. New and
// retaken events get their ID (from one sequence: ids grow with each
// reservation across tenants) and their hours are marked dirty. Within
// the batch the first event of a key wins. A key still leased by another
// writer's batch (its event in flight) makes the whole call ErrKeyBusy
// with nothing reserved: that writer either stores it or its lease runs
// out, and a retry then knows. Confirm the batch with ConfirmEventKeys
// once the log has it.
//
// When every key is new (the usual case) it costs three round trips:
// BEGIN, one pipelined batch (the tenants' shared locks, the dirty marks
// of the events' hours, the batch row listing every key, the keys'
// INSERT … ON CONFLICT DO NOTHING RETURNING), COMMIT. Keys are inserted
// in key order, after every mark, so concurrent reservations wait for
// each other in one order and cannot deadlock.
func (db *DB) ReserveEventKeys(ctx context.Context, events []tally.Event, leaseUntil time.Time) (states []KeyState, batch int64, err error) {
	states = make([]KeyState, len(events))
	if len(events) == 0 {
		return states, 0, nil
	}
	type keyed struct {
		key [16]byte
		i   int
	}
	all := make([]keyed, len(events))
	for i := range events {
		all[i] = keyed{EventKey(events[i].TenantID, events[i].EventID), i}
	}
	slices.SortStableFunc(all, func(a, b keyed) int { return bytes.Compare(a.key[:], b.key[:]) })
	first := make(map[[16]byte]int, len(events)) // the event of the batch that has the key
	keys := make([][16]byte, 0, len(events))
	var ts []int64
	var at []time.Time
	var distinct []tally.Event
	for _, k := range all {
		if _, ok := first[k.key]; ok {
			continue
		}
		first[k.key] = k.i
		e := &events[k.i]
		keys, ts, at = append(keys, k.key), append(ts, e.TenantID), append(at, e.Timestamp)
		distinct = append(distinct, *e)
	}
	// place[j]: where keys[j]'s event comes among the batch's distinct
	// events, from 1, so that ids follow the batch's order as on the
	// other tiers.
	firsts := make([]int, len(keys))
	for j, k := range keys {
		firsts[j] = first[k]
	}
	sorted := slices.Sorted(slices.Values(firsts))
	place := make([]int32, len(keys))
	for j, i := range firsts {
		n, _ := slices.BinarySearch(sorted, i)
		place[j] = int32(n + 1)
	}
	var busy bool
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		clear(states)
		busy = false
		b := &pgx.Batch{}
		// The hours of duplicates are marked too (their rollup is
		// rewritten unchanged): the marks go before the keys.
		marks := queueEventHours(b, distinct, db.now())
		b.Queue(insertBatch, leaseUntil, keys)
		b.Queue(reserveKeys, keys, ts, at, place)
		var mine int
		err := func() error {
			br := tx.SendBatch(ctx, b)
			defer br.Close()
			for range marks {
				if _, err := br.Exec(); err != nil {
					return err
				}
			}
			if err := br.QueryRow().Scan(&batch); err != nil {
				return err
			}
			rows, err := br.Query()
			if err != nil {
				return err
			}
			for rows.Next() {
				var k [16]byte
				var id int64
				if err := rows.Scan(&k, &id); err != nil {
					rows.Close()
					return err
				}
				i := first[k]
				events[i].ID, states[i] = id, KeyNew
				mine++
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			return br.Close()
		}()
		if err != nil || mine == len(keys) {
			return err
		}
		var taken [][16]byte
		for _, k := range keys {
			if states[first[k]] != KeyNew {
				taken = append(taken, k)
			}
		}
		now := db.now()
		var retaken [][16]byte
		rows, err := tx.Query(ctx, lockedKeys, taken)
		if err != nil {
			return err
		}
		found := 0
		for rows.Next() {
			found++
			var k [16]byte
			var id int64
			var lease *time.Time
			if err := rows.Scan(&k, &id, &lease); err != nil {
				rows.Close()
				return err
			}
			switch {
			case lease == nil: // no batch holds it: stored, a duplicate
			case lease.After(now):
				busy = true
			default:
				i := first[k]
				events[i].ID, states[i] = id, KeyRetaken
				retaken = append(retaken, k)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		// A key that was there for the INSERT but is gone now was dropped
		// meanwhile by a sweep (its event never stored): a retry takes it.
		busy = busy || found < len(taken)
		switch {
		case busy:
			return ErrKeyBusy
		case len(retaken) > 0:
			_, err := tx.Exec(ctx, retakeKeys, retaken, batch)
			return err
		case mine == 0:
			return errNoneNew // nothing to store: no batch, no marks
		}
		return nil
	})
	switch {
	case busy:
		return nil, 0, ErrKeyBusy
	case errors.Is(err, errNoneNew):
		clear(states)
		return states, 0, nil
	case err != nil:
		return nil, 0, wrap(err, "event key")
	}
	return states, batch, nil
}

// ErrKeyBusy is ReserveEventKeys's answer when another writer is storing
// the event of a key (a tally.EUnavailable error).
var ErrKeyBusy = &tally.Error{Code: tally.EUnavailable, Message: "an event with this event_id is being stored; retry later"}

// ConfirmEventKeys records that the log holds the events of a batch (its
// lease ends: one row deleted) and marks their hours dirty again: a
// rollup that read the log between the reservation and the write cleared
// the first marks without seeing the events. One round trip (BEGIN to
// COMMIT pipelined), committed without waiting for the WAL flush
// (synchronous_commit off): should PostgreSQL lose it in a crash, the
// batch's lease runs out and the sweep (package clickhouse) finds the
// events in the log and confirms them, marks included.
func (db *DB) ConfirmEventKeys(ctx context.Context, batch int64, events []tally.Event) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	b.Queue(`DELETE FROM event_key_batches WHERE id = $1`, batch)
	queueEventHours(b, events, db.now())
	b.Queue("COMMIT")
	err := db.pool.SendBatch(ctx, b).Close()
	return wrap(unavailable(err), "event key")
}

// LeasedKey is a key of a batch whose lease ran out.
type LeasedKey struct {
	Batch int64
	Key   [16]byte    // EventKey
	Event tally.Event // TenantID, ID and Timestamp; ID 0 when another batch retook the key
}

// ExpiredEventKeys lists the keys of up to limit batches whose lease ran
// out by now, oldest lease first: what writers that died left
// unconfirmed (keys retaken since by another batch, or stored before the
// batch, have ID 0).
func (db *DB) ExpiredEventKeys(ctx context.Context, limit int) ([]LeasedKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT b.id, u.key, k.tenant_id, k.id, k.ts
		FROM (SELECT * FROM event_key_batches WHERE lease_until <= $1 ORDER BY lease_until LIMIT $2) b
		CROSS JOIN LATERAL unnest(b.keys) AS u (key)
		LEFT JOIN event_keys k ON k.key = u.key AND k.batch_id = b.id`, db.now(), limit)
	if err != nil {
		return nil, wrap(err, "event key")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LeasedKey, error) {
		var k LeasedKey
		var tenant, id *int64
		var ts *time.Time
		err := r.Scan(&k.Batch, &k.Key, &tenant, &id, &ts)
		if err == nil && id != nil { // else not the batch's: the batch alone
			k.Event = tally.Event{TenantID: *tenant, ID: *id, Timestamp: *ts}
		}
		return k, err
	})
	return out, wrap(err, "event key")
}

// SettleExpiredKeys ends expired batches whose keys were looked up in the
// log: the keys of lack (the log does not hold their events) are dropped
// unless retaken meanwhile, the batches deleted (which confirms the rest)
// unless their lease was renewed, and the hours of have marked dirty.
func (db *DB) SettleExpiredKeys(ctx context.Context, batches []int64, have []tally.Event, lack [][16]byte) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if len(lack) > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM event_keys WHERE batch_id = ANY($2) AND key = ANY($1)`, lack, batches); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM event_key_batches WHERE id = ANY($1) AND lease_until <= $2`, batches, db.now()); err != nil {
			return err
		}
		return markEventHours(ctx, tx, have, db.now())
	})
	return wrap(err, "event key")
}

// ForgetUserHours does, after a log outside PostgreSQL deleted a user's
// events of the given hours, what DeleteUserEvents does besides: in one
// transaction under the tenant's shared lock, it deletes the user's
// identity links and ordinal, marks the hours dirty and drops the user sets
// of the hours and their days.
func (db *DB) ForgetUserHours(ctx context.Context, tenantID int64, userID string, hours []time.Time) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantShared, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM identity_links WHERE tenant_id = $1 AND (user_id = $2 OR anonymous_id = $2)`,
			tenantID, []byte(userID)); err != nil {
			return err
		}
		if err := forgetOrdinal(ctx, tx, tenantID, userID); err != nil {
			return err
		}
		if len(hours) == 0 {
			return nil
		}
		tenants := make([]int64, len(hours))
		for i := range tenants {
			tenants[i] = tenantID
		}
		if _, err := tx.Exec(ctx, markDirty, tenants, hours, db.now().UTC()); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rollup_hour_users WHERE tenant_id = $1 AND hour = ANY($2)`, tenantID, hours); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM rollup_day_users WHERE tenant_id = $1
			AND day IN (SELECT date_trunc('day', h, 'UTC') FROM unnest($2::timestamptz[]) AS h)`, tenantID, hours)
		return err
	})
	return wrap(err, "event")
}

// markEventHours marks dirty, in tx, the hours of events (see
// queueEventHours).
func markEventHours(ctx context.Context, tx pgx.Tx, events []tally.Event, now time.Time) error {
	b := &pgx.Batch{}
	queueEventHours(b, events, now)
	return tx.SendBatch(ctx, b).Close()
}

// queueEventHours queues on b the statements that mark the hours of
// events dirty, the shared locks of their tenants first in key order (see
// InRollupTx), and returns how many it queued (none without events).
func queueEventHours(b *pgx.Batch, events []tally.Event, now time.Time) int {
	dirty := map[TenantHourKey]bool{}
	var tenants []int64
	for i := range events {
		k := TenantHourKey{events[i].TenantID, tally.HourStart(events[i].Timestamp)}
		if !dirty[k] {
			dirty[k] = true
			tenants = append(tenants, k.Tenant)
		}
	}
	if len(dirty) == 0 {
		return 0
	}
	locks := tenantLockKeys(tenants)
	for _, k := range locks {
		b.Queue(lockTenantShared, int32(lockClassTenant), k)
	}
	keys := slices.SortedFunc(maps.Keys(dirty), func(a, b TenantHourKey) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), a.Hour.Compare(b.Hour))
	})
	ts := make([]int64, len(keys))
	hs := make([]time.Time, len(keys))
	for i, k := range keys {
		ts[i], hs[i] = k.Tenant, k.Hour
	}
	b.Queue(markDirty, ts, hs, now.UTC())
	return len(locks) + 1
}

// TenantHourKey is one hour of one tenant, comparable.
type TenantHourKey struct {
	Tenant int64
	Hour   time.Time
}

// AdvanceEventKeyIDs moves the key table's id sequence past every id of
// PostgreSQL's own events table, so that events stored in a log outside
// PostgreSQL never share an id with events stored here before (which
// MigrateEvents copies across with their ids).
func (db *DB) AdvanceEventKeyIDs(ctx context.Context) error {
	_, err := db.pool.Exec(ctx, `SELECT setval('event_keys_id_seq', m) FROM (SELECT max(id) AS m FROM events) e
		WHERE m IS NOT NULL AND m > (SELECT last_value FROM event_keys_id_seq)`)
	return wrap(err, "event key")
}

// MigratedKeys records the keys of events copied from PostgreSQL's events
// table to a log outside it, with their ids and as stored (no batch).
// It reports, for each event, whether its key is now the one with its id
// (false: another event of that key was stored there first; leave it
// out).
func (db *DB) MigratedKeys(ctx context.Context, events []tally.Event) ([]bool, error) {
	keys := make([][16]byte, len(events))
	ts := make([]int64, len(events))
	nums := make([]int64, len(events))
	at := make([]time.Time, len(events))
	for i, e := range events {
		keys[i], ts[i], nums[i], at[i] = EventKey(e.TenantID, e.EventID), e.TenantID, e.ID, e.Timestamp
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO event_keys (key, tenant_id, id, ts, batch_id)
		SELECT *, 0 FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::timestamptz[])
		ON CONFLICT (key) DO NOTHING`, keys, ts, nums, at); err != nil {
		return nil, wrap(err, "event key")
	}
	rows, err := db.pool.Query(ctx, `SELECT id FROM event_keys WHERE key = ANY($1)`, keys)
	if err != nil {
		return nil, wrap(err, "event key")
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, wrap(err, "event key")
	}
	mine := map[int64]bool{}
	for _, id := range have {
		mine[id] = true
	}
	out := make([]bool, len(events))
	for i, e := range events {
		out[i] = mine[e.ID]
	}
	return out, nil
}

// LastEventKeyID is the largest id the key table's sequence gave (0 when
// none): see clickhouse.Store.LastEventID.
func (db *DB) LastEventKeyID(ctx context.Context) (int64, error) {
	var id int64
	err := db.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM event_keys_id_seq`).Scan(&id)
	return id, wrap(err, "event key")
}
