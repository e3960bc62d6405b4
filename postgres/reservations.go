package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally"
)

const reservationCols = `id, tenant_id, metric, amount, state, committed, coalesce(idem_key, ''), day::timestamp AT TIME ZONE 'UTC', resets_at, created_at, expires_at`

func scanReservation(row pgx.Row) (*tally.QuotaReservation, error) {
	var r tally.QuotaReservation
	if err := row.Scan(&r.ID, &r.TenantID, &r.Metric, &r.Amount, &r.State, &r.Committed, &r.IdempotencyKey, &r.Day, &r.ResetsAt, &r.CreatedAt, &r.ExpiresAt); err != nil {
		return nil, err
	}
	r.Day, r.ResetsAt, r.CreatedAt, r.ExpiresAt = r.Day.UTC(), r.ResetsAt.UTC(), r.CreatedAt.UTC(), r.ExpiresAt.UTC()
	return &r, nil
}

func nullKey(k string) any {
	if k == "" {
		return nil
	}
	return k
}

// CreateReservation implements tally.ReservationStore: the unique index
// on (tenant, metric, idempotency key) makes one of concurrent creations
// with the same key win; the others read the winner.
func (db *DB) CreateReservation(ctx context.Context, r *tally.QuotaReservation) (*tally.QuotaReservation, bool, error) {
	tag, err := db.pool.Exec(ctx, `INSERT INTO quota_reservations (id, tenant_id, metric, amount, idem_key, day, resets_at, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6::date, $7, $8, $9) ON CONFLICT (tenant_id, metric, idem_key) DO NOTHING`,
		r.ID, r.TenantID, r.Metric, r.Amount, nullKey(r.IdempotencyKey), dayOf(r.Day), r.ResetsAt, r.CreatedAt, r.ExpiresAt)
	if err != nil {
		return nil, false, wrap(err, "reservation")
	}
	if tag.RowsAffected() == 1 {
		out, err := db.Reservation(ctx, r.TenantID, r.Metric, r.ID)
		return out, true, err
	}
	out, err := db.ReservationByKey(ctx, r.TenantID, r.Metric, r.IdempotencyKey)
	return out, false, err
}

// ReservationByKey implements tally.ReservationStore.
func (db *DB) ReservationByKey(ctx context.Context, tenantID int64, metric, key string) (*tally.QuotaReservation, error) {
	r, err := scanReservation(db.pool.QueryRow(ctx, `SELECT `+reservationCols+` FROM quota_reservations
		WHERE tenant_id = $1 AND metric = $2 AND idem_key = $3`, tenantID, metric, key))
	return r, wrap(err, "reservation")
}

// Reservation implements tally.ReservationStore.
func (db *DB) Reservation(ctx context.Context, tenantID int64, metric, id string) (*tally.QuotaReservation, error) {
	r, err := scanReservation(db.pool.QueryRow(ctx, `SELECT `+reservationCols+` FROM quota_reservations
		WHERE tenant_id = $1 AND metric = $2 AND id = $3`, tenantID, metric, id))
	return r, wrap(err, "reservation")
}

// ClaimReservation implements tally.ReservationStore with one
// conditional UPDATE: the row lock makes one of concurrent claims from
// any instance see the state it expects.
func (db *DB) ClaimReservation(ctx context.Context, tenantID int64, metric, id string, from []string, to string, committed int64, now time.Time) (*tally.QuotaReservation, bool, error) {
	r, err := scanReservation(db.pool.QueryRow(ctx, `UPDATE quota_reservations SET state = $1, committed = $2
		WHERE tenant_id = $3 AND metric = $4 AND id = $5 AND (state <> 'open' OR expires_at > $6) AND state = ANY($7)
		RETURNING `+reservationCols, to, committed, tenantID, metric, id, now, from))
	if err == nil {
		return r, true, nil
	}
	if err != pgx.ErrNoRows {
		return nil, false, wrap(err, "reservation")
	}
	r, err = db.Reservation(ctx, tenantID, metric, id)
	return r, false, err
}

// ExpireDueReservations implements tally.ReservationStore; SKIP LOCKED
// lets instances sweeping at once take different rows.
func (db *DB) ExpireDueReservations(ctx context.Context, now time.Time, limit int) ([]tally.QuotaReservation, error) {
	rows, err := db.pool.Query(ctx, `UPDATE quota_reservations SET state = 'expired'
		WHERE id IN (SELECT id FROM quota_reservations WHERE state = 'open' AND expires_at <= $1
			ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		AND state = 'open'
		RETURNING `+reservationCols, now, limit)
	if err != nil {
		return nil, wrap(err, "reservation")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.QuotaReservation, error) {
		r, err := scanReservation(row)
		if err != nil {
			return tally.QuotaReservation{}, err
		}
		return *r, nil
	})
	return out, wrap(err, "reservation")
}

// HeldReservations implements tally.ReservationStore.
func (db *DB) HeldReservations(ctx context.Context, tenantID int64, day time.Time) (map[string]int64, error) {
	rows, err := db.pool.Query(ctx, `SELECT metric, sum(CASE state WHEN 'open' THEN amount ELSE committed END)::bigint
		FROM quota_reservations WHERE tenant_id = $1 AND day = $2::date AND state IN ('open', 'committing') GROUP BY metric`,
		tenantID, dayOf(day))
	if err != nil {
		return nil, wrap(err, "reservation")
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var m string
		var n int64
		if err := rows.Scan(&m, &n); err != nil {
			return nil, wrap(err, "reservation")
		}
		out[m] = n
	}
	return out, wrap(rows.Err(), "reservation")
}
