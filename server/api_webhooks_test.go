package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/postgres/pgtest"
)

func withPrivateWebhooks() harnessOption {
	return func(c *app.Config) { c.AllowPrivateWebhooks = true }
}

func withWebhookBackoff(d time.Duration) harnessOption {
	return func(c *app.Config) { c.WebhookBackoff = d }
}

// withClockOffset runs the app's clock d ahead of the wall clock.
func withClockOffset(d time.Duration) harnessOption {
	return func(c *app.Config) { c.Now = func() time.Time { return time.Now().Add(d) } }
}

// receiver is a webhook endpoint that verifies every request against the
// tenant's secret and answers 503 until up is set.
type receiver struct {
	srv    *httptest.Server
	up     atomic.Bool
	secret atomic.Value // string
	mu     sync.Mutex
	ids    []string // webhook-id of every request
	bodies []string // bodies of the answered (2xx) requests
	errs   []string // verification failures
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		secret, _ := rc.secret.Load().(string)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.ids = append(rc.ids, r.Header.Get(tally.HeaderWebhookID))
		// A tolerance of 3h: the restarted app's clock runs 2h ahead.
		if err := tally.VerifyWebhook(secret, r.Header, body, 3*time.Hour, time.Now()); err != nil {
			rc.errs = append(rc.errs, err.Error())
		}
		if !rc.up.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rc.bodies = append(rc.bodies, string(body))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) snapshot() (ids, bodies, errs []string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.ids...), append([]string(nil), rc.bodies...), append([]string(nil), rc.errs...)
}

// hookTenant creates a tenant whose webhook points at rc (keeping the
// secret in rc) and returns its owner.
func (h *harness) hookTenant(slug string, rc *receiver) owner {
	h.t.Helper()
	o := h.newTenant(slug)
	var a struct {
		WebhookSecret string `json:"webhook_secret"`
	}
	h.do("PATCH", "/api/tenants/"+slug, map[string]any{"webhook_url": rc.srv.URL + "/hook?token=x"}, o.h()).
		want(h.t, http.StatusOK).decode(h.t, &a)
	if a.WebhookSecret == "" {
		h.t.Fatal("no webhook secret")
	}
	rc.secret.Store(a.WebhookSecret)
	return o
}

// apiDelivery is a delivery as GET /api/analytics/webhooks/deliveries
// shows it.
type apiDelivery struct {
	ID             string     `json:"id"`
	EventType      string     `json:"event_type"`
	Metric         string     `json:"metric"`
	Threshold      int        `json:"threshold"`
	PeriodStart    time.Time  `json:"period_start"`
	Status         string     `json:"status"`
	Attempts       int        `json:"attempts"`
	LastStatusCode *int       `json:"last_status_code"`
	LastError      *string    `json:"last_error"`
	CreatedAt      time.Time  `json:"created_at"`
	NextAttemptAt  *time.Time `json:"next_attempt_at"`
	DeliveredAt    *time.Time `json:"delivered_at"`
}

type deliveriesPage struct {
	Deliveries []apiDelivery `json:"deliveries"`
	NextCursor *string       `json:"next_cursor"`
}

func (h *harness) deliveries(headers map[string]string, query string) deliveriesPage {
	h.t.Helper()
	var p deliveriesPage
	h.do("GET", "/api/analytics/webhooks/deliveries?"+query, nil, headers).want(h.t, http.StatusOK).decode(h.t, &p)
	return p
}

// builds sends n builds_daily events to o's tenant.
func (h *harness) builds(o owner, n int) {
	h.t.Helper()
	var evs []map[string]any
	for range n {
		evs = append(evs, map[string]any{"event_id": h.uniq("b"), "event": "builder.generate.completed"})
	}
	if res := h.send(o.h(), map[string]any{"batch": evs}); res.Accepted != n {
		h.t.Fatalf("accepted %d of %d", res.Accepted, n)
	}
}

