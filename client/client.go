// Package client is the Go SDK of tally: host apps use it to send
// analytics events, record usage and consume quotas over tally's HTTP API.
//
// Track is asynchronous and never blocks: events go into a bounded
// buffer that a background goroutine sends in batches, retrying transient
// failures. Every event carries an event_id, so a retried batch is stored
// once. Usage and quota calls are synchronous.
//
//	c, err := client.New("https://tally.example.com", os.Getenv("TALLY_API_KEY"),
//		client.WithSource("backend"))
//	if err != nil {
//		return err
//	}
//	defer c.Close(context.Background()) // sends what is still buffered
//
//	// Fire and forget: an error means the event was not queued.
//	_ = c.Track(client.Event{Name: "files.uploaded", UserID: "u_42", Value: new(2048.0)})
//
//	// Gate an expensive operation on a quota.
//	if _, err := c.Consume(ctx, "builds_daily", 1); err != nil {
//		var qe *client.QuotaExceededError
//		if errors.As(err, &qe) {
//			// Over the quota: try again after qe.RetryAfter.
//		}
//	}
package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tallyhq/tally"
)

// Errors Track, Flush and Close return. Compare with errors.Is.
var (
	// ErrBufferFull: the event was dropped because the buffer is full
	// (tally is slow or unreachable); the drop is counted in Stats.
	ErrBufferFull = errors.New("tally: event buffer full, event dropped")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("tally: client closed")
	// ErrInvalidEvent: the event breaks one of tally's rules that the
	// client checks before queueing (the error text says which).
	ErrInvalidEvent = errors.New("tally: invalid event")
)

// Limits of the events endpoint.
const (
	maxBatchSize  = tally.MaxBatchEvents
	maxBodyBytes  = 1 << 20
	batchOverhead = 128 // {"batch":[...],"sent_at":"..."} around the events
)

// Option configures a Client.
type Option func(*config)

type config struct {
	httpClient    *http.Client
	batchSize     int
	flushInterval time.Duration
	bufferSize    int
	maxRetries    int
	minBackoff    time.Duration
	maxBackoff    time.Duration
	logger        *slog.Logger
	source        string
}

// WithHTTPClient sets the HTTP client (default: one with a 30s timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithBatchSize sets how many events one request carries at most
// (default 100, at most 1000). A batch is also cut before it would pass
// the server's 1 MiB body limit.
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithFlushInterval sets how long an event waits at most before its batch
// is sent although not full (default 1s).
func WithFlushInterval(d time.Duration) Option { return func(c *config) { c.flushInterval = d } }

// WithBufferSize sets how many events wait for sending at most (default
// 10000); Track drops events beyond it.
func WithBufferSize(n int) Option { return func(c *config) { c.bufferSize = n } }

// WithMaxRetries sets how often a failed request is retried (default 5;
// 0 disables retries). Only network errors, 429 and 5xx are retried.
func WithMaxRetries(n int) Option { return func(c *config) { c.maxRetries = n } }

// WithRetryBackoff sets the first retry delay and the longest one
// (defaults 200ms and 30s). Delays double per attempt, with jitter. A
// Retry-After longer than max is not waited for: the request fails.
func WithRetryBackoff(initial, max time.Duration) Option {
	return func(c *config) { c.minBackoff, c.maxBackoff = initial, max }
}

// WithLogger sets where failed deliveries and rejected events are logged
// (default: nowhere).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithSource sets the source of events whose Source is empty (default:
// none, which the server records as "api").
func WithSource(s string) Option { return func(c *config) { c.source = s } }

// Stats counts events since New.
type Stats struct {
	// Sent counts events the server confirmed as stored (including
	// duplicates of events stored before).
	Sent int64
	// Dropped counts events Track refused because the buffer was full.
	Dropped int64
	// Failed counts events the server rejected or that could not be
	// delivered after the retries.
	Failed int64
}

