package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
)

// benchReads measures, on a dataset of tally bench -dataset, the reads of
// the performance issue's P4: it rolls up every day of every tenant (the
// full rollup, its duration reported, then a second run over the same
// days, which finds nothing dirty and gives the cost of an idle run), then
// the 30-day and 7-day KPIs and the 30-day usage of the biggest and the
// smallest tenant, each against the raw 30-day count of the same tenant in
// the same run.
func benchReads(ctx context.Context, path string, d time.Duration, reroll bool, rep *report) error {
	st, tenants, err := openDataset(ctx, path, "-reads")
	if err != nil {
		return err
	}
	defer st.Close()
	big, small := tenants[0], tenants[len(tenants)-1]
	now := time.Now().UTC()
	r := rollup.New(rollup.Config{RunTimeout: time.Hour}, st, nil)
	for _, run := range []struct {
		what string
		run  func() (rollup.Result, error)
	}{
		{"rollup of every dirty hour (a new dataset's whole log)", func() (rollup.Result, error) { return r.RunDirty(ctx) }},
		{"the same again (nothing dirty)", func() (rollup.Result, error) { return r.RunDirty(ctx) }},
		{"forced re-roll of every tenant's 92 days", func() (rollup.Result, error) { return r.RunDays(ctx, 0, now.AddDate(0, 0, -91), now, "", "bench") }},
	} {
		if !reroll && strings.HasPrefix(run.what, "forced") {
			continue
		}
		began := time.Now()
		res, err := run.run()
		if err != nil {
			return err
		}
		took := time.Since(began)
		note := fmt.Sprintf("%s, %d tenants: %d tenant-days, %d rows in %v", run.what, len(tenants), res.Days, res.Rows, took.Round(time.Millisecond))
		if res.Days > 0 {
			note += fmt.Sprintf(" (%.2f ms per tenant-day)", float64(took.Microseconds())/1000/float64(res.Days))
		}
		rep.Notes = append(rep.Notes, note)
	}
	reports := rollup.NewReports(rollup.ReportsConfig{}, st)
	from := tally.DayStart(now).AddDate(0, 0, -30)
	for _, t := range []struct {
		name string
		id   int64
	}{{"biggest", big.ID}, {"smallest", small.ID}} {
		count, err := rawCount(ctx, st, t.id, from, now, d, rep, t.name+": ")
		if err != nil {
			return err
		}
		for _, rng := range []string{"30d", "7d"} {
			kpi := measure(ctx, 1, d, func(context.Context, int, int) error {
				_, err := reports.KPIs(ctx, t.id, rng, time.UTC, time.Now())
				return err
			})
			rep.add(fmt.Sprintf("%s: KPIs %s", t.name, rng), kpi, 0)
			rep.ratio(fmt.Sprintf("%s: KPIs %s p95 / raw count p95", t.name, rng), kpi.pct(0.95), count.pct(0.95))
		}
		use := measure(ctx, 1, d, func(context.Context, int, int) error {
			_, err := reports.Usage(ctx, t.id, nil, from, time.Now(), false, time.UTC)
			return err
		})
		rep.add(t.name+": usage 30d", use, 0)
		rep.ratio(t.name+": usage 30d p95 / raw count p95", use.pct(0.95), count.pct(0.95))
	}
	return nil
}
