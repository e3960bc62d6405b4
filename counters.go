package tally

import (
	"context"
	"sort"
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

// CounterDelta is one amount to add to one counter.
type CounterDelta struct {
	TenantID int64
	Day      time.Time // any time within the UTC day
	Metric   string
	N        int64
}

// BatchAdder is implemented by Counters that add many deltas in one round
// trip (one statement, one pipeline). The usage service settles a batch of
// events through it when the counters have it, instead of one Add per
// event and metric. AddBatch is atomic per counter, not across them.
type BatchAdder interface {
	AddBatch(ctx context.Context, deltas []CounterDelta) error
}

// MergeDeltas sums the deltas of the same counter (tenant, UTC day,
// metric), drops those that sum to 0 and returns them in a fixed order
// (tenant, day, metric), so that concurrent batches lock rows in one order.
func MergeDeltas(deltas []CounterDelta) []CounterDelta {
	type key struct {
		tenant int64
		day    int64
		metric string
	}
	sums := map[key]int64{}
	for _, d := range deltas {
		sums[key{d.TenantID, DayStart(d.Day).Unix(), d.Metric}] += d.N
	}
	out := make([]CounterDelta, 0, len(sums))
	for k, n := range sums {
		if n != 0 {
			out = append(out, CounterDelta{TenantID: k.tenant, Day: time.Unix(k.day, 0).UTC(), Metric: k.metric, N: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.TenantID != b.TenantID {
			return a.TenantID < b.TenantID
		}
		if !a.Day.Equal(b.Day) {
			return a.Day.Before(b.Day)
		}
		return a.Metric < b.Metric
	})
	return out
}
