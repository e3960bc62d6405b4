package migrate_test

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tallyhq/tally/internal/migrate"
)

// TestBackendsInStep holds the backends' migration lists to the same
// versions with the same names, so that version N is the same change on
// every backend. List itself rejects gaps and duplicates.
func TestBackendsInStep(t *testing.T) {
	backends := []string{"sqlite", "postgres"}
	lists := make([][]migrate.Migration, len(backends))
	for i, b := range backends {
		list, err := migrate.List(os.DirFS("../../"+b), "migrations")
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if len(list) == 0 {
			t.Fatalf("%s: no migrations", b)
		}
		lists[i] = list
	}
	first := lists[0]
	for i, list := range lists[1:] {
		b := backends[i+1]
		for j := range max(len(first), len(list)) {
			switch {
			case j >= len(list):
				t.Errorf("%s lacks %s of %s", b, first[j], backends[0])
			case j >= len(first):
				t.Errorf("%s lacks %s of %s", backends[0], list[j], b)
			case first[j].Name != list[j].Name:
				t.Errorf("version %d is %s in %s but %s in %s", first[j].Version, first[j], backends[0], list[j], b)
			}
		}
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		files []string
		err   string // "" when List must succeed
	}{
		{"ordered", []string{"0002_b.sql", "0001_a.sql", "0003_c_d.sql"}, ""},
		{"none", nil, ""},
		{"gap", []string{"0001_a.sql", "0003_c.sql"}, "version 2 is missing"},
		{"not from one", []string{"0002_b.sql"}, "version 1 is missing"},
		{"duplicate", []string{"0001_a.sql", "0002_b.sql", "0002_c.sql"}, "share a version"},
		{"no number", []string{"init.sql"}, "NNNN_name.sql"},
		{"no name", []string{"0001.sql"}, "NNNN_name.sql"},
		{"zero", []string{"0000_a.sql"}, "NNNN_name.sql"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fsys := fstest.MapFS{"m/README": {Data: []byte("not a migration")}}
			for _, f := range c.files {
				fsys["m/"+f] = &fstest.MapFile{Data: []byte("-- " + f)}
			}
			list, err := migrate.List(fsys, "m")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("List = %v, %v; want an error containing %q", list, err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != len(c.files) {
				t.Fatalf("List = %v; want %d migrations", list, len(c.files))
			}
			for i, m := range list {
				if m.Version != i+1 || m.SQL != "-- "+m.String()+".sql" {
					t.Errorf("migration %d = %+v", i, m)
				}
			}
		})
	}
}
