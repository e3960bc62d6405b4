package clickhouse

import (
	"fmt"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// openInternal opens a store on fresh databases, for the tests that play
// a writer that died.
func openInternal(t *testing.T) (*Store, int64) {
	t.Helper()
	pgURL := pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "4"})
	eventsURL := chtest.FreshDatabase(t)
	db, err := postgres.Open(t.Context(), pgURL, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(t.Context(), eventsURL, db, Options{StatementTimeout: 2 * time.Second})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	u := &tally.User{Email: "keys@example.com"}
	if err := s.CreateUser(t.Context(), u, "!"); err != nil {
		t.Fatal(err)
	}
	tn := &tally.Tenant{Slug: "keys", Name: "Keys"}
	if err := s.CreateTenant(t.Context(), tn, u.ID); err != nil {
		t.Fatal(err)
	}
	return s, tn.ID
}

func keyEvents(tenant int64, prefix string, n int) []tally.Event {
	now := time.Now().UTC().Truncate(time.Microsecond)
	evs := make([]tally.Event, n)
	for i := range evs {
		evs[i] = tally.Event{TenantID: tenant, EventID: fmt.Sprintf("%s-%d", prefix, i), Name: "keys.test",
			Timestamp: now.Add(-time.Duration(i) * time.Second), ReceivedAt: now, Value: 1, Props: []byte(`{}`)}
	}
	return evs
}

func countInserted(inserted []bool) int {
	n := 0
	for _, ok := range inserted {
		if ok {
			n++
		}
	}
	return n
}

// TestDeadWriter plays writers that reserved keys and died, before and
// after ClickHouse had their batch: a retry (or the sweep) stores each
// event exactly once.
func TestDeadWriter(t *testing.T) {
	chtest.RequireServer(t)
	pgtest.RequireServer(t)
	t.Parallel()
	s, tenant := openInternal(t)
	ctx := t.Context()
	expired := time.Now().Add(-time.Second)

	// Died before writing: the retry writes.
	lost := keyEvents(tenant, "lost", 5)
	if _, _, err := s.DB.ReserveEventKeys(ctx, lost, expired); err != nil {
		t.Fatal(err)
	}
	ins, err := s.InsertEvents(ctx, keyEvents(tenant, "lost", 5))
	if err != nil || countInserted(ins) != 5 {
		t.Fatalf("retry after a writer that died before writing: inserted %v, %v; want all 5", ins, err)
	}

	// Died after writing, before confirming: the retry finds the events.
	landed := keyEvents(tenant, "landed", 5)
	if _, _, err := s.DB.ReserveEventKeys(ctx, landed, expired); err != nil {
		t.Fatal(err)
	}
	w := &rowWriter{}
	for i := range landed {
		appendEvent(w, &landed[i])
	}
	if err := s.ch.insert(ctx, "INSERT INTO events ("+insertCols+")", w.b); err != nil {
		t.Fatal(err)
	}
	ins, err = s.InsertEvents(ctx, keyEvents(tenant, "landed", 5))
	if err != nil || countInserted(ins) != 0 {
		t.Fatalf("retry after a writer that died after writing: inserted %v, %v; want none (duplicates)", ins, err)
	}

	// Died either way, no retry: the sweep settles both.
	swept := keyEvents(tenant, "swept", 4)
	if _, _, err := s.DB.ReserveEventKeys(ctx, swept, expired); err != nil {
		t.Fatal(err)
	}
	w = &rowWriter{}
	appendEvent(w, &swept[0])
	appendEvent(w, &swept[1])
	if err := s.ch.insert(ctx, "INSERT INTO events ("+insertCols+")", w.b); err != nil {
		t.Fatal(err)
	}
	s.lastSweep = time.Time{}
	if err := s.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	left, err := s.DB.ExpiredEventKeys(ctx, 10)
	if err != nil || len(left) != 0 {
		t.Fatalf("after the sweep: %d expired keys left (%v)", len(left), err)
	}
	ins, err = s.InsertEvents(ctx, keyEvents(tenant, "swept", 4))
	if err != nil || fmt.Sprint(ins) != "[false false true true]" {
		t.Fatalf("after the sweep: inserted %v, %v; want the two it never stored", ins, err)
	}

	n, err := s.count(ctx, s.ch, "events", "tenant_id = "+fmt.Sprint(tenant))
	if err != nil || n != 14 {
		t.Fatalf("stored %d events (%v), want 14, each once", n, err)
	}
	dup, err := s.count(ctx, s.ch, "events", "tenant_id = "+fmt.Sprint(tenant)+" AND event_id IN (SELECT event_id FROM events GROUP BY event_id HAVING count() > 1)")
	if err != nil || dup != 0 {
		t.Fatalf("%d rows of events stored twice (%v)", dup, err)
	}
}

// TestLeasedKeyWaits: an event whose key another writer holds (in
// flight) waits for that writer instead of being stored twice or refused
// at once.
func TestLeasedKeyWaits(t *testing.T) {
	chtest.RequireServer(t)
	pgtest.RequireServer(t)
	t.Parallel()
	s, tenant := openInternal(t)
	ctx := t.Context()
	held := keyEvents(tenant, "held", 3)
	_, batch, err := s.DB.ReserveEventKeys(ctx, held, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []bool, 1)
	go func() {
		ins, err := s.InsertEvents(ctx, keyEvents(tenant, "held", 3))
		if err != nil {
			t.Error(err)
		}
		done <- ins
	}()
	select {
	case ins := <-done:
		t.Fatalf("an insert of held keys returned %v before their writer finished", ins)
	case <-time.After(300 * time.Millisecond):
	}
	w := &rowWriter{}
	for i := range held {
		appendEvent(w, &held[i])
	}
	if err := s.ch.insert(ctx, "INSERT INTO events ("+insertCols+")", w.b); err != nil {
		t.Fatal(err)
	}
	if err := s.DB.ConfirmEventKeys(ctx, batch, held); err != nil {
		t.Fatal(err)
	}
	if ins := <-done; countInserted(ins) != 0 {
		t.Fatalf("after the holder stored them: inserted %v, want duplicates", ins)
	}
}
