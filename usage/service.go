// Package usage counts per-tenant usage metrics per UTC day and enforces
// quotas on them.
//
// The event log is the truth: a metric's value for a day is what the usage
// rules give over that day's events. Counters are a cache of it for fast
// quota checks and live numbers; Service.Rebuild restores today's values
// from the log. Service implements tally.Meter, the quota gate that
// ingestion calls around every write: Admit reserves what events would add
// to metrics with an enforced quota, Settle counts what was committed and
// releases what was not. Crossing 80 % and 100 % of a quota is announced
// once per day: a Prometheus counter, an audit entry and a signed webhook.
package usage

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/metrics"
)

// Config configures a Service. The zero value of each field is usable and
// means what its comment says.
type Config struct {
	// Rules map events to metrics (tally.DefaultUsageRules when nil).
	Rules tally.UsageRules
	// Defaults are the daily quota limits (QUOTA_DEFAULTS) of every tenant
	// that has no override for the metric; default quotas are soft.
	Defaults map[string]int64
	// QuotasEnabled turns on enforcement (Admit and Consume reject what
	// passes an enforced limit) and quota alerts. When false, usage is
	// still counted and Consume always allows.
	QuotasEnabled bool
	// Wake is called after a webhook delivery was put in the outbox
	// (the Dispatcher's Wake; nil: the dispatcher finds it at its next
	// poll).
	Wake func()
	// Now tells the time (default time.Now).
	Now func() time.Time
	// Logger gets delivery and counter failures (default: discarded).
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Rules == nil {
		c.Rules = tally.DefaultUsageRules()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Service counts usage, answers and enforces quotas and raises quota
// alerts (into the webhook outbox, which a Dispatcher sends). It
// implements tally.Meter.
type Service struct {
	cfg      Config
	store    tally.Store
	counters tally.Counters
	healing  Healing // counters, when they heal (nil: they do not)

	tenantLabel *metrics.TenantLabels
	metricLabel *metrics.Limiter
	counted     *prometheus.CounterVec
	exceeded    *prometheus.CounterVec

	offsets offsetCache // usage of past ranges of quota periods
	meters  meterCache  // count and sum meters per tenant (quotas on meters)
}

var _ tally.Meter = (*Service)(nil)

// NewService returns a Service over store and counters. It registers its
// metrics with reg (nil: none registered); labelCap bounds the distinct
// values of each label (tenant ids, metric names), later ones count as
// "other".
func NewService(cfg Config, store tally.Store, counters tally.Counters, reg prometheus.Registerer, labelCap int) *Service {
	cfg.setDefaults()
	f := promauto.With(reg)
	healing, _ := counters.(Healing)
	return &Service{
		healing:  healing,
		cfg:      cfg,
		store:    store,
		counters: counters,
		tenantLabel: metrics.NewTenantLabels(labelCap, func(ctx context.Context, id int64) (string, error) {
			t, err := store.TenantByID(ctx, id)
			if err != nil {
				return "", err
			}
			return t.Slug, nil
		}),
		metricLabel: metrics.NewLimiter(labelCap),
		counted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_usage_count_total",
			Help: "Usage counted per tenant and metric (the sum of every counted amount).",
		}, []string{"tenant", "metric"}),
		exceeded: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_quota_exceeded_total",
			Help: "Quotas reaching 100 % of their daily limit (once per tenant, metric and day).",
		}, []string{"tenant", "metric"}),
	}
}

// labels returns the bounded label values of a tenant and a metric.
func (s *Service) labels(ctx context.Context, tenantID int64, metric string) (string, string) {
	return s.tenantLabel.Value(ctx, tenantID), s.metricLabel.Value(metric)
}

// day returns the UTC day an event counts in.
func day(t time.Time) time.Time { return tally.DayStart(t) }

