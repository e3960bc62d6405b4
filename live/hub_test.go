package live_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/live"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// TestSlowSubscriberDropped: a subscriber that never reads is dropped once
// its buffer is full, with ReasonSlow, while every write goes on being
// committed and a subscriber that keeps up gets every event in order.
func TestSlowSubscriberDropped(t *testing.T) {
	t.Parallel()
	db, tenant := sqlitetest.WithTenant(t)
	hub := live.New(db, live.Config{Buffer: 4, Batch: 8})
	hub.Start()
	t.Cleanup(func() { hub.Stop(t.Context()) })
	w := ingest.NewWriter(db, ingest.WriterConfig{Committed: hub.Committed}, nil)
	w.Start()
	t.Cleanup(func() { w.Stop(t.Context()) })

	slow, err := hub.Subscribe(t.Context(), tenant.ID, tally.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fast, err := hub.Subscribe(t.Context(), tenant.ID, tally.EventFilter{Name: "x.*"})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()

	// The subscriber that reads takes each event before the next write;
	// the one that never reads fills its buffer and is dropped.
	const n = 40
	now := time.Now()
	for i := range n {
		e := tally.Event{TenantID: tenant.ID, EventID: "e" + strconv.Itoa(i), Name: "x.done", Timestamp: now, ReceivedAt: now, Props: []byte("{}")}
		inserted, err := w.Write(t.Context(), []tally.Event{e})
		if err != nil || !inserted[0] {
			t.Fatalf("write %d while a subscriber is stuck: %v %v", i, inserted, err)
		}
		select {
		case got := <-fast.C:
			if len(got) != 1 || got[0].EventID != e.EventID {
				t.Fatalf("the subscriber that reads got %d events (first %q), want %q", len(got), got[0].EventID, e.EventID)
			}
		case <-fast.Dropped():
			t.Fatalf("the subscriber that reads was dropped: %s", fast.Reason())
		case <-time.After(30 * time.Second): // a guard against a hang, not an assertion
			t.Fatalf("event %d never reached the subscriber that reads", i)
		}
	}
	select {
	case <-slow.Dropped():
	case <-time.After(30 * time.Second): // a guard against a hang, not an assertion
		t.Fatal("the subscriber that never reads was not dropped")
	}
	if slow.Reason() != live.ReasonSlow {
		t.Fatalf("dropped for %q, want %q", slow.Reason(), live.ReasonSlow)
	}
	if len(slow.C) != 4 {
		t.Fatalf("the dropped subscriber holds %d deliveries, want its buffer's 4", len(slow.C))
	}
	if all, err := db.TailEvents(t.Context(), tenant.ID, tally.EventFilter{}, 0, 1000); err != nil || len(all) != n {
		t.Fatalf("the log holds %d events (%v), want %d", len(all), err, n)
	}
	if hub.Subscribers() != 1 {
		t.Fatalf("%d subscribers open, want the one that reads", hub.Subscribers())
	}
}

// TestStopEndsSubscriptions: stopping the hub ends every subscription
// with ReasonShutdown, and a later Subscribe is refused.
func TestStopEndsSubscriptions(t *testing.T) {
	t.Parallel()
	db, tenant := sqlitetest.WithTenant(t)
	hub := live.New(db, live.Config{})
	hub.Start()
	s, err := hub.Subscribe(t.Context(), tenant.ID, tally.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-s.Dropped()
	if s.Reason() != live.ReasonShutdown {
		t.Fatalf("reason %q", s.Reason())
	}
	if _, err := hub.Subscribe(t.Context(), tenant.ID, tally.EventFilter{}); tally.ErrorCodeOf(err) != tally.EUnavailable {
		t.Fatalf("Subscribe after Stop: %v", err)
	}
}
