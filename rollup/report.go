package rollup

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/ordinal"
)

// ReportsConfig configures Reports. The zero value of each field is usable
// and means what its comment says.
type ReportsConfig struct {
	// Rules map events to metrics (tally.DefaultUsageRules when nil).
	Rules tally.UsageRules
	// QuotaMetrics are metrics that Usage lists even when no rule makes
	// them and nothing was counted (the keys of QUOTA_DEFAULTS).
	QuotaMetrics []string
}

// Reports answers the usage and KPI queries of tenants from the rollups
// and, where they are not exact yet, the raw log.
//
// Every report reads the tenant's oldest dirty hour once and splits its
// range there: the whole hours before it are read from the rollups, the
// rest from the raw log, so one report never mixes two views of the
// dirty marks.
type Reports struct {
	rules        tally.UsageRules
	quotaMetrics []string
	store        tally.Store
}

// NewReports returns Reports over store.
func NewReports(cfg ReportsConfig, store tally.Store) *Reports {
	if cfg.Rules == nil {
		cfg.Rules = tally.DefaultUsageRules()
	}
	return &Reports{rules: cfg.Rules, quotaMetrics: cfg.QuotaMetrics, store: store}
}

// maxBuckets bounds the buckets of one Usage answer.
const maxBuckets = 10000

// span is the half-open interval [from, to).
type span struct{ from, to time.Time }

// layout is how a read of [from, to) splits into what rollups can answer
// and what only the raw log can. The whole UTC hours in hours (except
// those in split) are read hour by hour, from rollups or the raw log; the
// pieces (partial hours at the ends, and the parts of an hour that a bucket
// boundary falls inside, as in zones with a fractional UTC offset) are read
// from the raw log, their rows starting at the piece's start.
type layout struct {
	hours  span
	split  map[int64]bool // Unix seconds of hour starts in hours read as pieces
	pieces []span
}

// newLayout lays out [from, to) so that no hour row straddles one of cuts.
func newLayout(from, to time.Time, cuts []time.Time) layout {
	var l layout
	if !from.Before(to) {
		return l
	}
	bounds := []time.Time{from, to}
	for h := tally.HourStart(from).Add(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		bounds = append(bounds, h)
	}
	for _, c := range cuts {
		if c.After(from) && c.Before(to) {
			bounds = append(bounds, c)
		}
	}
	slices.SortFunc(bounds, time.Time.Compare)
	bounds = slices.CompactFunc(bounds, time.Time.Equal)

	first := tally.HourStart(from)
	if first.Before(from) {
		first = first.Add(time.Hour)
	}
	last := tally.HourStart(to)
	if first.Before(last) {
		l.hours = span{first, last}
	}
	for i := 0; i+1 < len(bounds); i++ {
		s, e := bounds[i], bounds[i+1]
		h := tally.HourStart(s)
		if h.Equal(s) && e.Sub(s) == time.Hour {
			continue // a whole hour
		}
		l.pieces = append(l.pieces, span{s, e})
		if !h.Before(l.hours.from) && h.Before(l.hours.to) {
			if l.split == nil {
				l.split = map[int64]bool{}
			}
			l.split[h.Unix()] = true
		}
	}
	return l
}

// whole reports whether the hour starting at t is read hour by hour.
func (l *layout) whole(t time.Time) bool { return !l.split[t.Unix()] }

// read reads l for a tenant: clean gets the range of whole hours that have
// exact rollups (those before split, from cleanUntil) and must skip the
// hours l.whole rejects; raw gets rows aggregated from the raw log.
func (r *Reports) read(ctx context.Context, tenantID int64, l *layout, split time.Time, clean func(from, to time.Time) error, raw func([]tally.HourRow)) error {
	if l.hours.from.Before(l.hours.to) {
		if split.After(l.hours.from) {
			if err := clean(l.hours.from, split); err != nil {
				return err
			}
		}
		if split.Before(l.hours.to) {
			rows, err := r.store.AggregateEvents(ctx, tenantID, split, l.hours.to, time.Hour)
			if err != nil {
				return err
			}
			raw(slices.DeleteFunc(rows, func(row tally.HourRow) bool { return !l.whole(row.Start) }))
		}
	}
	for _, p := range l.pieces {
		rows, err := r.store.AggregateEvents(ctx, tenantID, p.from, p.to, time.Hour)
		if err != nil {
			return err
		}
		for i := range rows {
			if rows[i].Start.Before(p.from) {
				rows[i].Start = p.from
			}
		}
		raw(rows)
	}
	return nil
}

