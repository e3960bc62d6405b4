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
	// Granted is the extra allowance of the period's grants.
	Granted int64 `json:"granted"`
	// Period is "day", "week", "month" (in the tenant's time zone) or
	// "billing" (monthly from AnchorDay); PeriodStart is when the current
	// one started and ResetsAt when the next one starts.
	Period      string    `json:"period"`
	AnchorDay   int       `json:"anchor_day,omitempty"`
	PeriodStart time.Time `json:"period_start"`
	ResetsAt    time.Time `json:"resets_at"`
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
	return c.ConsumeFor(ctx, metric, amount, "")
}

// ConsumeFor is Consume settling the event eventID: the consume counts
// amount for metric once, and the event with that EventID, when it is
// tracked (before or after), is not counted for metric again. Use it to
// gate work whose completion event a usage rule also maps to metric:
//
//	id := client.NewEventID()
//	if _, err := c.ConsumeFor(ctx, "builds_daily", 1, id); err != nil { … }
//	// … the build …
//	c.Track(client.Event{Name: "builder.generate.completed", EventID: id})
//
// With eventID set, a retry of the same consume also counts once, so it
// is retried on network errors and 5xx answers.
func (c *Client) ConsumeFor(ctx context.Context, metric string, amount int64, eventID string) (Quota, error) {
	if amount == 0 {
		amount = 1
	}
	fields := map[string]any{"amount": amount}
	policy := retryNever
	if eventID != "" {
		fields["event_id"], policy = eventID, retryTransient
	}
	body, err := jsonBody(fields)
	if err != nil {
		return Quota{}, err
	}
	res, err := c.do(ctx, http.MethodPost, "/api/analytics/quotas/"+url.PathEscape(metric)+"/consume", body, policy)
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

// NewEventID returns a random event id, for an event whose id must be
// known before it is tracked (ConsumeFor, Reservation.Commit).
func NewEventID() string { return newEventID() }

// Reservation is part of a quota held for a while (see Reserve).
type Reservation struct {
	ID        string    `json:"id"`
	Metric    string    `json:"metric"`
	Amount    int64     `json:"amount"`
	State     string    `json:"state"` // open, committing, committed, released, expired
	Committed int64     `json:"committed"`
	ExpiresAt time.Time `json:"expires_at"`
	// Remaining is the quota's remaining allowance after the call.
	Remaining int64 `json:"remaining"`
	// Quota is the quota's status after the call.
	Quota Quota `json:"quota"`
}

// ReserveOptions are the optional parts of a reservation.
type ReserveOptions struct {
	// TTL is how long the reservation stays open before it returns to
	// the quota by itself (whole seconds, 1 s to 24 h; 0: the server's
	// default, 5 minutes).
	TTL time.Duration
	// IdempotencyKey makes the reservation safe to retry: the same key
	// (per metric) answers the reservation the first call made. Empty
	// gets a random one, which makes this call's own retries safe.
	IdempotencyKey string
}

// Reserve holds amount of metric's quota until Commit, Release or the
// TTL: concurrent consumers and reservers never together pass the limit.
// Reserve an estimate before expensive work, then commit what it really
// used:
//
//	r, err := c.Reserve(ctx, "llm_tokens", 4000, client.ReserveOptions{TTL: time.Minute})
//	// … the work …
//	_, err = c.Commit(ctx, r, used, "")
//
// Over the quota it returns a *QuotaExceededError as Consume does.
func (c *Client) Reserve(ctx context.Context, metric string, amount int64, opt ReserveOptions) (Reservation, error) {
	if opt.IdempotencyKey == "" {
		opt.IdempotencyKey = newEventID()
	}
	fields := map[string]any{"amount": amount, "idempotency_key": opt.IdempotencyKey}
	if opt.TTL > 0 {
		fields["ttl_seconds"] = int64((opt.TTL + time.Second - 1) / time.Second)
	}
	body, err := jsonBody(fields)
	if err != nil {
		return Reservation{}, err
	}
	res, err := c.do(ctx, http.MethodPost, "/api/analytics/quotas/"+url.PathEscape(metric)+"/reservations", body, retryTransient)
	if err != nil {
		q := Quota{Metric: metric}
		if res != nil && res.status == http.StatusTooManyRequests {
			_ = res.decode(&q)
		}
		return Reservation{Metric: metric, Quota: q}, quotaError(err, q)
	}
	var r Reservation
	if err := res.decode(&r); err != nil {
		return Reservation{}, fmt.Errorf("tally: reservation answer: %w", err)
	}
	return r, nil
}

// Commit records amount (at most the reserved amount; a negative amount
// commits all of it) of r as durable usage and returns the rest to the
// quota. eventID, when set, settles that event as ConsumeFor does. A
// retried commit counts once; a released or expired reservation is a 409
// *APIError.
func (c *Client) Commit(ctx context.Context, r Reservation, amount int64, eventID string) (Reservation, error) {
	fields := map[string]any{}
	if amount >= 0 {
		fields["amount"] = amount
	}
	if eventID != "" {
		fields["event_id"] = eventID
	}
	return c.reservationCall(ctx, r, "/commit", fields)
}

// Release returns all of r to the quota. Releasing one already released
// or expired is not an error; one committed is a 409 *APIError.
func (c *Client) Release(ctx context.Context, r Reservation) (Reservation, error) {
	return c.reservationCall(ctx, r, "/release", nil)
}

func (c *Client) reservationCall(ctx context.Context, r Reservation, action string, fields map[string]any) (Reservation, error) {
	var body func() []byte
	if fields != nil {
		var err error
		if body, err = jsonBody(fields); err != nil {
			return Reservation{}, err
		}
	}
	res, err := c.do(ctx, http.MethodPost, "/api/analytics/quotas/"+url.PathEscape(r.Metric)+"/reservations/"+url.PathEscape(r.ID)+action, body, retryTransient)
	if err != nil {
		return Reservation{}, err
	}
	var out Reservation
	if err := res.decode(&out); err != nil {
		return Reservation{}, fmt.Errorf("tally: reservation answer: %w", err)
	}
	return out, nil
}

// DeleteQuota removes the tenant's override of metric's quota (needs
// analytics:admin): the configured default applies again. A metric
// without an override is a 404 *APIError.
func (c *Client) DeleteQuota(ctx context.Context, metric string) error {
	_, err := c.do(ctx, http.MethodDelete, "/api/analytics/quotas/"+url.PathEscape(metric), nil, retryTransient)
	return err
}

// Grant is a one-off extra allowance of one quota period.
type Grant struct {
	ID          int64      `json:"id"`
	Metric      string     `json:"metric"`
	Amount      int64      `json:"amount"`
	Reason      string     `json:"reason"`
	PeriodStart time.Time  `json:"period_start"`
	ExpiresAt   *time.Time `json:"expires_at"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
}

// GrantQuota adds amount to the allowance of metric's current quota period
// (needs analytics:admin), until expiresAt (zero: the period's end), for
// reason (required, shown in the audit log). It returns the grant and the
// quota with it. Not retried: a repeat would grant twice.
func (c *Client) GrantQuota(ctx context.Context, metric string, amount int64, reason string, expiresAt time.Time) (Grant, Quota, error) {
	fields := map[string]any{"amount": amount, "reason": reason}
	if !expiresAt.IsZero() {
		fields["expires_at"] = expiresAt.UTC().Format(time.RFC3339Nano)
	}
	body, err := jsonBody(fields)
	if err != nil {
		return Grant{}, Quota{}, err
	}
	res, err := c.do(ctx, http.MethodPost, "/api/analytics/quotas/"+url.PathEscape(metric)+"/grants", body, retryNever)
	if err != nil {
		return Grant{}, Quota{}, err
	}
	var v struct {
		Grant Grant `json:"grant"`
		Quota Quota `json:"quota"`
	}
	if err := res.decode(&v); err != nil {
		return Grant{}, Quota{}, fmt.Errorf("tally: grant answer: %w", err)
	}
	return v.Grant, v.Quota, nil
}

// Grants lists the grants of metric's quota, newest first (needs
// analytics:read).
func (c *Client) Grants(ctx context.Context, metric string) ([]Grant, error) {
	res, err := c.do(ctx, http.MethodGet, "/api/analytics/quotas/"+url.PathEscape(metric)+"/grants", nil, retryTransient)
	if err != nil {
		return nil, err
	}
	var v struct {
		Grants []Grant `json:"grants"`
	}
	if err := res.decode(&v); err != nil {
		return nil, fmt.Errorf("tally: grants answer: %w", err)
	}
	return v.Grants, nil
}
