package postgres

import (
	"cmp"
	"context"
	"slices"
	"strings"
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

// The statements of the key table (migration 0018): the dedup keys of an
// event log kept outside PostgreSQL (package clickhouse).
const (
	reserveKeys = `INSERT INTO event_keys (tenant_id, event_id, ts, batch_id)
		SELECT t, e, ts, $4 FROM unnest($1::bigint[], $2::text[], $3::timestamptz[]) AS k (t, e, ts)
		ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id, id`
	lockedKeys = `SELECT k.tenant_id, k.event_id, k.id, b.lease_until FROM event_keys k
		LEFT JOIN event_key_batches b ON b.id = k.batch_id
		WHERE (k.tenant_id, k.event_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[])) FOR UPDATE OF k`
	retakeKeys = `UPDATE event_keys SET batch_id = $3
		WHERE (tenant_id, event_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))`
	insertBatch = `INSERT INTO event_key_batches (id, lease_until, tenant_ids, event_ids) VALUES ($1, $2, $3, $4)`
)

type tenantKey struct {
	tenant int64
	id     string
}

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
func (db *DB) ReserveEventKeys(ctx context.Context, events []tally.Event, leaseUntil time.Time) (states []KeyState, batch int64, err error) {
	states = make([]KeyState, len(events))
	if len(events) == 0 {
		return states, 0, nil
	}
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(events[a].TenantID, events[b].TenantID), strings.Compare(events[a].EventID, events[b].EventID))
	})
	first := map[tenantKey]int{} // the event of the batch that has the key
	var ts []int64
	var ids []string
	var at []time.Time
	for _, i := range order {
		e := &events[i]
		k := tenantKey{e.TenantID, e.EventID}
		if _, ok := first[k]; ok {
			continue
		}
		first[k] = i
		ts, ids, at = append(ts, e.TenantID), append(ids, e.EventID), append(at, e.Timestamp)
	}
	var busy bool
	err = db.inTx(ctx, func(tx pgx.Tx) error {
		clear(states)
		busy = false
		if err := tx.QueryRow(ctx, `SELECT nextval('event_key_batches_id_seq')`).Scan(&batch); err != nil {
			return err
		}
		got := map[tenantKey]bool{}
		rows, err := tx.Query(ctx, reserveKeys, ts, ids, at, batch)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k tenantKey
			var id int64
			if err := rows.Scan(&k.tenant, &k.id, &id); err != nil {
				rows.Close()
				return err
			}
			i := first[k]
			events[i].ID, states[i] = id, KeyNew
			got[k] = true
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var ct, mine []int64
		var ci, mineIDs []string
		for j := range ts {
			if k := (tenantKey{ts[j], ids[j]}); !got[k] {
				ct, ci = append(ct, k.tenant), append(ci, k.id)
			} else {
				mine, mineIDs = append(mine, k.tenant), append(mineIDs, k.id)
			}
		}
		if len(ct) > 0 {
			now := db.now()
			var rt []int64
			var ri []string
			rows, err := tx.Query(ctx, lockedKeys, ct, ci)
			if err != nil {
				return err
			}
			for rows.Next() {
				var k tenantKey
				var id int64
				var lease *time.Time
				if err := rows.Scan(&k.tenant, &k.id, &id, &lease); err != nil {
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
					rt, ri = append(rt, k.tenant), append(ri, k.id)
				}
			}
			if err := rows.Err(); err != nil {
				return err
			}
			if busy {
				return ErrKeyBusy
			}
			if len(rt) > 0 {
				if _, err := tx.Exec(ctx, retakeKeys, rt, ri, batch); err != nil {
					return err
				}
				mine, mineIDs = append(mine, rt...), append(mineIDs, ri...)
			}
		}
		if len(mine) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, insertBatch, batch, leaseUntil, mine, mineIDs); err != nil {
			return err
		}
		return markEventHours(ctx, tx, events, states, db.now())
	})
	if busy {
		return nil, 0, ErrKeyBusy
	}
	if err != nil {
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
// the first marks without seeing the events.
func (db *DB) ConfirmEventKeys(ctx context.Context, batch int64, events []tally.Event) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM event_key_batches WHERE id = $1`, batch); err != nil {
			return err
		}
		return markEventHours(ctx, tx, events, nil, db.now())
	})
	return wrap(err, "event key")
}

// LeasedKey is a key of a batch whose lease ran out.
type LeasedKey struct {
	Batch int64
	Event tally.Event // TenantID, EventID, ID and Timestamp; ID 0 when another batch retook the key
}

// ExpiredEventKeys lists the keys of up to limit batches whose lease ran
// out by now, oldest lease first: what writers that died left
// unconfirmed (keys retaken since by another batch are not listed).
func (db *DB) ExpiredEventKeys(ctx context.Context, limit int) ([]LeasedKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT b.id, k.tenant_id, k.event_id, k.id, k.ts
		FROM (SELECT * FROM event_key_batches WHERE lease_until <= $1 ORDER BY lease_until LIMIT $2) b
		CROSS JOIN LATERAL unnest(b.tenant_ids, b.event_ids) AS u (t, e)
		LEFT JOIN event_keys k ON k.tenant_id = u.t AND k.event_id = u.e AND k.batch_id = b.id`, db.now(), limit)
	if err != nil {
		return nil, wrap(err, "event key")
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LeasedKey, error) {
		var k LeasedKey
		var tenant, id *int64
		var eventID *string
		var ts *time.Time
		err := r.Scan(&k.Batch, &tenant, &eventID, &id, &ts)
		if err == nil && id != nil { // else the key was retaken: the batch alone
			k.Event = tally.Event{TenantID: *tenant, EventID: *eventID, ID: *id, Timestamp: *ts}
		}
		return k, err
	})
	return out, wrap(err, "event key")
}

