package clickhouse_test

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/storetest"
)

// open opens a store on a fresh PostgreSQL schema and a fresh ClickHouse
// database, closed when t ends.
func open(t testing.TB, now func() time.Time) *clickhouse.Store {
	t.Helper()
	return openAt(t, now, chtest.FreshDatabase(t))
}

// openAt opens a store on a fresh PostgreSQL schema and the event log at
// eventsURL, closed when t ends.
func openAt(t testing.TB, now func() time.Time, eventsURL string) *clickhouse.Store {
	t.Helper()
	db := openPostgres(t, now)
	s, err := clickhouse.Open(t.Context(), eventsURL, db, clickhouse.Options{Now: now})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openPostgres opens the PostgreSQL store on a fresh schema; the caller
// closes it (or a store that owns it does).
func openPostgres(t testing.TB, now func() time.Time) *postgres.DB {
	t.Helper()
	pgURL := pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "4"})
	db, err := postgres.Open(t.Context(), pgURL, postgres.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestConformance(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireServer(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) tally.Store { return open(t, now) })
}
