package client_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
)

// tallyServer is a real tally (app.New on its own SQLite file) behind an
// httptest server, with one tenant and one API key able to write and
// read analytics.
type tallyServer struct {
	url string
	key string
	hc  *http.Client
}

// newTally starts a tally; quotas are QUOTA_DEFAULTS (nil for none).
func newTally(t *testing.T, quotas map[string]int64) *tallyServer {
	t.Helper()
	_, srv := apptest.Start(t, func(c *app.Config) { c.QuotaDefaults = quotas })
	return &tallyServer{url: srv.URL, hc: srv.Client(), key: apptest.Key(t, srv, "acme", "analytics:write", "analytics:read")}
}

// call sends body as JSON, wants status and decodes the answer into out
// (when not nil).
func (ts *tallyServer) call(t *testing.T, method, path, token string, headers map[string]string, body any, status int, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, ts.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := ts.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, res.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// storedEvent is an event as GET /api/analytics/events lists it.
type storedEvent struct {
	EventID   string          `json:"event_id"`
	Event     string          `json:"event"`
	UserID    string          `json:"user_id"`
	Source    string          `json:"source"`
	Timestamp time.Time       `json:"timestamp"`
	Value     float64         `json:"value"`
	Props     json.RawMessage `json:"props"`
}

// events lists every stored event named name (all pages).
func (ts *tallyServer) events(t *testing.T, name string) []storedEvent {
	t.Helper()
	q := url.Values{"event": {name}, "limit": {"1000"}}
	var out []storedEvent
	for {
		var page struct {
			Events     []storedEvent `json:"events"`
			NextCursor *string       `json:"next_cursor"`
		}
		ts.call(t, "GET", "/api/analytics/events?"+q.Encode(), ts.key, nil, nil, http.StatusOK, &page)
		out = append(out, page.Events...)
		if page.NextCursor == nil {
			return out
		}
		q.Set("cursor", *page.NextCursor)
	}
}

// recorder is an http.RoundTripper that forwards to next and keeps the
// bodies of event batches it saw; hook, when set, may replace an answer.
type recorder struct {
	next http.RoundTripper
	// hook runs after forwarding an event batch (n counts them from 1);
	// a non-nil answer replaces the server's.
	hook func(n int64, res *http.Response) *http.Response

	batches atomic.Int64
	mu      sync.Mutex
	bodies  [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path != "/api/analytics/events" || req.Method != http.MethodPost {
		return r.next.RoundTrip(req)
	}
	n := r.batches.Add(1)
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.bodies = append(r.bodies, b)
	r.mu.Unlock()
	req.Body = io.NopCloser(bytes.NewReader(b))
	res, err := r.next.RoundTrip(req)
	if err != nil || r.hook == nil {
		return res, err
	}
	if alt := r.hook(n, res); alt != nil {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return alt, nil
	}
	return res, nil
}

// sentBatches decodes the event batches the recorder saw.
func (r *recorder) sentBatches(t *testing.T) []sentBatch {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]sentBatch, len(r.bodies))
	for i, b := range r.bodies {
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatalf("batch %d is not {batch, sent_at}: %v: %s", i, err, b)
		}
	}
	return out
}

type sentBatch struct {
	Batch []struct {
		Event     string          `json:"event"`
		EventID   string          `json:"event_id"`
		Timestamp string          `json:"timestamp"`
		Source    string          `json:"source"`
		Value     *float64        `json:"value"`
		Props     json.RawMessage `json:"props"`
	} `json:"batch"`
	SentAt string `json:"sent_at"`
}

// fakeAnswer is a synthetic answer with status and a problem body.
func fakeAnswer(req *http.Request, status int, retryAfter string) *http.Response {
	h := http.Header{"Content-Type": {"application/problem+json"}, "X-Request-ID": {"fake-req"}}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	body := fmt.Sprintf(`{"type":"urn:tally:problem:unavailable","title":%q,"status":%d}`, http.StatusText(status), status)
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: req, ProtoMajor: 1, ProtoMinor: 1}
}
