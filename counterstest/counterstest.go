// Package counterstest is the one conformance suite that every
// tally.Counters implementation's tests call, so that the in-memory
// counters and the Redis counters keep the same contract: the doc comments
// of tally.Counters.
//
// An implementation's test is a few lines:
//
//	func TestCounters(t *testing.T) {
//		counterstest.Run(t, func(t *testing.T) tally.Counters { return newCounters(t) })
//	}
package counterstest

import (
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// Workers is how many goroutines the concurrency cases start at once.
const Workers = 96

// day is the day most cases count in: a day long past, so that a store that
// expires keys relative to their day still has to keep what is written to
// it. Cases use at most the day after it: MemoryCounters keep three days.
var day = time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)

// Run runs every case against fresh counters from newCounters, one call per
// case. Cases run in parallel; newCounters must return counters that share
// no values with those of any other call (a fresh key prefix, a fresh
// value), and may register cleanups on t.
func Run(t *testing.T, newCounters func(t *testing.T) tally.Counters) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, c tally.Counters)
	}{
		{"AddReturnsNewValue", testAdd},
		{"AddConcurrent", testAddConcurrent},
		{"GetUnknownIsZero", testGetUnknown},
		{"All", testAll},
		{"KeyedByUTCDay", testUTCDay},
		{"Isolation", testIsolation},
		{"Consume", testConsume},
		{"ConsumeRefusedAddsNothing", testConsumeRefused},
		{"ConsumeConcurrentExactlyUpToLimit", testConsumeConcurrent},
		{"ConsumeConcurrentMixedAmounts", testConsumeMixed},
		{"ConsumeConcurrentWithReleases", testConsumeReleases},
		{"Reset", testReset},
		{"ResetThenConsume", testResetThenConsume},
		{"FirstCrossing", testFirstCrossing},
		{"FirstCrossingConcurrent", testFirstCrossingConcurrent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newCounters(t))
		})
	}
}

// must fails t at once on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c tally.Counters, tenant int64, d time.Time, metric string) int64 {
	t.Helper()
	v, err := c.Get(t.Context(), tenant, d, metric)
	must(t, err)
	return v
}

func add(t *testing.T, c tally.Counters, tenant int64, d time.Time, metric string, n int64) int64 {
	t.Helper()
	v, err := c.Add(t.Context(), tenant, d, metric, n)
	must(t, err)
	return v
}

func all(t *testing.T, c tally.Counters, tenant int64, d time.Time) map[string]int64 {
	t.Helper()
	m, err := c.All(t.Context(), tenant, d)
	must(t, err)
	return m
}