// amountsOf returns an event's increments with one entry per metric, in
// the order the rules first name them.
func amountsOf(rules tally.UsageRules, e *tally.Event) []tally.Amount {
	var out []tally.Amount
next:
	for _, a := range rules.Apply(e) {
		for i := range out {
			if out[i].Metric == a.Metric {
				out[i].N += a.N
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}

// quotaSet is a tenant's quotas, overrides over defaults, by metric, and
// the tenant's time zone, which places their periods (read on first use).
type quotaSet struct {
	by       map[string]tally.Quota
	tenantID int64
	loc      *time.Location
	grants   []tally.QuotaGrant // active ones, read on first use (nil: not yet)
	meters   *[]tally.MeterDef  // the meters its quotas name, read on first use (nil: not yet)
}

// zone returns the tenant's time zone, reading the tenant on first use.
func (s *Service) zone(ctx context.Context, qs *quotaSet) (*time.Location, error) {
	if qs.loc != nil {
		return qs.loc, nil
	}
	t, err := s.store.TenantByID(ctx, qs.tenantID)
	if err != nil {
		return nil, err
	}
	qs.loc = t.Location()
	return qs.loc, nil
}

// quotas returns a tenant's quotas, overrides over defaults, read from
// the store on every call (memoised only within one call, see
// tenantQuotas): a quota change on any instance applies on every instance
// at its next request. There is no per-instance cache to wait out.
func (s *Service) quotas(ctx context.Context, tenantID int64) (*quotaSet, error) {
	over, err := s.store.Quotas(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	qs := &quotaSet{by: make(map[string]tally.Quota, len(s.cfg.Defaults)+len(over)), tenantID: tenantID}
	for m, limit := range s.cfg.Defaults {
		qs.by[m] = tally.Quota{Metric: m, Limit: limit, Period: tally.PeriodDay}
	}
	for _, q := range over {
		qs.by[q.Metric] = q
	}
	return qs, nil
}

// tenantQuotas loads and memoises quota sets during one call.
type tenantQuotas struct {
	s   *Service
	ctx context.Context
	by  map[int64]*quotaSet
}

// forEvent returns the quotas of events[i]'s tenant, or nil after setting
// errs[i] to an EUnavailable error when they cannot be read: without the
// quotas no event can be checked, so it fails closed (the write would
// most likely fail on the same store).
func (t *tenantQuotas) forEvent(e *tally.Event, i int, errs []error) *quotaSet {
	qs, err := t.get(e.TenantID)
	if err != nil {
		t.s.cfg.Logger.Error("usage: read quotas", "tenant", e.TenantID, "err", err)
		errs[i] = quotasUnavailable(err)
		return nil
	}
	return qs
}

func (t *tenantQuotas) get(tenantID int64) (*quotaSet, error) {
	if qs, ok := t.by[tenantID]; ok {
		return qs, nil
	}
	qs, err := t.s.quotas(t.ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if t.by == nil {
		t.by = map[int64]*quotaSet{}
	}
	t.by[tenantID] = qs
	return qs, nil
}

// Admit implements tally.Meter. With quotas enabled, it reserves through
// tally.Counters.Consume each positive amount an event adds to a metric with an
// enforced quota, when the event's timestamp is in today's UTC day and in
// the quota's current period (see Service.window: the counter of today
// plus what the log holds of the period outside today); an event of
// another day or period is checked against that period's usage in the log
// (see pastUsage) and reserves nothing. An event that
// would pass any of those limits gets an ERateLimited error naming the
// metric and the limit, and what it had reserved is released. When the
// quotas of a tenant cannot be read, its events get an EUnavailable
// error (nothing unchecked is admitted). When the counter of an enforced quota fails
// (Redis down, stalled, being rebuilt) the event gets an EUnavailable
// error: enforced quotas fail closed, never admitting past the limit,
// while events that touch no enforced quota keep flowing.
func (s *Service) Admit(ctx context.Context, events []tally.Event) ([]error, *tally.Reservation) {
	errs := make([]error, len(events))
	res := &tally.Reservation{Amounts: make([][]tally.Amount, len(events))}
	tq := tenantQuotas{s: s, ctx: ctx}
	given := s.markSettled(ctx, events, &tq, errs)
	if !s.cfg.QuotasEnabled {
		return errs, res
	}
	now := s.cfg.Now()
	today := day(now)
	past := pastUsage{s: s, ctx: ctx}
	for i := range events {
		e := &events[i]
		if errs[i] != nil {
			continue
		}
		qs := tq.forEvent(e, i, errs)
		if qs == nil {
			continue
		}
		meters, err := s.quotaMeters(ctx, qs, false)
		if err != nil {
			s.cfg.Logger.Error("usage: read meters", "tenant", e.TenantID, "err", err)
			errs[i] = quotasUnavailable(err)
			continue
		}
		amounts := given[i]
		if amounts == nil {
			amounts = s.amounts(e, meters)
		}
		var enforced []tally.Amount
		for _, a := range amounts {
			if q, ok := qs.by[a.Metric]; ok && q.Enforced && a.N > 0 {
				enforced = append(enforced, a)
			}
		}
		if len(enforced) == 0 {
			continue
		}
		loc, err := s.zone(ctx, qs)
		if err != nil {
			s.cfg.Logger.Error("usage: read tenant", "tenant", e.TenantID, "err", err)
			errs[i] = quotasUnavailable(err)
			continue
		}
		if !day(e.Timestamp).Equal(today) || slices.ContainsFunc(enforced, func(a tally.Amount) bool {
			start, _ := qs.by[a.Metric].PeriodAt(now, loc)
			return e.Timestamp.Before(start)
		}) {
			errs[i] = past.admit(e, enforced, qs, loc)
			continue
		}
		var reserved []tally.Amount
		for _, a := range enforced {
			q := qs.by[a.Metric]
			w, err := s.window(ctx, qs, q, loc, now)
			if err != nil {
				s.cfg.Logger.Error("usage: read period usage", "tenant", e.TenantID, "metric", a.Metric, "err", err)
				s.release(ctx, e, reserved)
				reserved = nil
				errs[i] = quotasUnavailable(err)
				break
			}
			allowed, _, err := s.counters.Consume(ctx, e.TenantID, today, a.Metric, a.N, w.counterLimit())
			if err != nil {
				// Fail closed: an enforced quota is never passed because
				// its counter could not be read.
				s.cfg.Logger.Error("usage: consume", "tenant", e.TenantID, "metric", a.Metric, "err", err)
				s.release(ctx, e, reserved)
				reserved = nil
				errs[i] = countersUnavailable(err)
				break
			}
			if !allowed {
				s.release(ctx, e, reserved)
				reserved = nil
				errs[i] = exceededError(q, w.granted)
				break
			}
			reserved = append(reserved, a)
		}
		res.Amounts[i] = reserved
	}
	return errs, res
}

// markSettled sets Event.Settled on each event that a quota consume or
// commit already counted: one carrying the event's id wrote the
// usage.increment tally.SettlementID(metric, id) for a metric the event's
// rules give and that has a quota. The lookups are one query per tenant,
// for the events that touch a quota only. When the log cannot be read, the
// events that needed the lookup get an EUnavailable error. It returns the
// amounts it computed (s.amounts, nil where it computed none), without
// those of the metric an event was settled for: what the event gives now.
func (s *Service) markSettled(ctx context.Context, events []tally.Event, tq *tenantQuotas, errs []error) [][]tally.Amount {
	given := make([][]tally.Amount, len(events))
	type cand struct {
		i      int
		metric string
		id     string
	}
	byTenant := map[int64][]cand{}
	for i := range events {
		e := &events[i]
		if e.EventID == "" || e.Name == tally.EventUsageIncrement {
			continue
		}
		ruled := amountsOf(s.cfg.Rules, e)
		if !slices.ContainsFunc(ruled, func(a tally.Amount) bool { return a.N > 0 }) {
			// No rule counts it: only a meter could, when the tenant has one.
			if defs, err := s.countable(ctx, e.TenantID, false); err == nil && len(defs) == 0 {
				continue
			}
		}
		qs := tq.forEvent(e, i, errs)
		if qs == nil {
			continue
		}
		meters, err := s.quotaMeters(ctx, qs, false)
		if err != nil {
			s.cfg.Logger.Error("usage: read meters", "tenant", e.TenantID, "err", err)
			errs[i] = quotasUnavailable(err)
			continue
		}
		given[i] = withMeters(ruled, e, meters)
		for _, a := range given[i] {
			if a.N <= 0 {
				continue
			}
			if _, ok := qs.by[a.Metric]; ok {
				byTenant[e.TenantID] = append(byTenant[e.TenantID], cand{i, a.Metric, tally.SettlementID(a.Metric, e.EventID)})
			}
		}
	}
	for tenant, cs := range byTenant {
		ids := make([]string, len(cs))
		for j, c := range cs {
			ids[j] = c.id
		}
		stored, err := s.store.StoredEventIDs(ctx, tenant, ids)
		if err != nil {
			s.cfg.Logger.Error("usage: read settlements", "tenant", tenant, "err", err)
			for _, c := range cs {
				errs[c.i] = quotasUnavailable(err)
			}
			continue
		}
		for _, c := range cs {
			if _, ok := stored[c.id]; ok && events[c.i].Settled == "" {
				events[c.i].Settled = c.metric
				given[c.i] = slices.DeleteFunc(given[c.i], func(a tally.Amount) bool { return a.Metric == c.metric })
			}
		}
	}
	return given
}

// exceededError is the ERateLimited error of an amount that q's period
// has no room for.
func exceededError(q tally.Quota, granted int64) error {
	if granted > 0 {
		return tally.Errorf(tally.ERateLimited, "quota exceeded: %s is limited to %d per %s (+%d granted)", q.Metric, q.Limit, q.PeriodOf(), granted)
	}
	return tally.Errorf(tally.ERateLimited, "quota exceeded: %s is limited to %d per %s", q.Metric, q.Limit, q.PeriodOf())
}

// pastUsage admits events outside the current UTC day or the current
// period of their quota (back-dated, or just past a boundary) against
// enforced quotas. Counters keep only recent UTC days, so the usage of
// such a period is read from the log, once per call, and the events
// admitted in the call are added to it. It is not atomic across
// concurrent requests, as the current period's counters are: back-dated
// events are rare, and a period's usage can be off by what concurrent
// requests for that same past period admit at once.
type pastUsage struct {
	s    *Service
	ctx  context.Context
	used map[pastKey]map[string]int64
}

type pastKey struct {
	tenant     int64
	start, end int64
}

// admit checks e's enforced amounts against the log's usage of each
// quota's period that contains the event, and counts them when all fit;
// nil when admitted.
func (p *pastUsage) admit(e *tally.Event, enforced []tally.Amount, qs *quotaSet, loc *time.Location) error {
	useds := make([]map[string]int64, len(enforced))
	for i, a := range enforced {
		q := qs.by[a.Metric]
		start, end := q.PeriodAt(e.Timestamp, loc)
		k := pastKey{e.TenantID, start.Unix(), end.Unix()}
		used, ok := p.used[k]
		if !ok {
			meters, err := p.s.quotaMeters(p.ctx, qs, false)
			if err == nil {
				used, err = p.s.rangeValues(p.ctx, e.TenantID, start, end, meters)
			}
			if err != nil {
				p.s.cfg.Logger.Error("usage: read past usage", "tenant", e.TenantID, "from", start, "err", err)
				return quotasUnavailable(err)
			}
			if p.used == nil {
				p.used = map[pastKey]map[string]int64{}
			}
			p.used[k] = used
		}
		if used[a.Metric]+a.N > q.Limit {
			return tally.Errorf(tally.ERateLimited, "quota exceeded: %s is limited to %d per %s (the %s from %s)",
				a.Metric, q.Limit, q.PeriodOf(), q.PeriodOf(), start.Format(time.DateOnly))
		}
		useds[i] = used
	}
	for i, a := range enforced {
		useds[i][a.Metric] += a.N
	}
	return nil
}

// release gives back what was reserved for e.
func (s *Service) release(ctx context.Context, e *tally.Event, reserved []tally.Amount) {
	for _, a := range reserved {
		if _, err := s.counters.Add(ctx, e.TenantID, day(e.Timestamp), a.Metric, -a.N); err != nil {
			s.cfg.Logger.Error("usage: release reservation", "tenant", e.TenantID, "metric", a.Metric, "err", err)
		}
	}
}

// counterKey names one counter.
type counterKey struct {
	tenant int64
	day    time.Time
	metric string
}

// Settle implements tally.Meter. For an inserted event it adds what the
// rules give minus what Admit (or Consume) already reserved; for one not
// inserted it releases the reservation — except after a failed write
// (inserted nil) on counters that heal, where the outcome is unknown: the
// reservation stays and the counters are rebuilt from the log, so that a
// commit whose answer was lost never leaves an enforced quota
// under-counted. Then it checks the quota alerts of every counter that
// grew, except for what an Alerted reservation held: its consume checked
// them already. Counter failures are logged, not returned: the
// events are committed and a Rebuild repairs the cache.
func (s *Service) Settle(ctx context.Context, events []tally.Event, inserted []bool, r *tally.Reservation) {
	grown := map[counterKey]struct{}{}
	var deltas []tally.CounterDelta
	now := s.cfg.Now()
	todayStart := day(now)
	tq := tenantQuotas{s: s, ctx: ctx}
	for i := range events {
		e := &events[i]
		var reserved []tally.Amount
		if r != nil && i < len(r.Amounts) {
			reserved = r.Amounts[i]
		}
		if inserted == nil && len(reserved) > 0 && s.healing != nil {
			// The write failed, perhaps after its commit (a lost answer):
			// releasing could under-count, and an enforced quota must
			// never be passed. Keep the reservation (an over-count) and
			// have the counters rebuilt from the log.
			s.healing.MarkStale()
			continue
		}
		if inserted == nil || i >= len(inserted) || !inserted[i] {
			for _, a := range reserved {
				deltas = append(deltas, tally.CounterDelta{TenantID: e.TenantID, Day: day(e.Timestamp), Metric: a.Metric, N: -a.N})
			}
			continue
		}
		amounts := s.amounts(e, s.settleMeters(&tq, e.TenantID))
		for _, a := range amounts {
			n := a.N
			for _, ra := range reserved {
				if ra.Metric == a.Metric {
					n -= ra.N
				}
			}
			if n != 0 {
				deltas = append(deltas, tally.CounterDelta{TenantID: e.TenantID, Day: day(e.Timestamp), Metric: a.Metric, N: n})
			}
			if a.N > 0 && e.Timestamp.Before(todayStart) {
				s.offsets.forget(e.TenantID, e.Timestamp) // a back-dated event changes a past range
			}
			if a.N > 0 {
				tl, ml := s.labels(ctx, e.TenantID, a.Metric)
				s.counted.WithLabelValues(tl, ml).Add(float64(a.N))
				// A consume checked the alerts of what it reserved when
				// its counter grew: only growth beyond that is checked
				// here, which spares a consume the second read of its
				// tenant's quotas, zone and grants.
				if n > 0 || r == nil || !r.Alerted {
					grown[counterKey{e.TenantID, day(e.Timestamp), a.Metric}] = struct{}{}
				}
			}
		}
		for _, ra := range reserved {
			// Reserved for a metric the event no longer gives (a meter
			// changed or a quota removed since Admit): released.
			if !slices.ContainsFunc(amounts, func(a tally.Amount) bool { return a.Metric == ra.Metric }) {
				deltas = append(deltas, tally.CounterDelta{TenantID: e.TenantID, Day: day(e.Timestamp), Metric: ra.Metric, N: -ra.N})
			}
		}
	}
	s.addDeltas(ctx, deltas)
	if len(grown) == 0 || !s.cfg.QuotasEnabled {
		return
	}
	for k := range grown {
		if !k.day.Equal(todayStart) {
			continue // a back-dated event: alerts are of the current period
		}
		qs, err := tq.get(k.tenant)
		if err != nil {
			s.cfg.Logger.Error("usage: read quotas", "tenant", k.tenant, "err", err)
			continue
		}
		q, ok := qs.by[k.metric]
		if !ok {
			continue
		}
		loc, err := s.zone(ctx, qs)
		if err != nil {
			s.cfg.Logger.Error("usage: read tenant", "tenant", k.tenant, "err", err)
			continue
		}
		w, err := s.window(ctx, qs, q, loc, now)
		if err != nil {
			s.cfg.Logger.Error("usage: read period usage", "tenant", k.tenant, "metric", k.metric, "err", err)
			continue
		}
		v, err := s.counters.Get(ctx, k.tenant, k.day, k.metric)
		if err != nil {
			s.cfg.Logger.Error("usage: read counter", "tenant", k.tenant, "metric", k.metric, "err", err)
			continue
		}
		s.checkAlerts(ctx, k.tenant, w, v+w.offset)
	}
}

// settleMeters returns the meters the tenant's quotas name, which Settle
// counts: none, without reading the quotas, when the tenant has no count
// or sum meter. When they cannot be read it logs and counts none: the
// events are committed, and the Reconciler repairs the counters.
func (s *Service) settleMeters(tq *tenantQuotas, tenantID int64) []tally.MeterDef {
	defs, err := s.countable(tq.ctx, tenantID, false)
	if err == nil && len(defs) == 0 {
		return nil
	}
	var meters []tally.MeterDef
	if err == nil {
		var qs *quotaSet
		if qs, err = tq.get(tenantID); err == nil {
			meters, err = s.quotaMeters(tq.ctx, qs, false)
		}
	}
	if err != nil {
		s.cfg.Logger.Error("usage: read the meters of quotas", "tenant", tenantID, "err", err)
		return nil
	}
	return meters
}

// addDeltas adds deltas to the counters: in one round trip when they are
// a tally.BatchAdder, else one Add per counter. Failures are logged: the
// events are committed, and the reconciler repairs the counters from the
// log.
func (s *Service) addDeltas(ctx context.Context, deltas []tally.CounterDelta) {
	if len(deltas) == 0 {
		return
	}
	if b, ok := s.counters.(tally.BatchAdder); ok {
		if err := b.AddBatch(ctx, deltas); err != nil {
			s.cfg.Logger.Error("usage: count", "counters", len(deltas), "err", err)
		}
		return
	}
	for _, d := range tally.MergeDeltas(deltas) {
		if _, err := s.counters.Add(ctx, d.TenantID, d.Day, d.Metric, d.N); err != nil {
			s.cfg.Logger.Error("usage: count", "tenant", d.TenantID, "metric", d.Metric, "err", err)
		}
	}
}

// Rebuild recomputes, for every tenant, today's (UTC) counters from the
// event log and marks the alert thresholds they already crossed as fired,
// without alerting again. Run it at start before ingestion, or when the
// counters were lost: increments that race with it may be lost from the
// cache (never from the log).
func (s *Service) Rebuild(ctx context.Context) error { return s.rebuild(ctx, false) }

// RebuildMissing is Rebuild for counters that several instances share
// (Redis): it rebuilds only the tenants whose counters of today are empty
// (a fresh or flushed Redis), so that a starting instance never resets
// what running ones are counting.
func (s *Service) RebuildMissing(ctx context.Context) error { return s.rebuild(ctx, true) }

func (s *Service) rebuild(ctx context.Context, onlyMissing bool) error {
	tenants, err := s.store.AllTenants(ctx)
	if err != nil {
		return err
	}
	from := day(s.cfg.Now())
	var errs []error
	for _, t := range tenants {
		if err := s.rebuildTenant(ctx, t.ID, from, onlyMissing); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *Service) rebuildTenant(ctx context.Context, tenantID int64, from time.Time, onlyMissing bool) error {
	if onlyMissing {
		cur, err := s.counters.All(ctx, tenantID, from)
		if err != nil || len(cur) > 0 {
			return err
		}
	}
	values, err := s.logValues(ctx, tenantID, from)
	if err != nil {
		return err
	}
	if onlyMissing && len(values) == 0 {
		return nil
	}
	if err := s.counters.Reset(ctx, tenantID, from, values); err != nil {
		return err
	}
	qs, err := s.quotas(ctx, tenantID)
	if err != nil || len(qs.by) == 0 {
		return err
	}
	loc, err := s.zone(ctx, qs)
	if err != nil {
		return err
	}
	now := s.cfg.Now()
	for m, q := range qs.by {
		w, err := s.window(ctx, qs, q, loc, now)
		if err != nil {
			return err
		}
		for _, th := range q.AlertThresholds() {
			if crossed(values[m]+w.offset, w.allowance(), th) {
				if _, err := s.counters.FirstCrossing(ctx, tenantID, w.start.UTC(), m, th); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Today returns the tenant's counters of the current UTC day (from the
// log when the counters cannot be read, see todayValues).
func (s *Service) Today(ctx context.Context, tenantID int64) (map[string]int64, error) {
	return s.todayValues(ctx, tenantID, s.cfg.Now())
}

// todayValues returns the tenant's counters of now's UTC day; when they
// cannot be read (Redis down or being rebuilt) it answers from the event
// log instead, which is the truth the counters cache. Only when the log
// cannot be read either does it fail, with the store's error.
func (s *Service) todayValues(ctx context.Context, tenantID int64, now time.Time) (map[string]int64, error) {
	values, err := s.counters.All(ctx, tenantID, day(now))
	if err == nil {
		return values, nil
	}
	s.cfg.Logger.Warn("usage: counters unreadable, reading the log", "tenant", tenantID, "err", err)
	return s.logValues(ctx, tenantID, day(now))
}

// logValues is what the counters of day d must hold: what the rules and
// the meters its quotas name give over the tenant's events of the day
// (rangeValues, with the meter definitions read afresh), plus what its open reservations
// (and those being committed) hold in them.
func (s *Service) logValues(ctx context.Context, tenantID int64, d time.Time) (map[string]int64, error) {
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	meters, err := s.quotaMeters(ctx, qs, true)
	if err != nil {
		return nil, err
	}
	values, err := s.rangeValues(ctx, tenantID, d, d.Add(24*time.Hour), meters)
	if err != nil {
		return nil, err
	}
	held, err := s.store.HeldReservations(ctx, tenantID, d)
	if err != nil {
		return nil, err
	}
	for m, n := range held {
		values[m] += n
	}
	return values, nil
}

// quotasUnavailable is the error of an admission whose quotas (or past
// usage) could not be read: 503 with Retry-After.
func quotasUnavailable(err error) error {
	return &tally.Error{Code: tally.EUnavailable, Message: "quotas are unavailable; retry later", Err: err}
}

// countersUnavailable is the error of a decision that needs a counter that
// failed: 503 with Retry-After, never a guess.
func countersUnavailable(err error) error {
	return &tally.Error{Code: tally.EUnavailable, Message: "usage counters are unavailable; retry later", Err: err}
}
