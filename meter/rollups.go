package meter

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/tallyhq/tally"
)

// fromRollups answers q from the meter's hourly rollups where they are
// exact and from the raw log for the rest, calling add once per (window,
// group). done is false, with nothing added, when no hour of q can come
// from rollups: the caller then asks the store's QueryMeter, which
// aggregates in the database.
//
// An hour comes from rollups when its UTC day was rolled up under the
// meter's current definition, it has no dirty mark (so its rollups are
// exact: a late event marks its hour, which reads raw until the next
// rollup), it lies within [From, To), and
// no window bound falls inside it: day windows in a zone whose offset is
// not whole hours (+05:30, +05:45) cut one hour a day, which is read raw;
// minute windows cut every hour, so such a query reads the raw log only.
// A query filter reads rollups only when each key is one of the meter's
// group_by paths (or its own filter): rollups keep no other property.
func fromRollups(ctx context.Context, rs tally.MeterRollupStore, tenantID int64, q tally.MeterQuery, add func(tally.MeterRow) error) (done bool, err error) {
	m := &q.Meter
	groupFilter := map[int]string{} // index into m.GroupBy → value
	for k, v := range q.Filter {
		if mv, ok := m.Filter[k]; ok {
			if mv != v {
				return true, nil // both must hold: nothing matches
			}
			continue
		}
		i := slices.Index(m.GroupBy, k)
		if i < 0 {
			return false, nil
		}
		groupFilter[i] = v
	}
	project := make([]int, len(q.GroupBy)) // query group i → meter group project[i]
	for i, g := range q.GroupBy {
		project[i] = slices.Index(m.GroupBy, g)
	}
	bounds := q.Bounds
	from, to := bounds[0], bounds[len(bounds)-1]
	firstHour := from.Truncate(time.Hour)
	if firstHour.Before(from) {
		firstHour = firstHour.Add(time.Hour)
	}
	lastEnd := to.Truncate(time.Hour)
	if !firstHour.Before(lastEnd) {
		return false, nil
	}
	rolls, err := rs.MeterRollups(ctx, tenantID, m, firstHour, lastEnd)
	if err != nil || len(rolls.Days) == 0 {
		return false, err
	}
	days := make(map[int64]bool, len(rolls.Days))
	for _, d := range rolls.Days {
		days[d.Unix()] = true
	}
	dirty := make(map[int64]bool, len(rolls.Dirty))
	for _, h := range rolls.Dirty {
		dirty[h.Unix()] = true
	}
	window := func(t time.Time) int { // bounds[i] <= t < bounds[i+1]
		return sort.Search(len(bounds), func(i int) bool { return bounds[i].After(t) }) - 1
	}
	usable := func(h time.Time) bool {
		end := h.Add(time.Hour)
		return days[tally.DayStart(h).Unix()] && !dirty[h.Unix()] &&
			!h.Before(from) && !end.After(to) && window(h) == window(end.Add(-time.Microsecond))
	}

	// The raw part: every window bound and the edges of each usable hour
	// cut [From, To) into intervals; each is a usable hour (skipped) or
	// raw, and adjacent raw intervals of one window merge.
	var rawBounds []time.Time
	var skip []bool
	var rawWindow []int
	anyUsable := false
	cut := func(lo, hi time.Time, use bool) {
		w := window(lo)
		if n := len(skip); n > 0 && !use && !skip[n-1] && rawWindow[n-1] == w {
			rawBounds[n] = hi
			return
		}
		if len(rawBounds) == 0 {
			rawBounds = append(rawBounds, lo)
		}
		rawBounds = append(rawBounds, hi)
		skip, rawWindow = append(skip, use), append(rawWindow, w)
	}
	points := slices.Clone(bounds)
	for h := firstHour; h.Before(lastEnd); h = h.Add(time.Hour) {
		points = append(points, h, h.Add(time.Hour))
	}
	slices.SortFunc(points, time.Time.Compare)
	points = slices.CompactFunc(points, time.Time.Equal)
	for i := 0; i+1 < len(points); i++ {
		lo, hi := points[i], points[i+1]
		use := lo.Truncate(time.Hour).Equal(lo) && hi.Equal(lo.Add(time.Hour)) && usable(lo)
		anyUsable = anyUsable || use
		cut(lo, hi, use)
	}
	if !anyUsable {
		return false, nil
	}

	type key struct {
		window int
		group  string
	}
	type acc struct {
		group []*string
		p     tally.MeterPartial
	}
	accs := map[key]*acc{}
	at := func(w int, g []*string) *acc {
		k := key{w, tally.MeterGroupKey(g)}
		a := accs[k]
		if a == nil {
			a = &acc{group: g}
			accs[k] = a
		}
		return a
	}
	for i := range rolls.Rows {
		r := &rolls.Rows[i]
		if !usable(r.Hour) || len(r.Group) != len(m.GroupBy) {
			continue
		}
		pass := true
		for gi, v := range groupFilter {
			pass = pass && r.Group[gi] != nil && *r.Group[gi] == v
		}
		if !pass {
			continue
		}
		g := make([]*string, len(project))
		for i, mi := range project {
			g[i] = r.Group[mi]
		}
		at(window(r.Hour), g).p.Merge(&r.Partial)
	}
	raw := tally.MeterQuery{Meter: q.Meter, Bounds: rawBounds, GroupBy: q.GroupBy, Filter: q.Filter, Skip: skip}
	err = rs.MeterEvents(ctx, tenantID, raw, func(e tally.MeterEvent) error {
		a := accs[key{rawWindow[e.Window], tally.MeterGroupKey(e.Group)}]
		if a == nil {
			a = at(rawWindow[e.Window], tally.CloneMeterGroup(e.Group))
		}
		a.p.Add(e)
		return nil
	})
	if err != nil {
		return true, err
	}
	for k, a := range accs {
		if err := add(tally.MeterRow{Window: k.window, Group: a.group, Value: a.p.Value(m.Aggregation)}); err != nil {
			return true, err
		}
	}
	return true, nil
}
