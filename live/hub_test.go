package live_test

import (
	"bytes"
	"encoding/json"
	"slices"
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

// TestSoleWriterMemory: with SoleWriter, subscribers get every event in id
// order whether it came through the writer (taken from its last commits)
// or was inserted into the log by another writer (the ids show it; read
// from the log), across tenants, and after a burst larger than the
// commits kept in memory.
func TestSoleWriterMemory(t *testing.T) {
	t.Parallel()
	db, tenant := sqlitetest.WithTenant(t)
	owner := &tally.User{Email: "other@example.com", Name: "Other"}
	if err := db.CreateUser(t.Context(), owner, "hash"); err != nil {
		t.Fatal(err)
	}
	other := &tally.Tenant{Slug: "other", Name: "Other"}
	if err := db.CreateTenant(t.Context(), other, owner.ID); err != nil {
		t.Fatal(err)
	}
	hub := live.New(db, live.Config{SoleWriter: true, Recent: 100, Poll: time.Hour}) // no catch-up by polling
	hub.Start()
	t.Cleanup(func() { hub.Stop(t.Context()) })
	w := ingest.NewWriter(db, ingest.WriterConfig{Committed: hub.Committed}, nil)
	w.Start()
	t.Cleanup(func() { w.Stop(t.Context()) })
	sub, err := hub.Subscribe(t.Context(), tenant.ID, tally.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	now := time.Now()
	ev := func(tenantID int64, id string) tally.Event {
		return tally.Event{TenantID: tenantID, EventID: id, Name: "x", Timestamp: now, ReceivedAt: now, Props: []byte("{}")}
	}
	var want []string
	write := func(events ...tally.Event) {
		t.Helper()
		if _, err := w.Write(t.Context(), events); err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.TenantID == tenant.ID {
				want = append(want, e.EventID)
			}
		}
	}
	write(ev(tenant.ID, "w1"), ev(other.ID, "o1"), ev(tenant.ID, "w2"))
	// Another writer: its row's id falls between two of the writer's
	// commits, so the next commit is not taken from memory alone.
	if _, err := db.InsertEvents(t.Context(), []tally.Event{ev(tenant.ID, "foreign")}); err != nil {
		t.Fatal(err)
	}
	want = append(want, "foreign")
	write(ev(tenant.ID, "w3"))
	// tally's own activity never shows in the tail.
	own := ev(tenant.ID, "own")
	own.Name, own.Source = tally.EventOwnAPIRequest, tally.OwnSource
	if _, err := w.Write(t.Context(), []tally.Event{own}); err != nil {
		t.Fatal(err)
	}
	write(ev(other.ID, "o2"))
	// A burst of more events than the hub keeps, in commits the reader
	// may fall behind.
	var burst []tally.Event
	for i := range 500 {
		burst = append(burst, ev(tenant.ID, "b"+strconv.Itoa(i)))
	}
	for i := 0; i < len(burst); i += 100 {
		write(burst[i : i+100]...)
	}
	write(ev(tenant.ID, "w4"))

	var got []string
	var last int64
	for len(got) < len(want) {
		select {
		case batch := <-sub.C:
			for _, e := range batch {
				if e.ID <= last {
					t.Fatalf("event %q (id %d) after id %d: not in id order", e.EventID, e.ID, last)
				}
				last = e.ID
				got = append(got, e.EventID)
			}
		case <-sub.Dropped():
			t.Fatalf("dropped: %s", sub.Reason())
		case <-time.After(30 * time.Second): // a guard against a hang, not an assertion
			t.Fatalf("got %d of %d events; the last %v", len(got), len(want), got[max(0, len(got)-3):])
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d events, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// writes records each Write.
type writes [][]byte

func (w *writes) Write(p []byte) (int, error) {
	*w = append(*w, slices.Clone(p))
	return len(p), nil
}

// TestFramesSharedAndWrittenOncePerDelivery: a delivery's frames carry the
// public id and the event's JSON; a subscriber without a filter writes a
// whole read in one Write, one with a filter writes only its events, and
// both deliveries come from one read of a commit.
func TestFramesSharedAndWrittenOncePerDelivery(t *testing.T) {
	t.Parallel()
	db, tenant := sqlitetest.WithTenant(t)
	public := func(_, id int64) int64 { return id*10 + 7 }
	hub := live.New(db, live.Config{Poll: time.Hour, PublicID: public})
	hub.Start()
	t.Cleanup(func() { hub.Stop(t.Context()) })
	w := ingest.NewWriter(db, ingest.WriterConfig{Committed: hub.Committed}, nil)
	w.Start()
	t.Cleanup(func() { w.Stop(t.Context()) })
	all, err := hub.Subscribe(t.Context(), tenant.ID, tally.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	some, err := hub.Subscribe(t.Context(), tenant.ID, tally.EventFilter{Name: "a.*"})
	if err != nil {
		t.Fatal(err)
	}
	defer some.Close()

	now := time.Now()
	var evs []tally.Event
	for i := range 6 {
		name := "a.x"
		if i%2 == 1 {
			name = "b.x"
		}
		evs = append(evs, tally.Event{TenantID: tenant.ID, EventID: "e" + strconv.Itoa(i), Name: name, Timestamp: now, ReceivedAt: now, Props: []byte(`{"i":` + strconv.Itoa(i) + `}`)})
	}
	if _, err := w.Write(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	receive := func(s *live.Subscription) []*live.Event {
		t.Helper()
		select {
		case batch := <-s.C:
			return batch
		case <-time.After(30 * time.Second): // a guard against a hang, not an assertion
			t.Fatal("no delivery")
			return nil
		}
	}
	check := func(name string, batch []*live.Event, wantEvents, wantWrites int) {
		t.Helper()
		if len(batch) != wantEvents {
			t.Fatalf("%s: a delivery of %d events, want %d", name, len(batch), wantEvents)
		}
		var want []byte
		for _, e := range batch {
			var shown tally.Event
			if err := json.Unmarshal(e.JSON, &shown); err != nil || shown.ID != public(0, e.ID) || shown.EventID != e.EventID {
				t.Fatalf("%s: JSON %s (%v), want event %s with public id %d", name, e.JSON, err, e.EventID, public(0, e.ID))
			}
			frame := live.AppendFrame(nil, public(0, e.ID), e.JSON)
			if !bytes.Equal(e.Frame, frame) {
				t.Fatalf("%s: frame %q, want %q", name, e.Frame, frame)
			}
			want = append(want, frame...)
		}
		var got writes
		if err := live.WriteFrames(&got, batch); err != nil {
			t.Fatal(err)
		}
		if len(got) != wantWrites || !bytes.Equal(bytes.Join(got, nil), want) {
			t.Fatalf("%s: %d writes of %q, want %d of %q", name, len(got), bytes.Join(got, nil), wantWrites, want)
		}
	}
	check("no filter", receive(all), 6, 1)
	check("a.*", receive(some), 3, 3)
}
