package usage

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// Quotas on meters. A quota whose metric is the slug of one of the
// tenant's count or sum meters counts that meter (tally.MeterDef.QuotaAmount)
// in the counter of metric = slug, next to the rules' metrics and in the
// same atomic Admit and Settle: it is enforced, reserved, granted,
// settled and alerted on as any metric. Only meters a quota names are
// counted. The log gives the same values (rangeValues), so rebuilds,
// reconciliation and the offsets of long periods agree with the counters.
//
// Meter definitions are read at ingest from a per-tenant cache: a change
// on this instance (MeterChanged) applies at once, one on another
// instance within meterTTL. Counting with a stale definition in that
// second is drift that the Reconciler repairs. A quota, read fresh at
// every admit, that names a metric the cached definitions were not read
// for makes the admit read them again (quotaDefs): a quota set on a new
// meter on one instance counts from the next event on every instance.

// meterTTL bounds how long an instance counts with the meter definitions
// it read: the staleness of a meter created, changed or deleted on
// another instance.
const meterTTL = time.Second

// meterCache keeps each tenant's count and sum meters.
type meterCache struct {
	mu sync.Mutex
	by map[int64]meterEntry
}

type meterEntry struct {
	defs []tally.MeterDef
	read time.Time
	// known holds the quota metrics seen by this read or an earlier one
	// (meters or not): one that is missing may name a meter defs do not
	// hold yet. Never changed once stored; a new entry takes a new map.
	known map[string]bool
}

func (c *meterCache) forget(tenantID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.by, tenantID)
}

