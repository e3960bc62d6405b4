package clickhouse

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// TestMigrateEvents moves a tenant's history from the PostgreSQL tier to
// ClickHouse, interrupted once: the events list matches the PostgreSQL
// one (ids included), each event is stored once, retries of old events
// stay duplicates and new events get ids above the old ones.
func TestMigrateEvents(t *testing.T) {
	chtest.RequireServer(t)
	pgtest.RequireServer(t)
	t.Parallel()
	testMigrateEvents(t, chtest.FreshDatabase(t))
}

// TestMigrateEventsCluster is TestMigrateEvents onto a log sharded over
// two servers.
func TestMigrateEventsCluster(t *testing.T) {
	chtest.RequireCluster(t)
	pgtest.RequireServer(t)
	t.Parallel()
	testMigrateEvents(t, chtest.FreshClusterDatabase(t))
}

func testMigrateEvents(t *testing.T, eventsURL string) {
	ctx := t.Context()
	pgURL := pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "4"})
	db, err := postgres.Open(ctx, pgURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &tally.User{Email: "m@example.com"}
	check(t, db.CreateUser(ctx, u, "!"))
	a, b := &tally.Tenant{Slug: "a", Name: "A"}, &tally.Tenant{Slug: "b", Name: "B"}
	check(t, db.CreateTenant(ctx, a, u.ID))
	check(t, db.CreateTenant(ctx, b, u.ID))
	// Three months of events of two tenants, interleaved, with a late one.
	start := time.Now().UTC().AddDate(0, -3, 0).Truncate(time.Microsecond)
	var evs []tally.Event
	for i := range 250 {
		tenant := a.ID
		if i%3 == 0 {
			tenant = b.ID
		}
		at := start.Add(time.Duration(i) * 9 * time.Hour)
		if i == 200 {
			at = start // late: back in the first month
		}
		evs = append(evs, tally.Event{TenantID: tenant, EventID: fmt.Sprintf("m-%d", i), Name: "page.view",
			UserID: fmt.Sprintf("u%d", i%7), Timestamp: at, ReceivedAt: at, Value: float64(i), Props: []byte(`{"i":` + fmt.Sprint(i) + `}`)})
	}
	_, err = db.InsertEvents(ctx, evs)
	check(t, err)
	want, _, err := db.ListEvents(ctx, a.ID, tally.EventFilter{Limit: 1000})
	check(t, err)

	s, err := Open(ctx, eventsURL, db, Options{})
	check(t, err)
	t.Cleanup(func() { s.Close() })

	// Interrupted after the first batch, then resumed.
	cctx, cancel := context.WithCancel(ctx)
	n1, err := s.MigrateEvents(cctx, a.ID, 40, func(int64) { cancel() })
	if err == nil {
		t.Fatalf("an interrupted copy reported no error after %d events", n1)
	}
	n2, err := s.MigrateEvents(ctx, a.ID, 40, nil)
	check(t, err)
	if n1+n2 < int64(len(want)) {
		t.Errorf("copied %d then %d events, fewer than the %d there are", n1, n2, len(want))
	}
	got, _, err := s.ListEvents(ctx, a.ID, tally.EventFilter{Limit: 1000})
	check(t, err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the copy, ClickHouse lists %d events, PostgreSQL %d; first differences: %v", len(got), len(want), firstDiff(got, want))
	}
	if n, _, _ := s.ListEvents(ctx, b.ID, tally.EventFilter{Limit: 1000}); len(n) != 0 {
		t.Errorf("tenant b has %d events on ClickHouse; only a was copied", len(n))
	}

	// Old events retried are duplicates; a new one gets an id above them.
	var retry []tally.Event
	for _, e := range evs {
		if e.TenantID == a.ID {
			e.ID = 0
			retry = append(retry, e)
		}
	}
	retry = append(retry, tally.Event{TenantID: a.ID, EventID: "new", Name: "page.view", Timestamp: time.Now().UTC(), ReceivedAt: time.Now().UTC()})
	ins, err := s.InsertEvents(ctx, retry)
	check(t, err)
	for i, ok := range ins[:len(ins)-1] {
		if ok {
			t.Fatalf("retry of migrated event %s was stored again", retry[i].EventID)
		}
	}
	maxOld := want[0].ID
	for _, e := range want {
		maxOld = max(maxOld, e.ID)
	}
	if !ins[len(ins)-1] || retry[len(retry)-1].ID <= maxOld {
		t.Errorf("the new event: inserted %v with id %d, want an id above %d", ins[len(ins)-1], retry[len(retry)-1].ID, maxOld)
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func firstDiff(a, b []tally.Event) string {
	for i := range min(len(a), len(b)) {
		if !reflect.DeepEqual(a[i], b[i]) {
			return fmt.Sprintf("#%d: %+v vs %+v", i, a[i], b[i])
		}
	}
	return "lengths"
}
