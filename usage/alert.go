package usage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

// thresholds are the percentages of a quota's limit whose first crossing
// in a day is announced.
var thresholds = [...]int{80, 100}

// crossed reports whether current reached threshold percent of limit.
func crossed(current, limit int64, threshold int) bool {
	return current > 0 && current*100 >= limit*int64(threshold)
}

// alertTimeout bounds the audit write and tenant lookup of one alert; they
// run detached from the caller's context, which may be a request's.
const alertTimeout = 10 * time.Second

// checkAlerts announces the thresholds that current crossed for the first
// time in day.
func (s *Service) checkAlerts(ctx context.Context, tenantID int64, day time.Time, q tally.Quota, current int64) {
	for _, th := range thresholds {
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

// webhookPayload is the JSON body of a quota.threshold webhook.
type webhookPayload struct {
	Type        string `json:"type"`
	Tenant      string `json:"tenant"`
	Metric      string `json:"metric"`
	Threshold   int    `json:"threshold"`
	Current     int64  `json:"current"`
	Limit       int64  `json:"limit"`
	PeriodStart string `json:"period_start"`
	At          string `json:"at"`
}

// alert announces one crossing: the exceeded counter (at 100 %), an audit
// entry and, when the tenant has a webhook, a delivery in the background.
func (s *Service) alert(ctx context.Context, tenantID int64, day time.Time, q tally.Quota, current int64, threshold int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), alertTimeout)
	defer cancel()
	log := s.cfg.Logger.With("tenant", tenantID, "metric", q.Metric, "threshold", threshold)
	if threshold >= 100 {
		tl, ml := s.labels(ctx, tenantID, q.Metric)
		s.exceeded.WithLabelValues(tl, ml).Inc()
	}
	now := s.cfg.Now().UTC()
	err := s.store.WriteAudit(ctx, &tally.AuditEntry{
		TenantID: tenantID,
		At:       now.Truncate(time.Microsecond),
		Actor:    "system",
		Action:   "quota.threshold",
		Target:   q.Metric,
		Meta: map[string]any{
			"threshold": threshold,
			"current":   current,
			"limit":     q.Limit,
			"day":       day.Format(time.DateOnly),
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
	body, err := json.Marshal(webhookPayload{
		Type:        "quota.threshold",
		Tenant:      t.Slug,
		Metric:      q.Metric,
		Threshold:   threshold,
		Current:     current,
		Limit:       q.Limit,
		PeriodStart: day.UTC().Format(time.RFC3339),
		At:          now.Format(time.RFC3339),
	})
	if err != nil {
		log.Error("usage: encode webhook", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		log.Warn("usage: webhook dropped: service stopped")
		return
	}
	id := tally.NewWebhookID()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.deliver(t.WebhookURL, t.WebhookSecret, id, body); err != nil {
			log.Error("usage: webhook failed", "host", webhookHost(t.WebhookURL), "err", err)
		}
	}()
}

// webhookHost is what logs say of a webhook URL: its host only, since hook
// URLs often carry a token in their path or query.
func webhookHost(rawURL string) string {
	if u, err := url.Parse(rawURL); err == nil {
		return u.Host
	}
	return ""
}

// deliver POSTs body to target, retrying network errors and non-2xx answers
// with exponential backoff, until the service's context ends. Its errors
// and logs never carry the URL.
func (s *Service) deliver(target, secret, id string, body []byte) error {
	ctx := s.baseCtx
	delay := s.cfg.WebhookBackoff
	var err error
	for attempt := 0; attempt <= s.cfg.WebhookRetries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (after %d attempts)", err, attempt)
			case <-t.C:
			}
			delay *= 2
		}
		if err = s.post(ctx, target, secret, id, body); err == nil {
			return nil
		}
		s.cfg.Logger.Warn("usage: webhook attempt failed", "host", webhookHost(target), "attempt", attempt+1, "err", err)
	}
	return err
}

// post makes one delivery attempt.
func (s *Service) post(ctx context.Context, target, secret, id string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return errors.New("invalid webhook URL") // the parse error quotes the URL
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tally-webhook")
	ts := s.cfg.Now().Unix()
	req.Header.Set(tally.HeaderWebhookID, id)
	req.Header.Set(tally.HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(tally.HeaderWebhookSignature, tally.SignWebhook(secret, id, ts, body))
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error // it quotes the URL
		if errors.As(err, &ue) {
			return ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}
