package usage_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/usage"
)

// TestMeterQuotaConvergesToTheLog: the counter of a quota on a sum meter
// holds what the meter adds (matching events only, increments of the
// metric by their amount, an event settled by a consume not again); wiped,
// the Reconciler repairs it to the same value from the log.
func TestMeterQuotaConvergesToTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	m := tally.MeterDef{Slug: "tokens", Event: "llm.*", Aggregation: tally.AggSum, ValueProperty: "props.tokens",
		Filter: map[string]string{"props.tier": "paid"}}
	if err := db.CreateMeter(ctx, tn, &m); err != nil {
		t.Fatal(err)
	}
	if err := db.SetQuota(ctx, tn, tally.Quota{Metric: "tokens", Limit: 1000, Enforced: true, Period: tally.PeriodDay}); err != nil {
		t.Fatal(err)
	}
	c := usage.NewMemoryCounters()
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, c, nil, 0)
	llm := func(props string) tally.Event {
		e := event(tn, "llm.completion", day1)
		e.Props = json.RawMessage(props)
		return e
	}
	settled := llm(`{"tokens": 50, "tier": "paid"}`)
	settled.EventID = "run-1"
	consume := increment(tn, "tokens", 45, day1)
	consume.EventID = tally.SettlementID("tokens", "run-1")
	track(t, svc, db,
		llm(`{"tokens": 10, "tier": "paid"}`),
		llm(`{"tokens": 2.5, "tier": "paid"}`), // rounds to 3
		llm(`{"tokens": -4, "tier": "paid"}`),  // adds 0
		llm(`{"tokens": "9", "tier": "paid"}`), // not a number
		llm(`{"tokens": 100, "tier": "free"}`), // filtered out
		event(tn, "search.query", day1),        // not the meter's event
		increment(tn, "tokens", 7, day1),       // an explicit increment
		consume)
	track(t, svc, db, settled) // counted by its consume (45), not by its 50 tokens
	const want = 10 + 3 + 7 + 45
	got, err := c.Get(ctx, tn, day1, "tokens")
	if err != nil || got != want {
		t.Fatalf("counter %d (%v), want %d", got, err, want)
	}
	if err := c.Reset(ctx, tn, day1, map[string]int64{}); err != nil {
		t.Fatal(err)
	}
	const interval = 50 * time.Millisecond
	r := usage.NewReconciler(svc, usage.ReconcileConfig{Tick: 10 * time.Millisecond, Interval: interval})
	r.Start()
	defer r.Stop(ctx)
	deadline := time.Now().Add(2*interval + 5*time.Second)
	for {
		if got, _ = c.Get(ctx, tn, day1, "tokens"); got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wiped counter repaired to %d, want %d", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// An enforced quota refuses what would pass it.
	errs := track(t, svc, db, llm(`{"tokens": 936, "tier": "paid"}`), llm(`{"tokens": 935, "tier": "paid"}`))
	if tally.ErrorCodeOf(errs[0]) != tally.ERateLimited || errs[1] != nil {
		t.Errorf("at 65 of 1000: %v", errs)
	}
}

// TestNewMeterQuotaCountsOnEveryInstance: a meter and an enforced quota
// on it made on another instance count from the next event on an
// instance whose cached definitions (read a moment before, with no meter)
// are younger than their time to live: the quota, read fresh, names a
// metric those definitions were not read for. Without that, the first
// second's events would pass the quota uncounted.
func TestNewMeterQuotaCountsOnEveryInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	c := usage.NewMemoryCounters()
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, c, nil, 0)
	// An event that no rule counts: the instance reads (and caches) the
	// tenant's meters, none.
	if errs := track(t, svc, db, event(tn, "llm.completion", day1)); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// Another instance defines the meter and its quota.
	m := tally.MeterDef{Slug: "calls", Event: "llm.*", Aggregation: tally.AggCount}
	if err := db.CreateMeter(ctx, tn, &m); err != nil {
		t.Fatal(err)
	}
	if err := db.SetQuota(ctx, tn, tally.Quota{Metric: "calls", Limit: 2, Enforced: true, Period: tally.PeriodDay}); err != nil {
		t.Fatal(err)
	}
	var refused int
	for range 4 {
		if errs := track(t, svc, db, event(tn, "llm.completion", day1)); tally.ErrorCodeOf(errs[0]) == tally.ERateLimited {
			refused++
		} else if errs[0] != nil {
			t.Fatal(errs[0])
		}
	}
	got, err := c.Get(ctx, tn, day1, "calls")
	if err != nil || got != 2 || refused != 2 {
		t.Errorf("after 4 events under a quota of 2 set a moment ago: counter %d (%v), %d refused; want 2 and 2", got, err, refused)
	}
}

// BenchmarkAdmitSettle measures the quota gate around one batch of 100
// events (Admit and Settle, SQLite store, memory counters) with an
// enforced quota on a rule's metric (the baseline) and on a sum meter with
// a filter: the ratio is the cost of counting a meter at ingest.
func BenchmarkAdmitSettle(b *testing.B) {
	for _, metric := range []string{"events_daily", "tokens"} {
		b.Run(metric, func(b *testing.B) {
			ctx := context.Background()
			db, tn := newStore(b)
			m := tally.MeterDef{Slug: "tokens", Event: "llm.*", Aggregation: tally.AggSum, ValueProperty: "props.tokens",
				Filter: map[string]string{"props.tier": "paid"}}
			if err := db.CreateMeter(ctx, tn, &m); err != nil {
				b.Fatal(err)
			}
			if err := db.SetQuota(ctx, tn, tally.Quota{Metric: metric, Limit: 1 << 50, Enforced: true, Period: tally.PeriodDay}); err != nil {
				b.Fatal(err)
			}
			svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, usage.NewMemoryCounters(), nil, 0)
			batch := make([]tally.Event, 100)
			inserted := make([]bool, len(batch))
			for i := range batch {
				batch[i] = event(tn, "llm.completion", day1)
				batch[i].Props = json.RawMessage(`{"tokens": 120, "tier": "paid", "model": "small"}`)
				inserted[i] = true
			}
			b.ResetTimer()
			for range b.N {
				errs, res := svc.Admit(ctx, batch)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
				svc.Settle(ctx, batch, inserted, res)
			}
		})
	}
}