// countable returns the tenant's count and sum meters: from the cache
// when read within meterTTL, else from the store (fresh: always).
func (s *Service) countable(ctx context.Context, tenantID int64, fresh bool) ([]tally.MeterDef, error) {
	now := time.Now()
	if !fresh {
		s.meters.mu.Lock()
		e, ok := s.meters.by[tenantID]
		s.meters.mu.Unlock()
		if ok && now.Sub(e.read) < meterTTL {
			return e.defs, nil
		}
	}
	all, err := s.store.Meters(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	defs := slices.DeleteFunc(all, func(m tally.MeterDef) bool { return m.CheckQuota("metric") != nil })
	s.meters.mu.Lock()
	defer s.meters.mu.Unlock()
	if s.meters.by == nil {
		s.meters.by = map[int64]meterEntry{}
	}
	// The quota metrics seen before stay known: this read is newer, so a
	// meter of one of those slugs is in defs.
	s.meters.by[tenantID] = meterEntry{defs: defs, read: now, known: s.meters.by[tenantID].known}
	return defs, nil
}

// quotaDefs returns the tenant's count and sum meters as countable does,
// read again from the store when qs names a quota metric the cached
// definitions were not read for.
func (s *Service) quotaDefs(ctx context.Context, qs *quotaSet, fresh bool) ([]tally.MeterDef, error) {
	if !fresh {
		s.meters.mu.Lock()
		e, ok := s.meters.by[qs.tenantID]
		s.meters.mu.Unlock()
		if ok && time.Since(e.read) < meterTTL && e.knows(qs) {
			return e.defs, nil
		}
	}
	read := time.Now()
	defs, err := s.countable(ctx, qs.tenantID, true)
	if err != nil {
		return nil, err
	}
	s.meters.mu.Lock()
	defer s.meters.mu.Unlock()
	if e, ok := s.meters.by[qs.tenantID]; ok && !e.read.Before(read) {
		known := make(map[string]bool, len(e.known)+len(qs.by))
		for m := range e.known {
			known[m] = true
		}
		for m := range qs.by {
			known[m] = true
		}
		e.known = known
		s.meters.by[qs.tenantID] = e
	}
	return defs, nil
}

// knows reports whether every metric of qs's quotas was seen when e was
// read or since.
func (e *meterEntry) knows(qs *quotaSet) bool {
	for m := range qs.by {
		if !e.known[m] {
			return false
		}
	}
	return true
}

// quotaMeters returns the meters qs's quotas name (memoised in qs, so one
// call counts with one set of definitions).
func (s *Service) quotaMeters(ctx context.Context, qs *quotaSet, fresh bool) ([]tally.MeterDef, error) {
	if qs.meters != nil {
		return *qs.meters, nil
	}
	defs, err := s.quotaDefs(ctx, qs, fresh)
	if err != nil {
		return nil, err
	}
	var out []tally.MeterDef
	for _, m := range defs {
		if _, ok := qs.by[m.Slug]; ok {
			out = append(out, m)
		}
	}
	qs.meters = &out
	return out, nil
}

// QuotaMeter returns the tenant's meter a quota on metric counts, nil when
// metric is no meter of the tenant (a metric of the rules, or of explicit
// increments); EInvalid naming the field metric when it is a meter that a
// quota cannot count (tally.MeterDef.CheckQuota).
func QuotaMeter(ctx context.Context, store tally.MeterStore, tenantID int64, metric string) (*tally.MeterDef, error) {
	m, err := store.MeterBySlug(ctx, tenantID, metric)
	switch {
	case tally.ErrorCodeOf(err) == tally.ENotFound:
		return nil, nil
	case err != nil:
		return nil, err
	}
	return m, m.CheckQuota("metric")
}

// amounts is amountsOf with what e adds to each of meters.
func (s *Service) amounts(e *tally.Event, meters []tally.MeterDef) []tally.Amount {
	return withMeters(amountsOf(s.cfg.Rules, e), e, meters)
}

// withMeters appends to ruled, the rules' amounts of e, what e adds to
// each of meters.
func withMeters(ruled []tally.Amount, e *tally.Event, meters []tally.MeterDef) []tally.Amount {
	for i := range meters {
		if n := meters[i].QuotaAmount(e); n > 0 {
			ruled = append(ruled, tally.Amount{Metric: meters[i].Slug, N: n})
		}
	}
	return ruled
}

// rangeValues is the usage the log holds of the tenant's [from, to): what
// the rules give over its events (with explicit increments), plus what
// each of meters counts (QuotaAmountOf of each event it matches, leaving
// out those settled for it).
func (s *Service) rangeValues(ctx context.Context, tenantID int64, from, to time.Time, meters []tally.MeterDef) (map[string]int64, error) {
	rows, err := s.store.AggregateEvents(ctx, tenantID, from, to, time.Hour)
	if err != nil {
		return nil, err
	}
	values := s.cfg.Rules.ApplyRows(rows)
	for i := range meters {
		n, err := tally.MeterQuotaUsage(ctx, s.store, tenantID, &meters[i], []time.Time{from.UTC(), to.UTC()})
		if err != nil {
			return nil, err
		}
		values[meters[i].Slug] += n[0]
	}
	return values, nil
}

// metersKey names a set of meter definitions (slugs and versions), so
// that a cached range's usage is reused only for the meters it counted.
func metersKey(meters []tally.MeterDef) string {
	var b strings.Builder
	for i := range meters {
		b.WriteString(meters[i].Slug + "@" + strconv.FormatInt(tally.MeterVersion(&meters[i]), 10) + ",")
	}
	return b.String()
}

// MeterChanging refuses a change of the tenant's meter that a quota on it
// could not follow (after nil: a delete): EConflict for deleting a meter
// a quota override names (the quota must go first), EInvalid naming
// aggregation for making a meter a quota names anything but count or sum.
func (s *Service) MeterChanging(ctx context.Context, tenantID int64, before, after *tally.MeterDef) error {
	if after != nil {
		qs, err := s.quotas(ctx, tenantID)
		if err != nil {
			return err
		}
		if _, ok := qs.by[after.Slug]; ok {
			return after.CheckQuota("aggregation")
		}
		return nil
	}
	over, err := s.store.Quotas(ctx, tenantID)
	if err != nil {
		return err
	}
	for _, q := range over {
		if q.Metric == before.Slug {
			return tally.Errorf(tally.EConflict, "meter %s has a quota (%s, limit %d per %s): delete the quota first (DELETE /api/analytics/quotas/%s)",
				before.Slug, q.Metric, q.Limit, q.PeriodOf(), q.Metric)
		}
	}
	return nil
}

// MeterChanged is told that the tenant's meter slug was created, changed
// or deleted: this instance counts with the new definition at once, and
// when a quota names slug, today's counter of it is recounted from the
// log under the new definition (recount); the past days of its period are
// read again from the log (the offsets).
func (s *Service) MeterChanged(ctx context.Context, tenantID int64, slug string) {
	s.meters.forget(tenantID)
	s.offsets.forgetTenant(tenantID)
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		s.cfg.Logger.Error("usage: read quotas", "tenant", tenantID, "err", err)
		return
	}
	if _, ok := qs.by[slug]; !ok {
		return
	}
	if err := s.recount(ctx, tenantID, slug); err != nil {
		s.cfg.Logger.Error("usage: recount a meter's quota", "tenant", tenantID, "metric", slug, "err", err)
	}
}

// recount makes today's counter of metric what the log gives (logValues)
// by adding the difference, read counter first: what was committed before
// the counter was read is in both. An event admitted but not yet written
// while it runs may be off by its amount until the Reconciler compares
// the counters with the log again.
func (s *Service) recount(ctx context.Context, tenantID int64, metric string) error {
	d := day(s.cfg.Now())
	cur, err := s.counters.Get(ctx, tenantID, d, metric)
	if err != nil {
		return err
	}
	values, err := s.logValues(ctx, tenantID, d)
	if err != nil {
		return err
	}
	if delta := values[metric] - cur; delta != 0 {
		_, err = s.counters.Add(ctx, tenantID, d, metric, delta)
	}
	return err
}
