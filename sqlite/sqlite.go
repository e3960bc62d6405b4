// Package sqlite is tally's embedded storage backend: one SQLite file in WAL
// mode, opened through the pure-Go modernc.org/sqlite driver (see
// docs/SQLITE_DRIVER.md for why). It implements tally.Store.
//
// Writes go through a single connection (SQLite has one writer anyway, and
// a single connection turns lock contention into queueing); reads use a
// pool of connections that see committed snapshots.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tallyhq/tally"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open tally database in one SQLite file.
type DB struct {
	w       *sql.DB // the single writer connection
	r       *sql.DB // readers
	now     func() time.Time
	timeout time.Duration // of one write transaction, and the busy timeout
	path    string

	// The prepared statements of every request's path, on the readers
	// and on the writer (see stmtCache).
	hotR, hotW stmtCache
}

var _ tally.Store = (*DB)(nil)

// stmtCache keeps statements prepared on one pool, made on first use and
// kept until Close: parsing and planning a short statement again per call
// cost more than running it. *sql.Stmt prepares it again on each
// connection as needed, and a transaction on the pool uses it through
// Tx.StmtContext — get it before the transaction begins: the writer's
// pool has one connection, which the transaction holds. Only for a fixed set of query texts (none built from
// input): the cache is never pruned.
type stmtCache struct {
	pool *sql.DB
	m    sync.Map // SQL text → *sql.Stmt
}

// get returns the statement of query.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.m.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.m.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// close closes every statement.
func (c *stmtCache) close() {
	c.m.Range(func(k, st any) bool {
		st.(*sql.Stmt).Close()
		c.m.Delete(k)
		return true
	})
}

// Options tune how the file is opened. The zero value is the safe default.
type Options struct {
	// Synchronous is SQLite's synchronous pragma: "FULL" (default: a
	// committed transaction survives power loss) or "NORMAL" (survives a
	// process crash, may lose the last commits on power loss).
	Synchronous string
	// Now tells the time the store stamps rows with: created_at of users,
	// sessions, tenants and keys, audit entries, member and dirty-mark
	// times (default time.Now).
	Now func() time.Time
	// StatementTimeout bounds one write transaction (its context is
	// cancelled past it) and is SQLite's busy timeout: how long a writer
	// waits for a lock held by another process (default 5s).
	StatementTimeout time.Duration
	// CacheSize is the writer connection's page cache in bytes (default:
	// SQLite's, about 2 MB, as each reader has). A larger one did not
	// make ingest into a grown file faster: see docs/PERFORMANCE.md,
	// "P1-growth: the writer's page cache".
	CacheSize int64
}

// DefaultStatementTimeout is the statement and transaction timeout when
// none is given (DB_STATEMENT_TIMEOUT).
const DefaultStatementTimeout = 5 * time.Second

// Open opens (creating it and its directory if missing) the SQLite file at
// path and applies pending migrations.
func Open(ctx context.Context, path string, opt Options) (*DB, error) {
	db, err := open(path, opt)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// open opens the file at path as Open does, without migrating it.
func open(path string, opt Options) (*DB, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create data directory: %w", err)
		}
	}
	sync := strings.ToUpper(opt.Synchronous)
	if sync == "" {
		sync = "FULL"
	}
	if sync != "FULL" && sync != "NORMAL" {
		return nil, fmt.Errorf("sqlite: synchronous must be FULL or NORMAL, not %q", opt.Synchronous)
	}
	timeout := opt.StatementTimeout
	if timeout <= 0 {
		timeout = DefaultStatementTimeout
	}
	var writer []string
	if opt.CacheSize > 0 {
		// A negative cache_size is in KiB.
		writer = append(writer, fmt.Sprintf("cache_size(%d)", -max(opt.CacheSize>>10, 1)))
	}
	busy := fmt.Sprintf("busy_timeout(%d)", timeout.Milliseconds())
	dsn := func(txlock string, more ...string) string {
		q := url.Values{}
		for _, p := range append([]string{"journal_mode(WAL)", "foreign_keys(1)", busy, "synchronous(" + sync + ")"}, more...) {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate", writer...))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", dsn("deferred"))
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)*2))
	r.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)*2))
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	return &DB{w: w, r: r, now: now, timeout: timeout, path: path, hotR: stmtCache{pool: r}, hotW: stmtCache{pool: w}}, nil
}

