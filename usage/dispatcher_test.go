package usage_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/usage"
)

// TestRetrySchedule holds the default back-off to the table of
// docs/WEBHOOKS.md: 30 s doubling, at most 2 h.
func TestRetrySchedule(t *testing.T) {
	t.Parallel()
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		16 * time.Minute, 32 * time.Minute, 64 * time.Minute, 2 * time.Hour, 2 * time.Hour}
	var cfg usage.DispatcherConfig
	for i, w := range want {
		if got := cfg.RetryDelay(i + 1); got != w {
			t.Errorf("after attempt %d: %v, want %v", i+1, got, w)
		}
	}
	if got := cfg.RetryDelay(1000); got != 2*time.Hour {
		t.Errorf("after attempt 1000: %v", got)
	}
}

// TestDispatcherStopInterrupts stops the dispatcher while the receiver
// holds an attempt: Stop gives up at its deadline, and the attempt is
// recorded as pending and due at once, for the next start.
func TestDispatcherStopInterrupts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	arrived := make(chan struct{}, 1)
	hold := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // then the server notices the client leaving
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer hold.Close()
	tenant, _ := db.TenantByID(ctx, tn)
	tenant.WebhookURL, tenant.WebhookSecret = hold.URL, tally.NewWebhookSecret()
	if err := db.UpdateTenant(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	d := &tally.WebhookDelivery{TenantID: tn, WebhookID: tally.NewWebhookID(), EventType: "quota.threshold",
		Metric: "builds_daily", Threshold: 80, PeriodStart: tally.DayStart(now), Payload: []byte(`{}`),
		CreatedAt: now, NextAttemptAt: now}
	if _, err := db.EnqueueWebhook(ctx, d); err != nil {
		t.Fatal(err)
	}
	disp := usage.NewDispatcher(usage.DispatcherConfig{Timeout: time.Hour}, db)
	disp.Start()
	<-arrived
	sctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := disp.Stop(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want its deadline", err)
	}
	list, _, err := db.ListWebhooks(ctx, tn, tally.WebhookFilter{Limit: 1})
	if err != nil || len(list) != 1 {
		t.Fatalf("outbox %+v (err %v)", list, err)
	}
	if g := list[0]; g.Status != tally.WebhookPending || g.Attempts != 1 || g.LastError != "interrupted by shutdown" ||
		g.NextAttemptAt.After(time.Now()) {
		t.Errorf("interrupted delivery recorded as %+v", g)
	}
}
