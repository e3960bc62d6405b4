package usage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
	"github.com/tallyhq/tally/usage"
)

// newStore opens a fresh SQLite file with one tenant and returns its id.
func newStore(t testing.TB) (*sqlite.DB, int64) {
	t.Helper()
	db, tn := sqlitetest.WithTenant(t)
	return db, tn.ID
}

var seq atomic.Int64

// event returns an event of tenant named name at time at, with value 1.
func event(tenant int64, name string, at time.Time) tally.Event {
	return tally.Event{
		TenantID:   tenant,
		EventID:    fmt.Sprintf("e%d", seq.Add(1)),
		Name:       name,
		Source:     "api",
		Timestamp:  at,
		ReceivedAt: at,
		Value:      1,
		Props:      json.RawMessage(`{}`),
	}
}

// increment returns a usage.increment event of amount for metric.
func increment(tenant int64, metric string, amount float64, at time.Time) tally.Event {
	e := event(tenant, tally.EventUsageIncrement, at)
	e.Value = amount
	e.Props = json.RawMessage(`{"metric":"` + metric + `"}`)
	return e
}

// track does what ingestion does: Admit, write the admitted events, Settle.
// It returns Admit's errors.
func track(t testing.TB, svc *usage.Service, db tally.Store, events ...tally.Event) []error {
	t.Helper()
	ctx := context.Background()
	errs, res := svc.Admit(ctx, events)
	var write []tally.Event
	var amounts [][]tally.Amount
	for i, e := range events {
		if errs[i] == nil {
			write = append(write, e)
			amounts = append(amounts, res.Amounts[i])
		}
	}
	if len(write) == 0 {
		return errs
	}
	inserted, err := db.InsertEvents(ctx, write)
	if err != nil {
		t.Fatal(err)
	}
	svc.Settle(ctx, write, inserted, &tally.Reservation{Amounts: amounts})
	return errs
}

// clock is an injectable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var day1 = time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)

func TestCountsByRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	rules := append(tally.UsageRules{{Event: "billing.*", Metric: "revenue_daily", Sum: true}}, tally.DefaultUsageRules()...)
	cfg := usage.Config{Rules: rules, QuotasEnabled: true, Now: func() time.Time { return day1 }}
	svc := usage.NewService(cfg, db, usage.NewMemoryCounters(), nil, 0)

	charge := func(v float64) tally.Event { e := event(tn, "billing.charge", day1); e.Value = v; return e }
	yesterday := day1.Add(-24 * time.Hour)
	track(t, svc, db,
		event(tn, tally.EventAPIRequest, day1),
		event(tn, tally.EventAPIRequest, day1.Add(time.Hour)),
		event(tn, "builder.generate.completed", day1),
		event(tn, "files.uploaded", day1),
		event(tn, "files.uploaded", day1),
		event(tn, "files.uploaded", day1),
		event(tn, "page.view", day1),
		charge(10.4), charge(2.6), // rounded each: 10 + 3
		increment(tn, "seats_daily", 5, day1),
		increment(tn, "api_requests_daily", 7, day1),
		event(tn, tally.EventAPIRequest, yesterday), // another UTC day
	)
	want := map[string]int64{
		"api_requests_daily": 2 + 7,
		"builds_daily":       1,
		"file_uploads_daily": 3,
		"revenue_daily":      13,
		"seats_daily":        5,
		"events_daily":       11,
	}
	got, err := svc.Today(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("Today = %v, want %v", got, want)
	}

	// The counters are a cache of the log: a rebuild gives the same.
	rebuilt := usage.NewService(cfg, db, usage.NewMemoryCounters(), nil, 0)
	if err := rebuilt.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := rebuilt.Today(ctx, tn); !maps.Equal(got, want) {
		t.Errorf("after Rebuild: Today = %v, want %v", got, want)
	}
}

