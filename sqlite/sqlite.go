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
	"time"

	"github.com/tallyhq/tally"
	sqlite3 "modernc.org/sqlite"
	sqlite3lib "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is an open tally database in one SQLite file.
type DB struct {
	w   *sql.DB // the single writer connection
	r   *sql.DB // readers
	now func() time.Time
}

var _ tally.Store = (*DB)(nil)

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
}

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
	dsn := func(txlock string) string {
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "foreign_keys(1)", "busy_timeout(10000)", "synchronous(" + sync + ")"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", txlock)
		return "file:" + path + "?" + q.Encode()
	}
	w, err := sql.Open("sqlite", dsn("immediate"))
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
	return &DB{w: w, r: r, now: now}, nil
}

// Ping checks both connection pools.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return tally.Internal(err)
	}
	if err := db.r.PingContext(ctx); err != nil {
		return tally.Internal(err)
	}
	return nil
}

// Close closes the database.
func (db *DB) Close() error {
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
	return tally.Internal(err)
}

// inTx runs fn in a write transaction on the writer connection.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