// nonZero returns m without its zero values: the contract lets All list a
// metric that is 0 or leave it out.
func nonZero(m map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// parallel runs fn(i) for i in [0, n) in n goroutines released at once.
func parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func testAdd(t *testing.T, c tally.Counters) {
	for _, step := range []struct{ n, want int64 }{
		{5, 5}, {3, 8}, {0, 8}, {-10, -2}, {2, 0}, {1 << 40, 1 << 40},
	} {
		if got := add(t, c, 1, day, "builds", step.n); got != step.want {
			t.Fatalf("Add(%d) = %d, want %d", step.n, got, step.want)
		}
	}
	if got := get(t, c, 1, day, "builds"); got != 1<<40 {
		t.Errorf("Get after the adds = %d, want %d", got, int64(1<<40))
	}
}

func testAddConcurrent(t *testing.T, c tally.Counters) {
	const each = 5
	results := make([][]int64, Workers)
	parallel(Workers, func(i int) {
		for range each {
			v, err := c.Add(t.Context(), 1, day, "events", 1)
			if err != nil {
				t.Error(err)
				return
			}
			results[i] = append(results[i], v)
		}
	})
	got := slices.Sorted(slices.Values(slices.Concat(results...)))
	for i, v := range got { // every Add saw its own new value: 1 … Workers*each
		if v != int64(i+1) {
			t.Fatalf("the new values returned by concurrent Adds are not 1…%d: %v", Workers*each, got)
		}
	}
	if v := get(t, c, 1, day, "events"); v != Workers*each {
		t.Errorf("Get = %d, want %d", v, Workers*each)
	}
}

func testGetUnknown(t *testing.T, c tally.Counters) {
	if v := get(t, c, 1, day, "never_set"); v != 0 {
		t.Errorf("Get of a metric never set = %d, want 0", v)
	}
	if m := all(t, c, 1, day); len(m) != 0 {
		t.Errorf("All of a day never written = %v, want empty", m)
	}
	add(t, c, 1, day, "builds", 2)
	if v := get(t, c, 1, day, "never_set"); v != 0 {
		t.Errorf("Get of an unknown metric of a known day = %d, want 0", v)
	}
}

func testAll(t *testing.T, c tally.Counters) {
	want := map[string]int64{"builds": 3, "events": 10, "uploads": -1, "storage_mb": 1 << 40}
	for m, v := range want {
		add(t, c, 1, day, m, v)
	}
	got := all(t, c, 1, day)
	if !maps.Equal(got, want) {
		t.Fatalf("All = %v, want %v", got, want)
	}
	got["builds"] = 1000 // the map is the caller's
	delete(got, "events")
	if again := all(t, c, 1, day); !maps.Equal(again, want) {
		t.Errorf("All after changing a returned map = %v, want %v", again, want)
	}
}

func testUTCDay(t *testing.T, c tally.Counters) {
	start := time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC)
	add(t, c, 1, start, "m", 1)
	// Any instant of the same UTC day, in any zone, is the same counter.
	same := []time.Time{
		start.Add(24*time.Hour - time.Nanosecond),
		time.Date(2026, 3, 8, 18, 30, 0, 0, time.FixedZone("UTC-5", -5*3600)), // 23:30 UTC
		time.Date(2026, 3, 8, 1, 0, 0, 0, time.FixedZone("UTC+1", 3600)),      // 00:00 UTC
	}
	for i, at := range same {
		if v := add(t, c, 1, at, "m", 1); v != int64(i+2) {
			t.Errorf("Add at %v = %d, want %d (the UTC day of %v)", at, v, i+2, start.Format(time.DateOnly))
		}
	}
	// The same local date in another zone may be another UTC day.
	other := []time.Time{
		start.Add(-time.Nanosecond),
		time.Date(2026, 3, 8, 20, 0, 0, 0, time.FixedZone("UTC-5", -5*3600)), // 01:00 UTC on the 9th
		time.Date(2026, 3, 8, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600)),    // 23:30 UTC on the 7th
	}
	for _, at := range other {
		if v := get(t, c, 1, at, "m"); v != 0 {
			t.Errorf("Get at %v (another UTC day) = %d, want 0", at, v)
		}
	}
}

func testIsolation(t *testing.T, c tally.Counters) {
	next := day.Add(24 * time.Hour)
	add(t, c, 1, day, "builds", 7)
	add(t, c, 1, day, "events", 3)
	for _, k := range []struct {
		name   string
		tenant int64
		day    time.Time
		metric string
	}{
		{"another tenant", 2, day, "builds"},
		{"a negative tenant id", -1, day, "builds"},
		{"another day", 1, next, "builds"},
		{"another metric", 1, day, "builds_daily"},
		{"a metric that extends the name", 1, day, "builds2"},
	} {
		if v := get(t, c, k.tenant, k.day, k.metric); v != 0 {
			t.Errorf("%s: Get = %d, want 0", k.name, v)
		}
	}
	if m := all(t, c, 2, day); len(m) != 0 {
		t.Errorf("All of another tenant = %v, want empty", m)
	}
	if m := all(t, c, 1, next); len(m) != 0 {
		t.Errorf("All of another day = %v, want empty", m)
	}
	// Writes elsewhere leave the first counters alone.
	add(t, c, 2, day, "builds", 100)
	add(t, c, 1, next, "builds", 100)
	add(t, c, 1, day, "builds_daily", 100)
	consume(t, c, 2, day, "events", 1, 10)
	must(t, c.Reset(t.Context(), 12, day, map[string]int64{"builds": 5}))
	if got, want := all(t, c, 1, day), map[string]int64{"builds": 7, "events": 3, "builds_daily": 100}; !maps.Equal(got, want) {
		t.Errorf("All = %v, want %v", got, want)
	}
}