// SettleExpiredKeys ends expired batches whose keys were looked up in the
// log: the keys of lack (the log does not hold their events) are dropped
// unless retaken meanwhile, the batches deleted (which confirms the rest)
// unless their lease was renewed, and the hours of have marked dirty.
func (db *DB) SettleExpiredKeys(ctx context.Context, batches []int64, have, lack []tally.Event) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if len(lack) > 0 {
			ts := make([]int64, len(lack))
			ids := make([]string, len(lack))
			for i := range lack {
				ts[i], ids[i] = lack[i].TenantID, lack[i].EventID
			}
			if _, err := tx.Exec(ctx, `DELETE FROM event_keys WHERE batch_id = ANY($3)
				AND (tenant_id, event_id) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))`, ts, ids, batches); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM event_key_batches WHERE id = ANY($1) AND lease_until <= $2`, batches, db.now()); err != nil {
			return err
		}
		return markEventHours(ctx, tx, have, nil, db.now())
	})
	return wrap(err, "event key")
}

// ForgetUserHours does, after a log outside PostgreSQL deleted a user's
// events of the given hours, what DeleteUserEvents does besides: in one
// transaction under the tenant's shared lock, it deletes the user's
// identity links, marks the hours dirty and drops their user sets.
func (db *DB) ForgetUserHours(ctx context.Context, tenantID int64, userID string, hours []time.Time) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockTenantShared, int32(lockClassTenant), tenantLockKey(tenantID)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM identity_links WHERE tenant_id = $1 AND (user_id = $2 OR anonymous_id = $2)`,
			tenantID, []byte(userID)); err != nil {
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
		_, err := tx.Exec(ctx, `DELETE FROM rollup_hour_users WHERE tenant_id = $1 AND hour = ANY($2)`, tenantID, hours)
		return err
	})
	return wrap(err, "event")
}

// markEventHours marks dirty, in tx, the hours of events (of those whose
// state is KeyNew or KeyRetaken when states is not nil), taking the
// shared locks of their tenants first in key order (see InRollupTx).
func markEventHours(ctx context.Context, tx pgx.Tx, events []tally.Event, states []KeyState, now time.Time) error {
	dirty := map[TenantHourKey]bool{}
	var tenants []int64
	for i := range events {
		if states != nil && states[i] == KeyDuplicate {
			continue
		}
		k := TenantHourKey{events[i].TenantID, tally.HourStart(events[i].Timestamp)}
		if !dirty[k] {
			dirty[k] = true
			tenants = append(tenants, k.Tenant)
		}
	}
	if len(dirty) == 0 {
		return nil
	}
	for _, k := range tenantLockKeys(tenants) {
		if _, err := tx.Exec(ctx, lockTenantShared, int32(lockClassTenant), k); err != nil {
			return err
		}
	}
	keys := make([]TenantHourKey, 0, len(dirty))
	for k := range dirty {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b TenantHourKey) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), a.Hour.Compare(b.Hour))
	})
	ts := make([]int64, len(keys))
	hs := make([]time.Time, len(keys))
	for i, k := range keys {
		ts[i], hs[i] = k.Tenant, k.Hour
	}
	_, err := tx.Exec(ctx, markDirty, ts, hs, now.UTC())
	return err
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
	ts := make([]int64, len(events))
	ids := make([]string, len(events))
	nums := make([]int64, len(events))
	at := make([]time.Time, len(events))
	for i, e := range events {
		ts[i], ids[i], nums[i], at[i] = e.TenantID, e.EventID, e.ID, e.Timestamp
	}
	if _, err := db.pool.Exec(ctx, `INSERT INTO event_keys (tenant_id, event_id, id, ts, batch_id)
		SELECT * , 0 FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::timestamptz[])
		ON CONFLICT (tenant_id, event_id) DO NOTHING`, ts, ids, nums, at); err != nil {
		return nil, wrap(err, "event key")
	}
	rows, err := db.pool.Query(ctx, `SELECT k.id FROM event_keys k
		JOIN unnest($1::bigint[], $2::text[]) AS u (t, e) ON k.tenant_id = u.t AND k.event_id = u.e`, ts, ids)
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