// Client talks to one tally tenant with one API key. It is safe for
// concurrent use. Close it to send what is buffered and stop its
// goroutine.
type Client struct {
	base string // scheme://host[/prefix], without a trailing slash
	key  string
	cfg  config

	mu     sync.RWMutex // guards closed against Track's enqueue
	closed bool

	queue   chan []byte // encoded events
	flushes chan chan error
	quit    chan struct{} // closed by Close: drain, send, stop
	done    chan struct{} // closed when the sender has stopped
	// ctx is the sender's context; cancel aborts its requests when
	// Close runs out of time.
	ctx      context.Context
	cancel   context.CancelFunc
	closeErr error // the last failure of the final drain; read after done

	sent, dropped, failed atomic.Int64
}

// New returns a client of the tally at baseURL (e.g.
// "https://tally.example.com") using apiKey (needs analytics:write; the
// read methods need analytics:read) and starts its sender goroutine.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	cfg := config{
		batchSize:     100,
		flushInterval: time.Second,
		bufferSize:    10000,
		maxRetries:    5,
		minBackoff:    200 * time.Millisecond,
		maxBackoff:    30 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("tally: base URL %q must be an absolute http(s) URL", baseURL)
	}
	switch {
	case strings.TrimSpace(apiKey) == "":
		return nil, errors.New("tally: empty API key")
	case cfg.batchSize < 1 || cfg.batchSize > maxBatchSize:
		return nil, fmt.Errorf("tally: batch size %d not in 1..%d", cfg.batchSize, maxBatchSize)
	case cfg.flushInterval <= 0:
		return nil, fmt.Errorf("tally: flush interval %s must be positive", cfg.flushInterval)
	case cfg.bufferSize < 1:
		return nil, fmt.Errorf("tally: buffer size %d must be positive", cfg.bufferSize)
	case cfg.maxRetries < 0:
		return nil, fmt.Errorf("tally: max retries %d must not be negative", cfg.maxRetries)
	case cfg.minBackoff <= 0 || cfg.maxBackoff < cfg.minBackoff:
		return nil, fmt.Errorf("tally: retry backoff %s..%s is not a positive range", cfg.minBackoff, cfg.maxBackoff)
	case cfg.source != "" && !tally.ValidSource(cfg.source):
		return nil, fmt.Errorf("tally: source %q %s", cfg.source, tally.MsgSource)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		base:    strings.TrimRight(u.String(), "/"),
		key:     apiKey,
		cfg:     cfg,
		queue:   make(chan []byte, cfg.bufferSize),
		flushes: make(chan chan error),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		ctx:     ctx,
		cancel:  cancel,
	}
	go c.run()
	return c, nil
}

