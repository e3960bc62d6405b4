package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// LinkIdentities implements tally.LinkStore.
func (db *DB) LinkIdentities(ctx context.Context, tenantID int64, links []tally.IdentityLink, at time.Time) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for _, l := range links {
			if l.AnonymousID == "" || l.UserID == "" || l.AnonymousID == l.UserID {
				continue
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO identity_links (tenant_id, anonymous_id, user_id, linked_at) VALUES (?, ?, ?, ?)
				 ON CONFLICT (tenant_id, anonymous_id) DO NOTHING`,
				tenantID, l.AnonymousID, l.UserID, micros(at)); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap(err, "identity link")
}

// ResolveIdentities implements tally.LinkStore.
func (db *DB) ResolveIdentities(ctx context.Context, tenantID int64, ids []string) (map[string]string, error) {
	out := map[string]string{}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), 500)]
		ids = ids[len(chunk):]
		args := make([]any, 0, len(chunk)+1)
		args = append(args, tenantID)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := db.r.QueryContext(ctx, `SELECT anonymous_id, user_id FROM identity_links WHERE tenant_id = ? AND anonymous_id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, args...)
		if err != nil {
			return nil, wrap(err, "identity link")
		}
		for rows.Next() {
			var a, u string
			if err := rows.Scan(&a, &u); err != nil {
				rows.Close()
				return nil, wrap(err, "identity link")
			}
			out[a] = u
		}
		if err := rows.Close(); err != nil {
			return nil, wrap(err, "identity link")
		}
		if err := rows.Err(); err != nil {
			return nil, wrap(err, "identity link")
		}
	}
	return out, nil
}

var _ tally.LinkStore = (*DB)(nil)
