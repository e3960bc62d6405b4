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
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"
	"github.com/tallyhq/tally"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open tally database on a PostgreSQL server.
type DB struct {
	pool    *pgxpool.Pool
	now     func() time.Time
	timeout time.Duration
}

// Options tune the store. The zero value is the default.
type Options struct {
	// Now tells the time the store stamps rows with: created_at of users,
	// sessions, tenants and keys, audit entries, member and dirty-mark
	// times (default time.Now).
	Now func() time.Time
	// StatementTimeout bounds every statement (PostgreSQL's
	// statement_timeout), the time a transaction may sit idle
	// (idle_in_transaction_session_timeout), connecting, and every wait
	// for the server on an open connection (a read or write deadline one
	// second past it), so a stalled server or network never holds a
	// caller longer (default 5s).
	StatementTimeout time.Duration
}

// DefaultStatementTimeout is the statement timeout when none is given
// (DB_STATEMENT_TIMEOUT).
const DefaultStatementTimeout = 5 * time.Second

var _ tally.Store = (*DB)(nil)

// Advisory lock keys, all in the two-int4 key space: (lockClassTenant,
// the tenant id's low 32 bits) for one tenant; (lockClassLeader or
// lockClassMigrate, hashtext(current_schema())) per schema, so that
// instances on one schema exclude each other while those on other
// schemas of the database (tests, several deployments) do not wait.
// Tenants whose ids share the low 32 bits share a lock, and so do schemas
// whose names share a hash: that costs waiting, never correctness.
const (
	lockClassTenant  = 0x7a11 // "tally": per-tenant rollup vs. writer exclusion
	lockClassLeader  = 0x7a12 // the instance running scheduled rollups
	lockClassMigrate = 0x7a13 // the instance applying migrations
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
	timeout := opt.StatementTimeout
	if timeout <= 0 {
		timeout = DefaultStatementTimeout
	}
	ms := strconv.FormatInt(timeout.Milliseconds(), 10)
	if _, ok := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = ms
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = ms
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > timeout {
		cfg.ConnConfig.ConnectTimeout = timeout
	}
	dial := cfg.ConnConfig.DialFunc
	ioTimeout := timeout + time.Second // past statement_timeout, so the server's own answer comes first
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &deadlineConn{Conn: c, timeout: ioTimeout}, nil
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
	return &DB{pool: pool, now: now, timeout: timeout}, nil
}

// Ping checks that the server answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return wrap(err, "database")
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
	if isUnavailable(err) {
		return unavailable(err)
	}
	return tally.Internal(err)
}

// isUnavailable tells the failures a retry may get past: the server
// unreachable, a connection reset or timed out, a statement cancelled by
// statement_timeout, the server shutting down, out of resources (disk,
// connections) or in recovery.
func isUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code[:2] {
		case "08", // connection exception
			"53", // insufficient resources: disk full, too many connections
			"57", // operator intervention: query_canceled (statement_timeout), admin_shutdown, cannot_connect_now
			"58": // system error: I/O
			return true
		}
		// serialization, deadlock, lock not available, and a transaction
		// ended by idle_in_transaction_session_timeout (its client was
		// stalled: the transaction rolled back)
		return pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "55P03" || pe.Code == "25P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, net.ErrClosed)
}

// unavailable returns err as tally.Unavailable when a retry may get past
// it, else unchanged.
func unavailable(err error) error {
	var te *tally.Error
	if err == nil || errors.As(err, &te) || !isUnavailable(err) {
		return err
	}
	u := tally.Unavailable(err)
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &pe) && pe.Code == "57014":
		u.Message = "a database statement timed out; retry later"
	case errors.As(err, &pe) && pe.Code[:2] == "53":
		u.Message = "the database is out of resources; retry later"
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		u.Message = "the database timed out; retry later"
	case errors.As(err, &ce) || errors.Is(err, syscall.ECONNREFUSED):
		u.Message = "the database is unreachable; retry later"
	}
	return u
}

// ProbeWrite checks that the database takes writes: a transaction that
// is given a transaction id (so its commit is written) commits. It
// returns a tally.Unavailable error naming the cause when not.
func (db *DB) ProbeWrite(ctx context.Context) error {
	return db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`)
		return err
	})
}

// inTx runs fn in a READ COMMITTED transaction.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return unavailable(pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn))
}

// deadlineConn bounds every wait for the server: each Read and Write
// gets a deadline timeout ahead, unless pgx set its own (it does to
// interrupt a call whose context ended), which then stands.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	mu      sync.Mutex
	pinned  bool // pgx set a deadline of its own
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	if !c.pinned {
		c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	}
	c.mu.Unlock()
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.pinned {
		c.Conn.SetWriteDeadline(time.Now().Add(c.timeout))
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *deadlineConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinned = !t.IsZero()
	return c.Conn.SetDeadline(t)
}

func (c *deadlineConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinned = !t.IsZero()
	return c.Conn.SetReadDeadline(t)
}

func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinned = !t.IsZero()
	return c.Conn.SetWriteDeadline(t)
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
