package clickhouse

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// QueryMeter implements tally.MeterStore. ClickHouse selects the events
// (tenant, time range, event pattern, source and user filters: the
// ordering key serves the first two) and streams their value and props;
// the props paths and the aggregation are evaluated here, since 18.16
// reads JSON only by top-level key (visitParam*), not by path. One JSON
// decode per selected event: fine for a dashboard's meter, slow over
// hundreds of millions (see docs/SCALING.md).
func (s *Store) QueryMeter(ctx context.Context, tenantID int64, q tally.MeterQuery, fn func(tally.MeterRow) error) error {
	filter, keys, ok, err := q.Plan()
	if !ok || err != nil {
		return err
	}
	m := q.Meter
	c, propKeys := meterConds(tenantID, q, filter, keys)
	if len(q.GroupBy) == 0 && len(propKeys) == 0 {
		if agg, ok := sqlAggregate(m); ok {
			return s.meterInSQL(ctx, tenantID, q, c, agg, fn)
		}
	}
	accs := map[string]*meterAcc{}
	err = s.scanMeter(ctx, tenantID, q, c, propKeys, filter, func(w int, group []*string, p any, ts, id int64, value float64) {
		var key strings.Builder
		key.WriteString(strconv.Itoa(w))
		for _, g := range group {
			key.WriteByte(0)
			if g != nil {
				key.WriteByte('s')
				key.WriteString(*g)
			}
		}
		a := accs[key.String()]
		if a == nil {
			a = &meterAcc{row: tally.MeterRow{Window: w, Group: group}, distinct: map[string]bool{}}
			accs[key.String()] = a
		}
		a.add(m, p, ts, id, value)
	})
	if err != nil {
		return err
	}
	for _, a := range accs {
		if err := fn(a.result(m.Aggregation)); err != nil {
			return err
		}
	}
	return nil
}

// meterConds are the conditions of q's events that ClickHouse checks, and
// the props filter keys left for Go.
func meterConds(tenantID int64, q tally.MeterQuery, filter map[string]string, keys []string) (c, propKeys []string) {
	m := q.Meter
	c = []string{"tenant_id = " + strconv.FormatInt(tenantID, 10),
		"ts >= " + micros(q.Bounds[0]), "ts < " + micros(q.Bounds[len(q.Bounds)-1])}
	if r := readRanges(q); r != "" {
		c = append(c, r)
	}
	if lo, hi, prefix := tally.EventPrefixRange(m.Event); !prefix {
		c = append(c, "event = "+quote(lo))
	} else if lo != "" {
		c = append(c, "event >= "+quote(lo), "event < "+quote(hi))
	}
	c = append(c, notOwn(m.Event, filter["source"])...)
	if q.SkipMetric != "" {
		c = append(c, "metric != "+quote(q.SkipMetric))
	}
	for _, k := range keys {
		switch k {
		case "source":
			c = append(c, "source = "+quote(filter[k]))
		case "user_id":
			c = append(c, "user_id = "+quote(filter[k]))
		default:
			propKeys = append(propKeys, k)
		}
	}
	return c, propKeys
}

// readRanges is the condition on ts of the windows q reads when it skips
// some (the raw parts of a query that reads rollups): each run of adjacent
// windows read is one range, so that the primary key reads their granules
// only and not every event between them. "" when q skips none.
func readRanges(q tally.MeterQuery) string {
	if q.Skip == nil {
		return ""
	}
	var ranges []string
	for w := 0; w < len(q.Bounds)-1; w++ {
		if q.Skip[w] {
			continue
		}
		end := w + 1
		for end < len(q.Bounds)-1 && !q.Skip[end] {
			end++
		}
		ranges = append(ranges, "ts >= "+micros(q.Bounds[w])+" AND ts < "+micros(q.Bounds[end]))
		w = end
	}
	if len(ranges) == 0 {
		return "0"
	}
	return "(" + strings.Join(ranges, " OR ") + ")"
}

// scanMeter streams the events of q that conds and the props filters on
// propKeys select, in windows q does not skip, with each one's window,
// group (fresh per event) and parsed props.
func (s *Store) scanMeter(ctx context.Context, tenantID int64, q tally.MeterQuery, conds, propKeys []string, filter map[string]string,
	fn func(w int, group []*string, props any, ts, id int64, value float64)) error {
	bounds := make([]int64, len(q.Bounds))
	for i, b := range q.Bounds {
		bounds[i] = b.UnixMicro()
	}
	var props []byte
	// Only the paths the filters, groups and value read are decoded.
	pk := tally.NewPropsPicker(slices.Concat(propKeys, q.GroupBy, []string{q.Meter.ValueProperty})...)
	return s.on(tenantID).query(ctx, "SELECT ts, id, value, props FROM events"+and(conds), true, func(r *rowReader) error {
		ts, id, value := r.int64(), r.int64(), r.float64()
		props = r.bytes(props)
		if r.err != nil {
			return nil
		}
		w := sort.Search(len(bounds), func(i int) bool { return bounds[i] > ts }) - 1
		if w < 0 || w >= len(bounds)-1 || q.Skip != nil && q.Skip[w] {
			return nil
		}
		p := pk.Pick(props)
		for _, k := range propKeys {
			if v, ok := tally.PropScalar(p, k); !ok || v != filter[k] {
				return nil
			}
		}
		group := make([]*string, len(q.GroupBy))
		for i, g := range q.GroupBy {
			if v, ok := tally.PropScalar(p, g); ok {
				group[i] = &v
			}
		}
		fn(w, group, p, ts, id, value)
		return nil
	})
}

