package dataset

import (
	"context"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// Inserter is what Ingest writes to: tally.EventStore's InsertEvents.
type Inserter interface {
	InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error)
}

// Latency is what an Ingest phase measured.
type Latency struct {
	P50, P99 time.Duration
	Events   int
	Elapsed  time.Duration
	During   int             // runs of the concurrent job
	Batches  []time.Duration // each batch's latency, ascending
}

// Combine adds up phases of one kind (run in slices between other
// phases, say): their events, time and runs, and the percentiles of
// their batches together.
func Combine(phases ...Latency) Latency {
	var c Latency
	for _, l := range phases {
		c.Events += l.Events
		c.Elapsed += l.Elapsed
		c.During += l.During
		c.Batches = append(c.Batches, l.Batches...)
	}
	slices.Sort(c.Batches)
	c.P50, c.P99 = percentiles(c.Batches)
	return c
}

// percentiles returns the p50 and p99 of ascending latencies.
func percentiles(lat []time.Duration) (p50, p99 time.Duration) {
	if len(lat) == 0 {
		return 0, 0
	}
	return lat[len(lat)/2], lat[len(lat)*99/100]
}

// PerSecond is the phase's event rate.
func (l Latency) PerSecond() float64 { return float64(l.Events) / l.Elapsed.Seconds() }

// Ingest has writers goroutines insert batches of batch events of g (at
// the current time, round robin over tenants) into s for d, while during,
// when not nil, runs again and again alongside (each return counts one
// run; it must return soon after its context ends), and reports the batch
// latencies. The first error ends the phase and is returned.
func Ingest(ctx context.Context, s Inserter, g *Generator, tenants []int64, writers, batch int, d time.Duration,
	during func(context.Context) error) (Latency, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		lat     []time.Duration
		res     Latency
		firstEr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstEr == nil && ctx.Err() == nil {
			firstEr = err
		}
		mu.Unlock()
		cancel()
	}
	if during != nil {
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := during(ctx); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				res.During++
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for range writers {
		wg.Go(func() {
			evs := make([]tally.Event, 0, batch)
			for ctx.Err() == nil {
				mu.Lock()
				evs = evs[:0]
				now := time.Now()
				for i := range batch {
					evs = append(evs, g.Event(tenants[i%len(tenants)], now))
				}
				mu.Unlock()
				t := time.Now()
				if _, err := s.InsertEvents(context.WithoutCancel(ctx), evs); err != nil {
					fail(err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(t))
				res.Events += len(evs)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if firstEr != nil {
		return res, firstEr
	}
	slices.Sort(lat)
	res.Batches = lat
	res.P50, res.P99 = percentiles(lat)
	return res, nil
}

// EventsFromEnv is the event count a benchmark runs with:
// TALLY_BENCH_EVENTS when set (tb, a *testing.B, fails on a value that is
// not a positive integer), else def.
func EventsFromEnv(tb interface{ Fatalf(string, ...any) }, def int) int {
	s := os.Getenv("TALLY_BENCH_EVENTS")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("TALLY_BENCH_EVENTS=%q: want a positive number of events", s)
	}
	return n
}
