// Package postgres is tally's PostgreSQL storage backend, for running several
// instances against one database. It implements tally.Store on a pgx
// connection pool and keeps its own migrations (migrations/*.sql, in
// PostgreSQL's dialect), applied by Open.
//
// Times are timestamptz, read back in UTC; ids are BIGINT identities;
// end-user ids are BYTEA (opaque bytes, NUL included); props are the JSON
// text as given. Transactions run at READ COMMITTED unless a method needs
// more (ExportEvents reads one REPEATABLE READ snapshot); the rollup
// invariant is kept with advisory locks per tenant, see InRollupTx.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tallyhq/tally"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open tally database on a PostgreSQL server.
type DB struct {
	pool *pgxpool.Pool
}

var _ tally.Store = (*DB)(nil)

// Advisory lock keys. Locks of one tenant use the two-int4 key space
// (lockClassTenant, the tenant id's low 32 bits); the migration lock uses
// the one-bigint key space, which PostgreSQL keeps apart from it. Tenants
// whose ids share the low 32 bits share a lock: that costs waiting, never
// correctness.
const (
	lockClassTenant = 0x7a11 // "tally": per-tenant rollup vs. writer exclusion
	lockMigrate     = int64(0x7a11_0000_0000_0001)
	lockClassLeader = 0x7a12 // with hashtext(current_schema()): the instance running scheduled rollups
)

// tenantLockKey is the second key of a tenant's advisory lock.
func tenantLockKey(tenantID int64) int32 { return int32(uint32(tenantID)) }

// Open connects to the PostgreSQL server at url (a postgres:// URL or a
// key=value connection string; pgxpool settings such as pool_max_conns and
// run-time parameters such as search_path may be given in it) and applies
// pending migrations.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	cfg.AfterConnect = func(_ context.Context, c *pgx.Conn) error {
		// Scan timestamptz in UTC, as every tally time is.
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db := &DB{pool: pool}
	if err := db.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Migrate applies pending migrations, each in its own transaction, holding
// a session advisory lock so that instances starting at once apply each
// migration exactly once (the others wait, then find nothing to do).
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := migrate(ctx, db.pool); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// migrate applies the embedded migrations not yet recorded in
// schema_migrations and returns how many it applied.
func migrate(ctx context.Context, pool *pgxpool.Pool) (n int, err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, lockMigrate); err != nil {
		return 0, fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// A session lock outlives a failed unlock: then close the
		// connection rather than return it to the pool holding the lock.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, uerr := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, lockMigrate); uerr != nil {
			conn.Conn().Close(uctx)
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return 0, err
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return 0, err
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return 0, err
	}
	slices.Sort(names)
	for _, name := range names {
		base := path.Base(name)
		num, _, _ := strings.Cut(base, "_")
		version, err := strconv.ParseInt(num, 10, 32)
		if err != nil {
			return n, fmt.Errorf("migration %s: name must start with a number", base)
		}
		if slices.Contains(applied, int32(version)) {
			continue
		}
		body, err := fs.ReadFile(migrations, name)
		if err != nil {
			return n, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			// No arguments: the simple protocol, which runs every statement
			// of the file.
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, int32(version))
			return err
		})
		if err != nil {
			return n, fmt.Errorf("migration %s: %w", base, err)
		}
		n++
	}
	return n, nil
}

// Ping checks that the server answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return tally.Internal(err)
	}
	return nil
}

// Close closes every connection, waiting for those in use to be released.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// wrap turns driver errors into tally errors: a unique violation into
// EConflict (with what), no rows into ENotFound (with what), tally errors
// as they are, anything else into EInternal (whose text, SQL included,
// never reaches a caller).
func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Errorf(tally.ENotFound, "%s not found", what)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
		return tally.Errorf(tally.EConflict, "%s already exists", what)
	}
	var te *tally.Error
	if errors.As(err, &te) {
		return err
	}
	return tally.Internal(err)
}

// inTx runs fn in a READ COMMITTED transaction.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
}

// The advisory lock statements of one tenant (see InRollupTx); the
// arguments are lockClassTenant and tenantLockKey(tenant).
const (
	lockTenantShared    = `SELECT pg_advisory_xact_lock_shared($1, $2)`
	lockTenantExclusive = `SELECT pg_advisory_xact_lock($1, $2)`
)

// tenantLockKeys returns the lock keys of the tenants, ascending and
// distinct: the order every transaction takes them in.
func tenantLockKeys(tenantIDs []int64) []int32 {
	keys := make([]int32, len(tenantIDs))
	for i, id := range tenantIDs {
		keys[i] = tenantLockKey(id)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// timePtr returns a copy of t when it is valid.
func timePtr(t pgtype.Timestamptz) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
