package usage_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/testenv"
	"github.com/tallyhq/tally/usage"
)

// TestFailedWebhookLogsNoURL makes every delivery fail, by an error answer
// and by a refused connection, and checks that the logs name the hook's
// host but never its path or query, where tokens live.
func TestFailedWebhookLogsNoURL(t *testing.T) {
	t.Parallel()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer failing.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String()
	l.Close()

	for name, base := range map[string]string{"error answer": failing.URL, "connection refused": refused} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, tn := newStore(t)
			tenant, _ := db.TenantByID(ctx, tn)
			tenant.WebhookURL = base + "/hooks/PATHSECRET?token=QUERYSECRET"
			tenant.WebhookSecret = "s"
			if err := db.UpdateTenant(ctx, tenant); err != nil {
				t.Fatal(err)
			}
			logs := &testenv.Buffer{}
			log := slog.New(slog.NewTextHandler(logs, nil))
			clk := &clock{t: day1}
			svc := usage.NewService(usage.Config{
				Defaults:      map[string]int64{"api_requests_daily": 1},
				QuotasEnabled: true,
				Now:           clk.Now,
				Logger:        log,
			}, db, usage.NewMemoryCounters(), prometheus.NewRegistry(), 10)
			disp := usage.NewDispatcher(usage.DispatcherConfig{MaxAttempts: 2, Backoff: time.Second, Now: clk.Now, Logger: log}, db)
			track(t, svc, db, event(tn, tally.EventAPIRequest, day1)) // 80 % and 100 %: two alerts
			for range 2 {
				if n, _, err := disp.RunOnce(ctx); err != nil || n != 2 {
					t.Fatalf("claimed %d (err %v), want 2", n, err)
				}
				clk.Set(clk.Now().Add(time.Second))
			}
			list, _, err := db.ListWebhooks(ctx, tn, tally.WebhookFilter{Limit: 10})
			if err != nil || len(list) != 2 {
				t.Fatalf("outbox %+v (err %v)", list, err)
			}
			for _, d := range list {
				if d.Status != tally.WebhookFailed || d.Attempts != 2 || d.LastError == "" || strings.Contains(d.LastError, "SECRET") {
					t.Errorf("failed delivery recorded as %+v", d)
				}
			}
			out := logs.String()
			host := strings.TrimPrefix(base, "http://")
			if !strings.Contains(out, "webhook failed") || !strings.Contains(out, "webhook attempt failed") || !strings.Contains(out, host) {
				t.Fatalf("logs do not report the failed delivery to %s:\n%s", host, out)
			}
			if strings.Contains(out, "SECRET") {
				t.Errorf("logs carry the webhook URL's path or query:\n%s", out)
			}
		})
	}
}

// TestQuotaThresholds: a quota's own thresholds replace 80 % and 100 %:
// each is announced once, when usage first reaches it, in the outbox and
// the audit log; a percentage it does not name is never announced, and
// one above 100 counts overage.
func TestQuotaThresholds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	tenant, _ := db.TenantByID(ctx, tn)
	tenant.WebhookURL, tenant.WebhookSecret = "http://127.0.0.1:1/hook", "s"
	if err := db.UpdateTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: day1}
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: clk.Now}, db, usage.NewMemoryCounters(), prometheus.NewRegistry(), 10)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "api_requests_daily", Limit: 10, Thresholds: []int{50, 100, 150}}); err != nil {
		t.Fatal(err)
	}
	announced := func() []int {
		t.Helper()
		list, _, err := db.ListWebhooks(ctx, tn, tally.WebhookFilter{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		var out []int
		for i := len(list) - 1; i >= 0; i-- {
			out = append(out, list[i].Threshold)
		}
		return out
	}
	for i, want := range []struct {
		events int
		then   []int
	}{{4, nil}, {1, []int{50}}, {3, []int{50}}, {2, []int{50, 100}}, {4, []int{50, 100}}, {1, []int{50, 100, 150}}, {5, []int{50, 100, 150}}} {
		var evs []tally.Event
		for range want.events {
			evs = append(evs, event(tn, tally.EventAPIRequest, day1))
		}
		track(t, svc, db, evs...)
		if got := announced(); !slices.Equal(got, want.then) {
			t.Fatalf("step %d: thresholds announced %v, want %v", i, got, want.then)
		}
	}
	audit, _, err := db.ListAudit(ctx, tn, tally.AuditFilter{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, a := range audit {
		if a.Action == usage.WebhookThresholdType {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d threshold entries in the audit log, want 3", n)
	}
	_, err = svc.SetQuota(ctx, tn, tally.Quota{Metric: "api_requests_daily", Limit: 10, Thresholds: []int{90, 80}})
	var te *tally.Error
	if !errors.As(err, &te) || te.Code != tally.EInvalid || len(te.Fields) != 1 || te.Fields[0].Field != "thresholds[1]" {
		t.Errorf("descending thresholds: %v; want invalid naming thresholds[1]", err)
	}
}

// TestConsumeAlerts: a consume announces the thresholds it crosses when it
// takes the amount, and Settling its usage.increment still announces what
// the event adds beyond that (here events_daily, which every event
// counts), though not the consumed metric a second time.
func TestConsumeAlerts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	tenant, _ := db.TenantByID(ctx, tn)
	tenant.WebhookURL, tenant.WebhookSecret = "http://127.0.0.1:1/hook", "s"
	if err := db.UpdateTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), prometheus.NewRegistry(), 10)
	for _, q := range []tally.Quota{{Metric: "builds_daily", Limit: 10, Thresholds: []int{80}}, {Metric: "events_daily", Limit: 2, Thresholds: []int{50}}} {
		if _, err := svc.SetQuota(ctx, tn, q); err != nil {
			t.Fatal(err)
		}
	}
	announced := func() map[int]int {
		t.Helper()
		list, _, err := db.ListWebhooks(ctx, tn, tally.WebhookFilter{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]int{}
		for _, w := range list {
			out[w.Threshold]++
		}
		return out
	}
	ok, _, res, err := svc.Consume(ctx, tn, "builds_daily", 8)
	if err != nil || !ok {
		t.Fatalf("Consume = %v, %v", ok, err)
	}
	if got := announced(); got[80] != 1 || got[50] != 0 {
		t.Fatalf("after the consume: thresholds %v, want builds_daily's 80 once", got)
	}
	events := []tally.Event{increment(tn, "builds_daily", 8, day1)}
	inserted, err := db.InsertEvents(ctx, events)
	if err != nil {
		t.Fatal(err)
	}
	svc.Settle(ctx, events, inserted, res)
	if got := announced(); got[80] != 1 || got[50] != 1 {
		t.Errorf("after Settle: thresholds %v, want builds_daily's 80 and events_daily's 50 once each", got)
	}
}
