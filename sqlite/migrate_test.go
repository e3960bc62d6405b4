package sqlite

import (
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tallyhq/tally/internal/migrate"
	"github.com/tallyhq/tally/internal/migrate/migratetest"
)

func TestMigrateDriver(t *testing.T) {
	migratetest.Run(t, func(t *testing.T) migrate.Driver {
		db, err := open(filepath.Join(t.TempDir(), "tally.db"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return migrateDriver{db}
	})
}

// TestMigrateTwice opens a database again: nothing is pending, nothing
// runs.
func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tally.db")
	for range 2 {
		db, err := Open(t.Context(), path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		status, err := db.MigrationStatus(t.Context())
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range status {
			if !s.Applied {
				t.Errorf("%s not applied", s.Migration)
			}
		}
	}
}

// TestMigrateOwnEvents applies 0016 over events that tally tracked before
// it, under the host app's names: they get tally's own names, the account
// moves to props.account, the host app's events stay, and the hours are
// marked for the next rollup.
func TestMigrateOwnEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := migratedBefore(t, "0016")
	if _, err := db.w.ExecContext(ctx, `INSERT INTO users (id, email, name, password_hash, created_at) VALUES (1, 'o@x', 'O', 'h', 0);
		INSERT INTO tenants (id, slug, name, created_at) VALUES (1, 'acme', 'Acme', 0)`); err != nil {
		t.Fatal(err)
	}
	ts := int64(1772971200000000) + 90*60*1000000 // 13:30 UTC
	for i, e := range []struct{ name, user, source, props string }{
		{"api.request", "", "tally", `{"route":"GET /x"}`},
		{"auth.user.login", "user:1", "tally", `{}`},
		{"auth.user.register", "user:1", "tally", `{}`},
		{"tenant.created", "user:1", "tally", `{"slug":"acme"}`},
		{"api.request", "alice", "api", `{"route":"GET /v1"}`},
		{"auth.user.login", "alice", "web", `{}`},
	} {
		if _, err := db.w.ExecContext(ctx, `INSERT INTO events (tenant_id, event_id, event, user_id, source, ts, received_at, value, props)
			VALUES (1, ?, ?, ?, ?, ?, ?, 1, ?)`, "e"+strconv.Itoa(i), e.name, e.user, e.source, ts, ts, e.props); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rows, err := db.r.QueryContext(ctx, `SELECT event, user_id, source, props FROM events ORDER BY event_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var n, u, s, p string
		if err := rows.Scan(&n, &u, &s, &p); err != nil {
			t.Fatal(err)
		}
		got = append(got, n+"|"+u+"|"+s+"|"+p)
	}
	want := []string{
		`tally.api.request||tally|{"route":"GET /x"}`,
		`tally.auth.login||tally|{"account":"user:1"}`,
		`tally.auth.register||tally|{"account":"user:1"}`,
		`tally.tenant.created||tally|{"slug":"acme","account":"user:1"}`,
		`api.request|alice|api|{"route":"GET /v1"}`,
		`auth.user.login|alice|web|{}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after 0016:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var hour int64
	if err := db.r.QueryRowContext(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = 1`).Scan(&hour); err != nil || hour != ts-30*60*1000000 {
		t.Fatalf("dirty hour %d (%v), want %d", hour, err, ts-30*60*1000000)
	}
}

// TestMigrateUserOrdinals checks that 0022 leaves no set of the old format
// to be read as a bitmap: the hours that had one are dirty, so the next
// rollup rewrites them.
func TestMigrateUserOrdinals(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := migratedBefore(t, "0022")
	hour := int64(1772971200000000)
	if _, err := db.w.ExecContext(ctx, `INSERT INTO rollup_hour_users (tenant_id, hour, users) VALUES (1, ?, x'03616263'), (1, ?, x'');
		INSERT INTO rollup_day_users (tenant_id, day, users) VALUES (1, ?, 1)`, hour, hour+hourMicros, hour); err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var sets, days, dirty int
	if err := db.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM rollup_hour_users), (SELECT count(*) FROM rollup_day_users),
		(SELECT count(*) FROM rollup_dirty WHERE tenant_id = 1 AND hour IN (?, ?))`, hour, hour+hourMicros).Scan(&sets, &days, &dirty); err != nil {
		t.Fatal(err)
	}
	if sets != 0 || days != 0 || dirty != 2 {
		t.Fatalf("after 0022: %d hour sets, %d day rows, %d of the 2 hours dirty; want none, none, 2", sets, days, dirty)
	}
}

// migratedBefore opens a new database migrated up to, not including,
// the migration numbered version (closed when the test ends).
func migratedBefore(t *testing.T, version string) *DB {
	t.Helper()
	db, err := open(filepath.Join(t.TempDir(), "tally.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	before := fstest.MapFS{}
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if path.Base(f) < version {
			b, _ := fs.ReadFile(migrations, f)
			before[f] = &fstest.MapFile{Data: b}
		}
	}
	m, err := db.migrator(before)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}
