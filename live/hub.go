// Package live is the live tail of the event log: a Hub that the ingest
// writer tells which tenants just committed events, and that fans each
// tenant's new events out to its subscribers.
//
// Nothing travels in a notification but a tenant id: on a wake, one reader
// per tenant (per instance) reads the rows after its cursor from the log
// (tally.TailStore) and hands each subscriber the ones its filter selects.
// So a lost notification loses nothing (a periodic re-read catches up),
// payload limits do not matter, and with a Broker (PostgreSQL
// LISTEN/NOTIFY) every instance's events reach every instance's
// subscribers.
//
// When the hub's writer is the only one inserting into the log
// (Config.SoleWriter: one process on a SQLite file), the reader skips the
// log: the writer's hook keeps the last commits in memory, and a reader
// whose cursor they cover takes its tenant's events from them. It reads
// the log as above whenever they do not cover it (after a burst larger
// than the memory holds, or when row ids show another writer).
//
// Each subscriber has a bounded buffer. A subscriber whose buffer is full
// when an event arrives is dropped (Subscription.Dropped), never waited
// for: ingestion never slows for a slow client, which resumes from the
// last id it saw.
package live

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// Broker carries "tenant T committed events" between instances.
type Broker interface {
	// Publish tells every instance (this one included) that these tenants
	// committed events.
	Publish(ctx context.Context, tenants []int64) error
	// Listen calls wake for every tenant any instance publishes, until ctx
	// ends or the connection fails (its error). The Hub listens again
	// after a failure, and re-reads every followed tenant.
	Listen(ctx context.Context, wake func(tenantID int64)) error
}

// Horizon tells how far the log may be read in id order without skipping
// an event that a running transaction has yet to commit.
type Horizon interface {
	// Settled returns an id up to which every event is committed or never
	// will be, and whether a gap in the ids above it may still fill.
	Settled(ctx context.Context) (settled int64, waiting bool, err error)
}

// Config tunes a Hub. The zero value is the documented default.
type Config struct {
	// Buffer is how many deliveries (each the events of one read of the
	// log, at most Batch) may wait for one subscriber (default 64); one
	// more drops it.
	Buffer int
	// Batch is how many rows one read of the log takes (default 500).
	Batch int
	// Poll is how often a followed tenant is re-read without a wake
	// (default 2s): it bounds the delay of a lost notification.
	Poll time.Duration
	// Coalesce is the least time between two reads of one tenant's events
	// (default 50ms): the commits of that time reach each subscriber in
	// one delivery, so that the readers, the subscribers' wakes and their
	// writes to clients cost per interval, not per commit.
	Coalesce time.Duration
	// Broker, when set, shares wakes between instances.
	Broker Broker
	// Horizon, when set, bounds the log reads to ids no transaction can
	// still fill (postgres.TailHorizon): with several writers, an id taken
	// by a transaction that commits after a higher one is otherwise
	// skipped.
	Horizon Horizon
	// SoleWriter says that every row of the log is inserted through this
	// hub's Committed hook, in id order with consecutive ids (a SQLite
	// file served by one process): readers then take new events from the
	// hook's memory instead of reading the log.
	SoleWriter bool
	// Recent is how many events of the last commits a SoleWriter hub
	// keeps (default 20000); a reader further behind reads the log.
	Recent int
	// PublicID maps a stored event id to the id answers show (the
	// tenant's opaque ids, tally.EventIDs); nil shows stored ids. Only
	// the encoding uses it: the hub orders and resumes by stored ids.
	PublicID func(tenantID, id int64) int64
	Logger   *slog.Logger
}

// Hub is the live tail of one instance. It is a tally.Runner: Start before
// Subscribe; Stop ends every subscription (Dropped, with ReasonShutdown).
type Hub struct {
	store tally.TailStore
	cfg   Config
	log   *slog.Logger

	mu      sync.Mutex // guards feeds, pending, stopped, recent, last; taken before a feed's mu
	feeds   map[int64]*feed
	pending map[int64]struct{} // tenants to publish
	stopped bool
	// recent holds the last commits (SoleWriter only), oldest first, each
	// covering the ids after its predecessor's: together every id in
	// (recent[0].after, last].
	recent       []commit
	recentEvents int   // events in recent
	last         int64 // the highest id committed; -1 until the first commit

	pubWake chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	start   sync.Once
}

