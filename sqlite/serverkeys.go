package sqlite

import (
	"context"
	"crypto/rand"

	"github.com/tallyhq/tally"
)

// ServerKey implements tally.ServerKeyStore: INSERT OR IGNORE on the
// single writer, then the stored key.
func (db *DB) ServerKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	rand.Read(fresh)
	if _, err := db.w.ExecContext(ctx,
		`INSERT INTO server_keys (name, key, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, fresh, micros(db.now())); err != nil {
		return nil, wrap(err, "server key")
	}
	var key []byte
	if err := db.w.QueryRowContext(ctx, `SELECT key FROM server_keys WHERE name = ?`, name).Scan(&key); err != nil {
		return nil, wrap(err, "server key")
	}
	return key, nil
}

var _ tally.ServerKeyStore = (*DB)(nil)
