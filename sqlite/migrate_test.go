package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/tallyhq/tally/internal/migrate"
	"github.com/tallyhq/tally/internal/migrate/migratetest"
)

func TestMigrateDriver(t *testing.T) {
	migratetest.Run(t, func(t *testing.T) migrate.Driver {
		db, err := open(filepath.Join(t.TempDir(), "tally.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return migrateDriver{db}
	})
}

// TestMigrateTwice opens a database again: nothing is pending, nothing
// runs.
func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tally.db")
	for range 2 {
		db, err := Open(t.Context(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		status, err := db.MigrationStatus(t.Context())
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range status {
			if !s.Applied {
				t.Errorf("%s not applied", s.Migration)
			}
		}
	}
}
