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
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// writerInserter ingests through the group-commit writer, as requests do.
type writerInserter struct{ w *ingest.Writer }

func (wi writerInserter) InsertEvents(ctx context.Context, events []tally.Event) ([]bool, error) {
	return wi.w.Write(ctx, events)
}

// BenchmarkIngestLiveSubscribers measures ingest throughput (writers →
// group-commit writer → store) without subscribers and then with 100 live
// subscribers on the ingesting tenant, each writing every event's frame as
// a stream would, in the same run, and reports the ratio: on SQLite with
// readers taking new events from the writer's last commits (SoleWriter, as
// a SQLite deployment runs) and reading them from the log, and on
// PostgreSQL as its instances run (the log read within the horizon, wakes
// by LISTEN/NOTIFY; skipped without a server). It asserts nothing about
// speed. Run with -benchtime=1x.
func BenchmarkIngestLiveSubscribers(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		db, tenant := sqlitetest.WithTenant(b)
		benchLiveSubscribers(b, db, tenant.ID, live.Config{SoleWriter: true})
	})
	b.Run("log", func(b *testing.B) {
		db, tenant := sqlitetest.WithTenant(b)
		benchLiveSubscribers(b, db, tenant.ID, live.Config{})
	})
	b.Run("postgres", func(b *testing.B) {
		db, tenant, _ := postgresWithTenant(b)
		benchLiveSubscribers(b, db, tenant.ID, live.Config{Horizon: db.TailHorizon(), Broker: db})
	})
}

// postgresWithTenant opens a scratch schema holding an owner and the
// tenant "acme"; url reaches the same schema.
func postgresWithTenant(t testing.TB) (db *postgres.DB, tenant *tally.Tenant, url string) {
	t.Helper()
	ctx := t.Context()
	url = pgtest.FreshSchema(t)
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	owner := &tally.User{Email: "owner@example.com", Name: "Owner"}
	if err := db.CreateUser(ctx, owner, "hash"); err != nil {
		t.Fatal(err)
	}
	tenant = &tally.Tenant{Slug: "acme", Name: "Acme"}
	if err := db.CreateTenant(ctx, tenant, owner.ID); err != nil {
		t.Fatal(err)
	}
	return db, tenant, url
}

// liveStore is what the benchmark ingests into and tails.
type liveStore interface {
	tally.EventStore
	tally.TailStore
}

func benchLiveSubscribers(b *testing.B, db liveStore, tenantID int64, cfg live.Config) {
	hub := live.New(db, cfg)
	hub.Start()
	b.Cleanup(func() { hub.Stop(context.Background()) })
	w := ingest.NewWriter(db, ingest.WriterConfig{Committed: hub.Committed}, nil)
	w.Start()
	b.Cleanup(func() { w.Stop(context.Background()) })
	g := dataset.New(dataset.Config{Tenants: []int64{tenantID}})
	// The machine is shared and the log grows: phases alone and with
	// subscribers alternate, each pair in the other order than the last
	// (alone, with, with, alone, …), so that neither a change of the
	// machine's load nor the growing log weighs on one side only.
	const pairs, phase = 4, time.Second
	const subscribers = 100
	run := func(rate *[2]float64) {
		l, err := dataset.Ingest(b.Context(), writerInserter{w}, g, []int64{tenantID}, 8, 10, phase, nil)
		if err != nil {
			b.Fatal(err)
		}
		rate[0] += float64(l.Events)
		rate[1] += l.Elapsed.Seconds()
	}
	for b.Loop() {
		var alone, with [2]float64 // events, seconds
		var received, drops atomic.Int64
		subscribed := func() {
			ctx, cancel := context.WithCancel(b.Context())
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel() // before the wait
			for range subscribers {
				wg.Go(func() { subscriber(ctx, hub, tenantID, &received, &drops) })
			}
			for hub.Subscribers() < subscribers {
				time.Sleep(time.Millisecond)
			}
			run(&with)
		}
		for i := range pairs {
			if i%2 == 0 {
				run(&alone)
				subscribed()
			} else {
				subscribed()
				run(&alone)
			}
		}
		base, loaded := alone[0]/alone[1], with[0]/with[1]
		ratio := loaded / base
		b.ReportMetric(base, "events/s_alone")
		b.ReportMetric(loaded, "events/s_100subs")
		b.ReportMetric(ratio, "ratio")
		b.ReportMetric(float64(drops.Load()), "drops")
		b.Logf("ingest alone %.0f events/s; with 100 live subscribers %.0f events/s: ratio %.3f; %d deliveries, %d slow drops",
			base, loaded, ratio, received.Load(), drops.Load())
	}
}

// conn stands for a stream's connection: it copies what is written into
// a buffer of a socket's size, as the kernel does.
type conn struct{ buf [4096]byte }

func (c *conn) Write(p []byte) (int, error) {
	for n := 0; n < len(p); {
		n += copy(c.buf[:], p[n:])
	}
	return len(p), nil
}

// subscriber follows tenantID until ctx ends, subscribing again when the
// hub drops it, and does with each delivery what a stream does: it writes
// the shared frames to its connection.
func subscriber(ctx context.Context, hub *live.Hub, tenantID int64, received, drops *atomic.Int64) {
	var c conn
	for ctx.Err() == nil {
		s, err := hub.Subscribe(ctx, tenantID, tally.EventFilter{})
		if err != nil {
			return
		}
		func() {
			defer s.Close()
			for {
				select {
				case batch := <-s.C:
					live.WriteFrames(&c, batch)
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
}