func TestDuplicatesCountZero(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "api_requests_daily", Limit: 10, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	e := event(tn, tally.EventAPIRequest, day1)
	track(t, svc, db, e)
	track(t, svc, db, e, e) // the same event_id again: stored once
	got, _ := svc.Today(ctx, tn)
	if want := map[string]int64{"api_requests_daily": 1, "events_daily": 1}; !maps.Equal(got, want) {
		t.Errorf("Today = %v, want %v", got, want)
	}

	// A failed write (inserted == nil) releases the reservation.
	errs, res := svc.Admit(ctx, []tally.Event{event(tn, tally.EventAPIRequest, day1)})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if st, _ := svc.Status(ctx, tn, "api_requests_daily"); st.Current != 2 {
		t.Errorf("reserved: current = %d, want 2", st.Current)
	}
	svc.Settle(ctx, []tally.Event{event(tn, tally.EventAPIRequest, day1)}, nil, res)
	if st, _ := svc.Status(ctx, tn, "api_requests_daily"); st.Current != 1 {
		t.Errorf("after failed write: current = %d, want 1", st.Current)
	}
}

func TestQuotaDefaultsAndOverrides(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	cfg := usage.Config{
		Defaults:      map[string]int64{"api_requests_daily": 100, "builds_daily": 5},
		QuotasEnabled: true,
		Now:           func() time.Time { return day1 },
	}
	svc := usage.NewService(cfg, db, usage.NewMemoryCounters(), nil, 0)
	track(t, svc, db, event(tn, tally.EventAPIRequest, day1), event(tn, tally.EventAPIRequest, day1))

	q, ok, err := svc.Quota(ctx, tn, "api_requests_daily")
	if err != nil || !ok || !reflect.DeepEqual(q, tally.Quota{Metric: "api_requests_daily", Limit: 100, Period: "day"}) {
		t.Errorf("default Quota = %+v, %v, %v", q, ok, err)
	}
	if _, ok, _ := svc.Quota(ctx, tn, "seats_daily"); ok {
		t.Error("Quota of a metric without quota: ok = true")
	}
	if _, err := svc.Status(ctx, tn, "seats_daily"); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("Status without quota: %v, want not_found", err)
	}

	st, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "api_requests_daily", Limit: 2, Enforced: true})
	if err != nil {
		t.Fatal(err)
	}
	want := tally.QuotaStatus{Metric: "api_requests_daily", Current: 2, Limit: 2, Remaining: 0, Exceeded: true, Enforced: true,
		Period: "day", Thresholds: tally.DefaultThresholds, PeriodStart: time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), ResetsAt: time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(st, want) {
		t.Errorf("SetQuota = %+v, want %+v", st, want)
	}
	all, err := svc.Statuses(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !reflect.DeepEqual(all[0], want) || all[1].Metric != "builds_daily" || all[1].Limit != 5 || all[1].Enforced {
		t.Errorf("Statuses = %+v", all)
	}

	for _, q := range []tally.Quota{{Metric: "Bad-Name", Limit: 1}, {Metric: "ok", Limit: -1}} {
		_, err := svc.SetQuota(ctx, tn, q)
		var te *tally.Error
		if !errors.As(err, &te) || te.Code != tally.EInvalid || len(te.Fields) != 1 {
			t.Errorf("SetQuota(%+v) = %v, want one invalid field", q, err)
		}
	}
}

