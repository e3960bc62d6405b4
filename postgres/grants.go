package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally"
)

const grantCols = `id, tenant_id, metric, amount, reason, period_start, expires_at, created_by, created_at`

// CreateGrant implements tally.GrantStore.
func (db *DB) CreateGrant(ctx context.Context, g *tally.QuotaGrant) error {
	err := db.pool.QueryRow(ctx, `INSERT INTO quota_grants (tenant_id, metric, amount, reason, period_start, expires_at, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`, g.TenantID, g.Metric, g.Amount, g.Reason, g.PeriodStart,
		g.ExpiresAt, g.CreatedBy, g.CreatedAt).Scan(&g.ID)
	return wrap(err, "grant")
}

func (db *DB) queryGrants(ctx context.Context, q string, args ...any) ([]tally.QuotaGrant, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrap(err, "grant")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.QuotaGrant, error) {
		var g tally.QuotaGrant
		err := row.Scan(&g.ID, &g.TenantID, &g.Metric, &g.Amount, &g.Reason, &g.PeriodStart, &g.ExpiresAt, &g.CreatedBy, &g.CreatedAt)
		g.PeriodStart, g.CreatedAt = g.PeriodStart.UTC(), g.CreatedAt.UTC()
		if g.ExpiresAt != nil {
			t := g.ExpiresAt.UTC()
			g.ExpiresAt = &t
		}
		return g, err
	})
	if out == nil {
		out = []tally.QuotaGrant{}
	}
	return out, wrap(err, "grant")
}

// Grants implements tally.GrantStore.
func (db *DB) Grants(ctx context.Context, tenantID int64, metric string, limit int) ([]tally.QuotaGrant, error) {
	return db.queryGrants(ctx, `SELECT `+grantCols+` FROM quota_grants WHERE tenant_id = $1 AND metric = $2 ORDER BY id DESC LIMIT $3`,
		tenantID, metric, limit)
}

// ActiveGrants implements tally.GrantStore.
func (db *DB) ActiveGrants(ctx context.Context, tenantID int64, now time.Time) ([]tally.QuotaGrant, error) {
	return db.queryGrants(ctx, `SELECT `+grantCols+` FROM quota_grants WHERE tenant_id = $1 AND (expires_at IS NULL OR expires_at > $2)
		AND period_start > $3 ORDER BY id`, tenantID, now, now.AddDate(0, -2, 0))
}
