package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"time"

	"github.com/tallyhq/tally/internal/migrate"
)

// Migrate applies pending migrations.
func (db *DB) Migrate(ctx context.Context) error {
	m, err := db.migrator(migrations)
	if err == nil {
		_, err = m.Up(ctx)
	}
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return nil
}

// MigrationStatus lists every migration with whether it was applied.
func (db *DB) MigrationStatus(ctx context.Context) ([]migrate.Status, error) {
	m, err := db.migrator(migrations)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return m.Status(ctx)
}

// migrator returns the migrator of the migrations in fsys's migrations
// directory, applied on the writer connection.
func (db *DB) migrator(fsys fs.FS) (*migrate.Migrator, error) {
	return migrate.New(migrateDriver{db}, fsys, "migrations")
}

// migrateDriver is the migrate.Driver of SQLite. applied_at is RFC 3339
// text.
type migrateDriver struct{ db *DB }

func (d migrateDriver) Applied(ctx context.Context) ([]int, error) {
	if _, err := d.db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, err := d.db.w.QueryContext(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		versions = append(versions, v)
	}
	return versions, rows.Err()
}

// Apply runs m in one write transaction bounded by ctx only, not by the
// statement timeout: a migration may rewrite much of the log (0016).
func (d migrateDriver) Apply(ctx context.Context, m migrate.Migration) error {
	return d.db.inJobTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
			m.Version, d.db.now().UTC().Format(time.RFC3339))
		return err
	})
}
