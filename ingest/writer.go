package ingest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tallyhq/tally"
)

// Errors of Writer.Write that mean "try again later": the caller answers
// 503 with Retry-After. They are EUnavailable *tally.Error values, and
// errors.Is tells them apart.
var (
	ErrQueueFull    = &tally.Error{Code: tally.EUnavailable, Message: "ingest queue full"}
	ErrShuttingDown = &tally.Error{Code: tally.EUnavailable, Message: "shutting down"}
)

// WriterConfig tunes a Writer. The zero value is the documented default.
type WriterConfig struct {
	// QueueSize is the most events that may wait for a transaction
	// (default 10000). Past it Write fails at once with ErrQueueFull.
	QueueSize int
	// MaxBatch is how many events one transaction takes at most (default
	// 1000); a single request larger than that gets a transaction of its
	// own, since requests are never split.
	MaxBatch int
	// MaxDelay is how long the oldest waiting request may wait for others
	// to fill its batch (default 2ms; negative: never wait).
	MaxDelay time.Duration
	// Committed, when set, is called after each successful commit (and
	// after its requests were answered) with the transaction's events,
	// inserted[i] telling which were new: the live tail's hook
	// (live.Hub.Committed). It runs on the writer's goroutine and must
	// not block.
	Committed func(events []tally.Event, inserted []bool)
}

// Writer is the group-commit writer: one goroutine takes whatever requests
// are queued (up to MaxBatch events, waiting up to MaxDelay for more),
// stores them with one EventStore.InsertEvents call (one transaction), and
// only then answers each waiting Write. Many concurrent small requests
// thereby share one commit (one fsync).
//
// It is a tally.Runner: call Start before Write, and Stop before closing
// the store.
type Writer struct {
	store tally.EventStore
	cfg   WriterConfig
	m     *Metrics

	mu      sync.Mutex
	queue   []*writeReq
	depth   int // events in queue
	closing bool
	wake    chan struct{} // buffered(1): something changed

	// failed is the last failed commit, nil once one succeeded since.
	failed atomic.Pointer[WriteFailure]

	startOnce sync.Once
	done      chan struct{} // closed when the loop returned
	ctx       context.Context
	cancel    context.CancelFunc
}

var _ tally.Runner = (*Writer)(nil)

// writeReq is one Write waiting for its transaction.
type writeReq struct {
	events   []tally.Event
	at       time.Time // when it was queued
	inserted []bool
	err      error
	done     chan struct{}
}

