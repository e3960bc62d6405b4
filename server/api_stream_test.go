package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/postgres/pgtest"

	"github.com/tallyhq/tally"
)

// sseFrame is one Server-Sent Event as a client reads it.
type sseFrame struct {
	ID    string
	Event string // "" for an event of the log, "end" for the last frame
	Data  string
}

// sseStream is an open GET /api/analytics/events/stream.
type sseStream struct {
	t      *testing.T
	frames chan sseFrame
	cancel context.CancelFunc
	res    *http.Response
}

// stream opens the live tail with query and headers and waits for its
// response headers (by then the subscription is open). It fails the test
// unless the answer is a 200 event stream.
func (h *harness) stream(t *testing.T, query string, headers map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // a guard against a hang, not an assertion
	req, err := http.NewRequestWithContext(ctx, "GET", h.srv.URL+"/api/analytics/events/stream?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := h.client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("open stream: %v", err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		res.Body.Close()
		cancel()
		t.Fatalf("open stream: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	s := &sseStream{t: t, frames: make(chan sseFrame, 1024), cancel: cancel, res: res}
	go func() {
		defer close(s.frames)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if f.Data != "" || f.Event != "" {
					s.frames <- f
				}
				f = sseFrame{}
			case strings.HasPrefix(line, "id: "):
				f.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				f.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				f.Data = line[6:]
			}
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *sseStream) close() {
	s.cancel()
	s.res.Body.Close()
}

// next returns the next frame, failing when the stream ends or shows one
// of tally's own events (the test's own requests, tally.api.request): the
// stream leaves them out unless asked for by source or name.
func (s *sseStream) next() (sseFrame, apiEvent) {
	s.t.Helper()
	f, ok := <-s.frames
	if !ok {
		s.t.Fatal("the stream ended")
	}
	if f.Event != "" {
		return f, apiEvent{}
	}
	var e apiEvent
	if err := json.Unmarshal([]byte(f.Data), &e); err != nil {
		s.t.Fatalf("stream data %q: %v", f.Data, err)
	}
	if strconv.FormatInt(e.ID, 10) != f.ID {
		s.t.Fatalf("frame id %q for event id %d", f.ID, e.ID)
	}
	if tally.IsOwnEvent(e.Event) {
		s.t.Fatalf("the stream shows tally's own %+v", e)
	}
	return f, e
}

// nextEvent is next, wanting an event of the log.
func (s *sseStream) nextEvent() apiEvent {
	s.t.Helper()
	f, e := s.next()
	if f.Event != "" {
		s.t.Fatalf("wanted an event, got %q frame %s", f.Event, f.Data)
	}
	return e
}

// TestAPIStreamLiveTail: an event sent after subscribing arrives, only the
// subscriber's tenant's events arrive, the list's filters apply, and
// Last-Event-ID resumes from the log.
func TestAPIStreamLiveTail(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		a, b := h.newTenant("acme"), h.newTenant("bolt")
		ka := h.createKey(a, "analytics:write", "analytics:read")
		kb := h.createKey(b, "analytics:write", "analytics:read")
		h.send(hdr(ka.Key, ""), map[string]any{"event": "files.uploaded", "event_id": "before"})

		all := h.stream(t, "", hdr(ka.Key, ""))
		files := h.stream(t, "event=files.*", hdr(ka.Key, ""))
		other := h.stream(t, "", hdr(kb.Key, ""))

		h.send(hdr(kb.Key, ""), map[string]any{"event": "files.uploaded", "event_id": "b-1"})
		sent := []string{"a-1", "a-2", "a-3"}
		names := []string{"files.uploaded", "page.viewed", "files.deleted"}
		for i, id := range sent {
			h.send(hdr(ka.Key, ""), map[string]any{"event": names[i], "event_id": id, "user_id": "u1"})
		}
		var ids []int64
		for _, want := range sent {
			e := all.nextEvent()
			if e.EventID != want {
				t.Fatalf("tenant a's stream: got %q (%s), want %q", e.EventID, e.Event, want)
			}
			ids = append(ids, e.ID)
		}
		for _, want := range []string{"a-1", "a-3"} {
			if e := files.nextEvent(); e.EventID != want {
				t.Fatalf("event=files.* stream: got %q, want %q", e.EventID, want)
			}
		}
		if e := other.nextEvent(); e.EventID != "b-1" {
			t.Fatalf("tenant b's stream: got %q, want b-1", e.EventID)
		}
		all.close()

		// Resume after a-1: a-2 and a-3 from the log, then a-4 live.
		h.send(hdr(ka.Key, ""), map[string]any{"event": "page.viewed", "event_id": "a-4"})
		resumed := h.stream(t, "", hdr(ka.Key, "", "Last-Event-ID", strconv.FormatInt(ids[0], 10)))
		h.send(hdr(ka.Key, ""), map[string]any{"event": "page.viewed", "event_id": "a-5"})
		for _, want := range []string{"a-2", "a-3", "a-4", "a-5"} {
			if e := resumed.nextEvent(); e.EventID != want {
				t.Fatalf("resumed stream: got %q, want %q", e.EventID, want)
			}
		}
		// Tenant b resuming from a's first id sees none of a's events.
		bres := h.stream(t, "event=files.*", hdr(kb.Key, "", "Last-Event-ID", "0"))
		h.send(hdr(kb.Key, ""), map[string]any{"event": "files.deleted", "event_id": "b-2"})
		for _, want := range []string{"b-1", "b-2"} {
			if e := bres.nextEvent(); e.EventID != want {
				t.Fatalf("tenant b resumed from 0: got %q, want %q", e.EventID, want)
			}
		}

		// Draining the instance ends streams with a clear last frame.
		h.app.Server.Drain()
		// Frames still in flight may come first.
		f, _ := resumed.next()
		for f.Event != "end" {
			f, _ = resumed.next()
		}
		var end struct {
			Reason      string `json:"reason"`
			LastEventID int64  `json:"last_event_id"`
		}
		if f.Event != "end" || json.Unmarshal([]byte(f.Data), &end) != nil || end.Reason != "shutting_down" || end.LastEventID == 0 {
			t.Fatalf("drained stream ended with %+v (%+v)", f, end)
		}
		// Its last id is a position to resume from (the tenant's public
		// id, accepted as Last-Event-ID), whatever the stream last sent.
		again := h.stream(t, "", hdr(ka.Key, "", "Last-Event-ID", strconv.FormatInt(end.LastEventID, 10)))
		again.close()
		h.noPanic(t)
	})
}