func TestAdmit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	now := func() time.Time { return day1 }
	cfg := usage.Config{Defaults: map[string]int64{"api_requests_daily": 2}, QuotasEnabled: true, Now: now}
	svc := usage.NewService(cfg, db, usage.NewMemoryCounters(), nil, 0)

	batch := func(n int) []tally.Event {
		var out []tally.Event
		for range n {
			out = append(out, event(tn, tally.EventAPIRequest, day1))
		}
		return out
	}
	// Soft (default) quota: Admit never rejects.
	for i, err := range track(t, svc, db, batch(5)...) {
		if err != nil {
			t.Errorf("soft quota: event %d rejected: %v", i, err)
		}
	}

	// Enforced: of a batch, what fits passes, the rest is rejected.
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "api_requests_daily", Limit: 8, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	errs := track(t, svc, db, batch(5)...)
	for i, err := range errs {
		switch {
		case i < 3 && err != nil:
			t.Errorf("event %d rejected: %v", i, err)
		case i >= 3 && tally.ErrorCodeOf(err) != tally.ERateLimited:
			t.Errorf("event %d: %v, want rate_limited", i, err)
		case i >= 3 && !strings.Contains(err.Error(), "api_requests_daily") || i >= 3 && !strings.Contains(err.Error(), "8"):
			t.Errorf("event %d: %q does not name metric and limit", i, err)
		}
	}
	if got, _ := svc.Today(ctx, tn); got["api_requests_daily"] != 8 || got["events_daily"] != 8 {
		t.Errorf("Today = %v, want 8 and 8", got)
	}

	// An event over one of two enforced limits reserves nothing.
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "api_requests_daily", Limit: 100, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "events_daily", Limit: 9, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	errs = track(t, svc, db, batch(2)...)
	if errs[0] != nil || !strings.Contains(fmt.Sprint(errs[1]), "events_daily") {
		t.Errorf("errs = %v, want [nil, events_daily exceeded]", errs)
	}
	if got, _ := svc.Today(ctx, tn); got["api_requests_daily"] != 9 || got["events_daily"] != 9 {
		t.Errorf("Today = %v, want 9 and 9 (the rejected event's api_requests_daily released)", got)
	}

	// Quotas disabled: nothing is rejected.
	off := usage.NewService(usage.Config{QuotasEnabled: false, Now: now}, db, usage.NewMemoryCounters(), nil, 0)
	for i, err := range track(t, off, db, batch(20)...) {
		if err != nil {
			t.Errorf("quotas disabled: event %d rejected: %v", i, err)
		}
	}
	// ... and the answers say so: an enforced quota is not enforced now.
	sts, err := off.Statuses(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Enforced {
			t.Errorf("quotas disabled: Statuses reports %s enforced", st.Metric)
		}
	}
	if st, err := off.Status(ctx, tn, "events_daily"); err != nil || st.Enforced {
		t.Errorf("quotas disabled: Status = %+v, %v; want enforced false", st, err)
	}
	if _, st, _, err := off.Consume(ctx, tn, "events_daily", 1); err != nil || st.Enforced {
		t.Errorf("quotas disabled: Consume status = %+v, %v; want enforced false", st, err)
	}
}

// TestAdmitBackdated checks that an enforced quota holds for events of a
// past day too, whose usage is no longer in the counters: it is read from
// the log.
func TestAdmitBackdated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	yesterday, lastWeek := day1.Add(-24*time.Hour), day1.Add(-6*24*time.Hour)
	// The log already holds 5 builds yesterday and 1 last week, written
	// before this service (and its counters) existed.
	var old []tally.Event
	for range 5 {
		old = append(old, event(tn, "builder.generate.completed", yesterday))
	}
	old = append(old, event(tn, "builder.generate.completed", lastWeek))
	if _, err := db.InsertEvents(ctx, old); err != nil {
		t.Fatal(err)
	}
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "builds_daily", Limit: 3, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	if errs := track(t, svc, db, event(tn, "builder.generate.completed", yesterday.Add(time.Minute))); tally.ErrorCodeOf(errs[0]) != tally.ERateLimited {
		t.Fatalf("a build back-dated to a day already over its limit: %v, want rate_limited", errs[0])
	}
	batch := []tally.Event{
		event(tn, "builder.generate.completed", lastWeek.Add(time.Minute)),
		event(tn, "builder.generate.completed", lastWeek.Add(2*time.Minute)),
		event(tn, "builder.generate.completed", lastWeek.Add(3*time.Minute)),
	}
	errs := track(t, svc, db, batch...)
	if errs[0] != nil || errs[1] != nil || tally.ErrorCodeOf(errs[2]) != tally.ERateLimited {
		t.Fatalf("three builds on a day with 1 of 3: %v, want the first two admitted", errs)
	}
	// A later request sees what the first one stored.
	if errs := track(t, svc, db, event(tn, "builder.generate.completed", lastWeek.Add(4*time.Minute))); tally.ErrorCodeOf(errs[0]) != tally.ERateLimited {
		t.Fatalf("a fourth build on a full past day: %v, want rate_limited", errs[0])
	}
}

func TestConsumeConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "builds_daily", Limit: 50}); err != nil {
		t.Fatal(err)
	}
	const callers = 100
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			ok, st, res, err := svc.Consume(ctx, tn, "builds_daily", 1)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				allowed.Add(1)
				if res == nil || res.Amounts[0][0] != (tally.Amount{Metric: "builds_daily", N: 1}) {
					t.Errorf("res = %+v", res)
				}
			} else if res != nil || st.Current != 50 || st.Remaining != 0 || !st.Exceeded {
				t.Errorf("denied: st = %+v, res = %+v", st, res)
			}
		})
	}
	close(start)
	wg.Wait()
	if allowed.Load() != 50 {
		t.Errorf("allowed %d consumes, want exactly 50", allowed.Load())
	}
	if st, _ := svc.Status(ctx, tn, "builds_daily"); st.Current != 50 {
		t.Errorf("current = %d, want 50", st.Current)
	}
	if _, _, _, err := svc.Consume(ctx, tn, "seats_daily", 1); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("Consume without quota: %v, want not_found", err)
	}
	if _, _, _, err := svc.Consume(ctx, tn, "builds_daily", 0); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("Consume 0: %v, want invalid", err)
	}
}

func TestConsumeThenSettle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "builds_daily", Limit: 10}); err != nil {
		t.Fatal(err)
	}
	ok, st, res, err := svc.Consume(ctx, tn, "builds_daily", 4)
	if err != nil || !ok || st.Current != 4 {
		t.Fatalf("Consume = %v, %+v, %v", ok, st, err)
	}
	events := []tally.Event{increment(tn, "builds_daily", 4, day1)}
	inserted, err := db.InsertEvents(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	svc.Settle(ctx, events, inserted, res)
	if got, _ := svc.Today(ctx, tn); got["builds_daily"] != 4 || got["events_daily"] != 1 {
		t.Errorf("Today = %v, want builds_daily 4 (not twice), events_daily 1", got)
	}

	// A consume whose event turns out a duplicate is released.
	_, _, res, _ = svc.Consume(ctx, tn, "builds_daily", 4)
	inserted, _ = db.InsertEvents(ctx, events)
	svc.Settle(ctx, events, inserted, res)
	if st, _ := svc.Status(ctx, tn, "builds_daily"); st.Current != 4 {
		t.Errorf("current = %d, want 4", st.Current)
	}

	// A denied consume adds nothing.
	ok, st, _, _ = svc.Consume(ctx, tn, "builds_daily", 7)
	if ok || st.Current != 4 || st.Remaining != 6 {
		t.Errorf("denied Consume = %v, %+v", ok, st)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		now  time.Time
		want time.Duration
	}{
		{time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), 24 * time.Hour},
		{time.Date(2026, 3, 8, 23, 59, 30, 0, time.UTC), 30 * time.Second},
		{time.Date(2026, 3, 8, 23, 59, 59, 500_000_000, time.UTC), time.Second},
		{time.Date(2026, 3, 8, 12, 0, 0, 0, time.FixedZone("X", -5*3600)), 7 * time.Hour}, // 17:00 UTC
	} {
		if got := usage.RetryAfter(tc.now); got != tc.want {
			t.Errorf("RetryAfter(%v) = %v, want %v", tc.now, got, tc.want)
		}
	}
}

