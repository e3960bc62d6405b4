package usage

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// Quota returns the tenant's quota for metric: its override when it has
// one, else the configured default (a soft daily quota). ok is false when
// neither exists.
func (s *Service) Quota(ctx context.Context, tenantID int64, metric string) (q tally.Quota, ok bool, err error) {
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return tally.Quota{}, false, err
	}
	q, ok = qs.by[metric]
	return q, ok, nil
}

// Status returns the quota of metric with the usage of its current
// period; ENotFound when the metric has no quota.
func (s *Service) Status(ctx context.Context, tenantID int64, metric string) (tally.QuotaStatus, error) {
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return tally.QuotaStatus{}, err
	}
	q, ok := qs.by[metric]
	if !ok {
		return tally.QuotaStatus{}, noQuota(metric)
	}
	out, err := s.statuses(ctx, qs, []tally.Quota{q})
	if err != nil {
		return tally.QuotaStatus{}, err
	}
	return out[0], nil
}

// Statuses returns every quota of the tenant (overrides and defaults) with
// the usage of its current period, sorted by metric.
func (s *Service) Statuses(ctx context.Context, tenantID int64) ([]tally.QuotaStatus, error) {
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	list := slices.SortedFunc(maps.Values(qs.by), func(a, b tally.Quota) int { return strings.Compare(a.Metric, b.Metric) })
	return s.statuses(ctx, qs, list)
}

// statuses computes the status of each of list (quotas of qs) now.
func (s *Service) statuses(ctx context.Context, qs *quotaSet, list []tally.Quota) ([]tally.QuotaStatus, error) {
	out := make([]tally.QuotaStatus, 0, len(list))
	if len(list) == 0 {
		return out, nil
	}
	loc, err := s.zone(ctx, qs)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	values, err := s.todayValues(ctx, qs.tenantID, now)
	if err != nil {
		return nil, err
	}
	for _, q := range list {
		w, err := s.window(ctx, qs, q, loc, now)
		if err != nil {
			return nil, err
		}
		out = append(out, s.status(w, values[q.Metric]+w.offset, now, loc))
	}
	return out, nil
}

// status is the quota's status at now with period usage v. With quotas
// disabled (QUOTAS_ENABLED=false) nothing is enforced, and the status says
// so.
func (s *Service) status(w periodWindow, v int64, now time.Time, loc *time.Location) tally.QuotaStatus {
	st := tally.NewQuotaStatus(w.q, v, w.granted, now, loc)
	st.Enforced = st.Enforced && s.cfg.QuotasEnabled
	return st
}

func noQuota(metric string) error {
	return tally.Errorf(tally.ENotFound, "no quota for metric %q", metric)
}

// SetQuota stores the tenant's override of q.Metric's quota, replacing
// the whole previous one (an unset Period is "day"), and returns its
// status. q.Metric may be the slug of one of the tenant's count or sum
// meters (see meters.go); a quota newly naming one recounts today's
// counter of it from the log, so the quota counts the meter's events from
// before it existed. EInvalid when the metric name, the limit (< 0), the
// period or the anchor day is bad, or when the metric is a meter of
// another aggregation (field metric).
func (s *Service) SetQuota(ctx context.Context, tenantID int64, q tally.Quota) (tally.QuotaStatus, error) {
	if err := q.Validate(); err != nil {
		return tally.QuotaStatus{}, err
	}
	q.Period = q.PeriodOf()
	m, err := QuotaMeter(ctx, s.store, tenantID, q.Metric)
	if err != nil {
		return tally.QuotaStatus{}, err
	}
	var had bool
	if m != nil {
		if _, had, err = s.Quota(ctx, tenantID, q.Metric); err != nil {
			return tally.QuotaStatus{}, err
		}
	}
	if err := s.store.SetQuota(ctx, tenantID, q); err != nil {
		return tally.QuotaStatus{}, err
	}
	if m != nil && !had {
		s.MeterChanged(ctx, tenantID, q.Metric)
	}
	return s.Status(ctx, tenantID, q.Metric)
}

// DeleteQuota removes the tenant's override of metric, so that the
// configured default (if any) applies again. ENotFound when the tenant
// has no override of metric.
func (s *Service) DeleteQuota(ctx context.Context, tenantID int64, metric string) error {
	if !tally.ValidMetric(metric) {
		return tally.Errorf(tally.ENotFound, "no quota override for metric %q", metric)
	}
	return s.store.DeleteQuota(ctx, tenantID, metric)
}