func consume(t *testing.T, c tally.Counters, tenant int64, d time.Time, metric string, n, limit int64) (bool, int64) {
	t.Helper()
	ok, v, err := c.Consume(t.Context(), tenant, d, metric, n, limit)
	must(t, err)
	return ok, v
}

func testConsume(t *testing.T, c tally.Counters) {
	for _, step := range []struct {
		n, limit  int64
		ok        bool
		wantValue int64
	}{
		{4, 10, true, 4},
		{7, 10, false, 4}, // 11 would pass the limit
		{6, 10, true, 10}, // exactly the limit is allowed
		{1, 10, false, 10},
		{1, 11, true, 11}, // a larger limit admits more
		{5, 3, false, 11}, // a lower limit than the value refuses
	} {
		ok, v := consume(t, c, 1, day, "builds", step.n, step.limit)
		if ok != step.ok || v != step.wantValue {
			t.Fatalf("Consume(n=%d, limit=%d) = %v, %d; want %v, %d", step.n, step.limit, ok, v, step.ok, step.wantValue)
		}
	}
	if v := get(t, c, 1, day, "builds"); v != 11 {
		t.Errorf("Get = %d, want 11", v)
	}
	// Consume counts on top of what Add counted.
	add(t, c, 1, day, "events", 8)
	if ok, v := consume(t, c, 1, day, "events", 2, 10); !ok || v != 10 {
		t.Errorf("Consume 2 of 10 after Add 8 = %v, %d; want true, 10", ok, v)
	}
	if v := add(t, c, 1, day, "events", -3); v != 7 {
		t.Errorf("Add -3 after the consume = %d, want 7", v)
	}
}

func testConsumeRefused(t *testing.T, c tally.Counters) {
	if ok, v := consume(t, c, 1, day, "builds", 5, 4); ok || v != 0 {
		t.Errorf("Consume 5 of 4 on a fresh counter = %v, %d; want false, 0", ok, v)
	}
	if ok, v := consume(t, c, 1, day, "builds", 1, 0); ok || v != 0 {
		t.Errorf("Consume 1 of 0 = %v, %d; want false, 0", ok, v)
	}
	if v := get(t, c, 1, day, "builds"); v != 0 {
		t.Errorf("Get after refused consumes = %d, want 0", v)
	}
	if m := nonZero(all(t, c, 1, day)); len(m) != 0 {
		t.Errorf("All after refused consumes = %v, want nothing counted", m)
	}
	add(t, c, 1, day, "builds", 3)
	for range 3 {
		if ok, v := consume(t, c, 1, day, "builds", 2, 4); ok || v != 3 {
			t.Errorf("Consume 2 of 4 at 3 = %v, %d; want false, 3", ok, v)
		}
	}
	if v := get(t, c, 1, day, "builds"); v != 3 {
		t.Errorf("Get after refused consumes = %d, want 3 (unchanged)", v)
	}
}

// testConsumeConcurrent: Workers goroutines each consume 1 of 50, twice.
// Exactly 50 calls are allowed, each sees its own value 1…50, and every
// refused call sees the full 50.
func testConsumeConcurrent(t *testing.T, c tally.Counters) {
	const limit = 50
	var mu sync.Mutex
	var allowed []int64
	parallel(Workers, func(int) {
		for range 2 {
			ok, v, err := c.Consume(t.Context(), 1, day, "builds_daily", 1, limit)
			if err != nil {
				t.Error(err)
				return
			}
			if !ok {
				if v != limit {
					t.Errorf("a refused consume saw %d, want %d: it was refused below the limit", v, limit)
				}
				continue
			}
			mu.Lock()
			allowed = append(allowed, v)
			mu.Unlock()
		}
	})
	if len(allowed) != limit {
		t.Fatalf("%d concurrent consumes of 1 allowed, want exactly %d", len(allowed), limit)
	}
	slices.Sort(allowed)
	for i, v := range allowed {
		if v != int64(i+1) {
			t.Fatalf("values seen by the allowed consumes = %v, want 1…%d", allowed, limit)
		}
	}
	if v := get(t, c, 1, day, "builds_daily"); v != limit {
		t.Errorf("Get = %d, want %d", v, limit)
	}
}

