package rollup_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
func BenchmarkIngestDuringRollup(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		rollupStall(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		db, err := postgres.Open(context.Background(), pgtest.FreshSchema(b), postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		rollupStall(b, db)
	})
}

// rollupStall fills db with a big day of one tenant and measures ingest
// alone and during rollups of that day, on the writer and from a snapshot.
func rollupStall(b *testing.B, db tally.Store) {
	ctx := context.Background()
	n := 200_000
	if s := os.Getenv("TALLY_BENCH_EVENTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
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
	day := tally.DayStart(time.Now()).Add(-24 * time.Hour)
	began := time.Now()
	g := dataset.New(dataset.Config{Events: n, Tenants: tenants[:1], From: day, To: day.Add(24 * time.Hour)})
	for batch := make([]tally.Event, 0, 1000); ; {
		if batch = g.Next(batch); len(batch) == 0 {
			break
		}
		if _, err := db.InsertEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d events of one day in %v", n, time.Since(began).Round(time.Millisecond))

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