// Consume atomically adds amount (>= 1) to the usage of metric's current
// quota period when that keeps it within the quota's limit (plus the
// period's grants), whether the quota is enforced or not, and returns the
// status after the call. It returns ENotFound when the metric has no
// quota. A denied consume adds nothing.
//
// An allowed consume must be made durable by the caller: write one
// usage.increment event for metric with Value amount and a timestamp in
// the UTC day of res.At and before st.ResetsAt, and pass res to Settle
// with the write's outcome, so that the event is not counted twice (and
// the reservation is released when the write fails).
func (s *Service) Consume(ctx context.Context, tenantID int64, metric string, amount int64) (allowed bool, st tally.QuotaStatus, res *tally.Reservation, err error) {
	return s.ConsumeIn(ctx, tenantID, nil, metric, amount)
}

// ConsumeIn is Consume for a tenant whose time zone loc, which places the
// quota periods, the caller holds already (the tenant of the request's
// authentication, as current as the key cache keeps it): it spares
// reading the tenant. loc nil: Consume, which reads it.
func (s *Service) ConsumeIn(ctx context.Context, tenantID int64, loc *time.Location, metric string, amount int64) (allowed bool, st tally.QuotaStatus, res *tally.Reservation, err error) {
	t, err := s.take(ctx, tenantID, loc, metric, amount)
	if err != nil || !t.allowed {
		return false, t.st, nil, err
	}
	return true, t.st, &tally.Reservation{At: t.now, Amounts: [][]tally.Amount{{{Metric: metric, N: amount}}}, Alerted: true}, nil
}

// taken is the outcome of take.
type taken struct {
	allowed bool
	st      tally.QuotaStatus // after the call
	w       periodWindow
	now     time.Time
	day     time.Time // the UTC day whose counter holds what was taken
}

// take adds amount to the counter of metric's current period when that
// keeps it within the allowance (with quotas disabled: always), and
// announces the thresholds it crossed: the step Consume and Reserve share.
// loc is the tenant's time zone when the caller has it (nil: read).
func (s *Service) take(ctx context.Context, tenantID int64, loc *time.Location, metric string, amount int64) (taken, error) {
	var t taken
	if amount < 1 {
		return t, tally.Invalid("invalid amount", tally.FieldError{Field: "amount", Message: "must be a positive integer"})
	}
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return t, err
	}
	q, ok := qs.by[metric]
	if !ok {
		return t, noQuota(metric)
	}
	if qs.loc = loc; loc == nil {
		if loc, err = s.zone(ctx, qs); err != nil {
			return t, err
		}
	}
	t.now = s.cfg.Now()
	t.day = day(t.now)
	if t.w, err = s.window(ctx, qs, q, loc, t.now); err != nil {
		return t, quotasUnavailable(err)
	}
	var v int64
	if s.cfg.QuotasEnabled {
		t.allowed, v, err = s.counters.Consume(ctx, tenantID, t.day, metric, amount, t.w.counterLimit())
	} else {
		t.allowed = true
		v, err = s.counters.Add(ctx, tenantID, t.day, metric, amount)
	}
	if err != nil {
		s.cfg.Logger.Error("usage: consume", "tenant", tenantID, "metric", metric, "err", err)
		return t, countersUnavailable(err)
	}
	t.st = s.status(t.w, v+t.w.offset, t.now, loc)
	if t.allowed && s.cfg.QuotasEnabled {
		s.checkAlerts(ctx, tenantID, t.w, v+t.w.offset)
	}
	return t, nil
}

// RetryAfter returns how long from now until the daily quotas of a UTC
// tenant reset: the time to the next UTC midnight, rounded up to whole
// seconds. A quota status knows its own reset (RetryAfterOf).
func RetryAfter(now time.Time) time.Duration {
	return ceilSeconds(day(now).Add(24 * time.Hour).Sub(now))
}

// RetryAfterOf returns how long from now until st's period ends, rounded
// up to whole seconds.
func RetryAfterOf(st tally.QuotaStatus, now time.Time) time.Duration {
	return ceilSeconds(st.ResetsAt.Sub(now))
}

func ceilSeconds(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return (d + time.Second - 1).Truncate(time.Second)
}

// RateLimitHeaders returns the values of the RateLimit-Policy and RateLimit
// response headers (draft-ietf-httpapi-ratelimit-headers) for a quota
// status at time now: `"<metric>";q=<allowance>;w=<period seconds>` and
// `"<metric>";r=<remaining>;t=<seconds until reset>`, where the allowance
// is the limit plus the period's grants and the window is the length of
// the current period (86400 for a UTC day, 23 or 25 hours across DST).
func RateLimitHeaders(st tally.QuotaStatus, now time.Time) (policy, limit string) {
	reset := ceilSeconds(st.ResetsAt.Sub(now))
	window := int64(st.ResetsAt.Sub(st.PeriodStart) / time.Second)
	policy = fmt.Sprintf("%q;q=%d;w=%d", st.Metric, st.Limit+st.Granted, window)
	limit = fmt.Sprintf("%q;r=%d;t=%d", st.Metric, st.Remaining, int64(reset/time.Second))
	return policy, limit
}
