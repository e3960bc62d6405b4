package postgres

import (
	"context"
	"time"

	"github.com/tallyhq/tally"
)

// LinkIdentities implements tally.LinkStore.
func (db *DB) LinkIdentities(ctx context.Context, tenantID int64, links []tally.IdentityLink, at time.Time) error {
	var anon, user [][]byte
	for _, l := range links {
		if l.AnonymousID != "" && l.UserID != "" && l.AnonymousID != l.UserID {
			anon, user = append(anon, []byte(l.AnonymousID)), append(user, []byte(l.UserID))
		}
	}
	if len(anon) == 0 {
		return nil
	}
	// WITH ORDINALITY and DISTINCT ON keep the first link of an anonymous
	// id within the call, as across calls.
	_, err := db.pool.Exec(ctx, `
		INSERT INTO identity_links (tenant_id, anonymous_id, user_id, linked_at)
		SELECT DISTINCT ON (a) $1, a, u, $4 FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS l(a, u, n)
		ORDER BY a, n
		ON CONFLICT (tenant_id, anonymous_id) DO NOTHING`,
		tenantID, anon, user, at.UTC())
	return wrap(err, "identity link")
}

// ResolveIdentities implements tally.LinkStore.
func (db *DB) ResolveIdentities(ctx context.Context, tenantID int64, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	raw := make([][]byte, len(ids))
	for i, id := range ids {
		raw[i] = []byte(id)
	}
	rows, err := db.pool.Query(ctx, `SELECT anonymous_id, user_id FROM identity_links WHERE tenant_id = $1 AND anonymous_id = ANY($2::bytea[])`,
		tenantID, raw)
	if err != nil {
		return nil, wrap(err, "identity link")
	}
	defer rows.Close()
	for rows.Next() {
		var a, u []byte
		if err := rows.Scan(&a, &u); err != nil {
			return nil, wrap(err, "identity link")
		}
		out[string(a)] = string(u)
	}
	return out, wrap(rows.Err(), "identity link")
}

var _ tally.LinkStore = (*DB)(nil)
