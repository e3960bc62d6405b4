package usage

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// Quota returns the tenant's quota for metric: its override when it has
// one, else the configured default (a soft quota). ok is false when
// neither exists.
func (s *Service) Quota(ctx context.Context, tenantID int64, metric string) (q tally.Quota, ok bool, err error) {
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return tally.Quota{}, false, err
	}
	q, ok = qs[metric]
	return q, ok, nil
}

// Status returns the quota of metric with today's (UTC) usage; ENotFound
// when the metric has no quota.
func (s *Service) Status(ctx context.Context, tenantID int64, metric string) (tally.QuotaStatus, error) {
	q, ok, err := s.Quota(ctx, tenantID, metric)
	if err != nil {
		return tally.QuotaStatus{}, err
	}
	if !ok {
		return tally.QuotaStatus{}, noQuota(metric)
	}
	now := s.cfg.Now()
	values, err := s.todayValues(ctx, tenantID, now)
	if err != nil {
		return tally.QuotaStatus{}, err
	}
	return s.status(q, values[metric], now), nil
}

// status is the quota's status at now with value v. With quotas disabled
// (QUOTAS_ENABLED=false) nothing is enforced, and the status says so.
func (s *Service) status(q tally.Quota, v int64, now time.Time) tally.QuotaStatus {
	st := tally.NewQuotaStatus(q, v, now)
	st.Enforced = st.Enforced && s.cfg.QuotasEnabled
	return st
}

func noQuota(metric string) error {
	return tally.Errorf(tally.ENotFound, "no quota for metric %q", metric)
}

// Statuses returns every quota of the tenant (overrides and defaults) with
// today's usage, sorted by metric.
func (s *Service) Statuses(ctx context.Context, tenantID int64) ([]tally.QuotaStatus, error) {
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	values, err := s.todayValues(ctx, tenantID, now)
	if err != nil {
		return nil, err
	}
	out := make([]tally.QuotaStatus, 0, len(qs))
	for m, q := range qs {
		out = append(out, s.status(q, values[m], now))
	}
	slices.SortFunc(out, func(a, b tally.QuotaStatus) int { return strings.Compare(a.Metric, b.Metric) })
	return out, nil
}

// SetQuota stores the tenant's override of q.Metric's quota and returns its
// status. EInvalid when the metric name or the limit (< 0) is bad.
func (s *Service) SetQuota(ctx context.Context, tenantID int64, q tally.Quota) (tally.QuotaStatus, error) {
	if err := q.Validate(); err != nil {
		return tally.QuotaStatus{}, err
	}
	if err := s.store.SetQuota(ctx, tenantID, q); err != nil {
		return tally.QuotaStatus{}, err
	}
	return s.Status(ctx, tenantID, q.Metric)
}

// Consume atomically adds amount (>= 1) to today's (UTC) usage of metric
// when that keeps it within the quota's limit, whether the quota is
// enforced or not, and returns the status after the call. It returns
// ENotFound when the metric has no quota. A denied consume adds nothing.
//
// An allowed consume must be made durable by the caller: write one
// usage.increment event for metric with Value amount and a timestamp in
// the current UTC day, and pass res to Settle with the write's outcome, so
// that the event is not counted twice (and the reservation is released
// when the write fails).
func (s *Service) Consume(ctx context.Context, tenantID int64, metric string, amount int64) (allowed bool, st tally.QuotaStatus, res *tally.Reservation, err error) {
	if amount < 1 {
		return false, st, nil, tally.Invalid("invalid amount", tally.FieldError{Field: "amount", Message: "must be a positive integer"})
	}
	q, ok, err := s.Quota(ctx, tenantID, metric)
	if err != nil {
		return false, st, nil, err
	}
	if !ok {
		return false, st, nil, noQuota(metric)
	}
	now := s.cfg.Now()
	d := day(now)
	var v int64
	if s.cfg.QuotasEnabled {
		allowed, v, err = s.counters.Consume(ctx, tenantID, d, metric, amount, q.Limit)
	} else {
		allowed = true
		v, err = s.counters.Add(ctx, tenantID, d, metric, amount)
	}
	if err != nil {
		s.cfg.Logger.Error("usage: consume", "tenant", tenantID, "metric", metric, "err", err)
		return false, st, nil, countersUnavailable(err)
	}
	st = s.status(q, v, now)
	if !allowed {
		return false, st, nil, nil
	}
	if s.cfg.QuotasEnabled {
		s.checkAlerts(ctx, tenantID, d, q, v)
	}
	return true, st, &tally.Reservation{Amounts: [][]tally.Amount{{{Metric: metric, N: amount}}}}, nil
}

// RetryAfter returns how long from now until the quotas reset: the time to
// the next UTC midnight, rounded up to whole seconds.
func RetryAfter(now time.Time) time.Duration {
	return ceilSeconds(day(now).Add(24 * time.Hour).Sub(now))
}

func ceilSeconds(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// RateLimitHeaders returns the values of the RateLimit-Policy and RateLimit
// response headers (draft-ietf-httpapi-ratelimit-headers) for a quota
// status at time now: `"<metric>";q=<limit>;w=86400` and
// `"<metric>";r=<remaining>;t=<seconds until reset>`.
func RateLimitHeaders(st tally.QuotaStatus, now time.Time) (policy, limit string) {
	reset := ceilSeconds(st.ResetsAt.Sub(now))
	policy = fmt.Sprintf("%q;q=%d;w=86400", st.Metric, st.Limit)
	limit = fmt.Sprintf("%q;r=%d;t=%d", st.Metric, st.Remaining, int64(reset/time.Second))
	return policy, limit
}
