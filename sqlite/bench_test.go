package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/rollup"
)

// benchDB opens a fresh database with n tenants and returns their ids.
func benchDB(b *testing.B, n int) (*DB, []int64) { return benchDBWith(b, n, Options{}) }

// benchDBWith is benchDB with options.
func benchDBWith(b *testing.B, n int, opt Options) (*DB, []int64) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), opt)
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
//	go test ./sqlite -run '^$' -bench 'InsertEvents$' -benchtime 20x -count 3
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

// BenchmarkInsertEventsGrown measures, for each page cache of the writer
// (and one with mmap), batch ingest into a copy of a grown dataset
// (TALLY_BENCH_DATASET, a file of tally bench -dataset) and into an
// empty file, in one run: the same realistic batches of 1000 events
// (random UUID ids, durable commits), in slices that alternate between
// every variant so that the machine's noise hits all alike. It prints
// events/s of each and the grown/empty ratio per setting (P1-growth).
// Each variant copies the dataset into a temporary directory.
//
//	TALLY_BENCH_DATASET=/tmp/ds.db go test ./sqlite -run '^$' -bench InsertEventsGrown -benchtime 1x -v
func BenchmarkInsertEventsGrown(b *testing.B) {
	src := os.Getenv("TALLY_BENCH_DATASET")
	if src == "" {
		const msg = "SKIPPED BenchmarkInsertEventsGrown: set TALLY_BENCH_DATASET to a file of `tally bench -dataset` to measure ingest into a grown file"
		fmt.Fprintln(os.Stderr, msg)
		b.Skip(msg)
	}
	const (
		rounds = 6 // after one of warm-up
		slice  = 8 // batches of 1000 per variant and round
	)
	ctx := context.Background()
	type target struct {
		db      *DB
		gen     *dataset.Generator
		events  int
		elapsed time.Duration
	}
	type setting struct {
		name        string
		cache, mmap int64
		grown, empt target
	}
	settings := []*setting{
		{name: "2MB (SQLite's default)", cache: 2000 << 10},
		{name: "8MB", cache: 8 << 20},
		{name: "16MB", cache: 16 << 20},
		{name: "32MB", cache: 32 << 20},
		{name: "64MB", cache: 64 << 20},
		{name: "16MB + mmap 1GB", cache: 16 << 20, mmap: 1 << 30},
	}
	now := time.Now().UTC()
	newGen := func(tenants []int64) *dataset.Generator {
		// The same seed for every variant: the same events, new ones
		// (timestamps of the last hour, as live traffic has).
		return dataset.New(dataset.Config{Events: 1 << 30, Tenants: tenants, From: now.Add(-time.Hour), To: now, Seed: 7})
	}
	mmap := func(db *DB, s *setting) {
		if s.mmap > 0 {
			if _, err := db.w.ExecContext(ctx, fmt.Sprintf("PRAGMA mmap_size = %d", s.mmap)); err != nil {
				b.Fatal(err)
			}
		}
	}
	fi, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}
	for _, s := range settings {
		dir := b.TempDir()
		dst := filepath.Join(dir, "grown.db")
		for _, suffix := range []string{"", "-wal"} {
			if err := copyFile(src+suffix, dst+suffix); err != nil && !(suffix != "" && errors.Is(err, os.ErrNotExist)) {
				b.Fatal(err)
			}
		}
		if s.grown.db, err = Open(ctx, dst, Options{CacheSize: s.cache}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.grown.db.Close() })
		mmap(s.grown.db, s)
		tenants, err := tenantIDs(ctx, s.grown.db)
		if err != nil {
			b.Fatal(err)
		}
		s.grown.gen = newGen(tenants)
		var empty []int64
		s.empt.db, empty = benchDBWith(b, len(tenants), Options{CacheSize: s.cache})
		mmap(s.empt.db, s)
		s.empt.gen = newGen(empty)
	}
	var n int64
	if err := settings[0].grown.db.r.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	b.Logf("dataset %s: %d bytes, %d events; rounds of %d batches of 1000 per variant", src, fi.Size(), n, slice)
	batch := make([]tally.Event, 0, 1000)
	run := func(t *target, measure bool) {
		for range slice {
			batch = t.gen.Next(batch)
			start := time.Now()
			if _, err := t.db.InsertEvents(ctx, batch); err != nil {
				b.Fatal(err)
			}
			if measure {
				t.elapsed += time.Since(start)
				t.events += len(batch)
			}
		}
	}
	b.ResetTimer()
	for r := range rounds + 1 {
		for _, s := range settings {
			run(&s.grown, r > 0)
			run(&s.empt, r > 0)
		}
	}
	b.StopTimer()
	rate := func(t *target) float64 { return float64(t.events) / t.elapsed.Seconds() }
	base := rate(&settings[0].grown)
	for _, s := range settings {
		g, e := rate(&s.grown), rate(&s.empt)
		b.Logf("%-24s grown %7.0f events/s, empty %7.0f events/s, grown/empty %.2f; grown vs 2MB grown %.2fx",
			s.name, g, e, g/e, g/base)
	}
	// What one more batch writes: the pages it dirties, as WAL frames
	// (untimed, the automatic checkpoint off for it).
	for _, s := range settings {
		var pages [2]int64
		for i, t := range []*target{&s.grown, &s.empt} {
			var err error
			if pages[i], err = walFrames(ctx, t.db, t.gen.Next(batch)); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("%-24s one more batch of 1000 wrote %d pages to the WAL of the grown file, %d to the empty one's", s.name, pages[0], pages[1])
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	// SQLite's caches are not in the Go heap: the driver allocates them
	// from memory mapped outside it, which the resident set counts.
	status, _ := os.ReadFile("/proc/self/status")
	var peak string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			peak = strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	b.Logf("with all %d variants open: peak RSS %s, Go heap in use %d MB", 2*len(settings), peak, ms.HeapInuse>>20)
}

// walFrames inserts batch with the automatic checkpoint off and returns
// how many WAL frames (pages) its transaction wrote.
func walFrames(ctx context.Context, db *DB, batch []tally.Event) (int64, error) {
	frames := func() (int64, error) {
		var busy, log, done int64
		err := db.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done)
		return log, err
	}
	if _, err := db.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return 0, err
	}
	if _, err := db.w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		return 0, err
	}
	defer db.w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 1000`)
	before, err := frames()
	if err != nil {
		return 0, err
	}
	if _, err := db.InsertEvents(ctx, batch); err != nil {
		return 0, err
	}
	after, err := frames()
	return after - before, err
}

// tenantIDs returns the ids of every tenant of db.
func tenantIDs(ctx context.Context, db *DB) ([]int64, error) {
	ts, err := db.AllTenants(ctx)
	ids := make([]int64, len(ts))
	for i, t := range ts {
		ids[i] = t.ID
	}
	return ids, err
}

// copyFile copies the file at src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
