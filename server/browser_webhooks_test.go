package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tallyhq/tally"
)

// TestBrowserWebhookDeliveries shows the delivery log in the dashboard:
// the tenant's deliveries newest first with their status, attempts, last
// answer and next attempt, a button for older pages, and nothing of the
// other tenant.
func TestBrowserWebhookDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newUIEnv(t, false)
	ctx := t.Context()
	st := e.app.Store
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	period := tally.DayStart(base)
	enqueue := func(tn *tally.Tenant, metric string, threshold int, at time.Time) *tally.WebhookDelivery {
		d := &tally.WebhookDelivery{TenantID: tn.ID, WebhookID: tally.NewWebhookID(), EventType: "quota.threshold",
			Metric: metric, Threshold: threshold, PeriodStart: period, Payload: []byte(`{}`), CreatedAt: at, NextAttemptAt: at.Add(time.Hour)}
		if ok, err := st.EnqueueWebhook(ctx, d); err != nil || !ok {
			t.Fatalf("enqueue: %v %v", ok, err)
		}
		return d
	}
	// 24 delivered ones, then a failed and a pending one (the newest).
	for i := range 24 {
		d := enqueue(e.tenant, fmt.Sprintf("metric_%02d", i), 80, base.Add(time.Duration(i)*time.Second))
		if err := st.RecordWebhookAttempt(ctx, e.tenant.ID, d.ID, tally.WebhookAttempt{Status: tally.WebhookDelivered,
			StatusCode: 204, At: d.CreatedAt}); err != nil {
			t.Fatal(err)
		}
	}
	failed := enqueue(e.tenant, "builds_daily", 80, base.Add(time.Minute))
	if err := st.RecordWebhookAttempt(ctx, e.tenant.ID, failed.ID, tally.WebhookAttempt{Status: tally.WebhookFailed,
		StatusCode: 500, Error: "webhook answered 500 Internal Server Error", At: failed.CreatedAt}); err != nil {
		t.Fatal(err)
	}
	pending := enqueue(e.tenant, "builds_daily", 100, base.Add(2*time.Minute))
	enqueue(e.other, "globex_only", 80, base.Add(3*time.Minute))

	s := newBrowserSession(t, e.ts.URL)
	s.loginForm(e.adminEmail, uiPassword)
	s.do(chromedp.WaitVisible(chromedp.CSS(`#dashboard`)))
	s.waitJS("the delivery log", `document.querySelectorAll('[data-deliveries] tr[data-delivery]').length === 20`)
	rows := browserEval[[]string](s, `Array.from(document.querySelectorAll('[data-deliveries] tr[data-delivery]')).map(tr => tr.dataset.status + '|' + tr.textContent)`)
	if !strings.HasPrefix(rows[0], "pending|") || !strings.Contains(rows[0], "builds_daily ≥ 100 %") {
		t.Errorf("newest row %q, want the pending builds_daily 100 %% delivery", rows[0])
	}
	if !strings.HasPrefix(rows[1], "failed|") || !strings.Contains(rows[1], "HTTP 500 · webhook answered 500") {
		t.Errorf("second row %q, want the failed delivery with its answer", rows[1])
	}
	if !strings.HasPrefix(rows[2], "delivered|") || !strings.Contains(rows[2], "HTTP 204") || !strings.Contains(rows[2], "metric_23") {
		t.Errorf("third row %q, want the newest delivered one", rows[2])
	}
	if n := browserEval[int](s, `document.querySelectorAll('[data-deliveries] tr[data-delivery="`+pending.WebhookID+`"] time').length`); n != 2 {
		t.Errorf("the pending row shows %d times, want created and next attempt", n)
	}

	s.do(chromedp.Click(chromedp.CSS(`[data-deliveries-more]`)))
	s.waitJS("the older deliveries", `document.querySelectorAll('[data-deliveries] tr[data-delivery]').length === 26`)
	if hidden := browserEval[bool](s, `document.querySelector('[data-deliveries-more]').hidden`); !hidden {
		t.Error("the older-deliveries button stays after the last page")
	}
	if all := browserEval[string](s, `document.querySelector('[data-deliveries]').textContent`); strings.Contains(all, "globex_only") ||
		!strings.Contains(all, "metric_00") {
		t.Errorf("delivery log after both pages: %q", all)
	}
	if bad := browserEval[[]string](s, lowContrast); len(bad) > 0 {
		t.Errorf("dashboard: text with too little contrast:\n%s", strings.Join(bad, "\n"))
	}
	s.screenshot("webhook-deliveries")
	s.wantCleanConsole("webhook deliveries")
}
