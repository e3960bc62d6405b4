package rollup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/sqlite"
)

// BenchmarkKPIs measures the 30-day KPI report of one tenant with 1,000,000
// events over 90 days (TALLY_BENCH_EVENTS overrides the count): first with
// every hour dirty, so everything comes from the raw log (the baseline),
// then after rolling up every day before today; "today" and a zone with a
// half-hour offset as well. The database is built only when this benchmark
// runs, once for all its sub-benchmarks.
func BenchmarkKPIs(b *testing.B) {
	ctx := context.Background()
	n := dataset.EventsFromEnv(b, 1_000_000)
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	u := &tally.User{Email: "owner@example.com"}
	if err := db.CreateUser(ctx, u, "hash"); err != nil {
		b.Fatal(err)
	}
	tn := &tally.Tenant{Slug: "bench", Name: "Bench"}
	if err := db.CreateTenant(ctx, tn, u.ID); err != nil {
		b.Fatal(err)
	}

	now := time.Now().UTC()
	start := now.Add(-90 * 24 * time.Hour)
	names := []string{
		tally.EventAPIRequest, tally.EventAPIRequest, tally.EventAPIRequest, tally.EventAPIRequest,
		tally.EventLogin, "files.uploaded", "builder.generate.completed", "page.view", "page.view",
		tally.EventRegister, "business.order.completed", tally.EventUsageIncrement,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	began := time.Now()
	batch := make([]tally.Event, 0, 5000)
	step := 90 * 24 * time.Hour / time.Duration(n)
	for i := range n {
		at := start.Add(time.Duration(i) * step)
		e := tally.Event{
			TenantID:   tn.ID,
			EventID:    "b" + strconv.Itoa(i),
			Name:       names[rng.IntN(len(names))],
			UserID:     "user" + strconv.Itoa(rng.IntN(20000)),
			Source:     "api",
			Timestamp:  at,
			ReceivedAt: at,
			Value:      1,
			Props:      json.RawMessage(`{}`),
		}
		if e.Name == tally.EventUsageIncrement {
			e.Props, e.Value = json.RawMessage(`{"metric":"seats_daily"}`), float64(rng.IntN(5)+1)
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.InsertEvents(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("inserted %d events in %v", n, time.Since(began).Round(time.Millisecond))

	r := rollup.New(rollup.Config{Now: func() time.Time { return now }}, db, nil)
	q := rollup.NewReports(rollup.ReportsConfig{}, db)
	kolkata, err := time.LoadLocation("Asia/Kolkata") // a half-hour offset
	if err != nil {
		b.Fatal(err)
	}
	bench := func(rng string, loc *time.Location) func(b *testing.B) {
		return func(b *testing.B) {
			for b.Loop() {
				if _, err := q.KPIs(ctx, tn.ID, rng, loc, now); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	raw, err := q.KPIs(ctx, tn.ID, "30d", time.UTC, now)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("raw/30d", bench("30d", time.UTC))
	b.Run("raw/today", bench("today", time.UTC))

	yesterday := tally.DayStart(now).Add(-24 * time.Hour)
	res, err := r.RunDays(ctx, tn.ID, start, yesterday, rollup.KindManual, "")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("RunDays over %d days: %d rows in %s", res.Days, res.Rows, fmt.Sprint(time.Duration(res.DurationMS)*time.Millisecond))
	rolled, err := q.KPIs(ctx, tn.ID, "30d", time.UTC, now)
	if err != nil {
		b.Fatal(err)
	}
	if !reflect.DeepEqual(raw, rolled) {
		b.Fatalf("KPIs differ after the rollup:\n%+v\n%+v", raw.KPIs, rolled.KPIs)
	}
	b.Logf("30d KPIs: %s", kpiString(rolled.KPIs))
	b.Run("rollups/30d", bench("30d", time.UTC))
	b.Run("rollups/30d-kolkata", bench("30d", kolkata))
	b.Run("rollups/today", bench("today", time.UTC))
}