// NewWriter returns a Writer that stores into store and reports to m (nil:
// no metrics). It does not count sbh_analytics_events_total: Pipeline does.
func NewWriter(store tally.EventStore, cfg WriterConfig, m *Metrics) *Writer {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 10000
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 2 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Writer{
		store:  store,
		cfg:    cfg,
		m:      m,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Start starts the committing goroutine. Calling it again does nothing.
func (w *Writer) Start() {
	w.startOnce.Do(func() { go w.run() })
}

// Write queues events (of any tenants) and blocks until the transaction
// that holds them committed or failed. It returns, per event, whether it
// was inserted (false: a duplicate (tenant, event_id), the first stored
// wins, also within one request) and sets ID on the inserted events. The
// events of one call are never split across transactions.
//
// It fails at once, writing nothing, with ErrQueueFull when the queue
// already holds events and adding these would pass QueueSize (a request
// larger than QueueSize is accepted into an empty queue), and with
// ErrShuttingDown once Stop began. When the store fails, every request of
// that transaction gets its error. When ctx ends while the events still
// wait, they are withdrawn and ctx's error returned; once their transaction
// began, Write waits for its outcome, so that the answer is always true.
func (w *Writer) Write(ctx context.Context, events []tally.Event) ([]bool, error) {
	if len(events) == 0 {
		return []bool{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &writeReq{events: events, at: time.Now(), done: make(chan struct{})}
	w.mu.Lock()
	switch {
	case w.closing:
		w.mu.Unlock()
		return nil, ErrShuttingDown
	case w.depth > 0 && w.depth+len(events) > w.cfg.QueueSize:
		w.mu.Unlock()
		return nil, ErrQueueFull
	}
	w.queue = append(w.queue, r)
	w.depth += len(events)
	w.m.setDepth(w.depth)
	w.mu.Unlock()
	w.signal()

	select {
	case <-r.done:
	case <-ctx.Done():
		w.mu.Lock()
		if i := slices.Index(w.queue, r); i >= 0 {
			w.queue = slices.Delete(w.queue, i, i+1)
			w.depth -= len(events)
			w.m.setDepth(w.depth)
			w.mu.Unlock()
			return nil, ctx.Err()
		}
		w.mu.Unlock()
		<-r.done
	}
	return r.inserted, r.err
}

// Depth returns the number of events waiting for a transaction (not
// counting the one being committed).
func (w *Writer) Depth() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.depth
}

// Stop stops accepting writes, commits everything queued and returns once
// the last transaction ended; close the store only after that. It starts
// the goroutine if Start was never called, so queued writes are never
// stranded. When ctx ends first, the transaction in progress is cancelled,
// every request still queued fails with ErrShuttingDown, and ctx's error is
// returned.
func (w *Writer) Stop(ctx context.Context) error {
	w.Start()
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	w.signal()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
	}
	w.cancel()
	w.mu.Lock()
	reqs := w.queue
	w.queue, w.depth = nil, 0
	w.m.setDepth(0)
	w.mu.Unlock()
	for _, r := range reqs {
		r.err = ErrShuttingDown
		close(r.done)
	}
	return ctx.Err()
}

// signal wakes the loop without blocking.
func (w *Writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run is the committing goroutine.
func (w *Writer) run() {
	defer close(w.done)
	defer w.cancel()
	for {
		reqs := w.take()
		if reqs == nil {
			return
		}
		w.commit(reqs)
	}
}

// take waits for the next batch: the queued requests, in order, up to
// MaxBatch events (at least one request), once MaxBatch events wait, the
// oldest waited MaxDelay, or Stop began. It returns nil when stopping with
// nothing queued.
func (w *Writer) take() []*writeReq {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if len(w.queue) == 0 {
			if w.closing {
				return nil
			}
			w.mu.Unlock()
			<-w.wake
			w.mu.Lock()
			continue
		}
		wait := time.Until(w.queue[0].at.Add(w.cfg.MaxDelay))
		if w.closing || w.depth >= w.cfg.MaxBatch || wait <= 0 {
			break
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-timer.C:
		}
		w.mu.Lock()
	}
	n, events := 0, 0
	for n < len(w.queue) {
		k := len(w.queue[n].events)
		if n > 0 && events+k > w.cfg.MaxBatch {
			break
		}
		events += k
		n++
	}
	reqs := slices.Clone(w.queue[:n])
	rest := copy(w.queue, w.queue[n:])
	clear(w.queue[rest:])
	w.queue = w.queue[:rest]
	w.depth -= events
	w.m.setDepth(w.depth)
	return reqs
}

// WriteFailure is a commit that failed: when, and the store's error.
type WriteFailure struct {
	At  time.Time
	Err error
}

// LastFailure returns the last failed commit when no commit succeeded
// since, else nil: readiness reports writes failing from it.
func (w *Writer) LastFailure() *WriteFailure { return w.failed.Load() }

// commit stores the events of reqs in one transaction and answers them.
func (w *Writer) commit(reqs []*writeReq) {
	var n int
	for _, r := range reqs {
		n += len(r.events)
	}
	events := make([]tally.Event, 0, n)
	for _, r := range reqs {
		events = append(events, r.events...)
	}
	start := time.Now()
	inserted, err := w.store.InsertEvents(w.ctx, events)
	w.m.observeCommit(n, time.Since(start))
	if err == nil && len(inserted) != n {
		err = tally.Internal(fmt.Errorf("ingest: store reported %d outcomes for %d events", len(inserted), n))
	}
	if err != nil {
		w.failed.Store(&WriteFailure{At: time.Now(), Err: err})
	} else if w.failed.Load() != nil {
		w.failed.Store(nil)
	}
	off := 0
	for _, r := range reqs {
		k := len(r.events)
		if err != nil {
			r.err = err
		} else {
			r.inserted = inserted[off : off+k : off+k]
			for i := range r.events {
				if r.inserted[i] {
					r.events[i].ID = events[off+i].ID
				}
			}
		}
		off += k
		close(r.done)
	}
	if err == nil && w.cfg.Committed != nil {
		w.cfg.Committed(events, inserted)
	}
}
