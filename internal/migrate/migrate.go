// Package migrate applies a backend's embedded, numbered SQL migrations
// (NNNN_name.sql) in order, each in its own transaction, recording them in
// schema_migrations. Each backend keeps its own files in its own dialect.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Apply runs the migrations in dir of fsys that db has not run yet and
// returns how many it ran. placeholder is the dialect's first bind
// parameter ("?" or "$1").
func Apply(ctx context.Context, db *sql.DB, fsys fs.FS, dir, placeholder string) (int, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return 0, err
	}
	slices.Sort(names)
	ran := 0
	for _, name := range names {
		base := path.Base(name)
		num, _, _ := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if err != nil {
			return ran, fmt.Errorf("migration %s: name must start with a number", base)
		}
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = `+placeholder, version).Scan(&n); err != nil {
			return ran, err
		}
		if n > 0 {
			continue
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return ran, err
		}
		if err := apply(ctx, db, version, string(body), placeholder); err != nil {
			return ran, fmt.Errorf("migration %s: %w", base, err)
		}
		ran++
	}
	return ran, nil
}

func apply(ctx context.Context, db *sql.DB, version int, body, placeholder string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return err
	}
	second := strings.Replace(placeholder, "1", "2", 1)
	if placeholder == "?" {
		second = "?"
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (`+placeholder+`, `+second+`)`,
		version, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	return tx.Commit()
}