// testConsumeMixed: consumes of 1 to 3 race for a limit of 100. What is
// counted is exactly what was allowed, never past the limit, and a call is
// refused only when its amount really did not fit.
func testConsumeMixed(t *testing.T, c tally.Counters) {
	const limit = 100
	var mu sync.Mutex
	var sum int64
	parallel(Workers, func(i int) {
		n := int64(i%3 + 1)
		for range 2 {
			ok, v, err := c.Consume(t.Context(), 1, day, "builds", n, limit)
			if err != nil {
				t.Error(err)
				return
			}
			switch {
			case ok && (v > limit || v < n):
				t.Errorf("an allowed consume of %d saw %d, outside [%d, %d]", n, v, n, limit)
			case !ok && v+n <= limit:
				t.Errorf("a consume of %d was refused at %d, below the limit %d", n, v, limit)
			}
			if ok {
				mu.Lock()
				sum += n
				mu.Unlock()
			}
		}
	})
	if v := get(t, c, 1, day, "builds"); v != sum || v > limit || v < limit-2 {
		t.Errorf("Get = %d, the allowed amounts sum to %d; want equal and within [%d, %d]", v, sum, limit-2, limit)
	}
}

// testConsumeReleases: goroutines consume 1 of 8 and release it again with
// Add(-1), as Settle does for a duplicate. No allowed consume ever sees
// more than 8, and everything released leaves 0.
func testConsumeReleases(t *testing.T, c tally.Counters) {
	const limit = 8
	ctx := t.Context()
	parallel(Workers, func(int) {
		for range 10 {
			ok, v, err := c.Consume(ctx, 1, day, "slots", 1, limit)
			if err != nil {
				t.Error(err)
				return
			}
			if !ok {
				continue
			}
			if v < 1 || v > limit {
				t.Errorf("an allowed consume saw %d, outside [1, %d]", v, limit)
			}
			if _, err := c.Add(ctx, 1, day, "slots", -1); err != nil {
				t.Error(err)
				return
			}
		}
	})
	if v := get(t, c, 1, day, "slots"); v != 0 {
		t.Errorf("Get after releasing every consume = %d, want 0", v)
	}
}

func testReset(t *testing.T, c tally.Counters) {
	ctx := t.Context()
	next := day.Add(24 * time.Hour)
	add(t, c, 1, day, "builds", 5)
	add(t, c, 1, day, "events", 7)
	add(t, c, 1, next, "builds", 11)
	add(t, c, 2, day, "builds", 13)
	values := map[string]int64{"builds": 1, "uploads": 3, "zero": 0}
	must(t, c.Reset(ctx, 1, day.Add(time.Hour), values)) // any time of the day
	values["builds"] = 99                                // Reset copied the map
	if got, want := nonZero(all(t, c, 1, day)), map[string]int64{"builds": 1, "uploads": 3}; !maps.Equal(got, want) {
		t.Errorf("All after Reset = %v, want %v", got, want)
	}
	if v := get(t, c, 1, day, "events"); v != 0 {
		t.Errorf("a metric missing from Reset's values = %d, want 0", v)
	}
	if v := get(t, c, 1, next, "builds"); v != 11 {
		t.Errorf("another day after Reset = %d, want 11 (untouched)", v)
	}
	if v := get(t, c, 2, day, "builds"); v != 13 {
		t.Errorf("another tenant after Reset = %d, want 13 (untouched)", v)
	}
	if v := add(t, c, 1, day, "builds", 2); v != 3 {
		t.Errorf("Add after Reset = %d, want 3", v)
	}

	// Reset with no values empties the day; a day never written can be reset.
	must(t, c.Reset(ctx, 1, day, nil))
	if m := nonZero(all(t, c, 1, day)); len(m) != 0 {
		t.Errorf("All after Reset(nil) = %v, want nothing", m)
	}
	must(t, c.Reset(ctx, 3, day, map[string]int64{"builds": 4}))
	if v := get(t, c, 3, day, "builds"); v != 4 {
		t.Errorf("Reset of a fresh day: Get = %d, want 4", v)
	}

	// Reset leaves FirstCrossing marks alone.
	first, err := c.FirstCrossing(ctx, 1, day, "builds", 80)
	must(t, err)
	must(t, c.Reset(ctx, 1, day, map[string]int64{"builds": 0}))
	again, err := c.FirstCrossing(ctx, 1, day, "builds", 80)
	must(t, err)
	if !first || again {
		t.Errorf("FirstCrossing before and after Reset = %v, %v; want true, false", first, again)
	}
}

