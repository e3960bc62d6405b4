package ingest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tallyhq/tally"
)

func prepared(t *testing.T, v *Validator, tn *tally.Tenant, n int) []tally.Event {
	t.Helper()
	out := make([]tally.Event, n)
	for i := range out {
		e, err := v.Prepare(tally.Event{Name: "auto.track", UserID: fmt.Sprint("u", i), Value: 1}, tn, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = e
	}
	return out
}

func TestBufferDropsWhenFull(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	m := NewMetrics(prometheus.NewRegistry(), 0)
	w := startWriter(t, db, WriterConfig{}, m)
	b := NewBuffer(NewPipeline(w, nil, m), 2, m) // not started: nothing drains
	events := prepared(t, NewValidator(Config{}), tn, 4)

	start := time.Now()
	got := []bool{b.Track(events[0]), b.Track(events[1]), b.Track(events[2]), b.Track(events[3])}
	if time.Since(start) > time.Second {
		t.Fatal("Track blocked")
	}
	if fmt.Sprint(got) != "[true true false false]" {
		t.Fatalf("Track = %v, want the buffer of 2 to keep 2", got)
	}
	if n := testutil.ToFloat64(m.dropped); n != 2 {
		t.Fatalf("sbh_autotrack_dropped_total = %v, want 2", n)
	}

	// Stop flushes what was kept, even though Start was never called.
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, db, tn.ID); n != 2 {
		t.Fatalf("%d rows after Stop, want 2", n)
	}
	if b.Track(events[3]) {
		t.Fatal("Track after Stop kept the event")
	}
	if n := testutil.ToFloat64(m.dropped); n != 3 {
		t.Fatalf("sbh_autotrack_dropped_total = %v after a Track past Stop, want 3", n)
	}
	if got := eventsCounter(m, tn.ID, "auto.track", "api"); got != 2 {
		t.Fatalf("events counter %v, want 2", got)
	}
}

func TestBufferFlushOnStop(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	cs := &countingStore{EventStore: db}
	m := NewMetrics(nil, 0)
	w := startWriter(t, cs, WriterConfig{}, m)
	b := NewBuffer(NewPipeline(w, nil, m), 0, m)
	b.Start()
	const n = 1700
	for _, e := range prepared(t, NewValidator(Config{}), tn, n) {
		if !b.Track(e) {
			t.Fatal("Track dropped an event from a buffer with room")
		}
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := countRows(t, db, tn.ID); got != n {
		t.Fatalf("%d rows after Stop, want %d", got, n)
	}
	for _, batch := range cs.Batches() {
		if len(batch) > maxBufferBatch {
			t.Errorf("a transaction of %d buffered events, more than %d", len(batch), maxBufferBatch)
		}
	}
	if d := testutil.ToFloat64(m.dropped); d != 0 {
		t.Fatalf("%v dropped", d)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestBufferCountsFailedWrites(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	m := NewMetrics(nil, 0)
	w := startWriter(t, failingStore{db}, WriterConfig{}, m)
	b := NewBuffer(NewPipeline(w, nil, m), 10, m)
	b.Start()
	for _, e := range prepared(t, NewValidator(Config{}), tn, 3) {
		b.Track(e)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := testutil.ToFloat64(m.dropped); d != 3 {
		t.Fatalf("sbh_autotrack_dropped_total = %v after failed writes, want 3", d)
	}
}