// Track queues e for sending and returns at once; it never waits for the
// network. It checks the event's shape, assigns an EventID (random) and a
// Timestamp (now) when they are empty, and encodes it (so the caller may
// reuse Props afterwards). It returns an error wrapping ErrInvalidEvent
// for a malformed event, ErrBufferFull when the buffer is full (the event
// is dropped and counted), and ErrClosed after Close.
func (c *Client) Track(e Event) error {
	b, err := c.encode(e)
	if err != nil {
		return err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	select {
	case c.queue <- b:
		return nil
	default:
		c.dropped.Add(1)
		return ErrBufferFull
	}
}

// Flush sends every event tracked before the call and waits until the
// server answered for them (or ctx ends). It returns the last delivery
// failure among them, if any; rejected events are logged and counted in
// Stats, not returned.
func (c *Client) Flush(ctx context.Context) error {
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	reply := make(chan error, 1)
	select {
	case c.flushes <- reply:
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops accepting events, sends what is buffered and stops the
// sender. When ctx ends first, the requests in flight are abandoned, the
// events not sent are counted as failed and ctx's error is returned.
// Calling Close again returns nil.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	close(c.quit)
	select {
	case <-c.done:
		c.cancel()
		return c.closeErr
	case <-ctx.Done():
		c.cancel()
		<-c.done
		return ctx.Err()
	}
}

// Stats returns the event counts so far.
func (c *Client) Stats() Stats {
	return Stats{Sent: c.sent.Load(), Dropped: c.dropped.Load(), Failed: c.failed.Load()}
}

// run is the sender: it collects queued events into batches and sends a
// batch when it is full, when the flush interval passes, on Flush and on
// Close.
func (c *Client) run() {
	defer close(c.done)
	ticker := time.NewTicker(c.cfg.flushInterval)
	defer ticker.Stop()
	batch := make([][]byte, 0, c.cfg.batchSize)
	// add appends b and sends the batch when full; it returns the send's
	// error.
	add := func(b []byte) error {
		batch = append(batch, b)
		if len(batch) < c.cfg.batchSize {
			return nil
		}
		err := c.send(batch)
		batch = batch[:0]
		return err
	}
	// drain sends n queued events (all, when n < 0) and the open batch;
	// it returns the last error.
	drain := func(n int) error {
		var last error
		for ; n != 0; n-- {
			b, ok := c.dequeue()
			if !ok {
				break
			}
			if err := add(b); err != nil {
				last = err
			}
		}
		if len(batch) > 0 {
			if err := c.send(batch); err != nil {
				last = err
			}
			batch = batch[:0]
		}
		return last
	}
	for {
		select {
		case b := <-c.queue:
			add(b) // failures are logged and counted; nobody waits here
		case <-ticker.C:
			if len(batch) > 0 {
				c.send(batch)
				batch = batch[:0]
			}
		case reply := <-c.flushes:
			reply <- drain(len(c.queue))
		case <-c.quit:
			// Track can no longer enqueue, so the queue only shrinks.
			c.closeErr = drain(-1)
			return
		}
	}
}

// dequeue takes a queued event without waiting.
func (c *Client) dequeue() ([]byte, bool) {
	select {
	case b := <-c.queue:
		return b, true
	default:
		return nil, false
	}
}

// send delivers events in as few requests as the body limit allows,
// counting the outcome in Stats. It returns the last delivery failure.
func (c *Client) send(events [][]byte) error {
	var last error
	for len(events) > 0 {
		n, size := 0, batchOverhead
		for n < len(events) && (n == 0 || size+len(events[n])+1 <= maxBodyBytes) {
			size += len(events[n]) + 1
			n++
		}
		if err := c.sendBatch(events[:n]); err != nil {
			last = err
		}
		events = events[n:]
	}
	return last
}

// ingestResult is the 202 answer of POST /api/analytics/events.
type ingestResult struct {
	Accepted   int64 `json:"accepted"`
	Duplicates int64 `json:"duplicates"`
	Rejected   []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"rejected"`
}

// sendBatch posts one batch with retries. sent_at is set per attempt so
// the server corrects timestamps for this client's clock skew.
func (c *Client) sendBatch(events [][]byte) error {
	body := func() []byte {
		var buf bytes.Buffer
		buf.Grow(batchOverhead + len(events)*128)
		buf.WriteString(`{"batch":[`)
		for i, e := range events {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(e)
		}
		buf.WriteString(`],"sent_at":"`)
		buf.WriteString(time.Now().UTC().Format(time.RFC3339Nano))
		buf.WriteString(`"}`)
		return buf.Bytes()
	}
	res, err := c.do(c.ctx, http.MethodPost, "/api/analytics/events", body, retryEvents)
	if err != nil {
		c.failed.Add(int64(len(events)))
		c.cfg.logger.Error("tally: events not delivered", "events", len(events), "err", err)
		return err
	}
	var r ingestResult
	if err := res.decode(&r); err != nil {
		// Stored (202) but unreadable: count as sent, the server said so.
		c.sent.Add(int64(len(events)))
		c.cfg.logger.Warn("tally: unreadable events answer", "err", err)
		return nil
	}
	c.sent.Add(r.Accepted + r.Duplicates)
	c.failed.Add(int64(len(r.Rejected)))
	for _, rj := range r.Rejected {
		c.cfg.logger.Warn("tally: event rejected", "index", rj.Index, "error", rj.Error, "request_id", res.header.Get("X-Request-ID"))
	}
	return nil
}
