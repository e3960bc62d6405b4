package tally

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Quotas on meters: a quota may name one of the tenant's meter slugs where
// it names a metric (slugs and metrics share one namespace: a meter's slug
// is never a usage rule's metric). A count or sum meter, over all its
// groups, is then that metric's usage: each event the meter matches adds
// QuotaAmount to the metric, as a usage rule would, and explicit
// increments of the metric (usage.increment, quota consumes and commits)
// add their amounts as for any metric. The log gives the same per event
// (QuotaAmountOf over MeterRollupStore.MeterEvents with SkipMetric).

// CheckQuota reports whether a quota can count m: EInvalid, naming field,
// unless m is a count or sum meter.
func (m *MeterDef) CheckQuota(field string) error {
	if m.Aggregation == AggCount || m.Aggregation == AggSum {
		return nil
	}
	return Invalid("this meter cannot have a quota", FieldError{Field: field,
		Message: fmt.Sprintf("meter %s aggregates %s; a quota needs a count or sum meter", m.Slug, m.Aggregation)})
}

// QuotaAmount is what e adds to a quota on the count or sum meter m: 0
// unless m's event pattern and filter match e; then 1 for count, and for
// sum its value or props number rounded and clamped as usage amounts are
// (RoundAmount; a missing or non-numeric value adds 0). An event whose
// CountedMetric is m's slug adds nothing: a usage.increment of it counts
// by its amount, and an event a consume settled for it was counted by
// the consume.
func (m *MeterDef) QuotaAmount(e *Event) int64 {
	// The stores' selection: tally's own events only when the pattern
	// names them or the filter their source.
	if !MatchName(m.Event, e.Name) || IsOwnEvent(e.Name) && ExcludesOwn(m.Event, m.Filter["source"]) {
		return 0
	}
	if e.CountedMetric() == m.Slug {
		return 0
	}
	for k, want := range m.Filter {
		var got string
		switch k {
		case "source":
			got = e.Source
		case "user_id":
			got = e.UserID
		default:
			var ok bool
			if got, ok = propScalarRaw(e.Props, k); !ok {
				return 0
			}
		}
		if got != want {
			return 0
		}
	}
	switch m.Aggregation {
	case AggCount:
		return 1
	case AggSum:
		if m.ValueProperty == MeterValueProp {
			return RoundAmount(e.Value)
		}
		n, ok := propNumberRaw(e.Props, m.ValueProperty)
		if !ok {
			return 0
		}
		v, err := n.Float64()
		if err != nil {
			return 0
		}
		return RoundAmount(ClampMeterValue(v))
	}
	return 0
}

// QuotaAmountOf is QuotaAmount of an event the log streams for the count
// or sum meter m (MeterRollupStore.MeterEvents).
func (m *MeterDef) QuotaAmountOf(e MeterEvent) int64 {
	switch {
	case m.Aggregation == AggCount:
		return 1
	case m.Aggregation == AggSum && e.Number != nil:
		return RoundAmount(*e.Number)
	}
	return 0
}

// MeterQuotaUsage returns what the tenant's events in each window
// [bounds[i], bounds[i+1]) add to a quota on the count or sum meter m,
// read from the log: QuotaAmountOf of each event the meter matches, but
// those whose CountedMetric is m's slug (SkipMetric). Explicit increments
// of the slug are not in it (the usage rules' rows give them).
func MeterQuotaUsage(ctx context.Context, s MeterRollupStore, tenantID int64, m *MeterDef, bounds []time.Time) ([]int64, error) {
	out := make([]int64, max(len(bounds)-1, 0))
	q := MeterQuery{Meter: *m, Bounds: bounds, SkipMetric: m.Slug}
	err := s.MeterEvents(ctx, tenantID, q, func(e MeterEvent) error {
		out[e.Window] += m.QuotaAmountOf(e)
		return nil
	})
	return out, err
}

// ParseProps decodes props with numbers kept as written (json.Number);
// nil when they are not JSON.
func ParseProps(props []byte) any {
	dec := json.NewDecoder(bytes.NewReader(props))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

// PropAt is the value at a props path ("props.a.b") of ParseProps'
// result, nil when absent.
func PropAt(p any, path string) any {
	keys := ParsePropPath(path)
	if keys == nil {
		return nil
	}
	for _, k := range keys {
		obj, ok := p.(map[string]any)
		if !ok {
			return nil
		}
		p = obj[k]
	}
	return p
}

// PropScalar is the text of the scalar (string, number as written,
// boolean) at a props path, as meter filters and groups compare it; ok is
// false for anything else.
func PropScalar(p any, path string) (string, bool) { return scalarText(PropAt(p, path)) }

func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