func TestRateLimitHeaders(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 8, 23, 0, 0, 0, time.UTC)
	st := tally.NewQuotaStatus(tally.Quota{Metric: "api_requests_daily", Limit: 100}, 40, 0, now, nil)
	policy, limit := usage.RateLimitHeaders(st, now)
	if want := `"api_requests_daily";q=100;w=86400`; policy != want {
		t.Errorf("policy = %s, want %s", policy, want)
	}
	if want := `"api_requests_daily";r=60;t=3600`; limit != want {
		t.Errorf("limit = %s, want %s", limit, want)
	}
	st = tally.NewQuotaStatus(tally.Quota{Metric: "builds_daily", Limit: 5}, 9, 0, now, nil)
	if _, limit := usage.RateLimitHeaders(st, now.Add(-time.Second/2)); limit != `"builds_daily";r=0;t=3601` {
		t.Errorf("exceeded: limit = %s", limit)
	}
}

// hook is a webhook receiver that fails its first answer.
type hook struct {
	secret string
	mu     sync.Mutex
	calls  int
	got    []map[string]any // delivered (2xx) bodies
	errs   []string
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	// The service's clock is fixed in March 2026: a wide tolerance.
	if err := tally.VerifyWebhook(h.secret, r.Header, body, 1000*24*time.Hour, time.Now()); err != nil {
		h.errs = append(h.errs, err.Error())
	}
	if h.calls == 1 {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		h.errs = append(h.errs, err.Error())
	}
	h.got = append(h.got, m)
}

