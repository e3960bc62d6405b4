package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver the test's own lock connection uses

	"github.com/tallyhq/tally"
)

func TestAPIAutoTrackLogin(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("one")
	h.createTenant(o.token, "two", false)
	h.newTenant("three") // another user's tenant
	two := owner{token: o.token, slug: "two"}
	user := "user:" + strconv.FormatInt(o.id, 10)
	logins := func(who owner) int {
		n := 0
		for _, e := range h.listEvents(who.h(), "event="+tally.EventOwnLogin).Events {
			if ownAccount(t, e) == user && e.UserID == "" && e.Source == tally.OwnSource {
				n++
			}
		}
		return n
	}

	// Without X-Tenant-Slug: one login event in every tenant of the user.
	h.login(o.email)
	eventually(t, "auth.user.login in both tenants", func() bool { return logins(o) == 1 && logins(two) == 1 })

	// With X-Tenant-Slug: only there.
	h.do("POST", "/api/auth/login", map[string]string{"email": o.email, "password": harnessPassword}, hdr("", "two")).want(t, http.StatusOK)
	eventually(t, "second auth.user.login in tenant two", func() bool { return logins(two) == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := logins(o); n != 1 {
		t.Errorf("tenant one has %d logins after a login into two", n)
	}
	// A failed login tracks nothing.
	h.do("POST", "/api/auth/login", map[string]string{"email": o.email, "password": "wrong-password"}, nil).want(t, http.StatusUnauthorized)
	h.do("POST", "/api/auth/login", map[string]string{"email": o.email, "password": harnessPassword}, hdr("", "three")).want(t, http.StatusOK)
	time.Sleep(100 * time.Millisecond)
	if a, b := logins(o), logins(two); a != 1 || b != 2 {
		t.Errorf("logins %d, %d after a failed login and one into a foreign tenant", a, b)
	}
	// The tenant's creation is tracked too.
	eventually(t, "tally.tenant.created", func() bool { return len(h.listEvents(two.h(), "event=tally.tenant.created").Events) == 1 })
}

func TestAPIAutoTrackAPIRequest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	k := h.createKey(o, "analytics:read")
	h.do("GET", "/api/analytics/events?limit=3", nil, hdr(k.Key, "")).want(t, http.StatusOK)
	h.do("GET", "/api/analytics/events?limit=x", nil, hdr(k.Key, "acme")).want(t, http.StatusBadRequest)
	// A request the key is not allowed to make is tracked too.
	h.do("GET", "/api/analytics/export.csv", nil, hdr(k.Key, "")).want(t, http.StatusForbidden)

	var page eventsPage
	var raw []byte
	eventually(t, "three tally.api.request events", func() bool {
		r := h.do("GET", "/api/analytics/events?event=tally.api.request", nil, o.h())
		raw = r.Body
		r.decode(t, &page)
		return len(page.Events) == 3
	})
	if strings.Contains(string(raw), k.Key) || strings.Contains(string(raw), strings.TrimPrefix(k.Key, k.Prefix)) {
		t.Errorf("api.request events contain the key: %s", raw)
	}
	for i, want := range []struct {
		route  string
		status int
	}{ // newest first
		{"GET /api/analytics/export.csv", 403},
		{"GET /api/analytics/events", 400},
		{"GET /api/analytics/events", 200},
	} {
		var props struct {
			Route      string   `json:"route"`
			Method     string   `json:"method"`
			Status     int      `json:"status"`
			DurationMS *float64 `json:"duration_ms"`
			KeyPrefix  string   `json:"key_prefix"`
		}
		if err := json.Unmarshal(page.Events[i].Props, &props); err != nil {
			t.Fatal(err)
		}
		if props.Route != want.route || props.Method != "GET" || props.Status != want.status ||
			props.DurationMS == nil || *props.DurationMS < 0 || props.KeyPrefix != k.Prefix {
			t.Errorf("api.request props %s", page.Events[i].Props)
		}
	}
	// Session requests are not api.request events.
	time.Sleep(100 * time.Millisecond)
	if n := len(h.listEvents(o.h(), "event=tally.api.request").Events); n != 3 {
		t.Errorf("%d api.request events after session requests", n)
	}
}

func TestAPIAnalyticsDisabled(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withAnalyticsDisabled())
	o := h.newTenant("acme")
	h.do("PATCH", "/api/tenants/acme", map[string]any{"allow_signup": true}, o.h()).want(t, http.StatusOK)
	h.register("joiner@example.com", hdr("", "acme"))
	h.member(o, "admin")
	k := h.createKey(o, "analytics:read", "analytics:write", "analytics:export", "analytics:admin")
	h.do("GET", "/api/keys", nil, o.h()).want(t, http.StatusOK)
	h.do("GET", "/api/tenants", nil, hdr(o.token, "")).want(t, http.StatusOK)
	h.do("GET", "/api/auth/me", nil, hdr(o.token, "")).want(t, http.StatusOK)

	for _, rt := range []struct{ method, path string }{
		{"POST", "/api/analytics/events"},
		{"GET", "/api/analytics/events"},
		{"DELETE", "/api/analytics/users/u1/events"},
		{"GET", "/api/analytics/export.csv"},
		{"POST", "/api/analytics/usage"},
		{"GET", "/api/analytics/usage"},
		{"GET", "/api/analytics/metrics"},
		{"GET", "/api/analytics/quotas"},
		{"GET", "/api/analytics/quotas/builds_daily"},
		{"PUT", "/api/analytics/quotas/builds_daily"},
		{"POST", "/api/analytics/quotas/builds_daily/consume"},
		{"POST", "/api/analytics/rollup"},
		{"GET", "/api/analytics/audit"},
	} {
		for _, headers := range []map[string]string{o.h(), hdr(k.Key, "")} {
			r := h.do(rt.method, rt.path, map[string]string{"event": "x.y"}, headers)
			p := wantProblem(t, r, http.StatusServiceUnavailable)
			if p.Detail != "analytics disabled" {
				t.Errorf("%s: detail %q", r, p.Detail)
			}
			if n, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || n < 1 {
				t.Errorf("%s: Retry-After %q", r, r.Header.Get("Retry-After"))
			}
		}
	}

	r := h.do("GET", "/readiness", nil, nil)
	r.want(t, http.StatusOK)
	var ready struct {
		Status    string `json:"status"`
		Analytics struct {
			Configured *bool `json:"configured"`
		} `json:"analytics"`
	}
	r.decode(t, &ready)
	if ready.Status != "ok" || ready.Analytics.Configured == nil || *ready.Analytics.Configured {
		t.Errorf("readiness %s", r.Body)
	}
}

