package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// TestCacheSize checks that the writer connection has the page cache the
// options ask for (SQLite's default when none) and that every reader
// keeps SQLite's default.
func TestCacheSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opt  Options
		kib  int64 // the writer's cache_size: negative, in KiB
	}{
		{"default", Options{}, -2000},
		{"8MB", Options{CacheSize: 8 << 20}, -8 << 10},
		{"below 1KiB", Options{CacheSize: 100}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db, err := Open(ctx, filepath.Join(t.TempDir(), "tally.db"), tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			cacheSize := func(c *sql.Conn) int64 {
				var n int64
				if err := c.QueryRowContext(ctx, `PRAGMA cache_size`).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			w, err := db.w.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := cacheSize(w); got != tc.kib {
				t.Errorf("writer cache_size = %d, want %d", got, tc.kib)
			}
			w.Close()
			// Several readers at once: each is a connection of its own.
			for i := range 3 {
				r, err := db.r.Conn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if got := cacheSize(r); got != -2000 {
					t.Errorf("reader %d cache_size = %d, want SQLite's default -2000", i, got)
				}
			}
		})
	}
}
