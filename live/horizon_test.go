package live_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/live"
)

// TestHorizonKeepsCommitOrderGaps: on PostgreSQL another instance's
// transaction may take an event id and commit after a transaction with a
// higher id. The tail holds the higher event back until the lower one
// commits, then delivers both in id order; a gap that never fills (a
// rolled-back insert) holds it back only briefly.
func TestHorizonKeepsCommitOrderGaps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db, tenant, url := postgresWithTenant(t)
	hub := live.New(db, live.Config{Horizon: db.TailHorizon(), Poll: time.Hour})
	hub.Start()
	t.Cleanup(func() { hub.Stop(context.Background()) })
	w := ingest.NewWriter(db, ingest.WriterConfig{Committed: hub.Committed}, nil)
	w.Start()
	t.Cleanup(func() { w.Stop(context.Background()) })
	sub, err := hub.Subscribe(ctx, tenant.ID, tally.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// "Another instance": a transaction of its own that takes an id now
	// and commits later.
	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	insert := func(tx pgx.Tx, eventID string) int64 {
		t.Helper()
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO events (tenant_id, event_id, event, source, ts, received_at, value)
			VALUES ($1, $2, 'x', 'api', now(), now(), 1) RETURNING id`, tenant.ID, eventID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	write := func(eventID string) {
		t.Helper()
		now := time.Now()
		if _, err := w.Write(ctx, []tally.Event{{TenantID: tenant.ID, EventID: eventID, Name: "x", Timestamp: now, ReceivedAt: now, Props: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
	}
	var pending []*live.Event
	next := func() *live.Event {
		t.Helper()
		for len(pending) == 0 {
			select {
			case batch := <-sub.C:
				pending = append(pending, batch...)
			case <-sub.Dropped():
				t.Fatalf("dropped: %s", sub.Reason())
			case <-time.After(30 * time.Second): // a guard against a hang, not an assertion
				t.Fatal("no event reached the subscriber")
			}
		}
		e := pending[0]
		pending = pending[1:]
		return e
	}

	slow, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lowID := insert(slow, "late")
	write("early") // a higher id, committed first
	// Give the tail every chance to go past the open transaction's id.
	time.Sleep(time.Second)
	select {
	case batch := <-sub.C:
		t.Fatalf("%q (id %d) delivered while id %d is uncommitted: a reader would skip it", batch[0].EventID, batch[0].ID, lowID)
	default:
	}
	if err := slow.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if e := next(); e.EventID != "late" || e.ID != lowID {
		t.Fatalf("first delivered %q (id %d), want late (id %d)", e.EventID, e.ID, lowID)
	}
	if e := next(); e.EventID != "early" {
		t.Fatalf("then %q, want early", e.EventID)
	}

	// A gap that never fills: its id is rolled back.
	gone, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	insert(gone, "rolled-back")
	if err := gone.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	write("after-gap")
	if e := next(); e.EventID != "after-gap" {
		t.Fatalf("after a rolled-back id: %q, want after-gap", e.EventID)
	}
}