// Ping checks both connection pools.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return unavailable(err)
	}
	if err := db.r.PingContext(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
	db.hotR.close()
	db.hotW.close()
	return errors.Join(db.r.Close(), db.w.Close())
}

// micros converts a time to the stored form.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts the stored form to a UTC time.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}

// wrap turns driver errors into tally errors: a unique violation into
// EConflict (with msg), no rows into ENotFound (with what), anything else
// into EInternal.
func wrap(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Errorf(tally.ENotFound, "%s not found", what)
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3lib.SQLITE_CONSTRAINT_UNIQUE, sqlite3lib.SQLITE_CONSTRAINT_PRIMARYKEY:
			return tally.Errorf(tally.EConflict, "%s already exists", what)
		}
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

// isUnavailable tells the failures a retry may get past: a full disk, a
// lock held past the busy timeout, an I/O error, a file that cannot be
// opened, an interrupted or timed-out statement.
func isUnavailable(err error) bool {
	// sql.ErrTxDone: the transaction's deadline passed and database/sql
	// rolled it back under the statement that was running.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, sql.ErrTxDone) {
		return true
	}
	var se *sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // the primary result code
		case sqlite3lib.SQLITE_FULL, sqlite3lib.SQLITE_BUSY, sqlite3lib.SQLITE_LOCKED,
			sqlite3lib.SQLITE_IOERR, sqlite3lib.SQLITE_CANTOPEN, sqlite3lib.SQLITE_INTERRUPT,
			sqlite3lib.SQLITE_NOMEM, sqlite3lib.SQLITE_PROTOCOL:
			return true
		}
	}
	return false
}

// unavailable returns err as tally.Unavailable when a retry may get past
// it, else unchanged (tally errors and errors wrap maps keep their code).
func unavailable(err error) error {
	var te *tally.Error
	if err == nil || errors.As(err, &te) || !isUnavailable(err) {
		return err
	}
	u := tally.Unavailable(err)
	var se *sqlite3.Error
	switch {
	case errors.As(err, &se) && se.Code()&0xff == sqlite3lib.SQLITE_FULL:
		u.Message = "the database disk is full; retry later"
	case errors.As(err, &se) && (se.Code()&0xff == sqlite3lib.SQLITE_BUSY || se.Code()&0xff == sqlite3lib.SQLITE_LOCKED):
		u.Message = "the database is busy; retry later"
	case errors.Is(err, context.DeadlineExceeded):
		u.Message = "the database timed out; retry later"
	}
	return u
}

// inTx runs fn in a write transaction on the writer connection, bounded by
// the statement timeout.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	return db.inJobTx(ctx, fn)
}

// inJobTx runs fn in a write transaction bounded only by ctx: the rollup
// and retention jobs, whose day rebuilds can outlast a request's
// statement timeout, run under the deadlines of their own tasks
// (rollup.Config.RunTimeout).
func (db *DB) inJobTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return unavailable(err)
	}
	return unavailable(tx.Commit())
}

// minFreeBytes is the free space under which ProbeWrite reports the disk
// full: SQLite needs room for its WAL and checkpoints.
const minFreeBytes = 1 << 20

// ProbeWrite checks that the database can take writes: the file system
// holding it has room, and a write transaction can start and commit
// (the write lock is free, the file opens). It returns a
// tally.Unavailable error naming the cause when not.
func (db *DB) ProbeWrite(ctx context.Context) error {
	if db.path != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Dir(db.path), &st); err == nil {
			if free := st.Bavail * uint64(st.Bsize); free < minFreeBytes {
				return &tally.Error{Code: tally.EUnavailable,
					Message: fmt.Sprintf("disk full (%d bytes free)", free)}
			}
		}
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `SELECT 1`)
		return err
	})
}
