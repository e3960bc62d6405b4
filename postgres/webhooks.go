package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally"
)

// webhookCols are the columns scanWebhook reads, payload last.
const webhookCols = `id, tenant_id, webhook_id, event_type, metric, threshold, period_start, status, attempts,
	last_status_code, last_error, created_at, next_attempt_at, delivered_at`

func scanWebhook(row pgx.Row, payload bool) (tally.WebhookDelivery, error) {
	var d tally.WebhookDelivery
	dest := []any{&d.ID, &d.TenantID, &d.WebhookID, &d.EventType, &d.Metric, &d.Threshold, &d.PeriodStart, &d.Status,
		&d.Attempts, &d.LastStatusCode, &d.LastError, &d.CreatedAt, &d.NextAttemptAt, &d.DeliveredAt}
	if payload {
		dest = append(dest, &d.Payload)
	}
	err := row.Scan(dest...)
	return d, err
}

// EnqueueWebhook implements tally.WebhookStore.
func (db *DB) EnqueueWebhook(ctx context.Context, d *tally.WebhookDelivery) (bool, error) {
	d.Status, d.Attempts = tally.WebhookPending, 0
	err := db.pool.QueryRow(ctx,
		`INSERT INTO webhook_deliveries (tenant_id, webhook_id, event_type, metric, threshold, period_start, payload,
			created_at, next_attempt_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		 ON CONFLICT (tenant_id, event_type, metric, threshold, period_start) DO NOTHING
		 RETURNING id`,
		d.TenantID, d.WebhookID, d.EventType, d.Metric, d.Threshold, d.PeriodStart, d.Payload,
		d.CreatedAt, d.NextAttemptAt).Scan(&d.ID)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, wrap(err, "webhook delivery")
	}
	return true, nil
}

// ClaimWebhooks implements tally.WebhookStore. The due rows are locked with
// FOR UPDATE SKIP LOCKED, so concurrent claims (of several instances) take
// different rows without waiting on each other.
func (db *DB) ClaimWebhooks(ctx context.Context, now, leaseUntil time.Time, limit int) ([]tally.WebhookDelivery, error) {
	if limit < 1 {
		return nil, badLimit("limit")
	}
	rows, err := db.pool.Query(ctx,
		`UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1
		 WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $2
			ORDER BY next_attempt_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		 RETURNING `+webhookCols+`, payload`,
		leaseUntil, now, limit)
	if err != nil {
		return nil, wrap(err, "webhook delivery")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.WebhookDelivery, error) {
		return scanWebhook(row, true)
	})
	if err != nil {
		return nil, wrap(err, "webhook delivery")
	}
	slices.SortFunc(out, func(a, b tally.WebhookDelivery) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// RecordWebhookAttempt implements tally.WebhookStore.
func (db *DB) RecordWebhookAttempt(ctx context.Context, tenantID, id int64, a tally.WebhookAttempt) error {
	var delivered *time.Time
	next := a.NextAttemptAt
	if a.Status != tally.WebhookPending {
		next = a.At
	}
	if a.Status == tally.WebhookDelivered {
		delivered = &a.At
	}
	tag, err := db.pool.Exec(ctx,
		`UPDATE webhook_deliveries SET status = $1, last_status_code = $2, last_error = $3, next_attempt_at = $4, delivered_at = $5
		 WHERE tenant_id = $6 AND id = $7`,
		string(a.Status), a.StatusCode, a.Error, next, delivered, tenantID, id)
	if err != nil {
		return wrap(err, "webhook delivery")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "webhook delivery not found")
	}
	return nil
}

// ListWebhooks implements tally.WebhookStore.
func (db *DB) ListWebhooks(ctx context.Context, tenantID int64, f tally.WebhookFilter) ([]tally.WebhookDelivery, *tally.Cursor, error) {
	if f.Limit < 1 {
		return nil, nil, badLimit("limit")
	}
	var q query
	q.and(`tenant_id = ` + q.arg(tenantID))
	if f.Cursor != nil {
		q.and(`(created_at, id) < (` + q.arg(f.Cursor.At) + `, ` + q.arg(f.Cursor.ID) + `)`)
	}
	sql := `SELECT ` + webhookCols + ` FROM webhook_deliveries` + q.where() +
		` ORDER BY created_at DESC, id DESC LIMIT ` + q.arg(f.Limit+1)
	rows, err := db.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, nil, wrap(err, "webhook delivery")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.WebhookDelivery, error) {
		return scanWebhook(row, false)
	})
	if err != nil {
		return nil, nil, wrap(err, "webhook delivery")
	}
	if out == nil {
		out = []tally.WebhookDelivery{}
	}
	out, next := tally.Page(out, f.Limit, tally.WebhookKey)
	return out, next, nil
}
