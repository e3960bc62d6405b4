package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

const reservationCols = `id, tenant_id, metric, amount, state, committed, coalesce(idem_key, ''), day, resets_at, created_at, expires_at`

func scanReservation(row interface{ Scan(...any) error }) (*tally.QuotaReservation, error) {
	var r tally.QuotaReservation
	var day, resets, created, expires int64
	if err := row.Scan(&r.ID, &r.TenantID, &r.Metric, &r.Amount, &r.State, &r.Committed, &r.IdempotencyKey, &day, &resets, &created, &expires); err != nil {
		return nil, err
	}
	r.Day, r.ResetsAt, r.CreatedAt, r.ExpiresAt = fromMicros(day), fromMicros(resets), fromMicros(created), fromMicros(expires)
	return &r, nil
}

func nullKey(k string) any {
	if k == "" {
		return nil
	}
	return k
}

// CreateReservation implements tally.ReservationStore.
func (db *DB) CreateReservation(ctx context.Context, r *tally.QuotaReservation) (*tally.QuotaReservation, bool, error) {
	var out *tally.QuotaReservation
	created := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO quota_reservations (id, tenant_id, metric, amount, idem_key, day, resets_at, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, metric, idem_key) DO NOTHING`,
			r.ID, r.TenantID, r.Metric, r.Amount, nullKey(r.IdempotencyKey), micros(tally.DayStart(r.Day)),
			micros(r.ResetsAt), micros(r.CreatedAt), micros(r.ExpiresAt))
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		created = n == 1
		q := `SELECT ` + reservationCols + ` FROM quota_reservations WHERE tenant_id = ? AND id = ?`
		args := []any{r.TenantID, r.ID}
		if !created {
			q = `SELECT ` + reservationCols + ` FROM quota_reservations WHERE tenant_id = ? AND metric = ? AND idem_key = ?`
			args = []any{r.TenantID, r.Metric, r.IdempotencyKey}
		}
		out, err = scanReservation(tx.QueryRowContext(ctx, q, args...))
		return err
	})
	if err != nil {
		return nil, false, wrap(err, "reservation")
	}
	return out, created, nil
}

// Reservation implements tally.ReservationStore.
func (db *DB) Reservation(ctx context.Context, tenantID int64, metric, id string) (*tally.QuotaReservation, error) {
	r, err := scanReservation(db.r.QueryRowContext(ctx, `SELECT `+reservationCols+` FROM quota_reservations
		WHERE tenant_id = ? AND metric = ? AND id = ?`, tenantID, metric, id))
	return r, wrap(err, "reservation")
}

// ReservationByKey implements tally.ReservationStore.
func (db *DB) ReservationByKey(ctx context.Context, tenantID int64, metric, key string) (*tally.QuotaReservation, error) {
	r, err := scanReservation(db.r.QueryRowContext(ctx, `SELECT `+reservationCols+` FROM quota_reservations
		WHERE tenant_id = ? AND metric = ? AND idem_key = ?`, tenantID, metric, key))
	return r, wrap(err, "reservation")
}

// ClaimReservation implements tally.ReservationStore with one
// conditional UPDATE on the single writer.
func (db *DB) ClaimReservation(ctx context.Context, tenantID int64, metric, id string, from []string, to string, committed int64, now time.Time) (*tally.QuotaReservation, bool, error) {
	var out *tally.QuotaReservation
	moved := false
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		args := []any{to, committed, tenantID, metric, id, micros(now)}
		for _, s := range from {
			args = append(args, s)
		}
		res, err := tx.ExecContext(ctx, `UPDATE quota_reservations SET state = ?, committed = ?
			WHERE tenant_id = ? AND metric = ? AND id = ? AND (state <> 'open' OR expires_at > ?)
			AND state IN (?`+strings.Repeat(", ?", len(from)-1)+`)`, args...)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		moved = n == 1
		out, err = scanReservation(tx.QueryRowContext(ctx, `SELECT `+reservationCols+` FROM quota_reservations
			WHERE tenant_id = ? AND metric = ? AND id = ?`, tenantID, metric, id))
		return err
	})
	if err != nil {
		return nil, false, wrap(err, "reservation")
	}
	return out, moved, nil
}

// ExpireDueReservations implements tally.ReservationStore.
func (db *DB) ExpireDueReservations(ctx context.Context, now time.Time, limit int) ([]tally.QuotaReservation, error) {
	var out []tally.QuotaReservation
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `UPDATE quota_reservations SET state = 'expired'
			WHERE id IN (SELECT id FROM quota_reservations WHERE state = 'open' AND expires_at <= ? ORDER BY expires_at LIMIT ?)
			RETURNING `+reservationCols, micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanReservation(rows)
			if err != nil {
				return err
			}
			out = append(out, *r)
		}
		return rows.Err()
	})
	return out, wrap(err, "reservation")
}

// HeldReservations implements tally.ReservationStore.
func (db *DB) HeldReservations(ctx context.Context, tenantID int64, day time.Time) (map[string]int64, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT metric, sum(CASE state WHEN 'open' THEN amount ELSE committed END)
		FROM quota_reservations WHERE tenant_id = ? AND day = ? AND state IN ('open', 'committing') GROUP BY metric`,
		tenantID, micros(tally.DayStart(day)))
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