func TestAlerts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	h := &hook{secret: "s3cret"}
	srv := httptest.NewServer(h)
	defer srv.Close()
	tenant, _ := db.TenantByID(ctx, tn)
	tenant.WebhookURL, tenant.WebhookSecret = srv.URL, h.secret
	if err := db.UpdateTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: day1}
	reg := prometheus.NewRegistry()
	disp := usage.NewDispatcher(usage.DispatcherConfig{Backoff: time.Minute, Now: clk.Now}, db)
	svc := usage.NewService(usage.Config{
		Defaults:      map[string]int64{"api_requests_daily": 10},
		QuotasEnabled: true,
		Now:           clk.Now,
	}, db, usage.NewMemoryCounters(), reg, 10)
	requests := func(n int, at time.Time) {
		for range n {
			track(t, svc, db, event(tn, tally.EventAPIRequest, at))
		}
	}
	requests(7, day1) // 70 %: nothing
	requests(1, day1) // 80 %
	requests(3, day1) // 110 %: the 100 % crossing
	requests(5, day1) // nothing more today
	day2 := day1.Add(24 * time.Hour)
	clk.Set(day2)
	requests(8, day2) // 80 % of the next day

	// The alerts wait in the outbox; one run sends all three, the
	// receiver fails the first, which is retried after the back-off.
	n, retry, err := disp.RunOnce(ctx)
	if err != nil || n != 3 || retry != time.Minute {
		t.Fatalf("first run: %d claimed, retry in %v, err %v; want 3, 1m", n, retry, err)
	}
	if n, _, err := disp.RunOnce(ctx); err != nil || n != 0 {
		t.Fatalf("run before the retry is due claimed %d (err %v)", n, err)
	}
	clk.Set(day2.Add(time.Minute))
	if n, retry, err := disp.RunOnce(ctx); err != nil || n != 1 || retry != 0 {
		t.Fatalf("retry run: %d claimed, retry in %v, err %v; want 1 delivered", n, retry, err)
	}
	list, _, err := db.ListWebhooks(ctx, tn, tally.WebhookFilter{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	attempts := 0
	for _, d := range list {
		attempts += d.Attempts
		if d.Status != tally.WebhookDelivered || d.LastStatusCode != http.StatusOK || d.DeliveredAt == nil {
			t.Errorf("delivery %+v not delivered", d)
		}
	}
	if len(list) != 3 || attempts != 4 {
		t.Errorf("outbox holds %d deliveries with %d attempts, want 3 with 4", len(list), attempts)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.errs) > 0 {
		t.Errorf("webhook errors: %v", h.errs)
	}
	if h.calls != 4 {
		t.Errorf("webhook calls = %d, want 4 (3 alerts, the first one retried)", h.calls)
	}
	seen := map[string]int{}
	for _, m := range h.got {
		data, _ := m["data"].(map[string]any)
		if m["type"] != "quota.threshold" || m["timestamp"] == nil || data["tenant"] != "acme" ||
			data["metric"] != "api_requests_daily" || data["limit"] != 10.0 {
			t.Errorf("webhook body %v", m)
		}
		seen[fmt.Sprintf("%v %v %v", data["period_start"], data["threshold"], data["current"])]++
	}
	want := map[string]int{
		"2026-03-08T00:00:00Z 80 8":   1,
		"2026-03-08T00:00:00Z 100 10": 1,
		"2026-03-09T00:00:00Z 80 8":   1,
	}
	if !maps.Equal(seen, want) {
		t.Errorf("deliveries = %v, want %v", seen, want)
	}

	audit, _, err := db.ListAudit(ctx, tn, tally.AuditFilter{Action: "quota.threshold", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(audit) != 3 {
		t.Fatalf("%d audit entries, want 3", len(audit))
	}
	if a := audit[1]; a.Actor != "system" || a.Target != "api_requests_daily" || a.Meta["threshold"] != 100.0 ||
		a.Meta["current"] != 10.0 || a.Meta["limit"] != 10.0 || a.Meta["day"] != "2026-03-08" {
		t.Errorf("audit entry %+v", a)
	}

	const metrics = `
# HELP sbh_quota_exceeded_total Quotas reaching 100 % of their daily limit (once per tenant, metric and day).
# TYPE sbh_quota_exceeded_total counter
sbh_quota_exceeded_total{metric="api_requests_daily",tenant="acme"} 1
# HELP sbh_usage_count_total Usage counted per tenant and metric (the sum of every counted amount).
# TYPE sbh_usage_count_total counter
sbh_usage_count_total{metric="api_requests_daily",tenant="acme"} 24
sbh_usage_count_total{metric="events_daily",tenant="acme"} 24
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(metrics), "sbh_quota_exceeded_total", "sbh_usage_count_total"); err != nil {
		t.Error(err)
	}
}

func TestRebuildDoesNotRealert(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	cfg := usage.Config{Defaults: map[string]int64{"builds_daily": 10}, QuotasEnabled: true, Now: func() time.Time { return day1 }}
	var events []tally.Event
	for range 9 {
		events = append(events, event(tn, "builder.generate.completed", day1))
	}
	if _, err := db.InsertEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	svc := usage.NewService(cfg, db, usage.NewMemoryCounters(), nil, 0)
	if err := svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	track(t, svc, db, event(tn, "builder.generate.completed", day1)) // 100 %
	audit, _, _ := db.ListAudit(ctx, tn, tally.AuditFilter{Action: "quota.threshold", Limit: 10})
	if len(audit) != 1 || audit[0].Meta["threshold"] != 100.0 {
		t.Errorf("audit = %+v, want only the 100 %% crossing", audit)
	}
}

func TestLabelCap(t *testing.T) {
	t.Parallel()
	db, tn := newStore(t)
	reg := prometheus.NewRegistry()
	svc := usage.NewService(usage.Config{Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), reg, 2)
	track(t, svc, db, increment(tn, "a", 1, day1), increment(tn, "b", 2, day1), increment(tn, "c", 3, day1))
	const metrics = `
# HELP sbh_usage_count_total Usage counted per tenant and metric (the sum of every counted amount).
# TYPE sbh_usage_count_total counter
sbh_usage_count_total{metric="a",tenant="acme"} 1
sbh_usage_count_total{metric="events_daily",tenant="acme"} 3
sbh_usage_count_total{metric="other",tenant="acme"} 5
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(metrics), "sbh_usage_count_total"); err != nil {
		t.Error(err)
	}
}

func TestMemoryCountersDropOldDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := usage.NewMemoryCounters()
	c.Add(ctx, 1, day1, "m", 5)
	if first, _ := c.FirstCrossing(ctx, 1, day1, "m", 80); !first {
		t.Error("FirstCrossing: first call false")
	}
	if again, _ := c.FirstCrossing(ctx, 1, day1, "m", 80); again {
		t.Error("FirstCrossing: second call true")
	}
	c.Add(ctx, 1, day1.Add(48*time.Hour), "m", 1)
	if v, _ := c.Get(ctx, 1, day1, "m"); v != 5 {
		t.Errorf("two days later: %d, want 5 (kept)", v)
	}
	c.Add(ctx, 1, day1.Add(72*time.Hour), "m", 1)
	if v, _ := c.Get(ctx, 1, day1, "m"); v != 0 {
		t.Errorf("three days later: %d, want 0 (dropped)", v)
	}
	if first, _ := c.FirstCrossing(ctx, 1, day1, "m", 80); !first {
		t.Error("FirstCrossing mark not dropped with its day")
	}
}

// BenchmarkConsume measures quota consumes under contention. One op is a
// batch of consumeBatch calls spread over 4 goroutines per CPU, so that the
// figure holds at any -benchtime; ns/consume is the cost of one call. The
// baseline is an unconditional counter increment.
func BenchmarkConsume(b *testing.B) {
	ctx := context.Background()
	const consumeBatch = 10000
	parallel := func(b *testing.B, fn func() error) {
		workers := 4 * runtime.GOMAXPROCS(0)
		for b.Loop() {
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for range consumeBatch / workers {
						if err := fn(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*consumeBatch), "ns/consume")
	}
	b.Run("counters-add", func(b *testing.B) {
		c := usage.NewMemoryCounters()
		parallel(b, func() error { _, err := c.Add(ctx, 1, day1, "api_requests_daily", 1); return err })
	})
	b.Run("counters-consume", func(b *testing.B) {
		c := usage.NewMemoryCounters()
		parallel(b, func() error {
			_, _, err := c.Consume(ctx, 1, day1, "api_requests_daily", 1, 1<<62)
			return err
		})
	})
	b.Run("service-consume", func(b *testing.B) { // with the quota lookup in SQLite
		db, tn := newStore(b)
		svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), nil, 0)
		if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "api_requests_daily", Limit: 1 << 62, Enforced: true}); err != nil {
			b.Fatal(err)
		}
		parallel(b, func() error {
			_, _, _, err := svc.Consume(ctx, tn, "api_requests_daily", 1)
			return err
		})
	})
}

// TestRebuildMissing checks that RebuildMissing fills empty counters from
// the log but leaves counters that hold values alone.
func TestRebuildMissing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	if _, err := db.InsertEvents(ctx, []tally.Event{event(tn, tally.EventAPIRequest, day1), event(tn, tally.EventAPIRequest, day1)}); err != nil {
		t.Fatal(err)
	}
	counters := usage.NewMemoryCounters()
	svc := usage.NewService(usage.Config{Now: func() time.Time { return day1 }}, db, counters, nil, 0)
	if err := svc.RebuildMissing(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Today(ctx, tn); got["api_requests_daily"] != 2 {
		t.Fatalf("empty counters were not rebuilt: %v", got)
	}
	// Another instance counted more meanwhile: a restart must not reset it.
	if _, err := counters.Add(ctx, tn, tally.DayStart(day1), "api_requests_daily", 5); err != nil {
		t.Fatal(err)
	}
	if err := svc.RebuildMissing(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := svc.Today(ctx, tn); got["api_requests_daily"] != 7 {
		t.Fatalf("RebuildMissing reset live counters: %v", got)
	}
}