// cleanUntil returns where the whole hours of l stop having exact rollups:
// the tenant's oldest dirty hour, within l.hours. A report calls it once
// and reads every part of l with the answer; without whole hours there is
// nothing to ask.
func (r *Reports) cleanUntil(ctx context.Context, tenantID int64, l *layout) (time.Time, error) {
	if !l.hours.from.Before(l.hours.to) {
		return l.hours.to, nil
	}
	oldest, err := r.store.OldestDirty(ctx, tenantID)
	if err != nil || oldest.IsZero() {
		return l.hours.to, err
	}
	return clamp(tally.HourStart(oldest), l.hours.from, l.hours.to), nil
}

// clamp returns t limited to [lo, hi].
func clamp(t, lo, hi time.Time) time.Time {
	switch {
	case t.Before(lo):
		return lo
	case t.After(hi):
		return hi
	}
	return t
}

func compareRows(a, b tally.HourRow) int {
	return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Event, b.Event), cmp.Compare(a.Metric, b.Metric))
}

func comparePoints(a, b tally.MetricPoint) int {
	return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Metric, b.Metric))
}

// HourlyRows returns a tenant's event rows per UTC hour, event name and
// (for usage.increment) metric over [from, to), ordered by start, event
// and metric. Hours before the tenant's oldest dirty hour come from the
// rollups, the rest from the raw log. A partial hour at either end covers
// only its part inside the range; its row starts at from when from is not
// on an hour.
func (r *Reports) HourlyRows(ctx context.Context, tenantID int64, from, to time.Time) ([]tally.HourRow, error) {
	l := newLayout(from, to, nil)
	split, err := r.cleanUntil(ctx, tenantID, &l)
	if err != nil {
		return nil, err
	}
	return r.hourlyRows(ctx, tenantID, &l, split)
}

func (r *Reports) hourlyRows(ctx context.Context, tenantID int64, l *layout, split time.Time) ([]tally.HourRow, error) {
	return r.dailyRows(ctx, tenantID, l, split, nil)
}

// dailyRows reads l's rows as hourlyRows does, except that each whole UTC
// day of the clean hours that inBucket accepts (one bucket of the caller's
// holds it whole, and no hour of it is read in pieces) comes from the daily
// rollups: one row per event and metric of the day, starting at its
// midnight, with the sums of its hours' rows. A nil inBucket reads hours
// only.
func (r *Reports) dailyRows(ctx context.Context, tenantID int64, l *layout, split time.Time, inBucket func(day, end time.Time) bool) ([]tally.HourRow, error) {
	var out []tally.HourRow
	hours := func(from, to time.Time) error {
		if !from.Before(to) {
			return nil
		}
		rows, err := r.store.RollupHours(ctx, tenantID, from, to)
		if err != nil {
			return err
		}
		for _, row := range rows {
			if l.whole(row.Start) {
				out = append(out, row)
			}
		}
		return nil
	}
	whole := func(d, end time.Time) bool {
		for h := d; h.Before(end); h = h.Add(time.Hour) {
			if !l.whole(h) {
				return false
			}
		}
		return inBucket(d, end)
	}
	err := r.read(ctx, tenantID, l, split, func(from, to time.Time) error {
		if inBucket == nil {
			return hours(from, to)
		}
		at := from                   // read up to here
		var runFrom, runTo time.Time // days to read from the daily rollups
		flush := func() error {
			if runFrom.IsZero() {
				return nil
			}
			if err := hours(at, runFrom); err != nil {
				return err
			}
			rows, err := r.store.RollupDays(ctx, tenantID, runFrom, runTo)
			if err != nil {
				return err
			}
			out = append(out, rows...)
			at, runFrom = runTo, time.Time{}
			return nil
		}
		for d := tally.DayStart(from); d.Before(to); d = d.Add(24 * time.Hour) {
			end := d.Add(24 * time.Hour)
			switch ok := !d.Before(from) && !end.After(to) && whole(d, end); {
			case ok && !runFrom.IsZero() && runTo.Equal(d):
				runTo = end
			case ok:
				if err := flush(); err != nil {
					return err
				}
				runFrom, runTo = d, end
			}
		}
		if err := flush(); err != nil {
			return err
		}
		return hours(at, to)
	}, func(rows []tally.HourRow) { out = append(out, rows...) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, compareRows)
	return out, nil
}

// HourlyMetrics returns a tenant's non-zero metric values per UTC hour over
// [from, to), ordered by start and metric, read like HourlyRows: stored
// metric rollups for the clean hours, the rules applied to raw rows for
// the rest.
func (r *Reports) HourlyMetrics(ctx context.Context, tenantID int64, from, to time.Time) ([]tally.MetricPoint, error) {
	l := newLayout(from, to, nil)
	split, err := r.cleanUntil(ctx, tenantID, &l)
	if err != nil {
		return nil, err
	}
	return r.hourlyMetrics(ctx, tenantID, &l, split)
}

func (r *Reports) hourlyMetrics(ctx context.Context, tenantID int64, l *layout, split time.Time) ([]tally.MetricPoint, error) {
	var out []tally.MetricPoint
	err := r.read(ctx, tenantID, l, split, func(from, to time.Time) error {
		points, err := r.store.RollupMetricHours(ctx, tenantID, from, to)
		if err != nil {
			return err
		}
		for _, p := range points {
			if l.whole(p.Start) {
				out = append(out, p)
			}
		}
		return nil
	}, func(rows []tally.HourRow) { out = append(out, r.rules.BucketMetrics(rows)...) })
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, comparePoints)
	return out, nil
}