var _ tally.Runner = (*Hub)(nil)

// Reasons a subscription ends from the hub's side.
const (
	ReasonSlow     = "slow_consumer" // its buffer was full
	ReasonShutdown = "shutting_down" // the hub stopped
	ReasonStore    = "store_unavailable"
)

// feed is one tenant's reader and its subscribers.
type feed struct {
	tenant int64
	wake   chan struct{} // buffered(1)
	done   chan struct{} // closed when the last subscriber left

	mu     sync.Mutex // guards cursor and subs; the writer's hook never takes it
	cursor int64      // every event with id <= cursor has been fanned out
	subs   map[*Subscription]struct{}
}

// commit is one transaction of the writer: every row with an id in
// (after, upto], the inserted ones of events in id order.
type commit struct {
	after, upto int64
	events      []tally.Event
}

// Event is an event as the hub delivers it: shared by every subscriber,
// encoded once for all of them. Treat it as read-only.
type Event struct {
	tally.Event
	// JSON is the event's encoding (tally.Event's JSON form, with the
	// public id).
	JSON []byte
	// Frame is the event as a Server-Sent Event (AppendFrame), ready to
	// write; JSON is part of it.
	Frame []byte

	frames []byte // every frame of the read, Frame at offset at
	at     int
}

// WriteFrames writes the frames of a delivery to w: each run of frames
// that one read laid out one after the other (a subscriber without a
// filter gets whole runs) in one Write, so that a stream makes one write
// to its client per delivery, not one per event.
func WriteFrames(w io.Writer, batch []*Event) error {
	for len(batch) > 0 {
		first, end, n := batch[0], batch[0].at+len(batch[0].Frame), 1
		for ; first.frames != nil && n < len(batch); n++ {
			e := batch[n]
			if e.frames == nil || &e.frames[0] != &first.frames[0] || e.at != end {
				break
			}
			end += len(e.Frame)
		}
		run := first.Frame
		if n > 1 {
			run = first.frames[first.at:end:end]
		}
		if _, err := w.Write(run); err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// AppendFrame appends an event as a Server-Sent Event: its public id and
// its JSON encoding.
func AppendFrame(dst []byte, publicID int64, data []byte) []byte {
	dst = append(dst, "id: "...)
	dst = strconv.AppendInt(dst, publicID, 10)
	dst = append(dst, "\ndata: "...)
	dst = append(dst, data...)
	return append(dst, "\n\n"...)
}

// Subscription is one subscriber's share of a tenant's events.
type Subscription struct {
	// Start is the id after which C delivers: events with id <= Start
	// (from a Last-Event-ID, say) are read from the log by the caller.
	Start int64
	// C delivers the subscriber's events in id order, in batches (one
	// per read of the log; never empty).
	C <-chan []*Event

	c       chan []*Event
	filter  tally.EventFilter
	hub     *Hub
	feed    *feed
	dropped chan struct{}
	reason  string
	once    sync.Once
}

// Dropped is closed when the hub ended the subscription; Reason says why.
func (s *Subscription) Dropped() <-chan struct{} { return s.dropped }

// Reason is why the hub ended the subscription (ReasonSlow,
// ReasonShutdown, ReasonStore); read it after Dropped is closed.
func (s *Subscription) Reason() string { return s.reason }

// New returns a Hub reading from store.
func New(store tally.TailStore, cfg Config) *Hub {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 64
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.Recent <= 0 {
		cfg.Recent = 20000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.Coalesce <= 0 {
		cfg.Coalesce = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Hub{store: store, cfg: cfg, log: cfg.Logger, feeds: map[int64]*feed{}, pending: map[int64]struct{}{},
		pubWake: make(chan struct{}, 1), ctx: ctx, cancel: cancel, last: -1}
}

// Start starts the broker's publisher and listener, when there is a
// broker. Calling it again does nothing.
func (h *Hub) Start() {
	h.start.Do(func() {
		if h.cfg.Broker == nil {
			return
		}
		h.wg.Add(2)
		go h.publish()
		go h.listen()
	})
}

// Stop ends every subscription and waits for the hub's goroutines.
func (h *Hub) Stop(ctx context.Context) error {
	h.mu.Lock()
	h.stopped = true
	for t, f := range h.feeds {
		f.mu.Lock()
		for s := range f.subs {
			s.drop(ReasonShutdown)
		}
		clear(f.subs)
		f.mu.Unlock()
		delete(h.feeds, t)
		close(f.done)
	}
	h.mu.Unlock()
	h.cancel()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Committed is the ingest writer's hook (ingest.WriterConfig.Committed):
// events were committed, inserted[i] telling which. It never blocks on a
// subscriber or on the broker.
func (h *Hub) Committed(events []tally.Event, inserted []bool) {
	var last int64 = -1
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cfg.SoleWriter {
		h.remember(events, inserted)
	}
	for i := range events {
		t := events[i].TenantID
		if !inserted[i] || t == last {
			continue
		}
		last = t
		if f := h.feeds[t]; f != nil {
			signal(f.wake)
		}
		if h.cfg.Broker != nil {
			h.pending[t] = struct{}{}
		}
	}
	if len(h.pending) > 0 {
		signal(h.pubWake)
	}
}

// remember keeps a commit's inserted events in h.recent when their ids
// follow the last commit's one by one, and forgets every commit when they
// do not (some other writer took ids): readers then read the log.
func (h *Hub) remember(events []tally.Event, inserted []bool) {
	kept := make([]tally.Event, 0, len(events))
	for i := range events {
		if inserted[i] {
			kept = append(kept, events[i])
		}
	}
	if len(kept) == 0 {
		return
	}
	slices.SortFunc(kept, func(a, b tally.Event) int { return cmp.Compare(a.ID, b.ID) })
	after, upto := kept[0].ID-1, kept[len(kept)-1].ID
	whole := upto-after == int64(len(kept)) // no other writer's row among them
	if !whole || after != h.last {
		clear(h.recent)
		h.recent, h.recentEvents = h.recent[:0], 0
	}
	if whole {
		h.recent = append(h.recent, commit{after: after, upto: upto, events: kept})
		h.recentEvents += len(kept)
	}
	h.last = max(h.last, upto)
	for h.recentEvents > h.cfg.Recent && len(h.recent) > 1 {
		h.recentEvents -= len(h.recent[0].events)
		h.recent[0] = commit{}
		h.recent = h.recent[1:]
	}
}

// fromMemory returns tenant's events after cursor from the last commits
// and the id up to which they cover every row, or ok false when the
// commits in memory do not reach back to cursor.
func (h *Hub) fromMemory(tenant, cursor int64) (events []tally.Event, upto int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recent) == 0 || h.recent[0].after > cursor {
		return nil, 0, false
	}
	for _, c := range h.recent {
		if c.upto <= cursor {
			continue
		}
		for i := range c.events {
			if e := &c.events[i]; e.TenantID == tenant && e.ID > cursor {
				events = append(events, *e)
			}
		}
	}
	return events, max(cursor, h.recent[len(h.recent)-1].upto), true
}

// Subscribe follows tenantID's events that f selects, from now on (ids
// above the returned Start). Close the subscription when done.
func (h *Hub) Subscribe(ctx context.Context, tenantID int64, f tally.EventFilter) (*Subscription, error) {
	var last int64
	var err error
	if h.cfg.Horizon != nil {
		last, _, err = h.cfg.Horizon.Settled(ctx)
	} else {
		last, err = h.store.LastEventID(ctx)
	}
	if err != nil {
		return nil, err
	}
	c := make(chan []*Event, h.cfg.Buffer)
	s := &Subscription{C: c, c: c, filter: f, hub: h, dropped: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return nil, tally.Errorf(tally.EUnavailable, "shutting down")
	}
	fd := h.feeds[tenantID]
	if fd == nil {
		fd = &feed{tenant: tenantID, cursor: last, subs: map[*Subscription]struct{}{},
			wake: make(chan struct{}, 1), done: make(chan struct{})}
		h.feeds[tenantID] = fd
		h.wg.Add(1)
		go h.follow(fd)
	}
	fd.mu.Lock()
	fd.subs[s] = struct{}{}
	s.feed, s.Start = fd, fd.cursor
	fd.mu.Unlock()
	return s, nil
}

// Close ends the subscription (from the subscriber's side).
func (s *Subscription) Close() {
	f := s.feed
	f.mu.Lock()
	delete(f.subs, s)
	f.mu.Unlock()
	s.hub.retire(f)
}

// Subscribers returns how many subscriptions are open.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, f := range h.feeds {
		f.mu.Lock()
		n += len(f.subs)
		f.mu.Unlock()
	}
	return n
}

// retire forgets f once it has no subscriber left, ending its reader.
func (h *Hub) retire(f *feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 && h.feeds[f.tenant] == f {
		delete(h.feeds, f.tenant)
		close(f.done)
	}
}

// drop ends s from the hub's side; the caller removes it from its feed.
func (s *Subscription) drop(reason string) {
	s.once.Do(func() {
		s.reason = reason
		close(s.dropped)
	})
}

// follow is one tenant's reader: it reads the log after the feed's cursor
// on every wake (and every Poll) and fans the events out, until the last
// subscriber leaves.
func (h *Hub) follow(f *feed) {
	defer h.wg.Done()
	tick := time.NewTicker(h.cfg.Poll)
	defer tick.Stop()
	failures := 0
	var read time.Time // when the last round of reads began
	for {
		// A wake reads the last commits in memory when they cover the
		// cursor; a tick always reads the log.
		memory := h.cfg.SoleWriter
		select {
		case <-f.done:
			return
		case <-h.ctx.Done():
			return
		case <-f.wake:
		case <-tick.C:
			memory = false
		}
		// At most one round per Coalesce: the wakes meanwhile are for
		// commits this round reads.
		if wait := h.cfg.Coalesce - time.Since(read); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-f.done:
				t.Stop()
				return
			case <-h.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case <-f.wake:
			default:
			}
		}
		read = time.Now()
		for {
			f.mu.Lock()
			after := f.cursor
			f.mu.Unlock()
			if memory {
				if events, upto, ok := h.fromMemory(f.tenant, after); ok {
					h.fanOut(f, events, upto)
					break
				}
			}
			events, upto, held, err := h.read(f.tenant, after)
			if err != nil {
				if h.ctx.Err() != nil {
					return
				}
				failures++
				h.log.Warn("live tail: reading the log failed", "tenant_id", f.tenant, "err", err)
				if failures >= 3 {
					f.mu.Lock()
					for s := range f.subs {
						s.drop(ReasonStore)
					}
					clear(f.subs)
					f.mu.Unlock()
					h.retire(f)
					return
				}
				break
			}
			failures = 0
			h.fanOut(f, events, upto)
			if held { // a gap in the ids holds the reader back: read again soon
				time.AfterFunc(gapRetry, func() { signal(f.wake) })
				break
			}
			if len(events) < h.cfg.Batch {
				break
			}
		}
	}
}

