package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// openDB opens a fresh SQLite file with one tenant.
func openDB(t *testing.T) (*sqlite.DB, *tally.Tenant) {
	t.Helper()
	return sqlitetest.WithTenant(t)
}

// startWriter starts a writer and stops it when the test ends (before the
// database closes).
func startWriter(t *testing.T, store tally.EventStore, cfg WriterConfig, m *Metrics) *Writer {
	t.Helper()
	w := NewWriter(store, cfg, m)
	w.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return w
}

var evNow = time.Now().UTC().Truncate(time.Microsecond)

// mkEvents returns n valid events of tenant with ids prefix-0, prefix-1, …
// and user id prefix.
func mkEvents(tenant int64, prefix string, n int) []tally.Event {
	out := make([]tally.Event, n)
	for i := range out {
		out[i] = tally.Event{TenantID: tenant, EventID: fmt.Sprintf("%s-%d", prefix, i), Name: "test.event",
			UserID: prefix, Source: "api", Timestamp: evNow, ReceivedAt: evNow, Value: 1, Props: []byte(`{}`)}
	}
	return out
}

// countRows counts a tenant's stored events.
func countRows(t *testing.T, db *sqlite.DB, tenant int64) int64 {
	t.Helper()
	n, err := db.CountEvents(context.Background(), tenant, evNow.Add(-24*time.Hour), evNow.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// userRows lists the stored events of one end user.
func userRows(t *testing.T, db *sqlite.DB, tenant int64, user string) []tally.Event {
	t.Helper()
	evs, _, err := db.ListEvents(context.Background(), tenant, tally.EventFilter{UserID: user, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// countingStore records every InsertEvents batch and delegates.
type countingStore struct {
	tally.EventStore
	mu      sync.Mutex
	batches [][]tally.Event
}

func (s *countingStore) InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error) {
	s.mu.Lock()
	s.batches = append(s.batches, slices.Clone(events))
	s.mu.Unlock()
	return s.EventStore.InsertEvents(ctx, events)
}

func (s *countingStore) Batches() [][]tally.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.batches)
}

// blockingStore announces each InsertEvents on entered and holds it until
// release is closed.
type blockingStore struct {
	tally.EventStore
	entered chan int
	release chan struct{}
}

func newBlockingStore(s tally.EventStore) *blockingStore {
	return &blockingStore{EventStore: s, entered: make(chan int, 100), release: make(chan struct{})}
}

func (s *blockingStore) InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error) {
	s.entered <- len(events)
	<-s.release
	return s.EventStore.InsertEvents(ctx, events)
}

// failingStore fails every write.
type failingStore struct{ tally.EventStore }

var errDiskFull = tally.Internal(errors.New("disk full"))

func (failingStore) InsertEvents(context.Context, []tally.Event) ([]bool, error) {
	return nil, errDiskFull
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func histCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather histogram: %v", err)
	}
	return mfs[0].GetMetric()[0].GetHistogram().GetSampleCount()
}

type writeResult struct {
	inserted []bool
	err      error
}

func goWrite(w *Writer, ctx context.Context, events []tally.Event) <-chan writeResult {
	ch := make(chan writeResult, 1)
	go func() {
		ins, err := w.Write(ctx, events)
		ch <- writeResult{ins, err}
	}()
	return ch
}

