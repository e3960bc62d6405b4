package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"slices"
	"time"

	"github.com/tallyhq/tally"
)

// webhookCols are the columns scanWebhook reads, payload last.
const webhookCols = `id, tenant_id, webhook_id, event_type, metric, threshold, period_start, status, attempts,
	last_status_code, last_error, created_at, next_attempt_at, delivered_at`

type scanner interface{ Scan(dest ...any) error }

func scanWebhook(row scanner, payload bool) (tally.WebhookDelivery, error) {
	var d tally.WebhookDelivery
	var period, created, next int64
	var delivered sql.NullInt64
	dest := []any{&d.ID, &d.TenantID, &d.WebhookID, &d.EventType, &d.Metric, &d.Threshold, &period, &d.Status,
		&d.Attempts, &d.LastStatusCode, &d.LastError, &created, &next, &delivered}
	if payload {
		dest = append(dest, &d.Payload)
	}
	if err := row.Scan(dest...); err != nil {
		return d, err
	}
	d.PeriodStart, d.CreatedAt, d.NextAttemptAt = fromMicros(period), fromMicros(created), fromMicros(next)
	d.DeliveredAt = timePtr(delivered)
	return d, nil
}

// EnqueueWebhook implements tally.WebhookStore.
func (db *DB) EnqueueWebhook(ctx context.Context, d *tally.WebhookDelivery) (bool, error) {
	d.Status, d.Attempts = tally.WebhookPending, 0
	err := db.w.QueryRowContext(ctx,
		`INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_type, metric, threshold, period_start, payload,
			created_at, next_attempt_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (tenant_id, event_type, metric, threshold, period_start) DO NOTHING
		 RETURNING id`,
		d.TenantID, d.WebhookID, d.EventType, d.Metric, d.Threshold, micros(d.PeriodStart), d.Payload,
		micros(d.CreatedAt), micros(d.NextAttemptAt)).Scan(&d.ID)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, wrap(err, "webhook delivery")
	}
	return true, nil
}

// ClaimWebhooks implements tally.WebhookStore: one UPDATE … RETURNING on
// the single writer connection, so two claims never overlap.
func (db *DB) ClaimWebhooks(ctx context.Context, now, leaseUntil time.Time, limit int) ([]tally.WebhookDelivery, error) {
	if limit < 1 {
		return nil, badLimit("limit")
	}
	var out []tally.WebhookDelivery
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			`UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?
			 WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?
				ORDER BY next_attempt_at, id LIMIT ?)
			 RETURNING `+webhookCols+`, payload`,
			micros(leaseUntil), micros(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			d, err := scanWebhook(rows, true)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, wrap(err, "webhook delivery")
	}
	slices.SortFunc(out, func(a, b tally.WebhookDelivery) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// RecordWebhookAttempt implements tally.WebhookStore.
func (db *DB) RecordWebhookAttempt(ctx context.Context, tenantID, id int64, a tally.WebhookAttempt) error {
	var delivered any
	next := a.NextAttemptAt
	if a.Status != tally.WebhookPending {
		next = a.At
	}
	if a.Status == tally.WebhookDelivered {
		delivered = micros(a.At)
	}
	res, err := db.w.ExecContext(ctx,
		`UPDATE webhook_deliveries SET status = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?, delivered_at = ?
		 WHERE tenant_id = ? AND id = ?`,
		a.Status, a.StatusCode, a.Error, micros(next), delivered, tenantID, id)
	if err != nil {
		return wrap(err, "webhook delivery")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "webhook delivery not found")
	}
	return nil
}

// ListWebhooks implements tally.WebhookStore.
func (db *DB) ListWebhooks(ctx context.Context, tenantID int64, f tally.WebhookFilter) ([]tally.WebhookDelivery, *tally.Cursor, error) {
	if f.Limit < 1 {
		return nil, nil, badLimit("limit")
	}
	q := `SELECT ` + webhookCols + ` FROM webhook_deliveries WHERE tenant_id = ?`
	args := []any{tenantID}
	if f.Cursor != nil {
		q += ` AND (created_at, id) < (?, ?)`
		args = append(args, micros(f.Cursor.At), f.Cursor.ID)
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit+1)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, wrap(err, "webhook delivery")
	}
	defer rows.Close()
	out := []tally.WebhookDelivery{}
	for rows.Next() {
		d, err := scanWebhook(rows, false)
		if err != nil {
			return nil, nil, wrap(err, "webhook delivery")
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap(err, "webhook delivery")
	}
	out, next := tally.Page(out, f.Limit, tally.WebhookKey)
	return out, next, nil
}
