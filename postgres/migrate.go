package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tallyhq/tally/internal/migrate"
)

// Migrate applies pending migrations, each in its own transaction, holding
// a session advisory lock so that instances starting at once apply each
// migration exactly once (the others wait, then find nothing to do).
func (db *DB) Migrate(ctx context.Context) error {
	err := db.withMigrator(ctx, migrations, func(m *migrate.Migrator) error {
		_, err := m.Up(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// MigrationStatus lists every migration with whether it was applied.
func (db *DB) MigrationStatus(ctx context.Context) ([]migrate.Status, error) {
	var status []migrate.Status
	err := db.withMigrator(ctx, migrations, func(m *migrate.Migrator) (err error) {
		status, err = m.Status(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return status, nil
}

// withMigrator calls fn with the migrator of the migrations in fsys's
// migrations directory, on one connection that holds the migration lock
// until fn returns.
func (db *DB) withMigrator(ctx context.Context, fsys fs.FS, fn func(*migrate.Migrator) error) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// Another instance may be migrating: wait for it as long as it takes
	// (ctx bounds the wait), not for one statement's timeout.
	nc := conn.Conn().PgConn().Conn()
	nc.SetDeadline(time.Now().Add(time.Hour))
	_, err = conn.Exec(ctx, `SET statement_timeout = 0; SELECT pg_advisory_lock(`+strconv.Itoa(lockClassMigrate)+`, hashtext(coalesce(current_schema(), ''))); RESET statement_timeout`)
	nc.SetDeadline(time.Time{})
	if err != nil {
		conn.Conn().Close(context.WithoutCancel(ctx)) // its statement_timeout may be lifted
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// A session lock outlives a failed unlock: then close the
		// connection rather than return it to the pool holding the lock.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext(coalesce(current_schema(), '')))`, lockClassMigrate); uerr != nil {
			conn.Conn().Close(uctx)
		}
	}()
	m, err := migrate.New(migrateDriver{conn}, fsys, "migrations")
	if err != nil {
		return err
	}
	return fn(m)
}

// migrateDriver is the migrate.Driver of PostgreSQL, on one connection.
type migrateDriver struct{ conn *pgxpool.Conn }

func (d migrateDriver) Applied(ctx context.Context) ([]int, error) {
	if _, err := d.conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, err := d.conn.Query(ctx, `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// Apply runs m in one transaction. A migration may rewrite much of the log
// (0016): its file lifts statement_timeout for itself, and the
// connection's per-read I/O deadline is held an hour ahead meanwhile.
func (d migrateDriver) Apply(ctx context.Context, m migrate.Migration) error {
	nc := d.conn.Conn().PgConn().Conn()
	nc.SetDeadline(time.Now().Add(time.Hour))
	defer nc.SetDeadline(time.Time{})
	return pgx.BeginFunc(ctx, d.conn, func(tx pgx.Tx) error {
		// No arguments: the simple protocol, which runs every statement of
		// the file.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, int32(m.Version))
		return err
	})
}
