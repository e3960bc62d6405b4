package tally

import (
	"context"
	"time"
)

// Counters hold the usage of today (and the last few days) per tenant,
// metric and UTC day. They are a cache of what the event log says: losing
// them loses no usage, as the usage service rebuilds them from the log.
// The usage package keeps them in memory, the redis package in Redis; both
// are held to the counterstest conformance suite.
//
// Every method takes the day as any time within it; implementations key by
// the UTC day (DayStart). Every method is atomic on its own, so that
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
