package usage

import (
	"context"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// A quota's period rarely coincides with the UTC day the counters count
// in: a month, a week or a day in the tenant's zone starts before today's
// UTC midnight, or later within it. The period's usage is therefore
// today's counter plus an offset read from the log: the usage of
// [period start, today) when the period started before today, minus the
// usage of [today, period start) when it started within today. Both
// ranges are in the past, so their usage changes only by back-dated
// events, and enforcement stays one atomic Counters.Consume against the
// limit minus the offset, exact across instances like a daily quota.

// periodWindow is a quota's current period seen through today's counter.
type periodWindow struct {
	q          tally.Quota
	start, end time.Time
	offset     int64 // the period's usage = today's counter + offset
	granted    int64 // the grants of the period (extra allowance)
}

// counterLimit is the limit today's counter may reach.
func (w periodWindow) counterLimit() int64 { return w.q.Limit + w.granted - w.offset }

// allowance is the quota's limit with the period's grants.
func (w periodWindow) allowance() int64 { return w.q.Limit + w.granted }

// window returns q's period containing now, in loc, with its offset and
// grants.
func (s *Service) window(ctx context.Context, qs *quotaSet, q tally.Quota, loc *time.Location, now time.Time) (periodWindow, error) {
	tenantID := qs.tenantID
	w := periodWindow{q: q}
	w.start, w.end = q.PeriodAt(now, loc)
	d := day(now)
	var meters []tally.MeterDef
	if !w.start.Equal(d) {
		var err error
		if meters, err = s.quotaMeters(ctx, qs, false); err != nil {
			return w, err
		}
	}
	switch {
	case w.start.Before(d):
		v, err := s.offsets.values(ctx, s, tenantID, w.start, d, meters)
		if err != nil {
			return w, err
		}
		w.offset = v[q.Metric]
		// The log has no trace of open reservations: those made before
		// today are held in yesterday's counter (a reservation lives at
		// most a day, tally.MaxReservationTTL), which the period does not
		// read. They count against it until committed or released — all
		// of yesterday's, even from before a period that starts during
		// it: too many, never too few.
		held, err := s.store.HeldReservations(ctx, tenantID, d.Add(-24*time.Hour))
		if err != nil {
			return w, err
		}
		w.offset += held[q.Metric]
	case w.start.After(d):
		v, err := s.offsets.values(ctx, s, tenantID, d, w.start, meters)
		if err != nil {
			return w, err
		}
		w.offset = -v[q.Metric]
	}
	g, err := s.granted(ctx, qs, q.Metric, w.start, now)
	if err != nil {
		return w, err
	}
	w.granted = g
	return w, nil
}

// offsetTTL bounds how long a range's usage read from the log is reused.
// The ranges are in the past: only back-dated events change them, and
// those this instance settles drop the cached range at once.
const offsetTTL = 30 * time.Second

// offsetCache memoises the usage of past ranges of the log per tenant.
type offsetCache struct {
	mu sync.Mutex
	by map[int64][]offsetEntry
}

type offsetEntry struct {
	from, to time.Time
	meters   string // metersKey of the meters counted
	values   map[string]int64
	read     time.Time
}

// values returns what the rules and meters give over the tenant's events
// in [from, to) (rangeValues), from the cache when read within offsetTTL
// for the same meter definitions.
func (c *offsetCache) values(ctx context.Context, s *Service, tenantID int64, from, to time.Time, meters []tally.MeterDef) (map[string]int64, error) {
	now := time.Now()
	key := metersKey(meters)
	c.mu.Lock()
	for _, e := range c.by[tenantID] {
		if e.from.Equal(from) && e.to.Equal(to) && e.meters == key && now.Sub(e.read) < offsetTTL {
			c.mu.Unlock()
			return e.values, nil
		}
	}
	c.mu.Unlock()
	v, err := s.rangeValues(ctx, tenantID, from, to, meters)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[int64][]offsetEntry{}
	}
	kept := c.by[tenantID][:0]
	for _, e := range c.by[tenantID] {
		if now.Sub(e.read) < offsetTTL && !(e.from.Equal(from) && e.to.Equal(to) && e.meters == key) {
			kept = append(kept, e)
		}
	}
	c.by[tenantID] = append(kept, offsetEntry{from: from, to: to, meters: key, values: v, read: now})
	return v, nil
}

// forget drops the tenant's cached ranges that contain t (an event at t
// was just stored).
func (c *offsetCache) forget(tenantID int64, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	es, ok := c.by[tenantID]
	if !ok {
		return
	}
	kept := es[:0]
	for _, e := range es {
		if t.Before(e.from) || !t.Before(e.to) {
			kept = append(kept, e)
		}
	}
	c.by[tenantID] = kept
}

// forgetTenant drops every cached range of the tenant (its meters
// changed).
func (c *offsetCache) forgetTenant(tenantID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.by, tenantID)
}

// granted returns the extra allowance of metric's grants in the period
// that started at start, active at now. The tenant's active grants are
// read once per quotaSet (one call).
func (s *Service) granted(ctx context.Context, qs *quotaSet, metric string, start, now time.Time) (int64, error) {
	if qs.grants == nil {
		gs, err := s.store.ActiveGrants(ctx, qs.tenantID, now)
		if err != nil {
			return 0, err
		}
		qs.grants = gs
		if qs.grants == nil {
			qs.grants = []tally.QuotaGrant{}
		}
	}
	var n int64
	for i := range qs.grants {
		if g := &qs.grants[i]; g.Metric == metric && g.ActiveAt(start, now) {
			n += g.Amount
		}
	}
	return n, nil
}
