// Package sqlitedrivers benchmarks three embedded SQLite drivers through
// database/sql on the workloads that matter for tally's event store.
//
// It is a separate module so that the main tally module never depends on
// all three drivers. See README.md for the exact command; it needs
//
//	-ldflags='-X github.com/ncruces/go-sqlite3/driver.driverName=sqlite3-ncruces'
//
// because both github.com/mattn/go-sqlite3 and
// github.com/ncruces/go-sqlite3/driver register a database/sql driver named
// "sqlite3" at init time, and database/sql panics on a duplicate name.
// The benchmarks themselves never open a driver by that name (see drivers),
// so any value that differs from "sqlite3" works.
package sqlitedrivers

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	mattn "github.com/mattn/go-sqlite3"
	ncruces "github.com/ncruces/go-sqlite3/driver"
	_ "modernc.org/sqlite" // registers "sqlite"
)

// Shared settings. Every connection of every driver must end up with these;
// openDB verifies them through PRAGMA queries, so a DSN typo fails loudly
// instead of silently benchmarking a different durability level.
const (
	wantJournalMode = "wal"
	wantSynchronous = 2 // FULL
	wantForeignKeys = 1
	wantBusyTimeout = 5000

	batchSize   = 500     // rows per group-commit transaction
	rotateEvery = 200     // batches per database file in BenchmarkInsertBatch
	readRows    = 200_000 // rows in the read benchmarks' table
	readTenants = 10      // tenants those rows are spread over
	pageSize    = 50      // keyset page size

	baseTS  = int64(1_767_225_600_000) // 2026-01-01T00:00:00Z, ms
	dayMS   = int64(24 * 60 * 60 * 1000)
	spanMS  = 30 * dayMS // the read table covers 30 days
	aggFrom = baseTS + 10*dayMS
	aggTo   = aggFrom + 7*dayMS // aggregate over a 7-day window
)

// The pragmas as they appear in modernc's and ncruces' "_pragma" DSN syntax.
const pragmaDSN = "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
	"&_pragma=foreign_keys(ON)&_pragma=busy_timeout(5000)&_txlock=immediate"

// connector adapts a driver.Driver plus DSN to driver.Connector so that a
// driver can be used without looking it up by its registered name.
type connector struct {
	dsn string
	drv driver.Driver
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }

type driverSpec struct {
	name string
	open func(path string) (*sql.DB, error)
}

var drivers = []driverSpec{
	{"modernc", func(path string) (*sql.DB, error) {
		return sql.Open("sqlite", "file:"+path+"?"+pragmaDSN)
	}},
	{"ncruces", func(path string) (*sql.DB, error) {
		// The embed package is deliberately not imported: from v0.37 on the
		// SQLite build is compiled into the module (wasm2go) and importing
		// github.com/ncruces/go-sqlite3/embed only prints a deprecation notice.
		return ncruces.Open("file:" + path + "?" + pragmaDSN)
	}},
	{"mattn", func(path string) (*sql.DB, error) {
		dsn := "file:" + path + "?_journal_mode=WAL&_synchronous=FULL" +
			"&_foreign_keys=on&_busy_timeout=5000&_txlock=immediate"
		return sql.OpenDB(connector{dsn, &mattn.SQLiteDriver{}}), nil
	}},
}

const schema = `
CREATE TABLE events(
	id INTEGER PRIMARY KEY,
	tenant_id INTEGER,
	event_id TEXT,
	event TEXT,
	user_id TEXT,
	source TEXT,
	ts INTEGER,
	received_at INTEGER,
	value REAL,
	props TEXT,
	UNIQUE(tenant_id, event_id)
);
CREATE INDEX events_tenant_ts_id ON events(tenant_id, ts, id);
`

const insertSQL = `INSERT INTO events
	(tenant_id, event_id, event, user_id, source, ts, received_at, value, props)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT DO NOTHING`

const pageSQL = `SELECT id, tenant_id, event_id, event, user_id, source, ts, received_at, value, props
	FROM events
	WHERE tenant_id = ? AND (ts, id) < (?, ?)
	ORDER BY ts DESC, id DESC
	LIMIT 50`

const aggSQL = `SELECT event, count(*), sum(value), count(DISTINCT user_id)
	FROM events
	WHERE tenant_id = ? AND ts >= ? AND ts < ?
	GROUP BY event`

// openDB opens a fresh database file in dir with the given driver, checks
// the pragmas and creates the schema.
func openDB(tb testing.TB, d driverSpec, dir string) *sql.DB {
	tb.Helper()
	db, err := d.open(filepath.Join(dir, d.name+".db"))
	if err != nil {
		tb.Fatalf("%s: open: %v", d.name, err)
	}
	tb.Cleanup(func() { db.Close() })
	// One connection, as tally's single writer would use; it also makes the
	// pragma check below cover the connection the benchmark runs on.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	checkPragmas(tb, d.name, db)
	if _, err := db.Exec(schema); err != nil {
		tb.Fatalf("%s: schema: %v", d.name, err)
	}
	return db
}

