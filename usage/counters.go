package usage

import (
	"context"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// Counters hold the usage of today (and the last few days) per tenant,
// metric and UTC day. They are a cache of what the event log says: losing
// them loses no usage, Service.Rebuild restores them from the log.
//
// Every method takes the day as any time within it; implementations key by
// the UTC day (tally.DayStart). Every method is atomic on its own, so that
// an implementation on Redis maps each to one command or one script:
// Add to INCRBY, Get/All to HGET/HGETALL, Consume to a check-and-add Lua
// script, Reset to DEL+HSET in MULTI, FirstCrossing to SET NX. Keys may
// expire a few days after their day.
type Counters interface {
	// Add adds n (negative to release a reservation) to the metric's value
	// and returns the new value.
	Add(ctx context.Context, tenantID int64, day time.Time, metric string, n int64) (int64, error)
	// Get returns the metric's value, 0 when never set.
	Get(ctx context.Context, tenantID int64, day time.Time, metric string) (int64, error)
	// All returns every metric's value of the tenant for the day.
	All(ctx context.Context, tenantID int64, day time.Time) (map[string]int64, error)
	// Consume adds n only when the value plus n stays at most limit, in one
	// atomic step: concurrent consumers never together pass the limit. It
	// returns whether it added and the value after the call.
	Consume(ctx context.Context, tenantID int64, day time.Time, metric string, n, limit int64) (allowed bool, value int64, err error)
	// Reset replaces every value of the tenant for the day by values (a
	// metric missing from values becomes 0). It leaves FirstCrossing marks
	// alone.
	Reset(ctx context.Context, tenantID int64, day time.Time, values map[string]int64) error
	// FirstCrossing reports true exactly once per tenant, day, metric and
	// threshold, on the first call: it dedupes quota alerts across
	// goroutines and instances.
	FirstCrossing(ctx context.Context, tenantID int64, day time.Time, metric string, threshold int) (bool, error)
}

// keepDays is how many days before the newest day seen MemoryCounters keep.
const keepDays = 2

type dayKey struct {
	tenant int64
	day    int64 // Unix seconds of the UTC day start
}

type crossingKey struct {
	dayKey
	metric    string
	threshold int
}

// MemoryCounters are Counters in process memory, for a single instance.
// They keep the newest day seen and the two days before it; older days are
// dropped. Safe for concurrent use.
type MemoryCounters struct {
	mu      sync.Mutex
	newest  int64
	values  map[dayKey]map[string]int64
	crossed map[crossingKey]struct{}
}

var _ Counters = (*MemoryCounters)(nil)

// NewMemoryCounters returns empty in-memory counters.
func NewMemoryCounters() *MemoryCounters {
	return &MemoryCounters{values: map[dayKey]map[string]int64{}, crossed: map[crossingKey]struct{}{}}
}

// key returns the key of day and, when day is newer than any seen before,
// drops the days that fell out of the window. Call with mu held.
func (c *MemoryCounters) key(tenantID int64, day time.Time) dayKey {
	d := tally.DayStart(day).Unix()
	if d > c.newest {
		c.newest = d
		oldest := d - keepDays*86400
		for k := range c.values {
			if k.day < oldest {
				delete(c.values, k)
			}
		}
		for k := range c.crossed {
			if k.day < oldest {
				delete(c.crossed, k)
			}
		}
	}
	return dayKey{tenantID, d}
}

// day returns the values of k, creating the map.
func (c *MemoryCounters) day(k dayKey) map[string]int64 {
	m := c.values[k]
	if m == nil {
		m = map[string]int64{}
		c.values[k] = m
	}
	return m
}

// Add implements Counters.
func (c *MemoryCounters) Add(_ context.Context, tenantID int64, day time.Time, metric string, n int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.day(c.key(tenantID, day))
	m[metric] += n
	return m[metric], nil
}

// Get implements Counters.
func (c *MemoryCounters) Get(_ context.Context, tenantID int64, day time.Time, metric string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[c.key(tenantID, day)][metric], nil
}

// All implements Counters.
func (c *MemoryCounters) All(_ context.Context, tenantID int64, day time.Time) (map[string]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	src := c.values[c.key(tenantID, day)]
	out := make(map[string]int64, len(src))
	for k, v := range src {
		out[k] = v
	}
	return out, nil
}

// Consume implements Counters.
func (c *MemoryCounters) Consume(_ context.Context, tenantID int64, day time.Time, metric string, n, limit int64) (bool, int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.day(c.key(tenantID, day))
	v := m[metric]
	if v+n > limit {
		return false, v, nil
	}
	m[metric] = v + n
	return true, v + n, nil
}

// Reset implements Counters.
func (c *MemoryCounters) Reset(_ context.Context, tenantID int64, day time.Time, values map[string]int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int64, len(values))
	for k, v := range values {
		m[k] = v
	}
	c.values[c.key(tenantID, day)] = m
	return nil
}

// FirstCrossing implements Counters.
func (c *MemoryCounters) FirstCrossing(_ context.Context, tenantID int64, day time.Time, metric string, threshold int) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := crossingKey{c.key(tenantID, day), metric, threshold}
	if _, ok := c.crossed[k]; ok {
		return false, nil
	}
	c.crossed[k] = struct{}{}
	return true, nil
}
