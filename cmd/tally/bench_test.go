package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/sqlite"
)

// TestBenchClickHouse runs the ClickHouse phase briefly: it reports every
// figure and leaves no scratch database behind.
func TestBenchClickHouse(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireServer(t)
	t.Parallel()
	var out, errs bytes.Buffer
	u := chtest.ServerURL()
	args := []string{"bench", "-clickhouse", "clickhouse://" + strings.TrimPrefix(u, "http://") + "/x", "-postgres", pgtest.ServerURL(),
		"-d", "300ms", "-prefill", "3000"}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err != nil {
		t.Fatalf("bench -clickhouse: %v (%s)", err, errs.String())
	}
	for _, want := range []string{"SQLite tier, one writer", "ClickHouse tier, one writer, empty", "bytes per event on disk",
		"PostgreSQL key table bytes per event", "30-day daily meter", "privacy deletion", "ClickHouse / SQLite batch ingest"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bench -clickhouse printed no %q:\n%s", want, out.String())
		}
	}
	left, err := chtest.Query(t.Context(), "SELECT count() FROM system.databases WHERE name LIKE 'tally_bench_%'")
	if err != nil || strings.TrimSpace(left) != "0" {
		t.Errorf("scratch databases left: %q (%v)", left, err)
	}
}

func TestBenchBuildsADataset(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ds.db")
	var out, errs bytes.Buffer
	args := []string{"bench", "-dataset", path, "-events", "1500", "-tenants", "3", "-days", "2"}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err != nil {
		t.Fatalf("bench -dataset: %v (%s)", err, errs.String())
	}
	if !strings.Contains(out.String(), "1500 events, 3 tenants") {
		t.Errorf("bench -dataset printed %q", out.String())
	}
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.CountAllEvents(t.Context(), time.Now().AddDate(0, 0, -3), time.Now().Add(time.Hour))
	if err != nil || n != 1500 {
		t.Fatalf("the dataset holds %d events (%v), want 1500", n, err)
	}
	tenants, err := db.AllTenants(t.Context())
	if err != nil || len(tenants) != 3 {
		t.Fatalf("the dataset has %d tenants (%v), want 3", len(tenants), err)
	}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err == nil {
		t.Error("bench -dataset over an existing file: no error")
	}
}