// Series is one metric's values, one point per bucket.
type Series struct {
	Metric string              `json:"metric"`
	Points []tally.MetricPoint `json:"points"`
}

// bucketStarts returns the starts of the buckets that cover [from, to):
// UTC hours, or the midnights of loc (a day lasts 23 or 25 hours across a
// daylight-saving change). The first bucket may start before from.
func bucketStarts(from, to time.Time, hourly bool, loc *time.Location) ([]time.Time, error) {
	var out []time.Time
	next := func(i int) time.Time { return tally.HourStart(from).Add(time.Duration(i) * time.Hour) }
	if !hourly {
		y, m, d := from.In(loc).Date()
		next = func(i int) time.Time { return time.Date(y, m, d+i, 0, 0, 0, 0, loc) }
	}
	for i := 0; ; i++ {
		t := next(i)
		if !t.Before(to) {
			return out, nil
		}
		if i == maxBuckets {
			return nil, tally.Invalid("range too long", tally.FieldError{Field: "to", Message: "at most 10000 buckets"})
		}
		out = append(out, t)
	}
}

// bucketOf returns the index of the bucket that contains t, -1 before the
// first.
func bucketOf(starts []time.Time, t time.Time) int {
	return sort.Search(len(starts), func(i int) bool { return starts[i].After(t) }) - 1
}

