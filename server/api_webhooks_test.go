package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/app"
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