// TestAPIIngestQueueFull blocks the writer with a lock on the database
// file, fills the tiny queue until a request gets 503, and checks that
// every request answered 202 is stored once the lock is gone.
func TestAPIIngestQueueFull(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withIngestQueue(1))
	o := h.newTenant("acme")
	// Let the auto-tracked tenant.created reach the database first.
	eventually(t, "tally.tenant.created stored", func() bool { return len(h.listEvents(o.h(), "event=tally.tenant.created").Events) == 1 })

	db, err := sql.Open("sqlite", "file:"+h.dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	unlock := func() {
		if locked {
			locked = false
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
		}
	}
	defer unlock()

	type outcome struct {
		id string
		r  *apiResponse
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		wg       sync.WaitGroup
		got503   = make(chan *apiResponse, 100)
	)
	fire := func(i int) {
		defer wg.Done()
		id := fmt.Sprintf("q-%03d", i)
		r := h.doT(t, "POST", "/api/analytics/events", map[string]string{"event": "queue.test", "event_id": id}, o.h())
		mu.Lock()
		outcomes = append(outcomes, outcome{id, r})
		mu.Unlock()
		if r.Status == http.StatusServiceUnavailable {
			got503 <- r
		}
	}
	deadline := time.After(5 * time.Second)
	var first *apiResponse
	for i := 0; first == nil; i++ {
		wg.Add(1)
		go fire(i)
		select {
		case first = <-got503:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			unlock()
			wg.Wait()
			t.Fatalf("no 503 after %d requests against a blocked writer with a queue of 1", i+1)
		}
	}
	p := wantProblem(t, first, http.StatusServiceUnavailable)
	if n, err := strconv.Atoi(first.Header.Get("Retry-After")); err != nil || n < 1 {
		t.Errorf("503 Retry-After %q", first.Header.Get("Retry-After"))
	}
	if p.Detail == "" {
		t.Errorf("503 problem without detail: %s", first.Body)
	}
	unlock()
	wg.Wait()

	accepted := map[string]bool{}
	var n202, n503 int
	for _, oc := range outcomes {
		switch oc.r.Status {
		case http.StatusAccepted:
			n202++
			accepted[oc.id] = true
		case http.StatusServiceUnavailable:
			n503++
			assertProblem(t, oc.r)
		default:
			t.Errorf("unexpected %s", oc.r)
		}
	}
	if n202 == 0 {
		t.Errorf("no request was accepted (%d refused)", n503)
	}
	stored := map[string]bool{}
	for _, e := range h.allEvents(o.h(), url.Values{"event": {"queue.test"}, "limit": {"1000"}}) {
		if stored[e.EventID] {
			t.Errorf("event %s stored twice", e.EventID)
		}
		stored[e.EventID] = true
	}
	for id := range accepted {
		if !stored[id] {
			t.Errorf("event %s was answered 202 but is not stored", id)
		}
	}
	for id := range stored {
		if !accepted[id] {
			t.Errorf("event %s is stored but was refused", id)
		}
	}
	t.Logf("%d accepted, %d refused with 503", n202, n503)
	// The server is healthy again.
	h.send(o.h(), map[string]string{"event": "queue.after"})
}
