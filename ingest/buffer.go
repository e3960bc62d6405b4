package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// maxBufferBatch is how many buffered events one Submit takes at most.
const maxBufferBatch = 500

// Buffer is a bounded, non-blocking queue in front of a Pipeline for
// producers that must never wait on storage: auto-tracking inside a request
// and in-process SDK calls. A goroutine drains it in batches. What it
// cannot keep (buffer full, or a write that failed for good) it drops and
// counts in sbh_autotrack_dropped_total. It is a tally.Runner.
type Buffer struct {
	p  *Pipeline
	m  *Metrics
	ch chan tally.Event

	mu     sync.RWMutex // held for writing only while closing
	closed bool

	// The API requests counted since the last drain (CountRequest), by
	// tenant, key, route, method and status, at most cap(ch) of them;
	// kick wakes the drain for them.
	reqMu sync.Mutex
	reqs  map[requestKey]*RequestCount
	kick  chan struct{}

	startOnce sync.Once
	stop      chan struct{} // closed by Stop
	done      chan struct{} // closed when the drain goroutine returned
	ctx       context.Context
	cancel    context.CancelFunc
}

var _ tally.Runner = (*Buffer)(nil)

// NewBuffer returns a Buffer of size events (default 4096) that submits to
// p and counts drops in m (nil: not counted).
func NewBuffer(p *Pipeline, size int, m *Metrics) *Buffer {
	if size <= 0 {
		size = 4096
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Buffer{
		p:      p,
		m:      m,
		ch:     make(chan tally.Event, size),
		reqs:   map[requestKey]*RequestCount{},
		kick:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
}

// Track queues e, an event already checked by Validator.Prepare, and
// reports whether it was kept. It never blocks: when the buffer is full, or
// after Stop began, e is dropped and counted.
func (b *Buffer) Track(e tally.Event) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.closed {
		select {
		case b.ch <- e:
			return true
		default:
		}
	}
	b.m.drop(1)
	return false
}

// APIRequest is a call to tally's API with a key, as auto-tracking
// records it (tally.EventOwnAPIRequest).
type APIRequest struct {
	Route, Method, KeyPrefix string
	Status                   int
}

type requestKey struct {
	tenant int64
	APIRequest
}

// RequestCount is what the buffer keeps of the calls of one key with the
// same route, method and status between two drains: their number, the
// first one's time, the sum and the longest of their durations.
type RequestCount struct {
	Tenant     *tally.Tenant
	First      time.Time
	N          int64
	Total, Max time.Duration
	build      func(*tally.Tenant, APIRequest, RequestCount) (tally.Event, bool)
}

// CountRequest counts one API request of tenant t, at, taking d, and
// reports whether it was kept. The requests counted alike between two
// drains of the buffer become one event, built by build when the buffer
// drains (false: none), so that tally's record of its own API costs one
// row per drain and not one per request: under load a drain waits for a
// commit, and the requests of that wait share a row. It never blocks: past
// as many distinct counts as the buffer holds events, or after Stop began,
// the request is dropped and counted.
func (b *Buffer) CountRequest(t *tally.Tenant, r APIRequest, at time.Time, d time.Duration,
	build func(*tally.Tenant, APIRequest, RequestCount) (tally.Event, bool)) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.m.drop(1)
		return false
	}
	k := requestKey{t.ID, r}
	b.reqMu.Lock()
	c := b.reqs[k]
	if c == nil {
		if len(b.reqs) >= cap(b.ch) {
			b.reqMu.Unlock()
			b.m.drop(1)
			return false
		}
		c = &RequestCount{Tenant: t, First: at, build: build}
		b.reqs[k] = c
	}
	c.N++
	c.Total += d
	c.Max = max(c.Max, d)
	b.reqMu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return true
}

// requests appends to batch the events of the requests counted since the
// last call, and starts counting anew.
func (b *Buffer) requests(batch []tally.Event) []tally.Event {
	b.reqMu.Lock()
	reqs := b.reqs
	if len(reqs) == 0 {
		b.reqMu.Unlock()
		return batch // (the map stays the buffer's: not read past the lock)
	}
	b.reqs = make(map[requestKey]*RequestCount, len(reqs))
	b.reqMu.Unlock()
	for k, c := range reqs {
		if e, ok := c.build(c.Tenant, k.APIRequest, *c); ok {
			batch = append(batch, e)
		}
	}
	return batch
}

// Start starts the goroutine that drains the buffer into the pipeline.
// Calling it again does nothing.
func (b *Buffer) Start() {
	b.startOnce.Do(func() { go b.run() })
}

// Stop stops accepting events, submits everything buffered and returns
// once that is stored. Call it before Writer.Stop, which would refuse the
// flush. When ctx ends first, the flush is abandoned (what is left is
// counted as dropped) and ctx's error returned.
func (b *Buffer) Stop(ctx context.Context) error {
	b.Start()
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if !already {
		close(b.stop)
	}
	select {
	case <-b.done:
		return nil
	case <-ctx.Done():
		b.cancel()
		return ctx.Err()
	}
}

func (b *Buffer) run() {
	defer close(b.done)
	batch := make([]tally.Event, 0, maxBufferBatch)
	for {
		select {
		case e := <-b.ch:
			b.flush(b.fill(append(b.requests(batch[:0]), e)))
		case <-b.kick:
			if batch = b.fill(b.requests(batch[:0])); len(batch) > 0 {
				b.flush(batch)
			}
		case <-b.stop:
			// No Track or CountRequest adds any more (closed is set):
			// empty the channel and the counts.
			for {
				batch = b.fill(b.requests(batch[:0]))
				if len(batch) == 0 {
					return
				}
				b.flush(batch)
			}
		}
	}
}

// fill adds what is buffered to batch, up to maxBufferBatch, without
// waiting.
func (b *Buffer) fill(batch []tally.Event) []tally.Event {
	for len(batch) < maxBufferBatch {
		select {
		case e := <-b.ch:
			batch = append(batch, e)
		default:
			return batch
		}
	}
	return batch
}

// flush submits batch, retrying a while when the writer's queue is full.
func (b *Buffer) flush(batch []tally.Event) {
	if b.ctx.Err() != nil {
		b.m.drop(len(batch))
		return
	}
	backoff := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		_, err := b.p.Submit(b.ctx, batch)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrQueueFull) || attempt == 5 {
			b.m.drop(len(batch))
			return
		}
		select {
		case <-time.After(backoff):
			backoff *= 2
		case <-b.ctx.Done():
			b.m.drop(len(batch))
			return
		}
	}
}