func checkPragmas(tb testing.TB, name string, db *sql.DB) {
	tb.Helper()
	var jm string
	var sync, fk, bt int
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&jm); err != nil {
		tb.Fatalf("%s: journal_mode: %v", name, err)
	}
	for _, p := range []struct {
		q   string
		dst *int
	}{{"PRAGMA synchronous", &sync}, {"PRAGMA foreign_keys", &fk}, {"PRAGMA busy_timeout", &bt}} {
		if err := db.QueryRow(p.q).Scan(p.dst); err != nil {
			tb.Fatalf("%s: %s: %v", name, p.q, err)
		}
	}
	if jm != wantJournalMode || sync != wantSynchronous || fk != wantForeignKeys || bt != wantBusyTimeout {
		tb.Fatalf("%s: pragmas journal_mode=%s synchronous=%d foreign_keys=%d busy_timeout=%d, want %s/%d/%d/%d",
			name, jm, sync, fk, bt, wantJournalMode, wantSynchronous, wantForeignKeys, wantBusyTimeout)
	}
}

// Synthetic but tally-shaped event data.
var (
	eventNames = []string{
		"page_view", "signup", "login", "logout", "purchase", "add_to_cart",
		"remove_from_cart", "search", "share", "invite_sent", "invite_accepted",
		"plan_upgraded", "plan_downgraded", "export", "import", "api_call",
		"error", "feedback", "session_start", "session_end",
	}
	sources = []string{"web", "ios", "android", "server", "import"}
	userIDs = func() []string {
		u := make([]string, 1000)
		for i := range u {
			u[i] = fmt.Sprintf("user-%08x", uint32(i)*2654435761)
		}
		return u
	}()
	propsJSON = func() []string {
		p := make([]string, 16)
		for i := range p {
			p[i] = fmt.Sprintf(`{"path":"/app/section/%d/item","referrer":"https://example.com/r/%d",`+
				`"plan":"team","ab":"variant-%c","items":%d,"currency":"EUR"}`, i*37, i*11, 'a'+i%4, i%7)
		}
		return p
	}()
)

// row returns the arguments for event number seq (unique per seq).
// tenants rotates the tenant id; ts is the event time in ms.
func row(seq uint64, tenants int, ts int64) []any {
	// A client-generated, unique, non-monotonic id like a UUID prefix.
	h := seq * 0x9E3779B97F4A7C15
	eventID := "ev_" + strconv.FormatUint(h, 36) + "_" + strconv.FormatUint(seq, 36)
	return []any{
		int64(seq%uint64(tenants)) + 1,
		eventID,
		eventNames[h>>59%uint64(len(eventNames))],
		userIDs[(h>>20)%uint64(len(userIDs))],
		sources[(h>>40)%uint64(len(sources))],
		ts,
		ts + int64(h>>54), // received a little later
		float64(h>>44) / 1000,
		propsJSON[seq%uint64(len(propsJSON))],
	}
}

