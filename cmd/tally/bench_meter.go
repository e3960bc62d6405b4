package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/meter"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/sqlite"
)

// benchMeterSlug is the meter tally bench -meter defines in the dataset.
const benchMeterSlug = "bench_ms_by_plan"

// benchMeter measures, on a dataset of tally bench -dataset, the meter
// query of the performance issue for the biggest tenant: the last 30 days
// by day windows (Europe/Berlin when the zone database has it, else UTC)
// with one group-by (a sum of props.ms over every event, by props.plan),
// first from the raw log, then from the meter's rollups once the rollup
// job rolled up those days (its duration reported), and in +05:30 (one
// hour a day from the raw log). The baseline of the same run is the raw
// count of the same tenant's events over the same 30 days. Each phase runs
// one query after another for d.
func benchMeter(ctx context.Context, path string, d time.Duration, rep *report) error {
	st, tenants, err := openDataset(ctx, path, "-meter")
	if err != nil {
		return err
	}
	defer st.Close()
	big := tenants[0]
	// No query timeout: the raw-log phase of a big tenant runs past the
	// server's 10 s, and the bench wants its figure, not the refusal.
	svc := meter.New(meter.Config{QueryTimeout: time.Hour}, st)
	// A fresh meter, so its first phase reads the raw log (deleting a
	// meter drops its rollups).
	if err := svc.Delete(ctx, big.ID, benchMeterSlug); err != nil && tally.ErrorCodeOf(err) != tally.ENotFound {
		return err
	}
	if _, err := svc.Create(ctx, big.ID, tally.MeterDef{Slug: benchMeterSlug, Event: "*", Aggregation: tally.AggSum,
		ValueProperty: "props.ms", GroupBy: []string{"props.plan"}, Description: "tally bench"}); err != nil {
		return err
	}
	now := time.Now().UTC()
	from, to := tally.DayStart(now).AddDate(0, 0, -30), now
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		loc = time.UTC
	}
	in := tally.MeterQueryInput{From: from, To: to, Window: tally.WindowDay, Loc: loc, GroupBy: []string{"props.plan"}}
	// The phases' operations run under ctx, not the phase's deadline, so a
	// query slower than the phase still completes and counts once.
	query := func(in tally.MeterQueryInput) func(context.Context, int, int) error {
		return func(context.Context, int, int) error {
			_, err := svc.Query(ctx, big.ID, benchMeterSlug, in)
			return err
		}
	}
	count, err := rawCount(ctx, st, big.ID, from, to, d, rep, "")
	if err != nil {
		return err
	}
	raw := measure(ctx, 1, d, query(in))
	rep.add("meter 30d/day/plan, raw log", raw, 0)

	began := time.Now()
	res, err := rollup.New(rollup.Config{RunTimeout: time.Hour}, st, nil).RunDays(ctx, big.ID, from, to, "", "bench")
	if err != nil {
		return err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("rollup of the biggest tenant's %d days (%d rows, with the meter's): %v",
		res.Days, res.Rows, time.Since(began).Round(time.Millisecond)))
	rolled := measure(ctx, 1, d, query(in))
	rep.add("meter 30d/day/plan, rollups", rolled, 0)
	odd := in
	odd.Loc = time.FixedZone("+05:30", 5*3600+1800)
	half := measure(ctx, 1, d, query(odd))
	rep.add("meter 30d/day/plan, rollups, +05:30", half, 0)

	rep.ratio("meter p95, raw log / raw count p95", raw.pct(0.95), count.pct(0.95))
	rep.ratio("meter p95, rollups / raw count p95", rolled.pct(0.95), count.pct(0.95))
	rep.ratio("meter p95, rollups +05:30 / raw count p95", half.pct(0.95), count.pct(0.95))
	rep.ratio("meter p95, rollups / raw log", rolled.pct(0.95), raw.pct(0.95))
	return nil
}

// rawCount measures the baseline of the dataset phases, a raw count of
// the tenant's events in [from, to], one after another for d, and adds
// it to rep as "<prefix>raw 30-day count (N events)".
func rawCount(ctx context.Context, st *sqlite.DB, tenantID int64, from, to time.Time, d time.Duration, rep *report, prefix string) (*phase, error) {
	events, err := st.CountEvents(ctx, tenantID, from, to)
	if err != nil {
		return nil, err
	}
	count := measure(ctx, 1, d, func(context.Context, int, int) error {
		_, err := st.CountEvents(ctx, tenantID, from, to)
		return err
	})
	rep.add(fmt.Sprintf("%sraw 30-day count (%d events)", prefix, events), count, 0)
	return count, nil
}

// openDataset opens a dataset of tally bench -dataset for the phase flag
// and returns its tenants by id: the first is the biggest, the last the
// smallest.
func openDataset(ctx context.Context, path, flag string) (*sqlite.DB, []tally.Tenant, error) {
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL"})
	if err != nil {
		return nil, nil, err
	}
	tenants, err := st.AllTenants(ctx)
	if err == nil && len(tenants) == 0 {
		err = &configError{msg: "bench " + flag + ": the dataset has no tenant; build one with tally bench -dataset"}
	}
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	slices.SortFunc(tenants, func(a, b tally.Tenant) int { return cmp.Compare(a.ID, b.ID) })
	return st, tenants, nil
}

// printNotes prints the notes of a run (durations of its setup steps).
func (r *report) printNotes(w io.Writer) {
	if len(r.Notes) > 0 {
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, n)
	}
}