// gapRetry is how soon a reader held back by a gap in the ids reads again.
const gapRetry = 100 * time.Millisecond

// read returns tenant's events after cursor from the log and the id up to
// which they cover every row. With a Horizon it keeps to the settled ids,
// and held says that a gap in the ids holds them back.
func (h *Hub) read(tenant, cursor int64) (events []tally.Event, upto int64, held bool, err error) {
	settled := int64(-1)
	if h.cfg.SoleWriter {
		// Every id up to the last the hook saw is committed: a read that
		// is not full covers them, and the cursor of a quiet tenant keeps
		// up with the log (its next read starts near the end).
		h.mu.Lock()
		if h.last > cursor {
			settled = h.last
		}
		h.mu.Unlock()
	}
	if h.cfg.Horizon != nil {
		if settled, held, err = h.cfg.Horizon.Settled(h.ctx); err != nil {
			return nil, 0, false, err
		}
		if settled <= cursor {
			return nil, cursor, held, nil
		}
	}
	events, err = h.store.TailEvents(h.ctx, tenant, tally.EventFilter{}, cursor, h.cfg.Batch)
	if err != nil {
		return nil, 0, false, err
	}
	if settled < 0 {
		upto = cursor
		if len(events) > 0 {
			upto = events[len(events)-1].ID
		}
		return events, upto, false, nil
	}
	n := 0
	for n < len(events) && events[n].ID <= settled {
		n++
	}
	if n == h.cfg.Batch { // a full batch, all settled: the next read goes on after it
		return events, events[n-1].ID, false, nil
	}
	return events[:n], settled, held, nil
}

