package tally_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/tallyhq/tally"

// allowedImports is the import rule of docs/ARCHITECTURE.md ("Layout"):
// for each package directory, the module's packages its non-test files
// may import. "*" allows any.
var allowedImports = map[string][]string{
	".":                            {},
	"ingest":                       {".", "internal/metrics"},
	"usage":                        {".", "internal/metrics"},
	"rollup":                       {".", "internal/ordinal"},
	"meter":                        {"."},
	"identity":                     {".", "internal/secret", "internal/dedupe"},
	"server":                       {".", "ingest", "usage", "rollup", "live", "internal/secret", "internal/dedupe"},
	"live":                         {"."},
	"insight":                      {"."},
	"sqlite":                       {".", "internal/migrate", "internal/userset", "internal/ordinal"},
	"postgres":                     {".", "internal/migrate", "internal/userset", "internal/ordinal"},
	"clickhouse":                   {".", "postgres"},
	"clickhouse/chtest":            {"internal/testenv"},
	"redis":                        {"."},
	"storetest":                    {".", "internal/userset", "meter", "rollup"},
	"counterstest":                 {"."},
	"client":                       {"."},
	"middleware":                   {".", "client"},
	"internal/metrics":             {"."},
	"internal/migrate":             {"."},
	"internal/secret":              {"."},
	"internal/userset":             {"."},
	"internal/ordinal":             {},
	"internal/dedupe":              {},
	"internal/testenv":             {"."},
	"internal/faults":              {},
	"internal/demo":                {".", "identity"},
	"internal/migrate/migratetest": {"internal/migrate"},
	"sqlite/sqlitetest":            {".", "sqlite", "internal/testenv"},
	"postgres/pgtest":              {".", "postgres", "internal/testenv"},
	"internal/app":                 {"*"},
	"internal/app/apptest":         {"*"},
	"cmd/tally":                    {"*"},
	"examples/hostapp":             {"client", "middleware"},
	"bench/sqlitedrivers":          {"*"},
	"bench/dataset":                {"."},
}

// TestLayout checks every package's imports against allowedImports, and
// that every package is in the table (and so in the documented layout).
func TestLayout(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		allowed, ok := allowedImports[dir]
		if !ok {
			if !seen[dir] {
				t.Errorf("package %s is not in the layout table (docs/ARCHITECTURE.md and allowedImports)", dir)
			}
			seen[dir] = true
			return nil
		}
		seen[dir] = true
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p != module && !strings.HasPrefix(p, module+"/") {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(p, module), "/")
			if rel == "" {
				rel = "."
			}
			if !slices.Contains(allowed, "*") && !slices.Contains(allowed, rel) {
				t.Errorf("%s imports %s; the layout allows %s only %v", path, rel, dir, allowed)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir := range allowedImports {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("layout table names %s, which does not exist", dir)
		}
	}
}
