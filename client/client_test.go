package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/testenv"
)

// newClient returns a client of ts sending through rt (nil: directly),
// closed when the test ends.
func newClient(t *testing.T, ts *tallyServer, rt http.RoundTripper, opts ...client.Option) *client.Client {
	t.Helper()
	if rt == nil {
		rt = ts.hc.Transport
	}
	opts = append([]client.Option{client.WithHTTPClient(&http.Client{Transport: rt}), client.WithRetryBackoff(10*time.Millisecond, time.Second)}, opts...)
	c, err := client.New(ts.url, ts.key, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func track(t *testing.T, c *client.Client, e client.Event) {
	t.Helper()
	if err := c.Track(e); err != nil {
		t.Fatalf("Track(%s): %v", e.Name, err)
	}
}

func wantStats(t *testing.T, c *client.Client, want client.Stats) {
	t.Helper()
	if got := c.Stats(); got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

func TestTrackBatchesEvents(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	rec := &recorder{next: ts.hc.Transport}
	c := newClient(t, ts, rec, client.WithBatchSize(10), client.WithFlushInterval(time.Hour), client.WithSource("sdk-test"))

	before := time.Now()
	for i := range 25 {
		track(t, c, client.Event{Name: "test.batched", UserID: fmt.Sprint("u", i), Value: new(float64(i)), Props: map[string]any{"i": i}})
	}
	if err := c.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	batches := rec.sentBatches(t)
	var sizes []int
	sentIDs := map[string]bool{}
	for _, b := range batches {
		sizes = append(sizes, len(b.Batch))
		sentAt, err := time.Parse(time.RFC3339Nano, b.SentAt)
		if err != nil || sentAt.Before(before.Add(-time.Second)) {
			t.Errorf("sent_at %q: %v", b.SentAt, err)
		}
		for _, e := range b.Batch {
			if len(e.EventID) < 20 || sentIDs[e.EventID] {
				t.Errorf("event_id %q is not a fresh random id", e.EventID)
			}
			sentIDs[e.EventID] = true
			if ts, err := time.Parse(time.RFC3339Nano, e.Timestamp); err != nil || ts.Before(before.Add(-time.Second)) {
				t.Errorf("timestamp %q not assigned at Track: %v", e.Timestamp, err)
			}
		}
	}
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Errorf("batch sizes %v, want [10 10 5] (25 events in 3 requests)", sizes)
	}

	stored := ts.events(t, "test.batched")
	if len(stored) != 25 {
		t.Fatalf("stored %d events, want 25", len(stored))
	}
	for _, e := range stored {
		if !sentIDs[e.EventID] {
			t.Errorf("stored event_id %q was not sent", e.EventID)
		}
		if e.Source != "sdk-test" || !strings.HasPrefix(e.UserID, "u") {
			t.Errorf("stored %+v: source or user lost", e)
		}
	}
	wantStats(t, c, client.Stats{Sent: 25})
}

func TestTrackSendsOnInterval(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	c := newClient(t, ts, nil, client.WithFlushInterval(20*time.Millisecond))
	for range 3 {
		track(t, c, client.Event{Name: "test.interval"})
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(ts.events(t, "test.interval")) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("3 events not delivered within 5s without Flush")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCloseDeliversEverything(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	c := newClient(t, ts, nil, client.WithBatchSize(7), client.WithFlushInterval(time.Hour))
	var wg sync.WaitGroup
	for g := range 5 {
		wg.Go(func() {
			for i := range 10 {
				if err := c.Track(client.Event{Name: "test.close", UserID: fmt.Sprint(g, "-", i)}); err != nil {
					t.Errorf("Track: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(ts.events(t, "test.close")); n != 50 {
		t.Errorf("stored %d events after Close, want 50", n)
	}
	wantStats(t, c, client.Stats{Sent: 50})
	if err := c.Track(client.Event{Name: "test.close"}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Track after Close: %v, want ErrClosed", err)
	}
	if err := c.Flush(ctxT(t)); !errors.Is(err, client.ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestBufferFullDropsWithoutBlocking(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	rec := &recorder{next: ts.hc.Transport, hook: func(n int64, _ *http.Response) *http.Response {
		if n == 1 {
			close(started)
			<-release // the sender is stuck: tally is "slow"
		}
		return nil
	}}
	c := newClient(t, ts, rec, client.WithBatchSize(1), client.WithBufferSize(5))

	track(t, c, client.Event{Name: "test.full"})
	<-started
	for range 5 {
		track(t, c, client.Event{Name: "test.full"})
	}
	begin := time.Now()
	for range 3 {
		if err := c.Track(client.Event{Name: "test.full"}); !errors.Is(err, client.ErrBufferFull) {
			t.Fatalf("Track into a full buffer: %v, want ErrBufferFull", err)
		}
	}
	if d := time.Since(begin); d > 500*time.Millisecond {
		t.Errorf("Track into a full buffer took %s: it must not block", d)
	}
	wantStats(t, c, client.Stats{Dropped: 3})

	once.Do(func() { close(release) })
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := len(ts.events(t, "test.full")); n != 6 {
		t.Errorf("stored %d events, want the 6 that were not dropped", n)
	}
	wantStats(t, c, client.Stats{Sent: 6, Dropped: 3})
}

// TestRetryStoresOnce fails the first attempt AFTER the server stored the
// batch: the retry must be answered as duplicates, nothing stored twice.
func TestRetryStoresOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		status     int
		retryAfter string
	}{
		{"503 with Retry-After", http.StatusServiceUnavailable, "0"},
		{"500", http.StatusInternalServerError, ""},
		{"429 with short Retry-After", http.StatusTooManyRequests, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ts := newTally(t, nil)
			rec := &recorder{next: ts.hc.Transport, hook: func(n int64, res *http.Response) *http.Response {
				if n == 1 {
					return fakeAnswer(res.Request, tt.status, tt.retryAfter)
				}
				return nil
			}}
			c := newClient(t, ts, rec, client.WithFlushInterval(time.Hour))
			for range 4 {
				track(t, c, client.Event{Name: "test.retry"})
			}
			if err := c.Flush(ctxT(t)); err != nil {
				t.Fatalf("Flush: %v", err)
			}
			batches := rec.sentBatches(t)
			if len(batches) != 2 {
				t.Fatalf("%d attempts, want 2 (one retry)", len(batches))
			}
			for i := range batches[0].Batch {
				if batches[0].Batch[i].EventID != batches[1].Batch[i].EventID {
					t.Errorf("retry changed event_id %d", i)
				}
			}
			if n := len(ts.events(t, "test.retry")); n != 4 {
				t.Errorf("stored %d events, want 4 (no duplicates)", n)
			}
			wantStats(t, c, client.Stats{Sent: 4})
		})
	}
}

func TestNoRetry(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)

	t.Run("400", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{next: ts.hc.Transport}
		c := newClient(t, ts, rec)
		// Client-side checks pass; the server refuses a timestamp 2h ahead.
		track(t, c, client.Event{Name: "test.future", Timestamp: time.Now().Add(2 * time.Hour)})
		err := c.Flush(ctxT(t))
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
			t.Fatalf("Flush: %v, want a 400 *APIError", err)
		}
		if len(apiErr.Errors) != 1 || apiErr.Errors[0].Field != "batch[0].timestamp" || apiErr.RequestID == "" {
			t.Errorf("APIError %+v: want errors naming batch[0].timestamp and a request id", apiErr)
		}
		if n := rec.batches.Load(); n != 1 {
			t.Errorf("%d attempts, want 1: a 400 is not retried", n)
		}
		wantStats(t, c, client.Stats{Failed: 1})
	})

	t.Run("429 until tomorrow", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{next: ts.hc.Transport, hook: func(_ int64, res *http.Response) *http.Response {
			return fakeAnswer(res.Request, http.StatusTooManyRequests, "3600")
		}}
		c := newClient(t, ts, rec)
		track(t, c, client.Event{Name: "test.quota"})
		err := c.Flush(ctxT(t))
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests || apiErr.RetryAfter != time.Hour {
			t.Fatalf("Flush: %#v, want a 429 *APIError with RetryAfter 1h", err)
		}
		if n := rec.batches.Load(); n != 1 {
			t.Errorf("%d attempts, want 1: a Retry-After past the longest backoff is not waited for", n)
		}
		wantStats(t, c, client.Stats{Failed: 1})
	})

	t.Run("401", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{next: ts.hc.Transport}
		c, err := client.New(ts.url, "tk_not_a_key", client.WithHTTPClient(&http.Client{Transport: rec}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(context.Background())
		track(t, c, client.Event{Name: "test.unauthorized"})
		err = c.Flush(ctxT(t))
		var apiErr *client.APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized || apiErr.Type != "urn:tally:problem:unauthorized" {
			t.Fatalf("Flush: %v, want a 401 *APIError", err)
		}
		if n := rec.batches.Load(); n != 1 {
			t.Errorf("%d attempts, want 1", n)
		}
	})
}

func TestRejectedEventsAreCountedAndLogged(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	var logs testenv.Buffer
	c := newClient(t, ts, nil, client.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	track(t, c, client.Event{Name: "test.partial"})
	track(t, c, client.Event{Name: "test.partial", Timestamp: time.Now().Add(3 * time.Hour)})
	if err := c.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v (a 202 with rejections is not a delivery failure)", err)
	}
	wantStats(t, c, client.Stats{Sent: 1, Failed: 1})
	if !strings.Contains(logs.String(), "event rejected") || !strings.Contains(logs.String(), "index=1") {
		t.Errorf("rejection not logged: %q", logs.String())
	}
	if n := len(ts.events(t, "test.partial")); n != 1 {
		t.Errorf("stored %d, want 1", n)
	}
}

func TestCloseGivesUpWhenContextEnds(t *testing.T) {
	t.Parallel()
	hang := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done() // a tally that never answers
		return nil, r.Context().Err()
	})
	c, err := client.New("http://tally.invalid", "tk_x", client.WithHTTPClient(&http.Client{Transport: hang}))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		track(t, c, client.Event{Name: "test.hang"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want DeadlineExceeded", err)
	}
	wantStats(t, c, client.Stats{Failed: 3})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTrackRejectsMalformedEvents(t *testing.T) {
	t.Parallel()
	c, err := client.New("http://tally.invalid", "tk_x", client.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	tests := map[string]client.Event{
		"empty name":        {},
		"empty segment":     {Name: "a..b"},
		"trailing dot":      {Name: "a."},
		"space in name":     {Name: "order completed"},
		"name too long":     {Name: strings.Repeat("a", 129)},
		"bad source":        {Name: "a", Source: "Web"},
		"NaN value":         {Name: "a", Value: new(math.NaN())},
		"infinite value":    {Name: "a", Value: new(math.Inf(1))},
		"props not JSON":    {Name: "a", Props: map[string]any{"ch": make(chan int)}},
		"props over 8 KiB":  {Name: "a", Props: map[string]any{"x": strings.Repeat("x", 8<<10)}},
		"event id too long": {Name: "a", EventID: strings.Repeat("e", 129)},
		"user id too long":  {Name: "a", UserID: strings.Repeat("ü", 257)},
	}
	for name, e := range tests {
		if err := c.Track(e); !errors.Is(err, client.ErrInvalidEvent) {
			t.Errorf("%s: Track = %v, want ErrInvalidEvent", name, err)
		}
	}
	if err := c.Track(client.Event{Name: "Business.order-completed_v2", Source: "web_app-1"}); err != nil {
		t.Errorf("valid event: %v", err)
	}
}

func TestNewChecksOptions(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		url, key string
		opts     []client.Option
	}{
		"no scheme":        {"localhost:8080", "k", nil},
		"ftp":              {"ftp://x", "k", nil},
		"empty url":        {"", "k", nil},
		"empty key":        {"http://x", " ", nil},
		"batch 0":          {"http://x", "k", []client.Option{client.WithBatchSize(0)}},
		"batch 1001":       {"http://x", "k", []client.Option{client.WithBatchSize(1001)}},
		"interval 0":       {"http://x", "k", []client.Option{client.WithFlushInterval(0)}},
		"buffer 0":         {"http://x", "k", []client.Option{client.WithBufferSize(0)}},
		"negative retries": {"http://x", "k", []client.Option{client.WithMaxRetries(-1)}},
		"bad source":       {"http://x", "k", []client.Option{client.WithSource("Web App")}},
		"backoff reversed": {"http://x", "k", []client.Option{client.WithRetryBackoff(time.Second, time.Millisecond)}},
	}
	for name, tt := range tests {
		if c, err := client.New(tt.url, tt.key, tt.opts...); err == nil {
			c.Close(context.Background())
			t.Errorf("%s: New succeeded", name)
		}
	}
	c, err := client.New("https://tally.example.com/base/", "k", client.WithBatchSize(1000), client.WithMaxRetries(0))
	if err != nil {
		t.Fatalf("valid options: %v", err)
	}
	c.Close(context.Background())
}

func TestBatchesStayUnderTheBodyLimit(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	rec := &recorder{next: ts.hc.Transport}
	c := newClient(t, ts, rec, client.WithBatchSize(200), client.WithFlushInterval(time.Hour))
	big := strings.Repeat("x", 7<<10)
	for range 200 { // ~1.4 MiB in all: more than one request may carry
		track(t, c, client.Event{Name: "test.big", Props: map[string]any{"blob": big}})
	}
	if err := c.Flush(ctxT(t)); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if n := rec.batches.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	if n := len(ts.events(t, "test.big")); n != 200 {
		t.Errorf("stored %d, want 200", n)
	}
	wantStats(t, c, client.Stats{Sent: 200})
}