// BenchmarkInsertBatch is the group-commit path: one transaction inserting
// 500 events with INSERT ... ON CONFLICT DO NOTHING, committed with an fsync.
func BenchmarkInsertBatch(b *testing.B) {
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			dir := b.TempDir()
			var (
				db    *sql.DB
				stmt  *sql.Stmt
				seq   uint64
				files int
			)
			// rotate starts a fresh database file. It runs before the first
			// batch and then every rotateEvery batches with the timer
			// stopped, so every driver inserts into tables of the same
			// sizes (0 to 100k rows) however many batches it gets through.
			rotate := func() {
				if db != nil {
					stmt.Close()
					db.Close()
				}
				files++
				sub := filepath.Join(dir, strconv.Itoa(files))
				if err := os.Mkdir(sub, 0o755); err != nil {
					b.Fatal(err)
				}
				db = openDB(b, d, sub)
				var err error
				if stmt, err = db.Prepare(insertSQL); err != nil {
					b.Fatal(err)
				}
			}
			rotate()
			b.ResetTimer()
			for b.Loop() {
				if seq > 0 && seq%(rotateEvery*batchSize) == 0 {
					b.StopTimer()
					rotate()
					b.StartTimer()
				}
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				ts := tx.Stmt(stmt)
				for range batchSize {
					seq++
					if _, err := ts.Exec(row(seq, readTenants, baseTS+int64(seq))...); err != nil {
						b.Fatal(err)
					}
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkInsertSingle commits every event in its own transaction, so it
// is bound by the WAL fsync of synchronous=FULL.
func BenchmarkInsertSingle(b *testing.B) {
	for _, d := range drivers {
		b.Run(d.name, func(b *testing.B) {
			db := openDB(b, d, b.TempDir())
			stmt, err := db.Prepare(insertSQL)
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			var seq uint64
			b.ResetTimer()
			for b.Loop() {
				tx, err := db.Begin()
				if err != nil {
					b.Fatal(err)
				}
				seq++
				if _, err := tx.Stmt(stmt).Exec(row(seq, readTenants, baseTS+int64(seq))...); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(seq)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// populate fills db with readRows events spread evenly over readTenants
// tenants and 30 days, then runs ANALYZE and truncates the WAL.
func populate(tb testing.TB, name string, db *sql.DB) {
	tb.Helper()
	const perTx = 10_000
	step := spanMS / readRows
	for start := 0; start < readRows; start += perTx {
		tx, err := db.Begin()
		if err != nil {
			tb.Fatal(err)
		}
		stmt, err := tx.Prepare(insertSQL)
		if err != nil {
			tb.Fatal(err)
		}
		for i := start; i < start+perTx; i++ {
			seq := uint64(i)
			ts := baseTS + int64(i)*step + int64((seq*2654435761)%uint64(step))
			if _, err := stmt.Exec(row(seq, readTenants, ts)...); err != nil {
				tb.Fatal(err)
			}
		}
		stmt.Close()
		if err := tx.Commit(); err != nil {
			tb.Fatal(err)
		}
	}
	for _, q := range []string{"ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"} {
		if _, err := db.Exec(q); err != nil {
			tb.Fatalf("%s: %s: %v", name, q, err)
		}
	}
	var n int
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil || n != readRows {
		tb.Fatalf("%s: populated %d rows (err %v), want %d", name, n, err, readRows)
	}
}

// BenchmarkKeysetPage reads the 50 newest events of one tenant (rotating
// over the 10 tenants) with a keyset cursor, scanning every column.
func BenchmarkKeysetPage(b *testing.B) {
	for _, d := range drivers {
		// Set up once per driver on the parent: sub-benchmark bodies are
		// re-run while b.N ramps up and for every -count.
		db := openDB(b, d, b.TempDir())
		populate(b, d.name, db)
		b.Run(d.name, func(b *testing.B) {
			stmt, err := db.Prepare(pageSQL)
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			var (
				id, tenant, ts, recv          int64
				eventID, ev, user, src, props string
				value                         float64
			)
			i := 0
			b.ResetTimer()
			for b.Loop() {
				rows, err := stmt.Query(i%readTenants+1, int64(math.MaxInt64), int64(math.MaxInt64))
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					if err := rows.Scan(&id, &tenant, &eventID, &ev, &user, &src, &ts, &recv, &value, &props); err != nil {
						b.Fatal(err)
					}
					n++
				}
				if err := rows.Close(); err != nil {
					b.Fatal(err)
				}
				if n != pageSize || tenant != int64(i%readTenants+1) {
					b.Fatalf("page returned %d rows for tenant %d", n, tenant)
				}
				i++
			}
		})
	}
}

// BenchmarkAggregate runs tally's per-event summary over a 7-day window
// (about 4,700 of the 20,000 rows of one tenant), rotating the tenant.
func BenchmarkAggregate(b *testing.B) {
	for _, d := range drivers {
		db := openDB(b, d, b.TempDir())
		populate(b, d.name, db)
		b.Run(d.name, func(b *testing.B) {
			stmt, err := db.Prepare(aggSQL)
			if err != nil {
				b.Fatal(err)
			}
			defer stmt.Close()
			var (
				ev            string
				cnt, distinct int64
				sum           float64
			)
			i := 0
			b.ResetTimer()
			for b.Loop() {
				rows, err := stmt.Query(i%readTenants+1, aggFrom, aggTo)
				if err != nil {
					b.Fatal(err)
				}
				var total int64
				for rows.Next() {
					if err := rows.Scan(&ev, &cnt, &sum, &distinct); err != nil {
						b.Fatal(err)
					}
					total += cnt
				}
				if err := rows.Close(); err != nil {
					b.Fatal(err)
				}
				if total == 0 {
					b.Fatal("aggregate saw no rows")
				}
				i++
			}
		})
	}
}

// TestDrivers is a quick correctness check of the harness for every driver:
// pragmas, schema, idempotent insert, keyset page and aggregate. With -v it
// logs each driver's SQLite version and the query plans.
func TestDrivers(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			db := openDB(t, d, t.TempDir())
			var version string
			if err := db.QueryRow("SELECT sqlite_version()").Scan(&version); err != nil {
				t.Fatal(err)
			}
			t.Logf("SQLite %s", version)

			// The same event twice is stored once.
			args := row(1, readTenants, baseTS)
			for range 2 {
				if _, err := db.Exec(insertSQL, args...); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil || n != 1 {
				t.Fatalf("count = %d (err %v), want 1", n, err)
			}
			if _, err := db.Exec("DELETE FROM events"); err != nil {
				t.Fatal(err)
			}

			populate(t, d.name, db)
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{pageSQL, []any{3, int64(math.MaxInt64), int64(math.MaxInt64)}},
				{aggSQL, []any{3, aggFrom, aggTo}},
			} {
				rows, err := db.Query("EXPLAIN QUERY PLAN "+q.sql, q.args...)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var id, parent, unused int
					var detail string
					if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
						t.Fatal(err)
					}
					t.Logf("plan: %s", detail)
				}
				rows.Close()
			}
			var total int
			if err := db.QueryRow("SELECT count(*) FROM events WHERE tenant_id = 3 AND ts >= ? AND ts < ?",
				aggFrom, aggTo).Scan(&total); err != nil {
				t.Fatal(err)
			}
			t.Logf("aggregate window rows for one tenant: %d", total)
		})
	}
}
