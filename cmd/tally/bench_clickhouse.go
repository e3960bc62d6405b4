package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/clickhouse"
	"github.com/tallyhq/tally/insight"
	"github.com/tallyhq/tally/meter"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/sqlite"
)

// benchClickHouse is `tally bench -clickhouse EVENTS_URL -postgres URL`:
// the ClickHouse tier's store measured in one run against the SQLite
// tier's on this machine. It makes a scratch PostgreSQL schema and
// ClickHouse database (dropped at the end), and reports batch ingest
// (1000 events per InsertEvents, as the group-commit writer sends them,
// and 5000, the most the writer sends on this tier) empty and with
// prefill events stored, bytes per event on disk (and per column), and
// the p50/p95 of the biggest tenant's 30-day KPI aggregate and a meter.
// With inSQL the prefill is made inside the stores (prefillInSQL) rather
// than through InsertEvents; timeout is the store's statement timeout
// (zero: its default), which a raw 30-day read of 100 M events outlasts.
func benchClickHouse(ctx context.Context, eventsURL, pgURL string, prefill int, inSQL bool, timeout, d time.Duration, propsBytes int, stdout io.Writer) error {
	b := make([]byte, 6)
	rand.Read(b)
	name := "tally_bench_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, pgURL)
	if err != nil {
		return fmt.Errorf("bench -postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), "DROP SCHEMA "+name+" CASCADE")
	pu, err := url.Parse(pgURL)
	if err != nil {
		return fmt.Errorf("bench -postgres: %w", err)
	}
	q := pu.Query()
	q.Set("search_path", name)
	pu.RawQuery = q.Encode()
	db, err := postgres.Open(ctx, pu.String(), postgres.Options{})
	if err != nil {
		return err
	}
	cu, err := url.Parse(eventsURL)
	if err != nil {
		db.Close()
		return fmt.Errorf("bench -clickhouse: %w", err)
	}
	cu.Path = "/" + name
	ch, err := clickhouse.Open(ctx, cu.String(), db, clickhouse.Options{StatementTimeout: timeout})
	if err != nil {
		db.Close()
		return err
	}
	defer func() {
		ch.DropDatabase(context.WithoutCancel(ctx))
		ch.Close()
	}()
	// The prefill and the reads are of ten tenants, the ingest phases of
	// ten others: the reads then see the prefill's traffic in the hours
	// they read from the raw log (today's), not the ingest phases' bursts
	// (~100 000 events in a few seconds).
	all, err := benchTenants(ctx, ch, 20)
	if err != nil {
		return err
	}
	tenants, ingestTenants := all[:10], all[10:]

	dir, err := os.MkdirTemp("", "tally-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	liteStore, err := sqlite.Open(ctx, filepath.Join(dir, "tally.db"), sqlite.Options{})
	if err != nil {
		return err
	}
	defer liteStore.Close()
	liteTenants, err := benchTenants(ctx, liteStore, 10)
	if err != nil {
		return err
	}

	gen := func(seed uint64) *dataset.Generator {
		return dataset.New(dataset.Config{Events: 1 << 62, PropsBytes: propsBytes, Seed: seed})
	}
	fmt.Fprintf(stdout, "%-48s %12s %9s %9s\n", "phase (in 5 interleaved slices)", "events/s", "p50 ms", "p99 ms")
	row := func(name string, l dataset.Latency) {
		fmt.Fprintf(stdout, "%-48s %12.0f %9.2f %9.2f\n", name, l.PerSecond(), ms(l.P50), ms(l.P99))
	}
	// measure runs phases of batch ingest into the SQLite tier's store
	// (lite) or the ClickHouse tier's in benchSlices rounds of
	// d/benchSlices each, one phase after the other in every round, so
	// that the load of whatever else runs on the machine falls on every
	// phase alike and their ratios hold; then prints their rows.
	type phase struct {
		name           string
		lite           bool
		seed           uint64
		writers, batch int
	}
	measure := func(phases ...phase) ([]dataset.Latency, error) {
		gens := make([]*dataset.Generator, len(phases))
		parts := make([][]dataset.Latency, len(phases))
		for i, p := range phases {
			gens[i] = gen(p.seed)
		}
		for range benchSlices {
			for i, p := range phases {
				var s dataset.Inserter = ch
				ts, tier := ingestTenants, "clickhouse"
				if p.lite {
					s, ts, tier = liteStore, liteTenants, "sqlite"
				}
				l, err := dataset.Ingest(ctx, s, gens[i], ts, p.writers, p.batch, d/benchSlices, nil)
				if err != nil {
					return nil, fmt.Errorf("%s phase: %w", tier, err)
				}
				parts[i] = append(parts[i], l)
			}
		}
		got := make([]dataset.Latency, len(phases))
		for i, p := range phases {
			got[i] = dataset.Combine(parts[i]...)
			row(p.name, got[i])
		}
		return got, nil
	}
	// The ClickHouse tier's writer takes up to 5000 events per write
	// (internal/app): both tiers at that size too.
	got, err := measure(
		phase{"SQLite tier, one writer", true, 1, 1, 1000},
		phase{"ClickHouse tier, one writer, empty", false, 2, 1, 1000},
		phase{"SQLite tier, one writer, 5000 per insert", true, 6, 1, 5000},
		phase{"ClickHouse tier, one writer, 5000 per insert", false, 7, 1, 5000},
		phase{"ClickHouse tier, 4 writers (instances)", false, 3, 4, 1000},
	)
	if err != nil {
		return err
	}
	sq, empty, sq5, empty5, four := got[0], got[1], got[2], got[3], got[4]

	// Prefill: prefill events over the last 30 days, Zipf-like tenants.
	now := time.Now().UTC()
	if inSQL {
		if err := prefillInSQL(ctx, ch, pu.String(), tenants, prefill, now, propsBytes, stdout); err != nil {
			return err
		}
	} else {
		g := dataset.New(dataset.Config{Events: prefill, Tenants: tenants, From: now.AddDate(0, 0, -30), To: now, PropsBytes: propsBytes, Seed: 4})
		began := time.Now()
		batch := make([]tally.Event, 0, 10000)
		for {
			if batch = g.Next(batch); len(batch) == 0 {
				break
			}
			if _, err := ch.InsertEvents(ctx, batch); err != nil {
				return fmt.Errorf("prefill: %w", err)
			}
		}
		fmt.Fprintf(stdout, "%-48s %12.0f\n", fmt.Sprintf("prefill %d events (10000 per insert)", prefill), float64(prefill)/time.Since(began).Seconds())
	}
	got, err = measure(phase{"ClickHouse tier, one writer, prefilled", false, 5, 1, 1000})
	if err != nil {
		return err
	}
	full := got[0]

	merged := "merged"
	if inSQL {
		// OPTIMIZE … FINAL of 100 M events would take the machine for
		// longer than the run: the parts as the background merges left
		// them, which the reads below also see.
		merged = "as merged in the background"
	} else if err := ch.Optimize(ctx); err != nil {
		return err
	}
	rows, bytes, err := ch.DiskUsage(ctx)
	if err != nil {
		return err
	}
	cols, colBytes, err := ch.ColumnUsage(ctx)
	if err != nil {
		return err
	}

	// Reads of the biggest tenant (tenants[0]) over 30 days.
	from := now.AddDate(0, 0, -30)
	kpi, kpiErr := timeIt(ctx, 20, func() error {
		_, err := ch.AggregateEvents(ctx, tenants[0], from, now, time.Hour)
		return err
	})
	bounds := make([]time.Time, 31)
	for i := range bounds {
		bounds[i] = from.Truncate(24*time.Hour).AddDate(0, 0, i)
	}
	// The meter of issue 12 (the sum of props.ms over every event, by
	// props.plan, 30 days by day), defined for the biggest tenant before
	// the rollup below, so that it rolls up with the KPIs; first timed
	// from the raw log, the baseline of its figure from rollups.
	meters := meter.New(meter.Config{QueryTimeout: time.Hour}, ch)
	def, meterErr := meters.Create(ctx, tenants[0], tally.MeterDef{Slug: benchMeterSlug, Event: "*", Aggregation: tally.AggSum,
		ValueProperty: "props.ms", GroupBy: []string{"props.plan"}, Description: "tally bench"})
	var meterT [2]time.Duration
	if meterErr == nil {
		meterQ := tally.MeterQuery{Meter: *def, Bounds: bounds, GroupBy: def.GroupBy}
		meterT, meterErr = timeIt(ctx, 5, func() error {
			return ch.QueryMeter(ctx, tenants[0], meterQ, func(tally.MeterRow) error { return nil })
		})
	}
	// A 4-step funnel of the dataset's events, a day's window, through the
	// same insight service the API answers with.
	funnel := tally.FunnelQuery{Steps: []tally.FunnelStep{{Event: "page.view"}, {Event: "files.uploaded"},
		{Event: "builder.generate.completed"}, {Event: "business.order.completed"}}, WindowSeconds: 86400, From: from, To: now}
	insights := insight.New(insight.Config{Timeout: time.Minute}, ch)
	// Each run of it alternates with one of the same funnel computed from
	// exported events, the path before the ClickHouse store scanned
	// insights itself: the baseline of the ratio.
	exported := insight.New(insight.Config{Timeout: time.Minute, Export: true}, ch)
	var funnelScanned int64
	funnels, funnelErrs := timeInterleaved(ctx, 5, func() error {
		res, err := insights.Funnel(ctx, tenants[0], funnel)
		if err == nil {
			funnelScanned = res.Scanned
		}
		return err
	}, func() error {
		_, err := exported.Funnel(ctx, tenants[0], funnel)
		return err
	})
	funnelT, funnelExportT, funnelErr, exportErr := funnels[0], funnels[1], funnelErrs[0], funnelErrs[1]
	// The KPIs as the API answers them: from the rollups (kept in
	// PostgreSQL), after a rollup of every hour the prefill dirtied,
	// timed; before the deletion below, which dirties hours again.
	rollBegan := time.Now()
	rolled, reportErr := rollup.New(rollup.Config{RunTimeout: 2 * time.Hour}, ch, nil).RunDirty(ctx)
	rollTook := time.Since(rollBegan)
	var reportT [2]time.Duration
	if reportErr == nil {
		reports := rollup.NewReports(rollup.ReportsConfig{}, ch)
		reportT, reportErr = timeIt(ctx, 20, func() error {
			_, err := reports.KPIs(ctx, tenants[0], "30d", time.UTC, time.Now())
			return err
		})
	}
	var serviceT [2]time.Duration
	serviceErr := reportErr
	if serviceErr == nil && meterErr == nil {
		in := tally.MeterQueryInput{From: bounds[0], To: time.Now(), Window: tally.WindowDay, Loc: time.UTC, GroupBy: def.GroupBy}
		serviceT, serviceErr = timeIt(ctx, 20, func() error {
			_, err := meters.Query(ctx, tenants[0], def.Slug, in)
			return err
		})
	}
	// A privacy deletion: one end user of the biggest tenant (a mutation
	// that rewrites the parts holding the tenant's rows).
	var user string
	if evs, _, err := ch.ListEvents(ctx, tenants[0], tally.EventFilter{Limit: 1}); err == nil && len(evs) == 1 {
		user = evs[0].UserID
	}
	delBegan := time.Now()
	deleted, delErr := ch.DeleteUserEvents(ctx, tenants[0], user)
	delTook := time.Since(delBegan)
	n, _ := ch.CountEvents(ctx, tenants[0], from, now)
	thisHour, _ := ch.CountEvents(ctx, tenants[0], time.Now().UTC().Truncate(time.Hour), time.Now())
	fmt.Fprintln(stdout)
	fmt.Fprintf(stdout, "%-50s %9.1f\n", "bytes per event on disk (system.parts, "+merged+")", float64(bytes)/float64(max(rows, 1)))
	fmt.Fprintf(stdout, "%-50s %9d\n", "events stored", rows)
	for i, c := range cols {
		fmt.Fprintf(stdout, "  %-48s %9.2f\n", "column "+c+" (compressed bytes per event)", float64(colBytes[i])/float64(max(rows, 1)))
	}
	var keyBytes int64
	if err := conn.QueryRow(ctx, "SELECT pg_total_relation_size('"+name+".event_keys')").Scan(&keyBytes); err == nil {
		fmt.Fprintf(stdout, "%-50s %9.0f\n", "PostgreSQL key table bytes per event", float64(keyBytes)/float64(max(rows, 1)))
	}
	failed := func(name string, err error) bool {
		if err != nil {
			fmt.Fprintf(stdout, "%-50s failed: %v\n", name, err)
		}
		return err != nil
	}
	if name := "30-day hourly aggregate (KPIs), biggest tenant"; !failed(name, kpiErr) {
		fmt.Fprintf(stdout, "%-50s p50 %7.1f ms  p95 %7.1f ms  (%d events)\n", name, ms(kpi[0]), ms(kpi[1]), n)
	}
	if name := "rollup of the prefill (every dirty hour)"; !failed(name, reportErr) {
		fmt.Fprintf(stdout, "%-50s %7.1f s  (%d tenant-days, %d rows)\n", name, rollTook.Seconds(), rolled.Days, rolled.Rows)
		fmt.Fprintf(stdout, "%-50s p50 %7.1f ms  p95 %7.1f ms  (%d events in the hour read raw)\n", "30-day KPIs from rollups (the API's), biggest", ms(reportT[0]), ms(reportT[1]), thisHour)
	}
	if name := "30-day daily meter (sum by plan), raw, biggest"; !failed(name, meterErr) {
		fmt.Fprintf(stdout, "%-50s p50 %7.1f ms  p95 %7.1f ms\n", name, ms(meterT[0]), ms(meterT[1]))
	}
	if name := "the same meter from rollups (the API's)"; !failed(name, serviceErr) {
		fmt.Fprintf(stdout, "%-50s p50 %7.1f ms  p95 %7.1f ms\n", name, ms(serviceT[0]), ms(serviceT[1]))
	}
	if name := "30-day 4-step funnel, biggest tenant"; !failed(name, funnelErr) {
		fmt.Fprintf(stdout, "%-50s p50 %7.1f ms  p95 %7.1f ms  (%d step events)\n", name, ms(funnelT[0]), ms(funnelT[1]), funnelScanned)
	}
	if name := "  the same from exported events (baseline)"; !failed(name, exportErr) {
		fmt.Fprintf(stdout, "%-50s p50 %7.1f ms  p95 %7.1f ms\n", name, ms(funnelExportT[0]), ms(funnelExportT[1]))
	}
	if name := "privacy deletion (ALTER … DELETE, waited for)"; !failed(name, delErr) {
		fmt.Fprintf(stdout, "%-50s %7.1f ms  (%d events of one user)\n", name, ms(delTook), deleted)
	}
	fmt.Fprintln(stdout)
	ratio := func(name string, a, b dataset.Latency) {
		fmt.Fprintf(stdout, "%-50s %7.2f  (%.0f / %.0f events/s)\n", name, a.PerSecond()/b.PerSecond(), a.PerSecond(), b.PerSecond())
	}
	ratio("ClickHouse / SQLite batch ingest (target ≥ 3)", empty, sq)
	ratio("the same, 5000 per insert", empty5, sq5)
	fmt.Fprintf(stdout, "%-50s %7.2f\n", "ClickHouse batch ingest / 100 000 events/s", max(empty.PerSecond(), empty5.PerSecond())/100_000)
	ratio("ClickHouse 4 writers / SQLite batch ingest", four, sq)
	ratio("ClickHouse prefilled / empty ingest (target ≥ 0.9)", full, empty)
	if reportErr == nil && kpiErr == nil {
		fmt.Fprintf(stdout, "%-50s %7.2f  (p95 %.1f / %.1f ms)\n", "KPIs from rollups / raw hourly aggregate, p95", float64(reportT[1])/float64(max(kpi[1], 1)), ms(reportT[1]), ms(kpi[1]))
	}
	if serviceErr == nil && meterErr == nil {
		fmt.Fprintf(stdout, "%-50s %7.2f  (p95 %.1f / %.1f ms)\n", "meter from rollups / raw, p95", float64(serviceT[1])/float64(max(meterT[1], 1)), ms(serviceT[1]), ms(meterT[1]))
	}
	fmt.Fprintf(stdout, "%-50s %7.2f  (p95 %.1f / %.1f ms)\n", "funnel scanned in ClickHouse / exported, p95", float64(funnelT[1])/float64(max(funnelExportT[1], 1)), ms(funnelT[1]), ms(funnelExportT[1]))
	return nil
}

// benchSlices is how many slices benchClickHouse cuts each ingest phase
// into, interleaved with the other phases measured alongside.
const benchSlices = 5

// timeIt runs op n times and returns its p50 and p95, or op's first
// error.
func timeIt(ctx context.Context, n int, op func() error) ([2]time.Duration, error) {
	t, errs := timeInterleaved(ctx, n, op)
	return t[0], errs[0]
}

// timeInterleaved is timeIt of each of ops, run in turn n times, so that
// the load of whatever else runs on the machine falls on each alike; an
// op that fails is not run again and gives its first error.
func timeInterleaved(ctx context.Context, n int, ops ...func() error) ([][2]time.Duration, []error) {
	lat := make([][]time.Duration, len(ops))
	out := make([][2]time.Duration, len(ops))
	errs := make([]error, len(ops))
	for range n {
		for i, op := range ops {
			if err := ctx.Err(); err != nil && errs[i] == nil {
				errs[i] = err
			}
			if errs[i] != nil {
				continue
			}
			t := time.Now()
			if err := op(); err != nil {
				errs[i] = err
				continue
			}
			lat[i] = append(lat[i], time.Since(t))
		}
	}
	for i, l := range lat {
		if errs[i] != nil || len(l) == 0 {
			continue
		}
		slices.Sort(l)
		out[i] = [2]time.Duration{l[len(l)/2], l[int(0.95*float64(len(l)-1))]}
	}
	return out, errs
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