func TestWriterGroupCommit(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	cs := &countingStore{EventStore: db}
	m := NewMetrics(prometheus.NewRegistry(), 0)
	w := startWriter(t, cs, WriterConfig{MaxDelay: 5 * time.Millisecond}, m)

	const requests, per = 64, 3
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			user := fmt.Sprintf("u%d", i)
			events := mkEvents(tn.ID, user, per)
			ins, err := w.Write(context.Background(), events)
			if err != nil {
				t.Errorf("Write: %v", err)
				return
			}
			for j := range events {
				if !ins[j] || events[j].ID == 0 {
					t.Errorf("%s: inserted %v, id %d", user, ins[j], events[j].ID)
				}
			}
			// Committed before Write returned: readable at once.
			if rows := userRows(t, db, tn.ID, user); len(rows) != per {
				t.Errorf("%s: %d rows readable after Write, want %d", user, len(rows), per)
			}
		})
	}
	wg.Wait()

	batches := cs.Batches()
	if len(batches) >= requests {
		t.Fatalf("%d transactions for %d requests: no group commit", len(batches), requests)
	}
	t.Logf("%d requests in %d transactions", requests, len(batches))
	if n := histCount(t, m.batchSize); n != uint64(len(batches)) {
		t.Errorf("batch size histogram has %d samples, want %d", n, len(batches))
	}
	if n := histCount(t, m.commitSeconds); n != uint64(len(batches)) {
		t.Errorf("commit histogram has %d samples, want %d", n, len(batches))
	}
	if d := testutil.ToFloat64(m.queueDepth); d != 0 || w.Depth() != 0 {
		t.Errorf("queue depth %v / %d after all writes, want 0", d, w.Depth())
	}
	if n := countRows(t, db, tn.ID); n != requests*per {
		t.Fatalf("%d rows, want %d", n, requests*per)
	}
}

