package usage_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/usage"
)

// flaky are memory counters that fail every call while down is set, as
// Redis counters do while Redis is unreachable.
type flaky struct {
	*usage.MemoryCounters
	down atomic.Bool
}

var errDown = errors.New("counters down")

func (f *flaky) Add(ctx context.Context, tn int64, d time.Time, m string, n int64) (int64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.MemoryCounters.Add(ctx, tn, d, m, n)
}

func (f *flaky) All(ctx context.Context, tn int64, d time.Time) (map[string]int64, error) {
	if f.down.Load() {
		return nil, errDown
	}
	return f.MemoryCounters.All(ctx, tn, d)
}

func (f *flaky) Consume(ctx context.Context, tn int64, d time.Time, m string, n, limit int64) (bool, int64, error) {
	if f.down.Load() {
		return false, 0, errDown
	}
	return f.MemoryCounters.Consume(ctx, tn, d, m, n, limit)
}

// TestCountersDownFailClosed checks what the usage service does while its
// counters fail: events of soft metrics are admitted, events of enforced
// metrics and consumes get EUnavailable (never admitted unchecked), and
// usage reads answer from the log.
func TestCountersDownFailClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	c := &flaky{MemoryCounters: usage.NewMemoryCounters()}
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: func() time.Time { return day1 }}, db, c, nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "builds_daily", Limit: 5, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	track(t, svc, db, increment(tn, "builds_daily", 2, day1), increment(tn, "calls_daily", 3, day1))

	c.down.Store(true)
	errs := track(t, svc, db, increment(tn, "calls_daily", 1, day1), increment(tn, "builds_daily", 1, day1))
	if errs[0] != nil {
		t.Errorf("a soft metric's event with the counters down: %v, want admitted", errs[0])
	}
	if tally.ErrorCodeOf(errs[1]) != tally.EUnavailable {
		t.Errorf("an enforced metric's event with the counters down: %v, want unavailable", errs[1])
	}
	if _, _, _, err := svc.Consume(ctx, tn, "builds_daily", 1); tally.ErrorCodeOf(err) != tally.EUnavailable {
		t.Errorf("Consume with the counters down: %v, want unavailable", err)
	}
	got, err := svc.Today(ctx, tn)
	if err != nil || got["calls_daily"] != 4 || got["builds_daily"] != 2 {
		t.Errorf("Today with the counters down = %v, %v; want the log's calls 4, builds 2", got, err)
	}
	if st, err := svc.Status(ctx, tn, "builds_daily"); err != nil || st.Current != 2 {
		t.Errorf("Status with the counters down = %+v, %v; want current 2 from the log", st, err)
	}
}

// TestReconcilerRepairsDrift puts counters out of step with the log (as a
// lost add would) and checks that the Reconciler brings them back within
// two passes plus slack, and leaves agreeing counters alone.
func TestReconcilerRepairsDrift(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	c := usage.NewMemoryCounters()
	svc := usage.NewService(usage.Config{Now: func() time.Time { return day1 }}, db, c, nil, 0)
	track(t, svc, db, increment(tn, "calls_daily", 3, day1), increment(tn, "builds_daily", 2, day1))
	if err := c.Reset(ctx, tn, day1, map[string]int64{"calls_daily": 1, "builds_daily": 9}); err != nil {
		t.Fatal(err)
	}
	const interval = 50 * time.Millisecond
	r := usage.NewReconciler(svc, usage.ReconcileConfig{Tick: 10 * time.Millisecond, Interval: interval})
	r.Start()
	defer r.Stop(ctx)
	deadline := time.Now().Add(2*interval + 5*time.Second) // slack for a loaded machine
	for {
		got, _ := c.All(ctx, tn, day1)
		if got["calls_daily"] == 3 && got["builds_daily"] == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counters %v not repaired to the log (calls 3, builds 2)", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Err(); err != nil {
		t.Errorf("Err after a repair: %v", err)
	}
}
