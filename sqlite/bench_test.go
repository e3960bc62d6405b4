package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/rollup"
)

// benchDB opens a fresh database with n tenants and returns their ids.
func benchDB(b *testing.B, n int) (*DB, []int64) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	u := &tally.User{Email: "owner@example.com"}
	if err := db.CreateUser(ctx, u, "hash"); err != nil {
		b.Fatal(err)
	}
	var ids []int64
	for i := range n {
		tn := &tally.Tenant{Slug: fmt.Sprintf("t%d", i), Name: "T"}
		if err := db.CreateTenant(ctx, tn, u.ID); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, tn.ID)
	}
	return db, ids
}

// load stores the events of cfg in batches of 1000.
func load(b *testing.B, db *DB, cfg dataset.Config) {
	g := dataset.New(cfg)
	batch := make([]tally.Event, 0, 1000)
	for {
		if batch = g.Next(batch); len(batch) == 0 {
			return
		}
		if _, err := db.InsertEvents(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkInsertEvents compares, in one run, InsertEvents (Exec and
// LastInsertId) with the former INSERT … RETURNING id through QueryRow,
// in batches of 1000 realistic events; the figure is ns per event.
//
//	go test ./sqlite -run '^$' -bench InsertEvents -benchtime 20x -count 3
func BenchmarkInsertEvents(b *testing.B) {
	for _, v := range []struct {
		name   string
		insert func(*DB, []tally.Event) error
	}{
		{"exec", func(db *DB, evs []tally.Event) error {
			_, err := db.InsertEvents(context.Background(), evs)
			return err
		}},
		{"returning", insertReturning},
	} {
		b.Run(v.name, func(b *testing.B) {
			db, tenants := benchDB(b, 4)
			g := dataset.New(dataset.Config{Events: 1 << 30, Tenants: tenants, Seed: 3})
			batch := make([]tally.Event, 0, 1000)
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				batch = g.Next(batch)
				b.StartTimer()
				if err := v.insert(db, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*cap(batch)), "ns/event")
		})
	}
}

// insertReturning is InsertEvents as it was: RETURNING id through QueryRow.
func insertReturning(db *DB, events []tally.Event) error {
	ctx := context.Background()
	return db.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx,
			`INSERT INTO events (tenant_id, event_id, event, user_id, source, ts, received_at, value, props, metric)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING id`)
		if err != nil {
			return err
		}
		defer ins.Close()
		type th struct{ tenant, hour int64 }
		dirty := map[th]bool{}
		for i := range events {
			e := &events[i]
			metric := ""
			if e.Name == tally.EventUsageIncrement {
				metric = tally.UsageMetricOf(e.Props)
			}
			err := ins.QueryRowContext(ctx, e.TenantID, e.EventID, e.Name, e.UserID, e.Source,
				micros(e.Timestamp), micros(e.ReceivedAt), e.Value, string(e.Props), metric).Scan(&e.ID)
			if err == sql.ErrNoRows {
				continue
			} else if err != nil {
				return err
			}
			dirty[th{e.TenantID, micros(e.Timestamp) / hourMicros * hourMicros}] = true
		}
		stamp, err := nextStamp(ctx, tx)
		if err != nil {
			return err
		}
		for k := range dirty {
			if _, err := tx.ExecContext(ctx, markDirtySQL, k.tenant, k.hour, micros(db.now()), stamp); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkRollupAll rolls up 90 days of 100 tenants, 50 of them idle,
// with TALLY_BENCH_EVENTS events (default 100,000) spread over the busy
// ones: the full run (RunDays over every tenant), then, in the same run,
// the cost of one idle tenant-day as the run handles it and as a full
// recompute (RecomputeDay, what every tenant-day cost before).
//
//	go test ./sqlite -run '^$' -bench RollupAll -benchtime 1x
func BenchmarkRollupAll(b *testing.B) {
	ctx := context.Background()
	db, tenants := benchDB(b, 100)
	busy, idle := tenants[:50], tenants[50:]
	now := time.Now().UTC()
	from := tally.DayStart(now).AddDate(0, 0, -90)
	n := dataset.EventsFromEnv(b, 100_000)
	began := time.Now()
	load(b, db, dataset.Config{Events: n, Tenants: busy, From: from, To: now})
	b.Logf("stored %d events of %d tenants over 90 days in %v", n, len(busy), time.Since(began).Round(time.Millisecond))
	r := rollup.New(rollup.Config{Now: func() time.Time { return now }}, db, nil)
	yesterday := tally.DayStart(now).Add(-24 * time.Hour)

	res, err := r.RunDays(ctx, 0, from, yesterday, rollup.KindManual, "")
	if err != nil {
		b.Fatal(err)
	}
	full := time.Duration(res.DurationMS) * time.Millisecond
	b.Logf("full rollup: %d tenant-days, %d rows in %v (%.2f ms per tenant-day)", res.Days, res.Rows, full, ms(full)/float64(res.Days))

	start := time.Now()
	days := 0
	for _, t := range idle[:10] {
		res, err := r.RunDays(ctx, t, from, yesterday, rollup.KindManual, "")
		if err != nil {
			b.Fatal(err)
		}
		days += res.Days
	}
	skipped := time.Since(start) / time.Duration(days)
	start = time.Now()
	recomputed := 0
	for _, t := range idle[10:12] {
		for d := from; !d.After(yesterday); d = d.AddDate(0, 0, 1) {
			if _, err := rollup.RecomputeDay(ctx, db, t, d, tally.DefaultUsageRules()); err != nil {
				b.Fatal(err)
			}
			recomputed++
		}
	}
	recompute := time.Since(start) / time.Duration(recomputed)
	b.Logf("idle tenant-day: %v in a run, %v recomputed (%.3fx)", skipped, recompute, float64(skipped)/float64(recompute))
	b.ReportMetric(full.Seconds(), "full-rollup-s")
	b.ReportMetric(float64(skipped)/float64(recompute), "idle-day/recompute")
}

// BenchmarkListOwnExclusion compares, in one run, the default event list
// (which leaves tally's own events out with one more condition) with the
// same query without that condition (the baseline, as before tally's
// events had names of their own), over a realistic log holding none of
// them: the ratio is what the condition costs a page of 100.
//
//	go test ./sqlite -run '^$' -bench ListOwnExclusion -count 5
func BenchmarkListOwnExclusion(b *testing.B) {
	db, ids := benchDB(b, 1)
	load(b, db, dataset.Config{Events: dataset.EventsFromEnv(b, 50_000), Tenants: ids})
	ctx := context.Background()
	page := func(b *testing.B, where string, args []any) {
		rows, err := db.r.QueryContext(ctx, `SELECT `+eventCols+` FROM events`+where+` ORDER BY ts DESC, id DESC LIMIT 101`, args...)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		n := 0
		for rows.Next() {
			var e tally.Event
			if err := scanEvent(rows, &e); err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 101 {
			b.Fatalf("%d rows", n)
		}
	}
	b.Run("baseline", func(b *testing.B) {
		for b.Loop() {
			page(b, ` WHERE tenant_id = ?`, []any{ids[0]})
		}
	})
	b.Run("default", func(b *testing.B) {
		where, args := filterSQL(ids[0], tally.EventFilter{})
		for b.Loop() {
			page(b, where, args)
		}
	})
}
