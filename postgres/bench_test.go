package postgres_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// BenchmarkInsertEventsVsCopy measures the store's InsertEvents against a
// raw pgx CopyFrom of the same rows into a copy of the events table (its
// indexes and unique key, without the dedup that needs, dirty marks or locks), both in batches of 1000
// realistic events (random UUID ids, ~300-byte props, three tenants),
// in alternating slices so that the machine's other load falls on both
// alike, and reports events/s of each and the ratio: target P7 of the
// performance issue (≥ 0.5). It asserts nothing about speed. Run with
// -benchtime=1x; TALLY_BENCH_EVENTS sets the events per side (default
// 100,000).
func BenchmarkInsertEventsVsCopy(b *testing.B) {
	ctx := b.Context()
	url := pgtest.FreshSchema(b)
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	owner := &tally.User{Email: "owner@example.com", Name: "Owner"}
	if err := db.CreateUser(ctx, owner, "hash"); err != nil {
		b.Fatal(err)
	}
	var tenants []int64
	for i := range 3 {
		tn := &tally.Tenant{Slug: fmt.Sprintf("t%d", i), Name: "T"}
		if err := db.CreateTenant(ctx, tn, owner.ID); err != nil {
			b.Fatal(err)
		}
		tenants = append(tenants, tn.ID)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE events_copy (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING INDEXES)`); err != nil {
		b.Fatal(err)
	}
	n := dataset.EventsFromEnv(b, 100_000)
	gen := func(seed uint64) *dataset.Generator {
		return dataset.New(dataset.Config{Events: n, Tenants: tenants, Seed: seed})
	}
	store, raw := gen(1), gen(2)
	cols := []string{"tenant_id", "event_id", "event", "user_id", "source", "ts", "received_at", "value", "props", "metric"}
	var storeTook, rawTook time.Duration
	var stored, copied int
	batch := make([]tally.Event, 0, 1000)
	rows := make([][]any, 0, 1000)
	for b.Loop() {
		for {
			// A slice of each side in turn.
			began := time.Now()
			if batch = store.Next(batch); len(batch) > 0 {
				if _, err := db.InsertEvents(ctx, batch); err != nil {
					b.Fatal(err)
				}
				stored += len(batch)
			}
			storeTook += time.Since(began)
			began = time.Now()
			if batch = raw.Next(batch); len(batch) > 0 {
				rows = rows[:0]
				for _, e := range batch {
					rows = append(rows, []any{e.TenantID, e.EventID, e.Name, []byte(e.UserID), e.Source, e.Timestamp, e.ReceivedAt, e.Value, string(e.Props), e.CountedMetric()})
				}
				if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events_copy"}, cols, pgx.CopyFromRows(rows)); err != nil {
					b.Fatal(err)
				}
				copied += len(rows)
			}
			rawTook += time.Since(began)
			if len(batch) == 0 {
				break
			}
		}
	}
	storeRate, rawRate := float64(stored)/storeTook.Seconds(), float64(copied)/rawTook.Seconds()
	b.ReportMetric(storeRate, "events/s_store")
	b.ReportMetric(rawRate, "events/s_copy")
	b.ReportMetric(storeRate/rawRate, "ratio")
	b.Logf("InsertEvents %.0f events/s, raw CopyFrom %.0f events/s: ratio %.2f (P7 target ≥ 0.5)", storeRate, rawRate, storeRate/rawRate)
}
