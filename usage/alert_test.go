package usage_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
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
