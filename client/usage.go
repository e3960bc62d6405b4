package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Quota is a usage quota with the usage of its current period.
type Quota struct {
	Metric    string `json:"metric"`
	Current   int64  `json:"current"`
	Limit     int64  `json:"limit"`
	Remaining int64  `json:"remaining"`
	Exceeded  bool   `json:"exceeded"`
	// Enforced quotas make tally refuse events over the limit; soft ones
	// only report and alert.
	Enforced bool `json:"enforced"`
	// Period is "day" (UTC days); ResetsAt is when the next one starts.
	Period   string    `json:"period"`
	ResetsAt time.Time `json:"resets_at"`
	// Allowed is Consume's verdict; false elsewhere.
	Allowed bool `json:"allowed"`
}

// IncrementUsage adds amount (a positive integer) to today's value of
// metric (^[a-z0-9_]{1,64}$) and returns the new value. eventID makes the
// increment idempotent: the same eventID counts once however often it is
// sent. Empty gets a random one, which still makes this call's own
// retries safe. Over an enforced quota it returns a *QuotaExceededError.
func (c *Client) IncrementUsage(ctx context.Context, metric string, amount int64, eventID string) (current int64, err error) {
	if eventID == "" {
		eventID = newEventID()
	}
	body, err := jsonBody(map[string]any{"metric": metric, "amount": amount, "event_id": eventID})
	if err != nil {
		return 0, err
	}
	res, err := c.do(ctx, http.MethodPost, "/api/analytics/usage", body, retryTransient)
	if err != nil {
		return 0, quotaError(err, Quota{Metric: metric})
	}
	var v struct {
		Current int64 `json:"current"`
	}
	if err := res.decode(&v); err != nil {
		return 0, fmt.Errorf("tally: usage answer: %w", err)
	}
	return v.Current, nil
}

// Consume takes amount (a positive integer; 0 means 1) from the quota of
// metric, atomically: concurrent consumers never together pass the limit.
// When the quota has room it returns the quota with Allowed true. When
// not, it returns the quota with Allowed false and a *QuotaExceededError
// carrying RetryAfter:
//
//	q, err := c.Consume(ctx, "builds_daily", 1)
//	var qe *client.QuotaExceededError
//	switch {
//	case errors.As(err, &qe):
//		// refuse, retry after qe.RetryAfter
//	case err != nil:
//		// tally unreachable, no quota for metric (404), ...
//	}
//
// A metric without a quota is a 404 *APIError. Consume is not retried: a
// repeat could take amount twice.
func (c *Client) Consume(ctx context.Context, metric string, amount int64) (Quota, error) {
	if amount == 0 {
		amount = 1
	}
	body, err := jsonBody(map[string]int64{"amount": amount})
	if err != nil {
		return Quota{}, err
	}
	res, err := c.do(ctx, http.MethodPost, "/api/analytics/quotas/"+url.PathEscape(metric)+"/consume", body, retryNever)
	var q Quota
	if res != nil && (err == nil || res.status == http.StatusTooManyRequests) {
		if derr := res.decode(&q); derr != nil && err == nil {
			return Quota{}, fmt.Errorf("tally: consume answer: %w", derr)
		}
	}
	if q.Metric == "" {
		q.Metric = metric
	}
	if err != nil {
		q.Allowed = false
		return q, quotaError(err, q)
	}
	return q, nil
}

// Quota returns the quota of metric with its current usage (needs
// analytics:read). A metric without a quota is a 404 *APIError.
func (c *Client) Quota(ctx context.Context, metric string) (Quota, error) {
	res, err := c.do(ctx, http.MethodGet, "/api/analytics/quotas/"+url.PathEscape(metric), nil, retryTransient)
	if err != nil {
		return Quota{}, err
	}
	var q Quota
	if err := res.decode(&q); err != nil {
		return Quota{}, fmt.Errorf("tally: quota answer: %w", err)
	}
	return q, nil
}

// quotaError turns a 429 *APIError into a *QuotaExceededError about q.
func quotaError(err error, q Quota) error {
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests {
		return err
	}
	return &QuotaExceededError{Quota: q, RetryAfter: apiErr.RetryAfter, Err: apiErr}
}
