package postgres

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/migrate"
	"github.com/tallyhq/tally/internal/migrate/migratetest"
	"github.com/tallyhq/tally/postgres/pgtest"
)

func TestMigrateDriver(t *testing.T) {
	pgtest.RequireServer(t)
	migratetest.Run(t, func(t *testing.T) migrate.Driver {
		db, err := open(t.Context(), pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "2"}), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		conn, err := db.pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Release)
		return migrateDriver{conn}
	})
}

// migrateBefore applies to db the migrations whose file names sort
// before prefix.
func migrateBefore(t *testing.T, db *DB, prefix string) {
	t.Helper()
	before := fstest.MapFS{}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if path.Base(f) < prefix {
			b, _ := fs.ReadFile(migrations, f)
			before[f] = &fstest.MapFile{Data: b}
		}
	}
	ctx := t.Context()
	if err := db.withMigrator(ctx, before, func(m *migrate.Migrator) error { _, err := m.Up(ctx); return err }); err != nil {
		t.Fatal(err)
	}
}

// TestMigrateOwnEvents applies 0016 over events that tally tracked before
// it, under the host app's names: they get tally's own names, the account
// moves to props.account, the host app's events stay, and the hours are
// marked for the next rollup.
func TestMigrateOwnEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := open(ctx, pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "2"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migrateBefore(t, db, "0016")
	var tenant int64
	if err := db.pool.QueryRow(ctx, `INSERT INTO tenants (slug, name, created_at) VALUES ('acme', 'Acme', now()) RETURNING id`).Scan(&tenant); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 3, 8, 13, 30, 0, 0, time.UTC)
	for i, e := range []struct{ name, user, source, props string }{
		{"api.request", "", "tally", `{"route":"GET /x"}`},
		{"auth.user.login", "user:1", "tally", `{}`},
		{"tenant.created", "user:1", "tally", `{"slug":"acme"}`},
		{"api.request", "alice", "api", `{"route":"GET /v1"}`},
		{"auth.user.login", "alice", "web", `{}`},
	} {
		if _, err := db.pool.Exec(ctx, `INSERT INTO events (tenant_id, event_id, event, user_id, source, ts, received_at, value, props)
			VALUES ($1, $2, $3, $4, $5, $6, $6, 1, $7)`, tenant, "e"+strconv.Itoa(i), e.name, []byte(e.user), e.source, ts, e.props); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := db.pool.Query(ctx, `SELECT event, user_id, source, props FROM events ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var n, s, p string
		var u []byte
		if err := rows.Scan(&n, &u, &s, &p); err != nil {
			t.Fatal(err)
		}
		var props map[string]any
		if err := json.Unmarshal([]byte(p), &props); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s|%s|%s|%v", n, u, s, props))
	}
	want := []string{
		`tally.api.request||tally|map[route:GET /x]`,
		`tally.auth.login||tally|map[account:user:1]`,
		`tally.tenant.created||tally|map[account:user:1 slug:acme]`,
		`api.request|alice|api|map[route:GET /v1]`,
		`auth.user.login|alice|web|map[]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after 0016:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var hour time.Time
	if err := db.pool.QueryRow(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = $1`, tenant).Scan(&hour); err != nil || !hour.Equal(ts.Truncate(time.Hour)) {
		t.Fatalf("dirty hour %v (%v), want %v", hour, err, ts.Truncate(time.Hour))
	}
}

// TestMigrateLeanEventKeys applies 0021 over keys and a leased batch of
// 0018: each key is found again under EventKey (a stored one is a
// duplicate, a leased one is listed with its batch and id), so dedup
// carries over.
func TestMigrateLeanEventKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, err := open(ctx, pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "2"}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	migrateBefore(t, db, "0021")
	ts := time.Date(2026, 3, 8, 13, 30, 0, 0, time.UTC)
	for _, sql := range []string{
		`INSERT INTO event_keys (tenant_id, event_id, id, ts, batch_id) VALUES (7, 'stored-é', 41, $1, 0), (7, 'leased', 42, $1, 9)`,
		`INSERT INTO event_key_batches (id, lease_until, tenant_ids, event_ids) VALUES (9, $1, '{7}', '{leased}')`,
	} {
		if _, err := db.pool.Exec(ctx, sql, ts); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	leased, err := db.ExpiredEventKeys(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(leased) != 1 || leased[0].Batch != 9 || leased[0].Key != EventKey(7, "leased") || leased[0].Event.ID != 42 {
		t.Fatalf("expired keys after 0021: %+v, want batch 9's key of 7/leased with id 42", leased)
	}
	evs := []tally.Event{{TenantID: 7, EventID: "stored-é", Timestamp: ts}, {TenantID: 8, EventID: "stored-é", Timestamp: ts}}
	states, _, err := db.ReserveEventKeys(ctx, evs, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if states[0] != KeyDuplicate || states[1] != KeyNew {
		t.Fatalf("states after 0021: %v, want the stored key a duplicate and another tenant's new", states)
	}
}