// MeterEvents implements tally.MeterRollupStore: the events of the meter
// query as the rollups and the raw parts of a query combine them.
func (s *Store) MeterEvents(ctx context.Context, tenantID int64, q tally.MeterQuery, fn func(tally.MeterEvent) error) error {
	filter, keys, ok, err := q.Plan()
	if !ok || err != nil {
		return err
	}
	c, propKeys := meterConds(tenantID, q, filter, keys)
	m := q.Meter
	var fnErr error
	err = s.scanMeter(ctx, tenantID, q, c, propKeys, filter, func(w int, group []*string, p any, ts, id int64, value float64) {
		if fnErr != nil {
			return
		}
		e := tally.MeterEvent{Window: w, Group: group, At: time.UnixMicro(ts).UTC(), ID: id}
		switch {
		case m.Aggregation == tally.AggCount:
		case m.Aggregation == tally.AggUniqueCount:
			var text string
			if m.ValueProperty == tally.MeterValueProp {
				text = strconv.FormatFloat(value, 'g', -1, 64)
			} else if v, ok := tally.PropScalar(p, m.ValueProperty); ok {
				text = v
			} else {
				break
			}
			e.Text = &text
		default:
			v := value
			if m.ValueProperty != tally.MeterValueProp {
				n, ok := tally.PropAt(p, m.ValueProperty).(json.Number)
				if !ok {
					break
				}
				if v, err = n.Float64(); err != nil {
					break
				}
			}
			v = tally.ClampMeterValue(v)
			e.Number = &v
		}
		fnErr = fn(e)
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// sqlAggregate is ClickHouse's aggregate of a meter that reads no props
// (the event's value, or the count), ok false for the others.
func sqlAggregate(m tally.MeterDef) (string, bool) {
	const v = "multiIf(isNaN(value), 0., value > 1e15, 1e15, value < -1e15, -1e15, value)"
	if m.Aggregation == tally.AggCount {
		return "toFloat64(count())", true
	}
	if m.ValueProperty != tally.MeterValueProp {
		return "", false
	}
	switch m.Aggregation {
	case tally.AggSum:
		return "sum(" + v + ")", true
	case tally.AggMin:
		return "min(" + v + ")", true
	case tally.AggMax:
		return "max(" + v + ")", true
	case tally.AggAvg:
		return "avg(" + v + ")", true
	}
	return "", false
}

// meterInSQL aggregates a meter without groups or props filters in
// ClickHouse: one row per window.
func (s *Store) meterInSQL(ctx context.Context, tenantID int64, q tally.MeterQuery, conds []string, agg string, fn func(tally.MeterRow) error) error {
	sql := "SELECT toInt64(" + bucketExpr(q.Bounds) + ") AS w, " + agg + " FROM events" + and(conds) + " GROUP BY w"
	var rows []tally.MeterRow
	err := s.on(tenantID).query(ctx, sql, false, func(r *rowReader) error {
		w, v := r.int64(), r.float64()
		if q.Skip != nil && (w < 0 || int(w) >= len(q.Skip) || q.Skip[w]) {
			return nil
		}
		rows = append(rows, tally.MeterRow{Window: int(w), Group: []*string{}, Value: &v})
		return nil
	})
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// meterAcc aggregates one (window, group).
type meterAcc struct {
	row            tally.MeterRow
	n, sum         float64
	lo, hi, latest float64
	any            bool
	latestTS       int64
	latestID       int64
	distinct       map[string]bool
}

func (a *meterAcc) add(m tally.MeterDef, p any, ts, id int64, value float64) {
	switch m.Aggregation {
	case tally.AggCount:
		a.n++
		return
	case tally.AggUniqueCount:
		if m.ValueProperty == tally.MeterValueProp {
			a.distinct[strconv.FormatFloat(value, 'g', -1, 64)] = true
		} else if v, ok := tally.PropScalar(p, m.ValueProperty); ok {
			a.distinct[v] = true
		}
		return
	}
	v := value
	if m.ValueProperty != tally.MeterValueProp {
		n, ok := tally.PropAt(p, m.ValueProperty).(json.Number)
		if !ok {
			return
		}
		f, err := n.Float64()
		if err != nil {
			return
		}
		v = f
	}
	v = tally.ClampMeterValue(v)
	if !a.any || v < a.lo {
		a.lo = v
	}
	if !a.any || v > a.hi {
		a.hi = v
	}
	if !a.any || ts > a.latestTS || ts == a.latestTS && id > a.latestID {
		a.latest, a.latestTS, a.latestID = v, ts, id
	}
	a.any = true
	a.n++
	a.sum += v
}

func (a *meterAcc) result(agg tally.MeterAggregation) tally.MeterRow {
	r := a.row
	set := func(x float64) { r.Value = &x }
	switch agg {
	case tally.AggCount:
		set(a.n)
	case tally.AggUniqueCount:
		set(float64(len(a.distinct)))
	case tally.AggSum:
		set(a.sum)
	case tally.AggMin:
		if a.any {
			set(a.lo)
		}
	case tally.AggMax:
		if a.any {
			set(a.hi)
		}
	case tally.AggAvg:
		if a.any {
			set(a.sum / a.n)
		}
	case tally.AggLatest:
		if a.any {
			set(a.latest)
		}
	}
	return r
}
