package live_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/live"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// writerInserter ingests through the group-commit writer, as requests do.
type writerInserter struct{ w *ingest.Writer }

func (wi writerInserter) InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error) {
	return wi.w.Write(ctx, events)
}

// BenchmarkIngestLiveSubscribers measures ingest throughput (writers →
// group-commit writer → SQLite) without subscribers and then with 100 live
// subscribers on the ingesting tenant, each encoding every event as a
// stream would, in the same run, and reports the ratio: readers taking
// new events from the writer's last commits (SoleWriter, as on SQLite)
// and reading them from the log (as on PostgreSQL). It asserts nothing
// about speed. Run with -benchtime=1x.
func BenchmarkIngestLiveSubscribers(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchLiveSubscribers(b, true) })
	b.Run("log", func(b *testing.B) { benchLiveSubscribers(b, false) })
}

func benchLiveSubscribers(b *testing.B, sole bool) {
	db, tenant := sqlitetest.WithTenant(b)
	hub := live.New(db, live.Config{SoleWriter: sole})
	hub.Start()
	b.Cleanup(func() { hub.Stop(context.Background()) })
	w := ingest.NewWriter(db, ingest.WriterConfig{Committed: hub.Committed}, nil)
	w.Start()
	b.Cleanup(func() { w.Stop(context.Background()) })
	g := dataset.New(dataset.Config{Tenants: []int64{tenant.ID}})
	const phase = 3 * time.Second
	run := func() dataset.Latency {
		l, err := dataset.Ingest(b.Context(), writerInserter{w}, g, []int64{tenant.ID}, 8, 10, phase, nil)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	for b.Loop() {
		base := run()

		ctx, cancel := context.WithCancel(b.Context())
		var wg sync.WaitGroup
		var received, drops atomic.Int64
		for range 100 {
			wg.Go(func() {
				var frame []byte
				for ctx.Err() == nil {
					s, err := hub.Subscribe(ctx, tenant.ID, tally.EventFilter{})
					if err != nil {
						return
					}
					func() {
						defer s.Close()
						for {
							select {
							case batch := <-s.C:
								// What a stream does with it: write the
								// shared encoding into a frame.
								for _, e := range batch {
									frame = append(append(frame[:0], "data: "...), e.JSON...)
								}
								received.Add(int64(len(batch)))
							case <-s.Dropped():
								drops.Add(1)
								return
							case <-ctx.Done():
								return
							}
						}
					}()
				}
			})
		}
		for hub.Subscribers() < 100 {
			time.Sleep(time.Millisecond)
		}
		with := run()
		cancel()
		wg.Wait()

		ratio := with.PerSecond() / base.PerSecond()
		b.ReportMetric(base.PerSecond(), "events/s_alone")
		b.ReportMetric(with.PerSecond(), "events/s_100subs")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(float64(drops.Load()), "drops")
		b.Logf("ingest alone %.0f events/s (p99 %v); with 100 live subscribers %.0f events/s (p99 %v): ratio %.3f; %d deliveries, %d slow drops",
			base.PerSecond(), base.P99, with.PerSecond(), with.P99, ratio, received.Load(), drops.Load())
	}
}