func testResetThenConsume(t *testing.T, c tally.Counters) {
	must(t, c.Reset(t.Context(), 1, day, map[string]int64{"builds": 9}))
	if ok, v := consume(t, c, 1, day, "builds", 2, 10); ok || v != 9 {
		t.Errorf("Consume 2 of 10 after Reset to 9 = %v, %d; want false, 9", ok, v)
	}
	if ok, v := consume(t, c, 1, day, "builds", 1, 10); !ok || v != 10 {
		t.Errorf("Consume 1 of 10 after Reset to 9 = %v, %d; want true, 10", ok, v)
	}
}

func testFirstCrossing(t *testing.T, c tally.Counters) {
	ctx := t.Context()
	crossing := func(tenant int64, d time.Time, metric string, threshold int) bool {
		t.Helper()
		first, err := c.FirstCrossing(ctx, tenant, d, metric, threshold)
		must(t, err)
		return first
	}
	if !crossing(1, day, "builds", 80) {
		t.Fatal("the first FirstCrossing = false, want true")
	}
	for i := range 3 {
		if crossing(1, day.Add(time.Duration(i)*time.Hour), "builds", 80) {
			t.Fatalf("FirstCrossing call %d on the same day = true, want false", i+2)
		}
	}
	// Each part of the key is its own mark.
	for _, k := range []struct {
		name      string
		tenant    int64
		day       time.Time
		metric    string
		threshold int
	}{
		{"another threshold", 1, day, "builds", 100},
		{"another metric", 1, day, "events", 80},
		{"another day", 1, day.Add(24 * time.Hour), "builds", 80},
		{"another tenant", 2, day, "builds", 80},
		{"threshold 8 (a prefix of 80)", 1, day, "builds", 8},
	} {
		if !crossing(k.tenant, k.day, k.metric, k.threshold) {
			t.Errorf("%s: the first FirstCrossing = false, want true", k.name)
		}
		if crossing(k.tenant, k.day, k.metric, k.threshold) {
			t.Errorf("%s: the second FirstCrossing = true, want false", k.name)
		}
	}
	// Marks are not counters.
	if m := all(t, c, 1, day); len(m) != 0 {
		t.Errorf("All after FirstCrossing = %v, want empty", m)
	}
}

// testFirstCrossingConcurrent: Workers goroutines race for the marks of
// two thresholds of two metrics; each mark is won exactly once.
func testFirstCrossingConcurrent(t *testing.T, c tally.Counters) {
	type mark struct {
		metric    string
		threshold int
	}
	marks := []mark{{"builds", 80}, {"builds", 100}, {"events", 80}, {"events", 100}}
	var mu sync.Mutex
	won := map[mark]int{}
	parallel(Workers, func(i int) {
		for j := range marks {
			m := marks[(i+j)%len(marks)]
			first, err := c.FirstCrossing(t.Context(), 1, day, m.metric, m.threshold)
			if err != nil {
				t.Error(err)
				return
			}
			if first {
				mu.Lock()
				won[m]++
				mu.Unlock()
			}
		}
	})
	for _, m := range marks {
		if won[m] != 1 {
			t.Errorf("FirstCrossing(%s, %d) was true %d times among %d goroutines, want exactly once", m.metric, m.threshold, won[m], Workers)
		}
	}
}