// fanOut hands events to every subscriber of f whose filter selects them,
// dropping those whose buffer is full, and moves the cursor to upto (every
// row of the tenant up to it is in events or was handed out before).
func (h *Hub) fanOut(f *feed, events []tally.Event, upto int64) {
	if len(events) == 0 {
		f.mu.Lock()
		f.cursor = max(f.cursor, upto)
		f.mu.Unlock()
		return
	}
	// Encoded once, as frames ready to write laid out one after the other
	// (WriteFrames), shared by every subscriber; one delivery per
	// subscriber per read, so a subscriber wakes (and writes) once per
	// read, not once per event.
	shared := make([]*Event, 0, len(events))
	var frames []byte
	var ends []int // of each frame in frames, and of its JSON
	for i := range events {
		if tally.IsOwnEvent(events[i].Name) {
			continue // the tail shows the host app's events, never tally's own (as its log reads)
		}
		shown := events[i]
		if h.cfg.PublicID != nil {
			shown.ID = h.cfg.PublicID(f.tenant, shown.ID)
		}
		b, err := json.Marshal(&shown)
		if err != nil {
			continue // cannot happen for an event read from the log
		}
		frames = AppendFrame(frames, shown.ID, b)
		ends = append(ends, len(frames)-2-len(b), len(frames))
		shared = append(shared, &Event{Event: events[i]})
	}
	start := 0
	for i, e := range shared {
		data, end := ends[2*i], ends[2*i+1]
		e.Frame, e.JSON = frames[start:end:end], frames[data:end-2:end-2]
		e.frames, e.at = frames, start
		start = end
	}
	f.mu.Lock()
	for s := range f.subs {
		batch := shared
		if s.filter != (tally.EventFilter{}) {
			batch = nil
			for _, e := range shared {
				if s.filter.Match(&e.Event) {
					batch = append(batch, e)
				}
			}
		}
		if len(batch) == 0 {
			continue
		}
		select {
		case s.c <- batch:
		default:
			s.drop(ReasonSlow)
			delete(f.subs, s)
		}
	}
	f.cursor = max(f.cursor, upto)
	empty := len(f.subs) == 0
	f.mu.Unlock()
	if empty {
		h.retire(f)
	}
}

