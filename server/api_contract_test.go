package server_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestAPIFutureEventsListedByDefault checks that an event stamped up to an
// hour ahead (which ingestion accepts) is in the default list and export,
// and that from alone may lie ahead of the server's clock.
func TestAPIFutureEventsListedByDefault(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	ahead := time.Now().UTC().Add(30 * time.Minute).Truncate(time.Second)
	h.send(o.h(), map[string]any{"event": "clock.ahead", "timestamp": ahead.Format(time.RFC3339)})
	if n := len(h.listEvents(o.h(), "event=clock.ahead").Events); n != 1 {
		t.Fatalf("default list has %d of the event stamped 30 minutes ahead", n)
	}
	q := url.Values{"event": {"clock.ahead"}, "from": {ahead.Add(-time.Minute).Format(time.RFC3339)}}
	if n := len(h.listEvents(o.h(), q.Encode()).Events); n != 1 {
		t.Fatalf("from a minute before the future event: %d events", n)
	}
}

// TestAPIUnauthorizedChallenges checks that a 401 names the scheme in
// WWW-Authenticate (RFC 9110).
func TestAPIUnauthorizedChallenges(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, hd := range []map[string]string{nil, {"Authorization": "Bearer nonsense"}} {
		r := h.do("GET", "/api/analytics/events", nil, hd)
		wantProblem(t, r, http.StatusUnauthorized)
		if got := r.Header.Get("WWW-Authenticate"); got != `Bearer realm="tally"` {
			t.Errorf("WWW-Authenticate %q", got)
		}
	}
}
