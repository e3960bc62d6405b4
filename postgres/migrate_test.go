package postgres

import (
	"testing"

	"github.com/tallyhq/tally/internal/migrate"
	"github.com/tallyhq/tally/internal/migrate/migratetest"
	"github.com/tallyhq/tally/postgres/pgtest"
)

func TestMigrateDriver(t *testing.T) {
	pgtest.RequireServer(t)
	migratetest.Run(t, func(t *testing.T) migrate.Driver {
		db, err := open(t.Context(), pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "2"}), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		conn, err := db.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Release)
		return migrateDriver{conn}
	})
}
