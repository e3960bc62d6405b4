package usage

import (
	"context"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

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

// MemoryCounters are tally.Counters in process memory, for a single instance.
// They keep the newest day seen and the two days before it; older days are
// dropped. Safe for concurrent use.
type MemoryCounters struct {
	mu      sync.Mutex
	newest  int64
	values  map[dayKey]map[string]int64
	crossed map[crossingKey]struct{}
}

var _ tally.Counters = (*MemoryCounters)(nil)

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

// Add implements tally.Counters.
func (c *MemoryCounters) Add(_ context.Context, tenantID int64, day time.Time, metric string, n int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.day(c.key(tenantID, day))
	m[metric] += n
	return m[metric], nil
}

// Get implements tally.Counters.
func (c *MemoryCounters) Get(_ context.Context, tenantID int64, day time.Time, metric string) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.values[c.key(tenantID, day)][metric], nil
}

// All implements tally.Counters.
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

// Consume implements tally.Counters.
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

// Reset implements tally.Counters.
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

// FirstCrossing implements tally.Counters.
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
