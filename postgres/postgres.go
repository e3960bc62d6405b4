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
	"slices"
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
	now  func() time.Time
}

// Options tune the store. The zero value is the default.
type Options struct {
	// Now tells the time the store stamps rows with: created_at of users,
	// sessions, tenants and keys, audit entries, member and dirty-mark
	// times (default time.Now).
	Now func() time.Time
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
func Open(ctx context.Context, url string, opt Options) (*DB, error) {
	db, err := open(ctx, url, opt)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// open connects as Open does, without migrating.
func open(ctx context.Context, url string, opt Options) (*DB, error) {
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
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	return &DB{pool: pool, now: now}, nil
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