func TestWriterNeverSplitsRequests(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	cs := &countingStore{EventStore: db}
	const maxBatch = 8
	w := startWriter(t, cs, WriterConfig{MaxBatch: maxBatch, MaxDelay: 3 * time.Millisecond}, nil)

	sizes := map[string]int{}
	var wg sync.WaitGroup
	for i := range 40 {
		user, n := fmt.Sprintf("u%d", i), 1+i%5
		if i == 7 {
			n = 3 * maxBatch // larger than a batch: a transaction of its own
		}
		sizes[user] = n
		wg.Go(func() {
			if _, err := w.Write(context.Background(), mkEvents(tn.ID, user, n)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	where := map[string]int{} // user -> batch
	for b, batch := range cs.Batches() {
		if len(batch) > maxBatch && len(batch) != 3*maxBatch {
			t.Errorf("batch %d has %d events, more than %d", b, len(batch), maxBatch)
		}
		count := map[string]int{}
		for _, e := range batch {
			count[e.UserID]++
		}
		for user, n := range count {
			if prev, ok := where[user]; ok {
				t.Errorf("request %s split over batches %d and %d", user, prev, b)
			}
			where[user] = b
			if n != sizes[user] {
				t.Errorf("batch %d holds %d of the %d events of %s", b, n, sizes[user], user)
			}
		}
		if count["u7"] > 0 && len(batch) != 3*maxBatch {
			t.Errorf("the oversized request shares batch %d (%d events)", b, len(batch))
		}
	}
	if len(where) != len(sizes) {
		t.Fatalf("%d of %d requests written", len(where), len(sizes))
	}
}

func TestWriterDedup(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	w := startWriter(t, db, WriterConfig{}, nil)
	ctx := context.Background()
	ev := func(tenant int64, id, user string) tally.Event {
		e := mkEvents(tenant, user, 1)[0]
		e.EventID = id
		return e
	}

	first := []tally.Event{ev(tn.ID, "x", "a"), ev(tn.ID, "x", "b"), ev(tn.ID, "y", "c")}
	ins, err := w.Write(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ins) != "[true false true]" {
		t.Fatalf("within one request: inserted %v", ins)
	}
	if first[0].ID == 0 || first[1].ID != 0 || first[2].ID == 0 {
		t.Fatalf("ids %d %d %d: want set on inserted events only", first[0].ID, first[1].ID, first[2].ID)
	}

	ins, err = w.Write(ctx, []tally.Event{ev(tn.ID, "x", "d"), ev(tn.ID, "z", "e"), ev(tn.ID+1, "x", "f")})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ins) != "[false true true]" {
		t.Fatalf("across requests: inserted %v (the other tenant's x is new)", ins)
	}

	// Concurrent requests with the same ids: each id is stored once.
	var wg sync.WaitGroup
	var mu sync.Mutex
	insertedCount := 0
	for i := range 10 {
		wg.Go(func() {
			ins, err := w.Write(ctx, []tally.Event{ev(tn.ID, "same", fmt.Sprint("s", i)), ev(tn.ID, "x", "g")})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, b := range ins {
				if b {
					insertedCount++
				}
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if insertedCount != 1 {
		t.Fatalf("%d inserted of the concurrent duplicates, want 1", insertedCount)
	}
	if n := countRows(t, db, tn.ID); n != 4 { // x, y, z, same
		t.Fatalf("%d rows, want 4", n)
	}
	if rows := userRows(t, db, tn.ID, "a"); len(rows) != 1 || rows[0].EventID != "x" {
		t.Fatalf("the first x stored should win: %+v", rows)
	}
}

func TestWriterQueueFull(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	bs := newBlockingStore(db)
	m := NewMetrics(nil, 0)
	w := startWriter(t, bs, WriterConfig{QueueSize: 5, MaxDelay: -1}, m)
	ctx := context.Background()

	inFlight := goWrite(w, ctx, mkEvents(tn.ID, "first", 1))
	<-bs.entered // the first batch is in its transaction, not waiting
	queued := goWrite(w, ctx, mkEvents(tn.ID, "queued", 5))
	waitFor(t, "5 events queued", func() bool { return w.Depth() == 5 })
	if d := testutil.ToFloat64(m.queueDepth); d != 5 {
		t.Fatalf("queue depth gauge %v, want 5", d)
	}

	start := time.Now()
	_, err := w.Write(ctx, mkEvents(tn.ID, "refused", 1))
	if !errors.Is(err, ErrQueueFull) || tally.ErrorCodeOf(err) != tally.EUnavailable || tally.ErrorMessageOf(err) != "ingest queue full" {
		t.Fatalf("Write to a full queue: %v, want EUnavailable ingest queue full", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("a full queue blocked Write")
	}
	if w.Depth() != 5 {
		t.Fatalf("depth %d after a refused write, want 5", w.Depth())
	}

	close(bs.release)
	for _, ch := range []<-chan writeResult{inFlight, queued} {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if n := countRows(t, db, tn.ID); n != 6 {
		t.Fatalf("%d rows, want 6", n)
	}
	if rows := userRows(t, db, tn.ID, "refused"); len(rows) != 0 {
		t.Fatal("a refused event was stored")
	}
	// With room again, writes pass.
	if _, err := w.Write(ctx, mkEvents(tn.ID, "later", 5)); err != nil {
		t.Fatal(err)
	}
}

func TestWriterStopDrains(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	bs := newBlockingStore(db)
	cs := &countingStore{EventStore: bs}
	w := NewWriter(cs, WriterConfig{MaxBatch: 4, MaxDelay: -1}, nil)
	w.Start()
	ctx := context.Background()

	results := []<-chan writeResult{goWrite(w, ctx, mkEvents(tn.ID, "first", 1))}
	<-bs.entered
	for i := range 10 {
		results = append(results, goWrite(w, ctx, mkEvents(tn.ID, fmt.Sprint("q", i), 2)))
	}
	waitFor(t, "20 events queued", func() bool { return w.Depth() == 20 })

	stopped := make(chan error, 1)
	go func() { stopped <- w.Stop(ctx) }()
	waitFor(t, "Stop to begin", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.closing
	})
	if _, err := w.Write(ctx, mkEvents(tn.ID, "late", 1)); !errors.Is(err, ErrShuttingDown) || tally.ErrorCodeOf(err) != tally.EUnavailable {
		t.Fatalf("Write during Stop: %v, want EUnavailable shutting down", err)
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) before the queue drained", err)
	case <-time.After(20 * time.Millisecond):
	}

	close(bs.release)
	if err := <-stopped; err != nil {
		t.Fatalf("Stop: %v", err)
	}
	// Everything queued is committed by the time Stop returns.
	if n := countRows(t, db, tn.ID); n != 21 {
		t.Fatalf("%d rows after Stop, want 21", n)
	}
	for _, ch := range results {
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a Write never returned")
		}
	}
	for _, b := range cs.Batches() {
		if len(b) > 4 {
			t.Errorf("batch of %d events, MaxBatch is 4", len(b))
		}
	}
	if _, err := w.Write(ctx, mkEvents(tn.ID, "after", 1)); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Write after Stop: %v, want ErrShuttingDown", err)
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if rows := userRows(t, db, tn.ID, "late"); len(rows) != 0 {
		t.Fatal("an event refused during Stop was stored")
	}
}

func TestWriterStopWithoutStart(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	w := NewWriter(db, WriterConfig{}, nil)
	res := goWrite(w, context.Background(), mkEvents(tn.ID, "a", 3))
	waitFor(t, "queued", func() bool { return w.Depth() == 3 })
	if err := w.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := <-res; r.err != nil || len(r.inserted) != 3 {
		t.Fatalf("Write: %+v", r)
	}
	if n := countRows(t, db, tn.ID); n != 3 {
		t.Fatalf("%d rows, want 3", n)
	}
}

func TestWriterStopTimeout(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	bs := newBlockingStore(db)
	w := NewWriter(bs, WriterConfig{MaxDelay: -1}, nil)
	w.Start()
	ctx := context.Background()
	inFlight := goWrite(w, ctx, mkEvents(tn.ID, "first", 1))
	<-bs.entered
	queued := goWrite(w, ctx, mkEvents(tn.ID, "queued", 1))
	waitFor(t, "queued", func() bool { return w.Depth() == 1 })

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := w.Stop(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want deadline exceeded", err)
	}
	if r := <-queued; !errors.Is(r.err, ErrShuttingDown) {
		t.Fatalf("queued Write: %v, want ErrShuttingDown", r.err)
	}
	close(bs.release)
	if r := <-inFlight; r.err == nil {
		t.Fatal("the cancelled transaction reported success")
	}
	waitFor(t, "writer loop to end", func() bool {
		select {
		case <-w.done:
			return true
		default:
			return false
		}
	})
	if n := countRows(t, db, tn.ID); n != 0 {
		t.Fatalf("%d rows, want none", n)
	}
}

func TestWriterStoreError(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	w := startWriter(t, failingStore{db}, WriterConfig{MaxDelay: 5 * time.Millisecond}, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ins, err := w.Write(context.Background(), mkEvents(tn.ID, fmt.Sprint("u", i), 2))
			if !errors.Is(err, errDiskFull) || ins != nil {
				t.Errorf("Write: %v, %v; want the store's error", ins, err)
			}
		})
	}
	wg.Wait()
}

func TestWriterContextCancel(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	bs := newBlockingStore(db)
	w := startWriter(t, bs, WriterConfig{MaxDelay: -1}, nil)

	// The in-flight request's context ends: it still gets the true outcome.
	ctx1, cancel1 := context.WithCancel(context.Background())
	inFlight := goWrite(w, ctx1, mkEvents(tn.ID, "first", 1))
	<-bs.entered
	ctx2, cancel2 := context.WithCancel(context.Background())
	queued := goWrite(w, ctx2, mkEvents(tn.ID, "queued", 4))
	waitFor(t, "queued", func() bool { return w.Depth() == 4 })

	cancel1()
	cancel2()
	if r := <-queued; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("queued Write: %v, want context.Canceled", r.err)
	}
	if w.Depth() != 0 {
		t.Fatalf("depth %d after a withdrawn request", w.Depth())
	}
	close(bs.release)
	if r := <-inFlight; r.err != nil || !r.inserted[0] {
		t.Fatalf("in-flight Write: %+v", r)
	}
	if _, err := w.Write(context.Background(), mkEvents(tn.ID, "probe", 1)); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, db, tn.ID); n != 2 {
		t.Fatalf("%d rows, want 2 (the withdrawn request is not written)", n)
	}
	if ins, err := w.Write(context.Background(), nil); err != nil || len(ins) != 0 {
		t.Fatalf("empty Write: %v, %v", ins, err)
	}
}
