package postgres

import (
	"context"
	"crypto/rand"

	"github.com/tallyhq/tally"
)

// ServerKey implements tally.ServerKeyStore: INSERT … ON CONFLICT DO
// NOTHING, then the stored key, so that concurrent first calls of several
// instances agree.
func (db *DB) ServerKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	rand.Read(fresh)
	if _, err := db.pool.Exec(ctx,
		`INSERT INTO server_keys (name, key, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`,
		name, fresh, db.now()); err != nil {
		return nil, wrap(err, "server key")
	}
	var key []byte
	if err := db.pool.QueryRow(ctx, `SELECT key FROM server_keys WHERE name = $1`, name).Scan(&key); err != nil {
		return nil, wrap(err, "server key")
	}
	return key, nil
}

var _ tally.ServerKeyStore = (*DB)(nil)