// TestWebhookOutboxSurvivesRestart crosses a quota while the receiver is
// down: the deliveries wait in the outbox with their failed attempts
// recorded; the app stops, a new one starts on the same database, and the
// deliveries arrive, each once delivered, under the same webhook-id on
// every attempt, signed.
func TestWebhookOutboxSurvivesRestart(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		rc := newReceiver(t)
		quota := withQuotaDefaults(map[string]int64{"builds_daily": 2})
		h := newHarness(t, append(opts, quota, withPrivateWebhooks(), withWebhookBackoff(time.Hour))...)
		o := h.hookTenant("hooked", rc)
		h.builds(o, 2) // 100 % of 2: the 80 % and 100 % crossings at once
		var p deliveriesPage
		eventually(t, "both deliveries tried once and pending", func() bool {
			p = h.deliveries(o.h(), "")
			return len(p.Deliveries) == 2 && p.Deliveries[0].Attempts == 1 && p.Deliveries[1].Attempts == 1 &&
				p.Deliveries[0].LastStatusCode != nil && p.Deliveries[1].LastStatusCode != nil
		})
		for _, d := range p.Deliveries {
			if d.Status != "pending" || *d.LastStatusCode != 503 || d.LastError == nil || d.NextAttemptAt == nil ||
				d.DeliveredAt != nil || d.Metric != "builds_daily" || d.EventType != "quota.threshold" ||
				!strings.HasPrefix(d.ID, "msg_") || strings.Contains(*d.LastError, "token") {
				t.Errorf("pending delivery %+v", d)
			}
			if wait := time.Until(*d.NextAttemptAt); wait < 50*time.Minute {
				t.Errorf("next attempt in %v, want the 1h back-off", wait)
			}
		}
		if err := h.app.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		h.noPanic(t)

		// The next start, with a short back-off; the receiver is up again.
		// The 1h retry is not due: the outbox's due time is what counts, so
		// the new app delivers once that time comes (here: moved forward).
		rc.up.Store(true)
		again := opts
		if len(opts) == 0 {
			again = []harnessOption{withSQLitePath(h.dbPath)}
		}
		h2 := newHarness(t, append(again, quota, withPrivateWebhooks(), withWebhookBackoff(10*time.Millisecond),
			withClockOffset(2*time.Hour))...)
		eventually(t, "both deliveries delivered after the restart", func() bool {
			p = h2.deliveries(o.h(), "")
			return len(p.Deliveries) == 2 && p.Deliveries[0].Status == "delivered" && p.Deliveries[1].Status == "delivered"
		})
		for _, d := range p.Deliveries {
			if d.Attempts != 2 || *d.LastStatusCode != 204 || d.LastError != nil || d.NextAttemptAt != nil || d.DeliveredAt == nil {
				t.Errorf("delivered %+v", d)
			}
		}
		ids, bodies, errs := rc.snapshot()
		if len(errs) > 0 {
			t.Errorf("signature checks failed: %v", errs)
		}
		if len(ids) != 4 || len(bodies) != 2 {
			t.Fatalf("receiver saw %d requests, %d answered; want 4 and 2", len(ids), len(bodies))
		}
		seen := map[string]int{}
		for _, id := range ids {
			seen[id]++
		}
		for _, d := range p.Deliveries {
			if seen[d.ID] != 2 {
				t.Errorf("delivery %s sent %d times under its id, want 2", d.ID, seen[d.ID])
			}
		}
		for _, b := range bodies {
			if !strings.Contains(b, `"type":"quota.threshold"`) || !strings.Contains(b, `"tenant":"hooked"`) {
				t.Errorf("body %s", b)
			}
		}
		h2.noPanic(t)
	})
}

