package rollup

import (
	"context"
	"slices"
	"time"

	"github.com/tallyhq/tally"
)

// Meter rollups. RecomputeDay writes, with a day's other rollups and in
// the same transaction, each custom meter's hourly partials of that day
// (tally.MeterPartial by the meter's whole group_by), so the dirty marks
// that tell which hours' rollups are exact hold for meters too. A meter
// defined or changed after its events has no rollups for their days until
// BackfillMeters, run after every hourly rollup, writes them; until then
// its queries read the raw log.

// backfillChunk is the most days of one meter BackfillMeters rolls up in
// one InRollupTx, so each transaction stays short.
const backfillChunk = 31

// maxBackfillDays bounds the meter-days of one BackfillMeters run; the
// next run goes on.
const maxBackfillDays = 5000

// rollMeterDays rolls up meter m for the UTC days given (ascending) within
// tx: one read of the meter's events in those days' hours, then one
// WriteMeterDay per day. It returns the rows written.
func rollMeterDays(ctx context.Context, tx tally.RollupTx, m *tally.MeterDef, days []time.Time) (int, error) {
	if len(days) == 0 {
		return 0, nil
	}
	first := days[0]
	nHours := int(days[len(days)-1].Sub(first)/time.Hour) + 24
	bounds := make([]time.Time, nHours+1)
	for i := range bounds {
		bounds[i] = first.Add(time.Duration(i) * time.Hour)
	}
	skip := make([]bool, nHours)
	for i := range skip {
		skip[i] = true
	}
	for _, d := range days {
		h := int(d.Sub(first) / time.Hour)
		for i := h; i < h+24; i++ {
			skip[i] = false
		}
	}
	type key struct {
		hour  int
		group string
	}
	parts := map[key]*tally.MeterHourRow{}
	q := tally.MeterQuery{Meter: *m, Bounds: bounds, GroupBy: m.GroupBy, Skip: skip}
	err := tx.MeterEvents(ctx, q, func(e tally.MeterEvent) error {
		k := key{e.Window, tally.MeterGroupKey(e.Group)}
		r := parts[k]
		if r == nil {
			r = &tally.MeterHourRow{Hour: bounds[e.Window], Group: tally.CloneMeterGroup(e.Group)}
			parts[k] = r
		}
		r.Partial.Add(e)
		return nil
	})
	if err != nil {
		return 0, err
	}
	byDay := map[time.Time][]tally.MeterHourRow{}
	for _, r := range parts {
		d := tally.DayStart(r.Hour)
		byDay[d] = append(byDay[d], *r)
	}
	n := 0
	for _, d := range days {
		rows := byDay[d]
		slices.SortFunc(rows, func(a, b tally.MeterHourRow) int { return a.Hour.Compare(b.Hour) })
		if err := tx.WriteMeterDay(ctx, m, d, rows); err != nil {
			return 0, err
		}
		n += len(rows) + 1
	}
	return n, nil
}

// rollMetersDay rolls up every custom meter of the tenant of tx for the
// UTC day starting at day (RecomputeDay's part).
func rollMetersDay(ctx context.Context, tx tally.RollupTx, day time.Time) (int, error) {
	meters, err := tx.Meters(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range meters {
		k, err := rollMeterDays(ctx, tx, &meters[i], []time.Time{day})
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

// BackfillMeters rolls up, for every tenant's custom meters, the UTC days
// from the tenant's oldest retained event to today that have no rollup
// under the meter's current definition: the days of a meter defined (or
// changed) after its events, and days no rollup ran for. Days with dirty
// hours are rolled up too; their marks stay for RecomputeDay. It returns
// the meter-days rolled up; at most 5000 per run, the next run goes on.
func (r *Rollup) BackfillMeters(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RunTimeout)
	defer cancel()
	tenants, err := r.store.AllTenants(ctx)
	if err != nil {
		return 0, err
	}
	now := r.cfg.Now()
	end := tally.DayStart(now).Add(24 * time.Hour)
	done := 0
	for _, t := range tenants {
		meters, err := r.store.Meters(ctx, t.ID)
		if err != nil {
			return done, err
		}
		if len(meters) == 0 {
			continue
		}
		start, ok, err := r.oldestEventDay(ctx, t.ID, t.RetentionStart(now))
		if err != nil || !ok {
			if err != nil {
				return done, err
			}
			continue
		}
		for i := range meters {
			m := &meters[i]
			covered, err := r.store.MeterRollupDays(ctx, t.ID, m, start, end)
			if err != nil {
				return done, err
			}
			var todo []time.Time
			for d := start; d.Before(end); d = d.Add(24 * time.Hour) {
				if !slices.ContainsFunc(covered, d.Equal) {
					todo = append(todo, d)
				}
			}
			for len(todo) > 0 {
				if done >= maxBackfillDays {
					return done, nil
				}
				chunk := todo[:min(len(todo), backfillChunk)]
				todo = todo[len(chunk):]
				err := r.store.InRollupTx(ctx, t.ID, func(tx tally.RollupTx) error {
					_, err := rollMeterDays(ctx, tx, m, chunk)
					return err
				})
				if err != nil {
					r.cfg.Logger.Error("rollup: meter backfill failed", "tenant", t.ID, "meter", m.Slug, "err", err)
					return done, err
				}
				done += len(chunk)
			}
		}
	}
	return done, nil
}

// oldestEventDay is the UTC day of the tenant's oldest event at or after
// from; ok is false when it has none.
func (r *Rollup) oldestEventDay(ctx context.Context, tenantID int64, from time.Time) (time.Time, bool, error) {
	at, found, err := r.oldestEvent(ctx, tenantID, from)
	return tally.DayStart(at), found, err
}

// oldestEvent is the timestamp of the tenant's oldest event at or after
// from; ok is false when it has none.
func (r *Rollup) oldestEvent(ctx context.Context, tenantID int64, from time.Time) (time.Time, bool, error) {
	var at time.Time
	found := false
	err := r.store.ExportEvents(ctx, tenantID, tally.EventFilter{From: from}, 1, func(tally.ExportInfo) error { return nil },
		func(e *tally.Event) error {
			at, found = e.Timestamp, true
			return nil
		})
	return at, found, err
}
