package rollup_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/sqlite"
)

// BenchmarkIngestDuringRollup measures, on each backend, batch ingest
// latency (4 writers of 100 realistic events each, durable) alone, then
// while one tenant's day of TALLY_BENCH_EVENTS events (default 200,000)
// is re-rolled over and over: with the rollup holding the writer (SQLite)
// or the tenant's lock (PostgreSQL) for the whole recompute, as before,
// and with the rollup reading from a snapshot (InRollupTx today). Run it
// once:
//
//	go test ./rollup -run '^$' -bench IngestDuringRollup -benchtime 1x
//
// It prints each phase's p50 and p99 and their ratios to the phase alone;
// nothing is asserted.
func BenchmarkIngestDuringRollup(b *testing.B) { onEachBackend(b, rollupStall) }

// onEachBackend runs fn on a fresh SQLite database and a fresh PostgreSQL
// schema, as sub-benchmarks.
func onEachBackend(b *testing.B, fn func(*testing.B, tally.Store)) {
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		fn(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		db, err := postgres.Open(context.Background(), pgtest.FreshSchema(b), postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		fn(b, db)
	})
}

// rollupStall fills db with a big day of one tenant and measures ingest
// alone and during rollups of that day, on the writer and from a snapshot.
func rollupStall(b *testing.B, db tally.Store) {
	ctx := context.Background()
	n := dataset.EventsFromEnv(b, 200_000)
	tenants := stallTenants(b, db, 0)
	day := tally.DayStart(time.Now()).Add(-24 * time.Hour)
	stallFill(b, db, tenants[0], n, day, day.Add(24*time.Hour))

	rules := tally.DefaultUsageRules()
	start := time.Now()
	if _, err := rollup.RecomputeDay(ctx, db, tenants[0], day, rules); err != nil {
		b.Fatal(err)
	}
	b.Logf("one rollup of the day: %v", time.Since(start).Round(time.Millisecond))
	gen := dataset.New(dataset.Config{Events: 1 << 30, Tenants: tenants, Seed: 7})
	roll := func(s tally.RollupStore) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := rollup.RecomputeDay(ctx, s, tenants[0], day, rules)
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	phase := func(during func(context.Context) error) dataset.Latency {
		l, err := dataset.Ingest(ctx, db, gen, tenants, 4, 100, 4*time.Second, during)
		if err != nil {
			b.Fatal(err)
		}
		return l
	}
	alone := phase(nil)
	onWriter := phase(roll(lockedRollups{db}))
	snapshot := phase(roll(db))
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, p := range []struct {
		name string
		l    dataset.Latency
	}{{"alone", alone}, {"rollup holding the writer", onWriter}, {"rollup from a snapshot", snapshot}} {
		b.Logf("%-26s p50 %7.1f ms  p99 %7.1f ms (%.2fx alone)  %6.0f events/s  %d rollups",
			p.name, ms(p.l.P50), ms(p.l.P99), ms(p.l.P99)/ms(alone.P99), p.l.PerSecond(), p.l.During)
	}
	b.ReportMetric(ms(onWriter.P99)/ms(alone.P99), "p99-locked/alone")
	b.ReportMetric(ms(snapshot.P99)/ms(alone.P99), "p99-snapshot/alone")
}