// TestWebhookDeliveriesAPI reads the delivery log: the tenant's own
// deliveries only, newest first by pages, for admins and read keys, with
// bad paging parameters refused naming them.
func TestWebhookDeliveriesAPI(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		rc := newReceiver(t)
		rc.up.Store(true)
		h := newHarness(t, append(opts, withPrivateWebhooks(),
			withQuotaDefaults(map[string]int64{"builds_daily": 1, "events_daily": 1}))...)
		a, b := h.hookTenant("hooks-a", rc), h.newTenant("hooks-b")
		h.builds(a, 1) // builds_daily and events_daily, 80 % and 100 % each
		var all []apiDelivery
		eventually(t, "four deliveries delivered", func() bool {
			all = h.deliveries(a.h(), "").Deliveries
			n := 0
			for _, d := range all {
				if d.Status == "delivered" {
					n++
				}
			}
			return len(all) == 4 && n == 4
		})
		got := map[string]bool{}
		for i, d := range all {
			got[d.Metric+" "+strconv.Itoa(d.Threshold)] = true
			if i > 0 && d.CreatedAt.After(all[i-1].CreatedAt) {
				t.Errorf("deliveries not newest first: %+v", all)
			}
		}
		for _, k := range []string{"builds_daily 80", "builds_daily 100", "events_daily 80", "events_daily 100"} {
			if !got[k] {
				t.Errorf("no delivery for %s in %+v", k, all)
			}
		}

		// Pages of 3 and 1 give the same list.
		p1 := h.deliveries(a.h(), "limit=3")
		if len(p1.Deliveries) != 3 || p1.NextCursor == nil {
			t.Fatalf("first page %+v", p1)
		}
		p2 := h.deliveries(a.h(), "limit=3&cursor="+*p1.NextCursor)
		if len(p2.Deliveries) != 1 || p2.NextCursor != nil || p2.Deliveries[0].ID != all[3].ID {
			t.Fatalf("second page %+v, want %s alone", p2, all[3].ID)
		}

		// Another tenant sees none of them, even with a's cursor.
		if p := h.deliveries(b.h(), ""); len(p.Deliveries) != 0 {
			t.Errorf("tenant b sees %+v", p.Deliveries)
		}
		if p := h.deliveries(b.h(), "cursor="+*p1.NextCursor); len(p.Deliveries) != 0 {
			t.Errorf("tenant b with a's cursor sees %+v", p.Deliveries)
		}

		// Roles and scopes: admins and read keys; members and write keys not.
		key := h.createKey(a, "analytics:read")
		if p := h.deliveries(hdr(key.Key, ""), ""); len(p.Deliveries) != 4 {
			t.Errorf("read key sees %d deliveries", len(p.Deliveries))
		}
		member, _ := h.member(a, "member")
		wantProblem(t, h.do("GET", "/api/analytics/webhooks/deliveries", nil, hdr(member, a.slug)), http.StatusForbidden)
		wk := h.createKey(a, "analytics:write")
		wantProblem(t, h.do("GET", "/api/analytics/webhooks/deliveries", nil, hdr(wk.Key, "")), http.StatusForbidden)
		wantProblem(t, h.do("GET", "/api/analytics/webhooks/deliveries", nil, nil), http.StatusUnauthorized)

		for _, c := range []struct{ query, field string }{
			{"limit=0", "limit"},
			{"limit=501", "limit"},
			{"limit=x", "limit"},
			{"cursor=nope", "cursor"},
		} {
			p := wantProblem(t, h.do("GET", "/api/analytics/webhooks/deliveries?"+c.query, nil, a.h()), http.StatusBadRequest)
			if !p.hasField(c.field) {
				t.Errorf("%s: problem %+v does not name %s", c.query, p, c.field)
			}
		}
		h.noPanic(t)
	})
}

// TestWebhookOnceAcrossInstances runs two instances on one PostgreSQL
// schema, both counting builds past a quota's thresholds and both
// dispatching: the receiver gets each crossing once.
func TestWebhookOnceAcrossInstances(t *testing.T) {
	t.Parallel()
	rc := newReceiver(t)
	rc.up.Store(true)
	opts := []harnessOption{withPostgres(pgtest.FreshSchema(t)), withPrivateWebhooks(),
		withQuotaDefaults(map[string]int64{"builds_daily": 10})}
	one, two := newHarness(t, opts...), newHarness(t, opts...)
	o := one.hookTenant("shared", rc)
	var wg sync.WaitGroup
	for i := range 20 {
		h := one
		if i%2 == 1 {
			h = two
		}
		wg.Go(func() {
			r := h.do("POST", "/api/analytics/events", map[string]any{"event": "builder.generate.completed",
				"event_id": "b" + strconv.Itoa(i)}, o.h())
			if r.Status != http.StatusAccepted {
				t.Errorf("%s", r)
			}
		})
	}
	wg.Wait()
	var p deliveriesPage
	eventually(t, "two deliveries delivered", func() bool {
		p = two.deliveries(o.h(), "")
		return len(p.Deliveries) == 2 && p.Deliveries[0].Status == "delivered" && p.Deliveries[1].Status == "delivered"
	})
	ids, bodies, errs := rc.snapshot()
	if len(errs) > 0 {
		t.Errorf("signature checks failed: %v", errs)
	}
	if len(ids) != 2 || len(bodies) != 2 || ids[0] == ids[1] {
		t.Errorf("receiver got %d requests (%v), want one per crossing:\n%s", len(ids), ids, strings.Join(bodies, "\n"))
	}
	for _, d := range p.Deliveries {
		if d.Attempts != 1 || d.Metric != "builds_daily" {
			t.Errorf("delivery %+v", d)
		}
	}
	one.noPanic(t)
	two.noPanic(t)
}
