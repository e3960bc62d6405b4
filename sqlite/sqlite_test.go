package sqlite_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite"
	"github.com/tallyhq/tally/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) tally.Store {
		db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tally.db"), sqlite.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
