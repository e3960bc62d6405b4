package usage

import (
	"context"
	"encoding/json"
	"net/url"
	"time"

	"github.com/tallyhq/tally"
)

// crossed reports whether current reached threshold percent of limit.
func crossed(current, limit int64, threshold int) bool {
	return current > 0 && current*100 >= limit*int64(threshold)
}

// alertTimeout bounds the audit write and tenant lookup of one alert; they
// run detached from the caller's context, which may be a request's.
const alertTimeout = 10 * time.Second

// checkAlerts announces the thresholds of w's allowance that current (the
// period's usage) crossed for the first time in the period. The marks of
// Counters.FirstCrossing are kept a few days, so a period longer than
// that may announce a crossing again in the audit log and the metric (at
// most once a day); the webhook outbox keeps one delivery per period.
func (s *Service) checkAlerts(ctx context.Context, tenantID int64, w periodWindow, current int64) {
	q := w.q
	q.Limit = w.allowance()
	day := w.start.UTC()
	for _, th := range q.AlertThresholds() {
		if !crossed(current, q.Limit, th) {
			continue
		}
		first, err := s.counters.FirstCrossing(ctx, tenantID, day, q.Metric, th)
		if err != nil {
			s.cfg.Logger.Error("usage: alert dedupe", "tenant", tenantID, "metric", q.Metric, "err", err)
			continue
		}
		if first {
			s.alert(ctx, tenantID, day, q, current, th)
		}
	}
}

// WebhookPayload is the JSON body of a webhook, in the Standard Webhooks
// shape: the event type, when it happened, and its data.
type WebhookPayload struct {
	Type      string           `json:"type"`
	Timestamp string           `json:"timestamp"`
	Data      ThresholdCrossed `json:"data"`
}

// ThresholdCrossed is the data of a quota.threshold webhook: a quota's
// metric reached threshold percent of its daily limit for the first time
// in the UTC day that starts at PeriodStart.
type ThresholdCrossed struct {
	Tenant      string `json:"tenant"`
	Metric      string `json:"metric"`
	Threshold   int    `json:"threshold"`
	Current     int64  `json:"current"`
	Limit       int64  `json:"limit"`
	PeriodStart string `json:"period_start"`
}

// WebhookThresholdType is the type of quota alert webhooks.
const WebhookThresholdType = "quota.threshold"

// alert announces one crossing: the exceeded counter (at 100 %), an audit
// entry and, when the tenant has a webhook, a delivery in the outbox. The
// outbox holds one delivery per tenant, metric, threshold and day however
// many instances saw the crossing; the dispatcher sends it.
func (s *Service) alert(ctx context.Context, tenantID int64, day time.Time, q tally.Quota, current int64, threshold int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertTimeout)
	defer cancel()
	log := s.cfg.Logger.With("tenant", tenantID, "metric", q.Metric, "threshold", threshold)
	if threshold >= 100 {
		tl, ml := s.labels(ctx, tenantID, q.Metric)
		s.exceeded.WithLabelValues(tl, ml).Inc()
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	err := s.store.WriteAudit(ctx, &tally.AuditEntry{
		TenantID: tenantID,
		At:       now,
		Actor:    "system",
		Action:   WebhookThresholdType,
		Target:   q.Metric,
		Meta: map[string]any{
			"threshold":    threshold,
			"current":      current,
			"limit":        q.Limit,
			"day":          day.Format(time.DateOnly),
			"period":       q.PeriodOf(),
			"period_start": day.Format(time.RFC3339),
		},
	})
	if err != nil {
		log.Error("usage: audit quota alert", "err", err)
	}
	t, err := s.store.TenantByID(ctx, tenantID)
	if err != nil {
		log.Error("usage: quota alert tenant", "err", err)
		return
	}
	if t.WebhookURL == "" {
		return
	}
	body, err := json.Marshal(WebhookPayload{
		Type:      WebhookThresholdType,
		Timestamp: now.Format(time.RFC3339),
		Data: ThresholdCrossed{
			Tenant:      t.Slug,
			Metric:      q.Metric,
			Threshold:   threshold,
			Current:     current,
			Limit:       q.Limit,
			PeriodStart: day.UTC().Format(time.RFC3339),
		},
	})
	if err != nil {
		log.Error("usage: encode webhook", "err", err)
		return
	}
	created, err := s.store.EnqueueWebhook(ctx, &tally.WebhookDelivery{
		TenantID:      tenantID,
		WebhookID:     tally.NewWebhookID(),
		EventType:     WebhookThresholdType,
		Metric:        q.Metric,
		Threshold:     threshold,
		PeriodStart:   day.UTC(),
		Payload:       body,
		CreatedAt:     now,
		NextAttemptAt: now,
	})
	if err != nil {
		log.Error("usage: enqueue webhook", "err", err)
		return
	}
	if created && s.cfg.Wake != nil {
		s.cfg.Wake()
	}
}

// webhookHost is what logs say of a webhook URL: its host only, since hook
// URLs often carry a token in their path or query.
func webhookHost(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Host
	}
	return ""
}