// Usage returns the values of metrics over [from, to) per bucket: per UTC
// hour when hourly, else per day of loc (nil: UTC), from its midnights.
// Every bucket is present, zero-filled; point starts are in UTC (the first
// may lie before from; only events in [from, to) count). With no metrics
// it returns every metric of the rules, of Config.QuotaMetrics and of the
// tenant's quotas, and any counted in the range, sorted by name. EInvalid
// for a bad metric name, to before from, or over 10000 buckets.
func (r *Reports) Usage(ctx context.Context, tenantID int64, metrics []string, from, to time.Time, hourly bool, loc *time.Location) ([]Series, error) {
	if loc == nil {
		loc = time.UTC
	}
	if to.Before(from) {
		return nil, tally.Invalid("from is after to", tally.FieldError{Field: "from", Message: "must not be after to"})
	}
	for _, m := range metrics {
		if !tally.ValidMetric(m) {
			return nil, tally.Invalid("invalid metric", tally.FieldError{Field: "metric", Message: "must match ^[a-z0-9_]{1,64}$"})
		}
	}
	starts, err := bucketStarts(from, to, hourly, loc)
	if err != nil {
		return nil, err
	}
	l := newLayout(from, to, starts)
	split, err := r.cleanUntil(ctx, tenantID, &l)
	if err != nil {
		return nil, err
	}
	points, err := r.hourlyMetrics(ctx, tenantID, &l, split)
	if err != nil {
		return nil, err
	}
	values := map[string][]int64{}
	for _, p := range points {
		i := bucketOf(starts, p.Start)
		if i < 0 {
			continue
		}
		v := values[p.Metric]
		if v == nil {
			v = make([]int64, len(starts))
			values[p.Metric] = v
		}
		v[i] += p.Value
	}

	var names []string
	for _, m := range metrics {
		if !slices.Contains(names, m) {
			names = append(names, m)
		}
	}
	if len(names) == 0 {
		quotas, err := r.store.Quotas(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		names = append(names, r.rules.Metrics()...)
		names = append(names, r.quotaMetrics...)
		for _, q := range quotas {
			names = append(names, q.Metric)
		}
		for m := range values {
			names = append(names, m)
		}
		slices.Sort(names)
		names = slices.Compact(names)
	}
	if err := r.meterUsage(ctx, tenantID, names, starts, from, to, values); err != nil {
		return nil, err
	}
	out := make([]Series, 0, len(names))
	for _, m := range names {
		s := Series{Metric: m, Points: make([]tally.MetricPoint, len(starts))}
		v := values[m]
		for i, t := range starts {
			s.Points[i] = tally.MetricPoint{Start: t.UTC(), Metric: m}
			if v != nil {
				s.Points[i].Value = v[i]
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// meterUsage adds to values, bucket by bucket, what the tenant's count
// and sum meters among names count for a quota on them
// (tally.MeterQuotaUsage): the usage of a meter's slug is its events'
// amounts plus its explicit increments, which the rules' rows gave.
func (r *Reports) meterUsage(ctx context.Context, tenantID int64, names []string, starts []time.Time, from, to time.Time, values map[string][]int64) error {
	if len(starts) == 0 || !from.Before(to) {
		return nil
	}
	meters, err := r.store.Meters(ctx, tenantID)
	if err != nil {
		return err
	}
	bounds := append(slices.Clone(starts), to)
	bounds[0] = from
	for i := range meters {
		m := &meters[i]
		if !slices.Contains(names, m.Slug) || m.CheckQuota("metric") != nil {
			continue
		}
		n, err := tally.MeterQuotaUsage(ctx, r.store, tenantID, m, bounds)
		if err != nil {
			return err
		}
		v := values[m.Slug]
		if v == nil {
			v = make([]int64, len(starts))
			values[m.Slug] = v
		}
		for j := range n {
			v[j] += n[j]
		}
	}
	return nil
}

// KPI is one key figure of a period and of the period before it.
// ChangePct is (Value-Previous)/Previous*100 rounded to one decimal, nil
// when Previous is 0.
type KPI struct {
	Value     int64    `json:"value"`
	Previous  int64    `json:"previous"`
	ChangePct *float64 `json:"change_pct"`
}

// Report is the KPI report of one range.
type Report struct {
	Range string    `json:"range"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
	// PreviousFrom and PreviousTo bound the period each KPI's Previous
	// covers: for "today", yesterday up to the same time of day.
	PreviousFrom time.Time                      `json:"previous_from"`
	PreviousTo   time.Time                      `json:"previous_to"`
	KPIs         map[string]KPI                 `json:"kpis"`
	Timeseries   map[string][]tally.MetricPoint `json:"timeseries"`
}

// kpiValues computes every KPI but the distinct-user ones from aggregated
// rows, as tally.KPIs defines them.
func (r *Reports) kpiValues(rows []tally.HourRow) map[string]int64 {
	m := r.rules.ApplyRows(rows)
	out := make(map[string]int64, len(tally.KPIs))
	for _, k := range tally.KPIs {
		if k.Kind == tally.KPIMetric {
			out[k.Name] = m[k.Metric]
		}
	}
	for _, row := range rows {
		for _, k := range tally.KPIs {
			switch {
			case k.Kind == tally.KPIAllEvents && !tally.IsOwnEvent(row.Event), k.Kind == tally.KPIEvent && row.Event == k.Event:
				out[k.Name] += row.Count
			}
		}
	}
	return out
}

// setUsers sets every distinct-user KPI of vals to n.
func setUsers(vals map[string]int64, n int64) {
	for _, k := range tally.KPIs {
		if k.Kind == tally.KPIDistinctUsers {
			vals[k.Name] = n
		}
	}
}

// changePct is (v-prev)/prev*100 rounded to one decimal; nil when prev is 0.
func changePct(v, prev int64) *float64 {
	if prev == 0 {
		return nil
	}
	x := math.Round(float64(v-prev)/float64(prev)*1000) / 10
	return &x
}

// KPIs returns a tenant's key figures for rng ("today", "7d", "30d" or
// "90d"): the period is that many calendar days of loc (nil: UTC) ending
// with today, up to now (today alone: from local midnight to now), the
// previous period the same number of full days before it (today alone:
// yesterday from midnight up to the same time of day). Timeseries has a
// point per day of the period (per hour for "today"), zero-filled, for
// every KPI. EInvalid naming field "range" for another rng.
func (r *Reports) KPIs(ctx context.Context, tenantID int64, rng string, loc *time.Location, now time.Time) (*Report, error) {
	kr, ok := tally.KPIRangeByName(rng)
	if !ok {
		return nil, tally.Invalid("invalid range", tally.FieldError{Field: "range", Message: "must be one of " + tally.KPIRangeNames()})
	}
	n := kr.Days
	if loc == nil {
		loc = time.UTC
	}
	y, mo, d := now.In(loc).Date()
	midnight := func(days int) time.Time { return time.Date(y, mo, d+days, 0, 0, 0, 0, loc) }
	from, prevFrom, to := kr.Start(now, loc), midnight(1-2*n), now
	// The previous period: the n full days before; for today alone,
	// yesterday up to the same time of day, so that a morning is not
	// compared with a whole day.
	prevTo := from
	if n == 1 {
		prevTo = prevFrom.Add(to.Sub(from))
	}
	var starts []time.Time
	if n == 1 {
		for t := from; t.Before(to); t = t.Add(time.Hour) {
			starts = append(starts, t)
		}
	} else {
		for i := 1 - n; i <= 0; i++ {
			starts = append(starts, midnight(i))
		}
	}
	// Distinct users do not add up across buckets: they are counted from
	// the users of each hour (or piece of one), the previous period's and
	// the period's in parallel with each other and with the rows.
	l := newLayout(prevFrom, to, slices.Concat(starts, []time.Time{prevTo}))
	split, err := r.cleanUntil(ctx, tenantID, &l)
	if err != nil {
		return nil, err
	}
	var (
		users            []int64
		period, previous int64
	)
	uctx, cancel := context.WithCancel(ctx)
	defer cancel()
	usersErr := make(chan error, 2)
	go func() {
		var err error
		users, period, err = r.distinctUsers(uctx, tenantID, &l, split, starts, to)
		usersErr <- err
	}()
	go func() {
		var err error
		_, previous, err = r.distinctUsers(uctx, tenantID, &l, split, []time.Time{prevFrom}, prevTo)
		usersErr <- err
	}()

	// A UTC day that one bucket (or the previous period) holds whole
	// needs only its total: the daily rollup gives it in ~24× fewer rows.
	wholeDay := func(d, end time.Time) bool {
		if !d.Before(prevFrom) && !end.After(prevTo) {
			return true
		}
		i := bucketOf(starts, d)
		return i >= 0 && !d.Before(starts[0]) && !end.After(to) && bucketOf(starts, end.Add(-time.Microsecond)) == i
	}
	rows, err := r.dailyRows(ctx, tenantID, &l, split, wholeDay)
	for range 2 {
		if err != nil {
			cancel() // no need to finish counting
		}
		if uerr := <-usersErr; err == nil {
			err = uerr
		}
	}
	if err != nil {
		return nil, err
	}

	var prevRows []tally.HourRow
	bucketRows := make([][]tally.HourRow, len(starts))
	for _, row := range rows {
		if i := bucketOf(starts, row.Start); i >= 0 {
			bucketRows[i] = append(bucketRows[i], row)
		} else if row.Start.Before(prevTo) {
			prevRows = append(prevRows, row)
		}
	}
	rep := &Report{
		Range:        rng,
		From:         from.UTC(),
		To:           to.UTC(),
		PreviousFrom: prevFrom.UTC(),
		PreviousTo:   prevTo.UTC(),
		KPIs:         make(map[string]KPI, len(tally.KPIs)),
		Timeseries:   make(map[string][]tally.MetricPoint, len(tally.KPIs)),
	}
	cur := map[string]int64{}
	for _, k := range tally.KPIs {
		rep.Timeseries[k.Name] = make([]tally.MetricPoint, len(starts))
	}
	for i, s := range starts {
		vals := r.kpiValues(bucketRows[i])
		setUsers(vals, users[i])
		for _, k := range tally.KPIs {
			rep.Timeseries[k.Name][i] = tally.MetricPoint{Start: s.UTC(), Metric: k.Name, Value: vals[k.Name]}
			cur[k.Name] += vals[k.Name]
		}
	}
	setUsers(cur, period)
	prev := r.kpiValues(prevRows)
	setUsers(prev, previous)
	for _, k := range tally.KPIs {
		rep.KPIs[k.Name] = KPI{Value: cur[k.Name], Previous: prev[k.Name], ChangePct: changePct(cur[k.Name], prev[k.Name])}
	}
	return rep, nil
}

// distinctUsers counts the distinct users of each bucket that starts at
// starts (each ends where the next starts, the last at to) and of all of
// them. It reads them as l lays out the range (which must cover these
// buckets and be cut at their bounds): the whole hours before split that
// have a user set from the rollups, as bitmaps of user ordinals (a UTC day
// that one bucket holds whole, with no hour of it read in pieces, from its
// day set, else hour by hour), every other hour and piece from the raw
// log. Each bucket's users are the union of its bitmaps; the users of the
// raw log join them by their ordinals (ids without one, which no set
// holds, by ordinals of their own above every stored one).
func (r *Reports) distinctUsers(ctx context.Context, tenantID int64, l *layout, split time.Time, starts []time.Time, to time.Time) ([]int64, int64, error) {
	counts := make([]int64, len(starts))
	if len(starts) == 0 || !starts[0].Before(to) {
		return counts, 0, nil
	}
	from := starts[0]
	sets := make([]*roaring.Bitmap, len(starts))
	for i := range sets {
		sets[i] = roaring.New()
	}
	add := func(b int, set []byte) error {
		if len(set) == 0 {
			return nil // the empty set
		}
		var bm roaring.Bitmap
		if err := bm.UnmarshalBinary(set); err != nil { // copies: set is reused
			return tally.Internal(fmt.Errorf("rollup: tenant %d: user set: %w", tenantID, err))
		}
		sets[b].Or(&bm)
		return nil
	}

	// The whole hours of [from, to) with exact rollups, then the raw units.
	// (An hour that from or to falls inside is cut, so not whole.) The raw
	// units known now — the hours from split on and the pieces — are read
	// while the sets are; the hours found without a set, after.
	first := maxTime(l.hours.from, tally.HourStart(from))
	setFrom, setTo := first, minTime(split, to)
	var known []span
	for h := maxTime(split, first); h.Before(minTime(l.hours.to, to)); h = h.Add(time.Hour) {
		if l.whole(h) {
			known = append(known, span{h, h.Add(time.Hour)})
		}
	}
	for _, p := range l.pieces {
		if !p.from.Before(from) && p.from.Before(to) {
			known = append(known, p)
		}
	}
	slices.SortFunc(known, func(a, b span) int { return a.from.Compare(b.from) })
	c := &rawUsers{r: r, tenantID: tenantID, starts: starts, index: map[string]int{}}
	knownErr := make(chan error, 1)
	go func() { knownErr <- c.read(ctx, known) }()
	var raw []span
	if setFrom.Before(setTo) {
		// The days read from day sets, and the runs of hours between them.
		days := map[int64]bool{}
		var dayFrom, dayTo time.Time
		for d := tally.DayStart(setFrom); !d.Add(24 * time.Hour).After(setTo); d = d.Add(24 * time.Hour) {
			end := d.Add(24 * time.Hour)
			if d.Before(setFrom) || bucketOf(starts, d) != bucketOf(starts, end.Add(-time.Microsecond)) || bucketOf(starts, d) < 0 {
				continue
			}
			whole := true
			for h := d; h.Before(end) && whole; h = h.Add(time.Hour) {
				whole = l.whole(h)
			}
			if whole {
				days[d.Unix()] = false // true once its set is read
				if dayFrom.IsZero() {
					dayFrom = d
				}
				dayTo = end
			}
		}
		if len(days) > 0 {
			err := r.store.RollupUserSets(ctx, tenantID, 24*time.Hour, dayFrom, dayTo, func(day time.Time, set []byte) error {
				if _, ok := days[day.Unix()]; !ok {
					return nil
				}
				days[day.Unix()] = true
				return add(bucketOf(starts, day), set)
			})
			if err != nil {
				<-knownErr
				return nil, 0, err
			}
		}
		inDaySet := func(h time.Time) bool { return days[tally.DayStart(h).Unix()] }
		for h := setFrom; h.Before(setTo); {
			if inDaySet(h) {
				h = h.Add(time.Hour)
				continue
			}
			runFrom := h
			for h.Before(setTo) && !inDaySet(h) {
				h = h.Add(time.Hour)
			}
			next := runFrom // the first hour of the run not yet seen
			missing := func(until time.Time) {
				for m := next; m.Before(until); m = m.Add(time.Hour) {
					if l.whole(m) {
						raw = append(raw, span{m, m.Add(time.Hour)})
					}
				}
			}
			err := r.store.RollupUserSets(ctx, tenantID, time.Hour, runFrom, h, func(hour time.Time, set []byte) error {
				missing(hour) // hours without a set
				next = hour.Add(time.Hour)
				if !l.whole(hour) {
					return nil // read in pieces
				}
				return add(bucketOf(starts, hour), set)
			})
			if err != nil {
				<-knownErr
				return nil, 0, err
			}
			missing(h)
		}
	}
	if err := <-knownErr; err != nil {
		return nil, 0, err
	}
	if err := c.read(ctx, raw); err != nil {
		return nil, 0, err
	}
	c.addTo(sets)
	for i, s := range sets {
		counts[i] = int64(s.GetCardinality())
	}
	return counts, int64(roaring.FastOr(sets...).GetCardinality()), nil
}

// rawUsers collects the users of raw units of a report, bucket by bucket
// of starts, and their ordinals: each read reads one BucketUsers per run
// of adjacent units (a bucket per report bucket they are in), then the
// ordinals of the users it met first. A user without an ordinal (no set
// holds it) gets one of its own above every stored one, the same in
// every read.
type rawUsers struct {
	r        *Reports
	tenantID int64
	starts   []time.Time
	index    map[string]int // user id -> index in ids
	ids      []string
	ords     []uint32
	inBucket [][]int // per bucket, the indexes in ids of its users
}

// read adds the users of the raw units raw (ascending).
func (c *rawUsers) read(ctx context.Context, raw []span) error {
	seen := len(c.ids)
	for len(raw) > 0 {
		n := 1
		bounds := []time.Time{raw[0].from}
		for ; n < len(raw) && raw[n].from.Equal(raw[n-1].to); n++ {
			if bucketOf(c.starts, raw[n].from) != bucketOf(c.starts, raw[n-1].from) {
				bounds = append(bounds, raw[n].from)
			}
		}
		bounds = append(bounds, raw[n-1].to)
		err := c.r.store.BucketUsers(ctx, c.tenantID, bounds, func(i int, user string) error {
			k, ok := c.index[user]
			if !ok {
				k = len(c.ids)
				c.index[user] = k
				c.ids = append(c.ids, user)
			}
			if c.inBucket == nil {
				c.inBucket = make([][]int, len(c.starts))
			}
			b := bucketOf(c.starts, bounds[i])
			c.inBucket[b] = append(c.inBucket[b], k)
			return nil
		})
		if err != nil {
			return err
		}
		raw = raw[n:]
	}
	if len(c.ids) == seen {
		return nil
	}
	fresh := c.ids[seen:]
	ords := make([]uint32, len(fresh))
	known := make([]bool, len(fresh))
	err := c.r.store.UserOrdinals(ctx, c.tenantID, fresh, func(i int, o uint32) error {
		ords[i], known[i] = o, true
		return nil
	})
	if err != nil {
		return err
	}
	next := uint32(ordinal.Unknown) + uint32(seen)
	for i, ok := range known {
		if !ok {
			ords[i] = next + uint32(i)
		}
	}
	c.ords = append(c.ords, ords...)
	return nil
}

// addTo adds the users read to sets, bucket by bucket.
func (c *rawUsers) addTo(sets []*roaring.Bitmap) {
	for b, ks := range c.inBucket {
		for _, k := range ks {
			sets[b].Add(c.ords[k])
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
