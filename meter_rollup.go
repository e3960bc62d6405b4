package tally

import (
	"context"
	"encoding/json"
	"time"
)

// Meter rollups: the rollup job keeps, per custom meter, hourly partial
// aggregates by the meter's whole group_by (MeterPartial), and a meter
// query combines them for the hours fully rolled up with the raw log for
// the rest (meter.Service.Query). A partial combines with any other of the
// same meter, so windows of any length that are whole hours (every UTC
// offset of whole hours) and any subset of the group_by read from them.
//
// unique_count keeps exact sets of the distinct values per hour and
// group, not an estimate: its answer has no error, and an hour's row grows
// with the hour's distinct values.

// MeterEvent is one event a meter query matches, as the stores stream it
// (MeterStore.MeterEvents): its window, its group's values, its value
// (Number for every aggregation but unique_count, Text for unique_count;
// nil when it has none), its timestamp and its id (the order of latest).
type MeterEvent struct {
	Window int
	Group  []*string
	Number *float64
	Text   *string
	At     time.Time
	ID     int64
}

// MeterPartial is the aggregate state of a meter over some of its events:
// enough to give every aggregation, and to combine with another partial
// (min and max of both, sums added, the later latest, the union of the
// distinct values), so avg stays sum / count of values across hours.
type MeterPartial struct {
	Count    int64   // matching events
	N        int64   // of them with a numeric value
	Sum      float64 // of the numeric values
	Min, Max float64 // valid when N > 0
	Last     float64 // the value of the latest event with one (by At, then ID)
	LastAt   time.Time
	LastID   int64
	Uniq     map[string]struct{} // unique_count: the distinct values
}

// Add adds one event.
func (p *MeterPartial) Add(e MeterEvent) {
	p.Count++
	if e.Text != nil {
		if p.Uniq == nil {
			p.Uniq = map[string]struct{}{}
		}
		p.Uniq[*e.Text] = struct{}{}
	}
	if e.Number != nil {
		p.addValue(*e.Number, e.At, e.ID)
	}
}

func (p *MeterPartial) addValue(v float64, at time.Time, id int64) {
	if p.N == 0 || v < p.Min {
		p.Min = v
	}
	if p.N == 0 || v > p.Max {
		p.Max = v
	}
	if p.N == 0 || at.After(p.LastAt) || at.Equal(p.LastAt) && id > p.LastID {
		p.Last, p.LastAt, p.LastID = v, at, id
	}
	p.N++
	p.Sum += v
}

// Merge adds q into p.
func (p *MeterPartial) Merge(q *MeterPartial) {
	p.Count += q.Count
	for v := range q.Uniq {
		if p.Uniq == nil {
			p.Uniq = make(map[string]struct{}, len(q.Uniq))
		}
		p.Uniq[v] = struct{}{}
	}
	if q.N == 0 {
		return
	}
	if p.N == 0 {
		p.Min, p.Max, p.Last, p.LastAt, p.LastID = q.Min, q.Max, q.Last, q.LastAt, q.LastID
	} else {
		p.Min, p.Max = min(p.Min, q.Min), max(p.Max, q.Max)
		if q.LastAt.After(p.LastAt) || q.LastAt.Equal(p.LastAt) && q.LastID > p.LastID {
			p.Last, p.LastAt, p.LastID = q.Last, q.LastAt, q.LastID
		}
	}
	p.N += q.N
	p.Sum += q.Sum
}

// Value is the aggregation agg of the partial, as the stores give it
// (MeterStore.QueryMeter): nil for min, max, avg and latest without a
// numeric value.
func (p *MeterPartial) Value(agg MeterAggregation) *float64 {
	var v float64
	switch agg {
	case AggCount:
		v = float64(p.Count)
	case AggSum:
		v = p.Sum
	case AggUniqueCount:
		v = float64(len(p.Uniq))
	default:
		if p.N == 0 {
			return nil
		}
		switch agg {
		case AggMin:
			v = p.Min
		case AggMax:
			v = p.Max
		case AggAvg:
			v = p.Sum / float64(p.N)
		case AggLatest:
			v = p.Last
		}
	}
	return &v
}

// MeterHourRow is one stored partial of a meter: an hour and a group of
// the meter's whole group_by.
type MeterHourRow struct {
	Hour    time.Time
	Group   []*string
	Partial MeterPartial
}

// CloneMeterGroup copies a group's values (out of a streamed MeterEvent).
func CloneMeterGroup(g []*string) []*string {
	out := make([]*string, len(g))
	for i, v := range g {
		if v != nil {
			s := *v
			out[i] = &s
		}
	}
	return out
}

// MeterGroupKey encodes a group's values as the stores keep them: a JSON
// array of strings and nulls.
func MeterGroupKey(g []*string) string {
	b, _ := json.Marshal(g)
	return string(b)
}

// MeterGroupKeys decodes MeterGroupKey, each key once: the rows of one
// read share the slice of a group (read-only).
type MeterGroupKeys map[string][]*string

// Parse decodes one key.
func (c MeterGroupKeys) Parse(s string) ([]*string, error) {
	if g, ok := c[s]; ok {
		return g, nil
	}
	var g []*string
	if err := json.Unmarshal([]byte(s), &g); err != nil {
		return nil, err
	}
	c[s] = g
	return g, nil
}

// MeterVersion is the version of a meter's definition its rollups are
// kept under: its UpdatedAt in Unix microseconds.
func MeterVersion(m *MeterDef) int64 { return m.UpdatedAt.UnixMicro() }

// MeterRollups is what a store read in one snapshot for a meter query:
// the UTC days rolled up under the meter's version, the tenant's dirty
// hours in the range (an hour without a mark has exact rollups, see
// RollupStore), and the hourly partials of those days.
type MeterRollups struct {
	Days  []time.Time
	Dirty []time.Time
	Rows  []MeterHourRow
}

// MeterRollupStore keeps meters' rollups, next to MeterStore.
type MeterRollupStore interface {
	// MeterEvents streams the tenant's events q matches, with the window
	// and group of each, in no particular order: what QueryMeter
	// aggregates, for callers that combine them with rollups. Windows
	// with q.Skip set give no event. fn's event is valid only during the
	// call; an error from fn ends the stream and is returned as is.
	MeterEvents(ctx context.Context, tenantID int64, q MeterQuery, fn func(MeterEvent) error) error
	// MeterRollups reads, in one consistent snapshot, the rollups of the
	// tenant's meter m (under MeterVersion(m)) for the hours in [from, to).
	MeterRollups(ctx context.Context, tenantID int64, m *MeterDef, from, to time.Time) (*MeterRollups, error)
	// MeterRollupDays lists the UTC days in [from, to) rolled up for the
	// tenant's meter m under its version.
	MeterRollupDays(ctx context.Context, tenantID int64, m *MeterDef, from, to time.Time) ([]time.Time, error)
}

// MeterRollupTx is what a RollupTx offers to roll up meters.
type MeterRollupTx interface {
	// Meters lists the tenant's meters, as MeterStore.Meters.
	Meters(ctx context.Context) ([]MeterDef, error)
	// MeterEvents is MeterRollupStore.MeterEvents of the tenant within the
	// transaction.
	MeterEvents(ctx context.Context, q MeterQuery, fn func(MeterEvent) error) error
	// WriteMeterDay replaces the rollups of meter m for the UTC day
	// starting at day (of every version) with rows, and records the day as
	// rolled up under m's version.
	WriteMeterDay(ctx context.Context, m *MeterDef, day time.Time, rows []MeterHourRow) error
}
