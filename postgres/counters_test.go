package postgres_test

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/counterstest"
)

// TestCountersConformance holds the database counters to the contract of
// tally.Counters, concurrency cases included, each case on a fresh schema.
func TestCountersConformance(t *testing.T) {
	t.Parallel()
	counterstest.Run(t, func(t *testing.T) tally.Counters { return open(t).Counters() })
}

// TestCountersBatch adds a batch with repeated counters in one statement.
func TestCountersBatch(t *testing.T) {
	t.Parallel()
	c := open(t).Counters()
	ctx := t.Context()
	day := time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)
	check(t, c.AddBatch(ctx, []tally.CounterDelta{
		{TenantID: 1, Day: day, Metric: "builds", N: 2},
		{TenantID: 1, Day: day.Add(3 * time.Hour), Metric: "builds", N: 3},
		{TenantID: 2, Day: day, Metric: "builds", N: 7},
		{TenantID: 1, Day: day, Metric: "events", N: 1},
		{TenantID: 1, Day: day, Metric: "zero", N: 0},
	}))
	check(t, c.AddBatch(ctx, []tally.CounterDelta{{TenantID: 1, Day: day, Metric: "builds", N: -1}}))
	got, err := c.All(ctx, 1, day)
	check(t, err)
	if len(got) != 2 || got["builds"] != 4 || got["events"] != 1 {
		t.Errorf("All of tenant 1 = %v, want builds 4, events 1", got)
	}
	if v, err := c.Get(ctx, 2, day, "builds"); err != nil || v != 7 {
		t.Errorf("tenant 2 builds = %d, %v; want 7", v, err)
	}
	e1, err := c.Epoch(ctx)
	check(t, err)
	e2, err := open(t).Counters().Epoch(ctx)
	check(t, err)
	if e1 == "" || e1 == e2 {
		t.Errorf("epochs of two databases: %q and %q, want distinct", e1, e2)
	}
}