// publish sends the pending tenants to the broker, one call per batch of
// commits that piled up meanwhile.
func (h *Hub) publish() {
	defer h.wg.Done()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-h.pubWake:
		}
		h.mu.Lock()
		tenants := make([]int64, 0, len(h.pending))
		for t := range h.pending {
			tenants = append(tenants, t)
		}
		clear(h.pending)
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
		if err := h.cfg.Broker.Publish(ctx, tenants); err != nil && h.ctx.Err() == nil {
			h.log.Warn("live tail: publishing a wake failed; other instances catch up by polling", "err", err)
		}
		cancel()
	}
}

// listen wakes this instance's feeds for every tenant the broker names,
// listening again after a failure (and then re-reading every feed, since
// wakes may have been missed).
func (h *Hub) listen() {
	defer h.wg.Done()
	for {
		err := h.cfg.Broker.Listen(h.ctx, h.wakeTenant)
		if h.ctx.Err() != nil {
			return
		}
		h.log.Warn("live tail: listening for other instances' events failed; retrying", "err", err)
		select {
		case <-h.ctx.Done():
			return
		case <-time.After(time.Second):
		}
		h.mu.Lock()
		for _, f := range h.feeds {
			signal(f.wake)
		}
		h.mu.Unlock()
	}
}

func (h *Hub) wakeTenant(tenantID int64) {
	h.mu.Lock()
	if f := h.feeds[tenantID]; f != nil {
		signal(f.wake)
	}
	h.mu.Unlock()
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
