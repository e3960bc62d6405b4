package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/tallyhq/tally"
)

const grantCols = `id, tenant_id, metric, amount, reason, period_start, expires_at, created_by, created_at`

// CreateGrant implements tally.GrantStore.
func (db *DB) CreateGrant(ctx context.Context, g *tally.QuotaGrant) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO quota_grants (tenant_id, metric, amount, reason, period_start, expires_at, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, g.TenantID, g.Metric, g.Amount, g.Reason, micros(g.PeriodStart),
			nullMicros(g.ExpiresAt), g.CreatedBy, micros(g.CreatedAt)).Scan(&g.ID)
	})
	return wrap(err, "grant")
}

func (db *DB) queryGrants(ctx context.Context, q string, args ...any) ([]tally.QuotaGrant, error) {
	st, err := db.hotR.get(ctx, q)
	if err != nil {
		return nil, wrap(err, "grant")
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, wrap(err, "grant")
	}
	defer rows.Close()
	out := []tally.QuotaGrant{}
	for rows.Next() {
		var g tally.QuotaGrant
		var start, created int64
		var expires sql.NullInt64
		if err := rows.Scan(&g.ID, &g.TenantID, &g.Metric, &g.Amount, &g.Reason, &start, &expires, &g.CreatedBy, &created); err != nil {
			return nil, wrap(err, "grant")
		}
		g.PeriodStart, g.ExpiresAt, g.CreatedAt = fromMicros(start), timePtr(expires), fromMicros(created)
		out = append(out, g)
	}
	return out, wrap(rows.Err(), "grant")
}

// Grants implements tally.GrantStore.
func (db *DB) Grants(ctx context.Context, tenantID int64, metric string, limit int) ([]tally.QuotaGrant, error) {
	return db.queryGrants(ctx, `SELECT `+grantCols+` FROM quota_grants WHERE tenant_id = ? AND metric = ? ORDER BY id DESC LIMIT ?`,
		tenantID, metric, limit)
}

// ActiveGrants implements tally.GrantStore.
func (db *DB) ActiveGrants(ctx context.Context, tenantID int64, now time.Time) ([]tally.QuotaGrant, error) {
	return db.queryGrants(ctx, `SELECT `+grantCols+` FROM quota_grants WHERE tenant_id = ? AND (expires_at IS NULL OR expires_at > ?)
		AND period_start > ? ORDER BY id`, tenantID, micros(now), micros(now.AddDate(0, -2, 0)))
}
