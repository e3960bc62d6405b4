// Package migratetest holds every backend's migrate.Driver to the same
// contract: applying twice applies nothing the second time, and a failing
// migration leaves neither its changes nor its version behind.
package migratetest

import (
	"slices"
	"testing"
	"testing/fstest"

	"github.com/tallyhq/tally/internal/migrate"
)

// Run runs the cases against drivers from newDriver, one per case, each on
// a fresh, empty database. The scripts are plain SQL that SQLite and
// PostgreSQL both run.
func Run(t *testing.T, newDriver func(t *testing.T) migrate.Driver) {
	t.Run("Twice", func(t *testing.T) {
		t.Parallel()
		testTwice(t, newDriver(t))
	})
	t.Run("FailureRollsBack", func(t *testing.T) {
		t.Parallel()
		testFailureRollsBack(t, newDriver(t))
	})
}

func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range m {
		fsys["migrations/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

// up applies the migrations of fsys and returns the versions it applied.
func up(t *testing.T, d migrate.Driver, fsys fstest.MapFS) ([]int, error) {
	t.Helper()
	m, err := migrate.New(d, fsys, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	applied, err := m.Up(t.Context())
	versions := []int{}
	for _, a := range applied {
		versions = append(versions, a.Version)
	}
	return versions, err
}

func testTwice(t *testing.T, d migrate.Driver) {
	fsys := files(map[string]string{
		"0001_a.sql": "CREATE TABLE a (x INTEGER NOT NULL);",
		"0002_b.sql": "CREATE TABLE b (x INTEGER NOT NULL);\nINSERT INTO a (x) VALUES (1);",
	})
	if got, err := up(t, d, fsys); err != nil || !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("first Up applied %v, %v; want [1 2]", got, err)
	}
	// Were either script run again, CREATE TABLE would fail.
	if got, err := up(t, d, fsys); err != nil || len(got) != 0 {
		t.Fatalf("second Up applied %v, %v; want nothing", got, err)
	}
	m, err := migrate.New(d, fsys, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	status, err := m.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 2 || !status[0].Applied || !status[1].Applied || status[1].Name != "b" {
		t.Fatalf("status = %+v", status)
	}
}

func testFailureRollsBack(t *testing.T, d migrate.Driver) {
	good := map[string]string{"0001_a.sql": "CREATE TABLE a (x INTEGER NOT NULL);"}
	if _, err := up(t, d, files(good)); err != nil {
		t.Fatal(err)
	}
	// The failure comes after statements that succeed: they must go too.
	bad := map[string]string{
		"0001_a.sql": good["0001_a.sql"],
		"0002_b.sql": "CREATE TABLE b (x INTEGER NOT NULL);\nINSERT INTO a (x) VALUES (1);\nINSERT INTO no_such_table (x) VALUES (1);",
		"0003_c.sql": "CREATE TABLE c (x INTEGER NOT NULL);",
	}
	got, err := up(t, d, files(bad))
	if err == nil || len(got) != 0 {
		t.Fatalf("Up with a failing migration applied %v, %v; want an error and nothing", got, err)
	}
	m, err := migrate.New(d, files(bad), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	pending, err := m.Pending(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0].Version != 2 || pending[1].Version != 3 {
		t.Fatalf("pending after the failure = %v; want 0002_b and 0003_c", pending)
	}
	// Had the failed attempt left table b or its row in a, this 0002
	// would fail: on creating b, or on the unique index over two rows.
	fixed := map[string]string{
		"0001_a.sql": good["0001_a.sql"],
		"0002_b.sql": "CREATE TABLE b (x INTEGER NOT NULL);\nINSERT INTO a (x) VALUES (1);\nCREATE UNIQUE INDEX a_x ON a (x);",
		"0003_c.sql": bad["0003_c.sql"],
	}
	if got, err := up(t, d, files(fixed)); err != nil || !slices.Equal(got, []int{2, 3}) {
		t.Fatalf("Up after the fix applied %v, %v; want [2 3]", got, err)
	}
}