// stallTenants makes four tenants, the first keeping its events for
// retention days (0: the default).
func stallTenants(b *testing.B, db tally.Store, retention int) []int64 {
	ctx := context.Background()
	u := &tally.User{Email: "owner@example.com"}
	if err := db.CreateUser(ctx, u, "hash"); err != nil {
		b.Fatal(err)
	}
	var tenants []int64
	for i := range 4 {
		tn := &tally.Tenant{Slug: fmt.Sprintf("t%d", i), Name: "T"}
		if err := db.CreateTenant(ctx, tn, u.ID); err != nil {
			b.Fatal(err)
		}
		tenants = append(tenants, tn.ID)
	}
	if retention > 0 {
		t, err := db.TenantByID(ctx, tenants[0])
		if err != nil {
			b.Fatal(err)
		}
		t.RetentionDays = retention
		if err := db.UpdateTenant(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	return tenants
}

// stallFill stores n realistic events of tenant between from and to.
func stallFill(b *testing.B, db tally.Store, tenant int64, n int, from, to time.Time) {
	began := time.Now()
	g := dataset.New(dataset.Config{Events: n, Tenants: []int64{tenant}, From: from, To: to, Seed: uint64(began.UnixNano())})
	for batch := make([]tally.Event, 0, 1000); ; {
		if batch = g.Next(batch); len(batch) == 0 {
			break
		}
		if _, err := db.InsertEvents(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d events of %s to %s in %v", n, from.Format(time.DateOnly), to.Format(time.DateOnly), time.Since(began).Round(time.Millisecond))
}

// BenchmarkIngestDuringPurge measures, on each backend, batch ingest
// latency (4 writers of 100 realistic events each, durable) alone, then
// while the retention purge deletes one tenant's TALLY_BENCH_EVENTS events
// (default 200,000) spread over 20 days past its retention: in one
// transaction (PurgeBatch -1, as before) and in transactions of about
// 2000 events (the default). Run it once:
//
//	go test ./rollup -run '^$' -bench IngestDuringPurge -benchtime 1x
//
// It prints each phase's p50 and p99, their ratios to the phase alone and
// how long the purge took; nothing is asserted.
func BenchmarkIngestDuringPurge(b *testing.B) { onEachBackend(b, purgeStall) }

func purgeStall(b *testing.B, db tally.Store) {
	ctx := context.Background()
	n := dataset.EventsFromEnv(b, 200_000)
	tenants := stallTenants(b, db, 30)
	old := tally.DayStart(time.Now()).AddDate(0, 0, -60)
	gen := dataset.New(dataset.Config{Events: 1 << 30, Tenants: tenants, Seed: 7})
	// A phase with a purge lasts as long as the purge; an ingest error
	// (a batch that waited past the statement timeout) is logged.
	phase := func(purge bool, batch int) (dataset.Latency, time.Duration, error) {
		var took time.Duration
		var during func(context.Context) error
		pctx, stop := context.WithCancel(ctx)
		defer stop()
		d := 6 * time.Second
		if purge {
			d = time.Hour
			stallFill(b, db, tenants[0], n, old, old.AddDate(0, 0, 20))
			// Rolled up while within retention, as expired days were:
			// the purge has nothing to re-roll first.
			then := rollup.New(rollup.Config{RunTimeout: time.Hour, Now: func() time.Time { return old.AddDate(0, 0, 21) }}, db, nil)
			if _, err := then.RunDirty(ctx); err != nil {
				b.Fatal(err)
			}
			r := rollup.New(rollup.Config{PurgeBatch: batch, RunTimeout: time.Hour}, db, nil)
			done := false
			during = func(ctx context.Context) error {
				if done {
					<-ctx.Done()
					return nil
				}
				done = true
				began := time.Now()
				deleted, err := r.PurgeExpired(context.WithoutCancel(ctx))
				took = time.Since(began)
				stop()
				if err == nil && deleted < int64(n) {
					err = fmt.Errorf("the purge deleted %d events of %d", deleted, n)
				}
				return err
			}
		}
		l, err := dataset.Ingest(pctx, db, gen, tenants, 4, 100, d, during)
		return l, took, err
	}
	alone, _, err := phase(false, 0)
	if err != nil {
		b.Fatal(err)
	}
	whole, wholeTook, wholeErr := phase(true, -1)
	batched, batchedTook, batchedErr := phase(true, 0)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, p := range []struct {
		name string
		l    dataset.Latency
		took time.Duration
		err  error
	}{{"alone", alone, 0, nil}, {"purge in one transaction", whole, wholeTook, wholeErr}, {"purge in batches of ~2000", batched, batchedTook, batchedErr}} {
		if p.err != nil {
			b.Logf("%-28s ingest failed: %v (purge took %v)", p.name, p.err, p.took.Round(time.Millisecond))
			continue
		}
		b.Logf("%-28s p50 %7.1f ms  p99 %7.1f ms (%.2fx alone)  %6.0f events/s  purge took %v",
			p.name, ms(p.l.P50), ms(p.l.P99), ms(p.l.P99)/ms(alone.P99), p.l.PerSecond(), p.took.Round(time.Millisecond))
	}
	b.ReportMetric(ms(whole.P99)/ms(alone.P99), "p99-whole/alone")
	b.ReportMetric(ms(batched.P99)/ms(alone.P99), "p99-batched/alone")
}

// lockedRollups runs every InRollupTx as it ran before snapshots: fn
// purging first (nothing: no event is older than year 1) makes the store
// run it on the writer (SQLite) or under the tenant's lock (PostgreSQL).
type lockedRollups struct{ tally.Store }

func (s lockedRollups) InRollupTx(ctx context.Context, tenantID int64, fn func(tally.RollupTx) error) error {
	return s.Store.InRollupTx(ctx, tenantID, func(tx tally.RollupTx) error {
		if _, err := tx.PurgeEvents(ctx, time.Time{}); err != nil {
			return err
		}
		return fn(tx)
	})
}
