package meter_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/meter"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/sqlite"
)

// BenchmarkMeterQuery measures a 30-day meter query by day windows (in
// Europe/Berlin) with one group-by (props.plan, 3 values), a sum of a
// props number, over one tenant's 50,000 events (TALLY_BENCH_EVENTS
// overrides), against the raw count of the same range's events in the same
// run (the baseline), on SQLite and on PostgreSQL (when it answers). It
// reports the p50 and p95 of each and logs their ratio (go test -v).
func BenchmarkMeterQuery(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Synchronous: "NORMAL"})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchMeterQuery(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		db, err := postgres.Open(context.Background(), pgtest.FreshSchema(b), postgres.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		benchMeterQuery(b, db)
	})
}

func benchMeterQuery(b *testing.B, db tally.Store) {
	ctx := context.Background()
	n := dataset.EventsFromEnv(b, 50_000)
	u := &tally.User{Email: "owner@example.com"}
	if err := db.CreateUser(ctx, u, "hash"); err != nil {
		b.Fatal(err)
	}
	tn := &tally.Tenant{Slug: "bench", Name: "Bench"}
	if err := db.CreateTenant(ctx, tn, u.ID); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Hour)
	start := now.Add(-30 * 24 * time.Hour)
	names := []string{"llm.call", "llm.call", "api.request", "page.view"}
	plans := []string{"free", "pro", "team"}
	rng := rand.New(rand.NewPCG(1, 2))
	batch := make([]tally.Event, 0, 5000)
	step := 30 * 24 * time.Hour / time.Duration(n)
	began := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * step)
		props := fmt.Sprintf(`{"plan":%q,"usage":{"input":%d}}`, plans[rng.IntN(len(plans))], rng.IntN(1000))
		batch = append(batch, tally.Event{TenantID: tn.ID, EventID: "b" + strconv.Itoa(i), Name: names[rng.IntN(len(names))],
			UserID: "user" + strconv.Itoa(rng.IntN(5000)), Source: "api", Timestamp: at, ReceivedAt: at, Value: 1,
			Props: json.RawMessage(props)})
		if len(batch) == cap(batch) || i == n-1 {
			if _, err := db.InsertEvents(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("seeded %d events in %v", n, time.Since(began).Round(time.Millisecond))

	svc := meter.New(meter.Config{}, db)
	if _, err := svc.Create(ctx, tn.ID, tally.MeterDef{Slug: "llm_input", Event: "llm.*", Aggregation: tally.AggSum,
		ValueProperty: "props.usage.input", GroupBy: []string{"props.plan"}}); err != nil {
		b.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Skip("no tzdata: ", err)
	}
	in := tally.MeterQueryInput{From: start, To: now, Window: tally.WindowDay, Loc: berlin, GroupBy: []string{"props.plan"}}
	var p95 = map[string]time.Duration{}
	run := func(name string, fn func() error) {
		b.Run(name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := fn(); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(t0))
			}
			slices.Sort(ds)
			p50, p := ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*95/100)]
			p95[name] = p
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p.Microseconds())/1000, "p95-ms")
		})
	}
	run("baseline_raw_count", func() error {
		_, err := db.CountEvents(ctx, tn.ID, start, now)
		return err
	})
	run("meter_sum_30d_day_by_plan", func() error {
		res, err := svc.Query(ctx, tn.ID, "llm_input", in)
		if err == nil && len(res.Data) < 3*30 {
			err = fmt.Errorf("%d points", len(res.Data))
		}
		return err
	})
	began = time.Now()
	res, err := rollup.New(rollup.Config{}, db, nil).RunDays(ctx, tn.ID, start, now, "", "")
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("rollup of %d days (with the meter's) in %v", res.Days, time.Since(began).Round(time.Millisecond))
	run("meter_rollups_30d_day_by_plan", func() error {
		res, err := svc.Query(ctx, tn.ID, "llm_input", in)
		if err == nil && len(res.Data) < 3*30 {
			err = fmt.Errorf("%d points", len(res.Data))
		}
		return err
	})
	kolkata := in
	kolkata.Loc = time.FixedZone("+05:30", 5*3600+1800)
	run("meter_rollups_30d_day_by_plan_+0530", func() error {
		_, err := svc.Query(ctx, tn.ID, "llm_input", kolkata)
		return err
	})
	if base := p95["baseline_raw_count"]; base > 0 {
		for _, name := range []string{"meter_sum_30d_day_by_plan", "meter_rollups_30d_day_by_plan", "meter_rollups_30d_day_by_plan_+0530"} {
			b.Logf("%d events: %s p95 %v = %.2f × the raw count's p95 %v", n, name, p95[name], float64(p95[name])/float64(base), base)
		}
	}
}