// TestAPIStreamBadInput: the stream's parameters are checked like the
// list's, before any stream starts.
func TestAPIStreamBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.newTenant("acme")
	k := h.createKey(a, "analytics:read")
	w := h.createKey(a, "analytics:write")
	cases := []struct {
		name    string
		query   string
		headers map[string]string
		status  int
		field   string
	}{
		{"bad Last-Event-ID", "", hdr(k.Key, "", "Last-Event-ID", "x"), 400, "Last-Event-ID"},
		{"negative last_event_id", "last_event_id=-1", hdr(k.Key, ""), 400, "last_event_id"},
		{"bad event filter", "event=a*b*", hdr(k.Key, ""), 400, "event"},
		{"bad from", "from=yesterday", hdr(k.Key, ""), 400, "from"},
		{"no credentials", "", nil, 401, ""},
		{"write-only key", "", hdr(w.Key, ""), 403, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := wantProblem(t, h.doT(t, "GET", "/api/analytics/events/stream?"+c.query, nil, c.headers), c.status)
			if c.field != "" && !p.hasField(c.field) {
				t.Fatalf("problem %+v does not name %s", p, c.field)
			}
		})
	}
}

// TestAPIStreamTwoInstances: on PostgreSQL, an event ingested by one
// instance reaches a subscriber of the other (LISTEN/NOTIFY wakes it).
func TestAPIStreamTwoInstances(t *testing.T) {
	t.Parallel()
	pg := withPostgres(pgtest.FreshSchema(t))
	// No re-read by time: only the other instance's notification can wake
	// the subscriber.
	noPoll := func(c *app.Config) { c.LivePoll = time.Hour }
	one, two := newHarness(t, pg, noPoll), newHarness(t, pg, noPoll)
	o := one.newTenant("acme")
	k := one.createKey(o, "analytics:write", "analytics:read")
	s := two.stream(t, "event=deploy.*", hdr(k.Key, ""))
	for i := range 3 {
		one.send(hdr(k.Key, ""), map[string]any{"event": "deploy.finished", "event_id": "d-" + strconv.Itoa(i)})
	}
	for i := range 3 {
		if e := s.nextEvent(); e.EventID != "d-"+strconv.Itoa(i) {
			t.Fatalf("the second instance's subscriber got %q, want d-%d", e.EventID, i)
		}
	}
	one.noPanic(t)
	two.noPanic(t)
}

// TestAPIStreamStuckClientDropped: a client that opens the stream and
// never reads is dropped by the hub once its buffer is full, while every
// ingestion request goes on being accepted.
func TestAPIStreamStuckClientDropped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(c *app.Config) { c.LiveBuffer = 2 })
	o := h.newTenant("acme")
	k := h.createKey(o, "analytics:write", "analytics:read")
	u, _ := url.Parse(h.srv.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/analytics/events/stream HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", u.Host, k.Key)
	// Never read from conn. Wait until the subscription is open.
	eventually(t, "the stuck client subscribed", func() bool { return h.app.Live.Subscribers() == 1 })
	big := strings.Repeat("x", 8000)
	for i := 0; h.app.Live.Subscribers() > 0; i++ {
		if i == 400 {
			t.Fatal("the stuck client was never dropped")
		}
		var batch []map[string]any
		for j := range 100 {
			batch = append(batch, map[string]any{"event": "blob.stored", "event_id": fmt.Sprintf("b-%d-%d", i, j), "props": map[string]any{"pad": big}})
		}
		if res := h.send(hdr(k.Key, ""), map[string]any{"batch": batch}); res.Accepted != 100 {
			t.Fatalf("ingestion while a client is stuck: %+v", res)
		}
	}
	h.noPanic(t)
}
