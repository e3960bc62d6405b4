package storetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func meterCases() []testCase {
	return []testCase{
		{"CRUD", testMeterCRUD},
		{"Cap", testMeterCap},
		{"CapUnderRace", testMeterCapRace},
		{"QueryMatchesBruteForce", testMeterQuery},
		{"QueryIsolatesTenants", testMeterQueryTenants},
		{"RollupsMatchBruteForce", testMeterRollups},
		{"QuotaAmountsMatchTheLog", testMeterQuotaAmounts},
	}
}

// testMeterQuotaAmounts: what the log gives a quota on a meter
// (MeterQuotaUsage: the events streamed with SkipMetric) is what
// MeterDef.QuotaAmount gives event by event at ingest, for count and sum meters with filters,
// settled events and increments.
func testMeterQuotaAmounts(t *testing.T, s tally.Store) {
	ctx := t.Context()
	tn := newTenant(t, s, "meters-quota")
	at := time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)
	n := 0
	qev := func(name, source, user, props string, v float64, settled string) tally.Event {
		n++
		e := ev(tn.ID, fmt.Sprintf("q%d", n), name, user, at)
		e.Source, e.Props, e.Value, e.Settled = source, json.RawMessage(props), v, settled
		return e
	}
	events := insertNew(t, s,
		qev("llm.completion", "api", "u1", `{"tokens":12,"plan":"pro"}`, 1, ""),
		qev("llm.completion", "api", "u2", `{"tokens":2.5,"plan":"pro"}`, 1, ""),
		qev("llm.completion", "web", "u1", `{"tokens":-7,"plan":"pro"}`, 1, ""),
		qev("llm.completion", "api", "u1", `{"tokens":"9","plan":"pro"}`, 1, ""),
		qev("llm.completion", "api", "u1", `{"tokens":30,"plan":"free"}`, 1, ""),
		qev("llm.completion", "api", "u1", `{"tokens":40,"plan":"pro"}`, 1, "tokens"),
		qev("llm.completion", "api", "u1", `{"tokens":50,"plan":"pro"}`, 1, "other"),
		qev("llm.embedding", "api", "u1", `{"tokens":1e12,"plan":"pro"}`, 3.6, ""),
		qev(tally.EventUsageIncrement, "usage", "", `{"metric":"tokens"}`, 5, ""),
		qev(tally.EventUsageIncrement, "usage", "", `{"metric":"calls"}`, 6, ""),
		qev("tally.login", tally.OwnSource, "", `{}`, 1, ""),
	)
	for _, m := range []tally.MeterDef{
		{Slug: "tokens", Event: "llm.*", Aggregation: tally.AggSum, ValueProperty: "props.tokens", Filter: map[string]string{"props.plan": "pro"}},
		{Slug: "tokens", Event: "*", Aggregation: tally.AggSum, ValueProperty: "value"},
		{Slug: "tokens", Event: "llm.completion", Aggregation: tally.AggCount, Filter: map[string]string{"source": "api", "user_id": "u1"}},
		{Slug: "tokens", Event: "*", Aggregation: tally.AggCount},
	} {
		var want int64
		for i := range events {
			want += m.QuotaAmount(&events[i])
		}
		got, err := tally.MeterQuotaUsage(ctx, s, tn.ID, &m, []time.Time{at.Add(-time.Hour), at, at.Add(time.Hour)})
		check(t, err)
		if got[0] != 0 || got[1] != want {
			t.Errorf("meter %s of %s: the log gives %v, ingest %d", m.Aggregation, m.Event, got, want)
		}
	}
}

func testMeterCRUD(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a, b := newTenant(t, s, "meters-a"), newTenant(t, s, "meters-b")
	m := &tally.MeterDef{Slug: "tokens", Event: "llm.*", Aggregation: tally.AggSum, ValueProperty: "props.tokens",
		GroupBy: []string{"props.model"}, Filter: map[string]string{"props.plan": "pro"}, Description: "LLM tokens"}
	check(t, s.CreateMeter(ctx, a.ID, m))
	if m.CreatedAt.IsZero() || !m.UpdatedAt.Equal(m.CreatedAt) {
		t.Fatalf("CreateMeter set CreatedAt %v UpdatedAt %v", m.CreatedAt, m.UpdatedAt)
	}
	wantCode(t, s.CreateMeter(ctx, a.ID, &tally.MeterDef{Slug: "tokens", Event: "x", Aggregation: tally.AggCount}), tally.EConflict, "same slug")
	check(t, s.CreateMeter(ctx, b.ID, &tally.MeterDef{Slug: "tokens", Event: "x", Aggregation: tally.AggCount}))
	check(t, s.CreateMeter(ctx, a.ID, &tally.MeterDef{Slug: "calls", Event: "api.request", Aggregation: tally.AggCount}))

	got, err := s.MeterBySlug(ctx, a.ID, "tokens")
	check(t, err)
	if got.Event != "llm.*" || got.Aggregation != tally.AggSum || got.ValueProperty != "props.tokens" ||
		!slices.Equal(got.GroupBy, []string{"props.model"}) || got.Filter["props.plan"] != "pro" ||
		got.Description != "LLM tokens" || !got.CreatedAt.Equal(m.CreatedAt) {
		t.Fatalf("MeterBySlug = %+v, want %+v", got, m)
	}
	list, err := s.Meters(ctx, a.ID)
	check(t, err)
	if len(list) != 2 || list[0].Slug != "calls" || list[1].Slug != "tokens" {
		t.Fatalf("Meters = %+v, want calls and tokens", list)
	}
	if list[0].GroupBy == nil || list[0].Filter == nil {
		t.Fatalf("Meters gives nil group_by or filter for a meter without: %+v", list[0])
	}

	got.Aggregation, got.ValueProperty, got.GroupBy, got.Filter = tally.AggMax, "value", nil, nil
	check(t, s.UpdateMeter(ctx, a.ID, got))
	again, err := s.MeterBySlug(ctx, a.ID, "tokens")
	check(t, err)
	if again.Aggregation != tally.AggMax || again.ValueProperty != "value" || len(again.GroupBy) != 0 || len(again.Filter) != 0 ||
		!again.CreatedAt.Equal(m.CreatedAt) || again.UpdatedAt.Before(m.UpdatedAt) {
		t.Fatalf("after UpdateMeter: %+v", again)
	}
	other, err := s.MeterBySlug(ctx, b.ID, "tokens")
	check(t, err)
	if other.Aggregation != tally.AggCount {
		t.Fatalf("UpdateMeter changed another tenant's meter: %+v", other)
	}
	wantCode(t, s.UpdateMeter(ctx, a.ID, &tally.MeterDef{Slug: "nope", Event: "x", Aggregation: tally.AggCount}), tally.ENotFound, "update unknown")

	check(t, s.DeleteMeter(ctx, a.ID, "tokens"))
	wantCode(t, s.DeleteMeter(ctx, a.ID, "tokens"), tally.ENotFound, "delete twice")
	_, err = s.MeterBySlug(ctx, a.ID, "tokens")
	wantCode(t, err, tally.ENotFound, "deleted meter")
	if _, err := s.MeterBySlug(ctx, b.ID, "tokens"); err != nil {
		t.Fatalf("DeleteMeter deleted another tenant's meter: %v", err)
	}
}

func testMeterCap(t *testing.T, s tally.Store) {
	ctx := t.Context()
	tn := newTenant(t, s, "meters-cap")
	for i := range tally.MaxMetersPerTenant {
		check(t, s.CreateMeter(ctx, tn.ID, &tally.MeterDef{Slug: fmt.Sprintf("m%d", i), Event: "x", Aggregation: tally.AggCount}))
	}
	err := s.CreateMeter(ctx, tn.ID, &tally.MeterDef{Slug: "one_more", Event: "x", Aggregation: tally.AggCount})
	wantCode(t, err, tally.EInvalid, "meter past the cap")
	other := newTenant(t, s, "meters-cap-other")
	check(t, s.CreateMeter(ctx, other.ID, &tally.MeterDef{Slug: "one_more", Event: "x", Aggregation: tally.AggCount}))
}

// testMeterCapRace creates meters at once with one place left under the
// cap: exactly one may win it.
func testMeterCapRace(t *testing.T, s tally.Store) {
	ctx := t.Context()
	tn := newTenant(t, s, "meters-race")
	for i := range tally.MaxMetersPerTenant - 1 {
		check(t, s.CreateMeter(ctx, tn.ID, &tally.MeterDef{Slug: fmt.Sprintf("m%d", i), Event: "x", Aggregation: tally.AggCount}))
	}
	const racers = 8
	errs := make(chan error, racers)
	for i := range racers {
		go func() {
			errs <- s.CreateMeter(ctx, tn.ID, &tally.MeterDef{Slug: fmt.Sprintf("racer%d", i), Event: "x", Aggregation: tally.AggCount})
		}()
	}
	won := 0
	for range racers {
		err := <-errs
		switch tally.ErrorCodeOf(err) {
		case "":
			won++
		case tally.EInvalid:
		default:
			t.Errorf("a racer failed otherwise than at the cap: %v", err)
		}
	}
	list, err := s.Meters(ctx, tn.ID)
	check(t, err)
	if won != 1 || len(list) != tally.MaxMetersPerTenant {
		t.Fatalf("%d racers won the last place; the tenant has %d meters, cap %d", won, len(list), tally.MaxMetersPerTenant)
	}
}

// MeterEvents returns events of a tenant over the hours from start on that
// exercise every meter case: numbers (integer and fractional, negative,
// huge), numeric strings, missing and null props, nested and object props,
// several sources, users and plans, and events of other names.
func MeterEvents(tenantID int64, start time.Time, hours int) []tally.Event {
	props := []string{
		`{"qty": 10, "model": "a", "plan": "pro", "usage": {"input": 3, "tier": "x"}}`,
		`{"qty": 2.5, "model": "b", "plan": "free", "usage": {"input": 7}}`,
		`{"qty": "12", "model": "a", "plan": "pro"}`,
		`{"model": {"deep": 1}, "plan": "pro", "usage": {"input": -4, "tier": "y"}}`,
		`{"qty": null, "plan": "free"}`,
		`{"qty": 1e300, "model": 7, "plan": true}`,
		`{}`,
		`{"qty": -3, "model": "b", "usage": {"input": 0.5, "tier": "x"}}`,
	}
	names := []string{"llm.call", "llm.embed", "api.request", "llm.call"}
	sources := []string{"api", "web"}
	var out []tally.Event
	n := 0
	for h := range hours {
		for k := range 3 + h%4 {
			ts := start.Add(time.Duration(h)*time.Hour + time.Duration(k*13+h%7)*time.Minute)
			e := ev(tenantID, fmt.Sprintf("m-%d-%d", h, k), names[n%len(names)], fmt.Sprintf("u%d", n%5), ts)
			e.Source = sources[n%2]
			e.Value = float64((n*7)%11) - 3
			e.Props = json.RawMessage(props[n%len(props)])
			out = append(out, e)
			n++
		}
	}
	return out
}

// MeterBruteForce computes q over events in Go, event by event, as the
// contract of tally.MeterDef and tally.MeterQuery says: the oracle the
// stores' SQL is held to. Rows are keyed by MeterRowKey.
func MeterBruteForce(q tally.MeterQuery, events []tally.Event) map[string]*float64 {
	filter, ok := q.Filters()
	if !ok {
		return map[string]*float64{}
	}
	type acc struct {
		n, sum   float64
		min, max float64
		any      bool
		latest   *tally.Event
		latestV  float64
		distinct map[string]bool
	}
	accs := map[string]*acc{}
	m := q.Meter
	for i := range events {
		e := &events[i]
		if !tally.MatchName(m.Event, e.Name) || tally.IsOwnEvent(e.Name) && tally.ExcludesOwn(m.Event, filter["source"]) {
			continue
		}
		w := -1
		for j := 0; j+1 < len(q.Bounds); j++ {
			if !e.Timestamp.Before(q.Bounds[j]) && e.Timestamp.Before(q.Bounds[j+1]) {
				w = j
			}
		}
		if w < 0 {
			continue
		}
		pass := true
		for k, v := range filter {
			switch k {
			case "source":
				pass = pass && e.Source == v
			case "user_id":
				pass = pass && e.UserID == v
			default:
				s := propScalar(e.Props, k)
				pass = pass && s != nil && *s == v
			}
		}
		if !pass {
			continue
		}
		group := make([]*string, len(q.GroupBy))
		for i, g := range q.GroupBy {
			group[i] = propScalar(e.Props, g)
		}
		key := MeterRowKey(w, group)
		a := accs[key]
		if a == nil {
			a = &acc{distinct: map[string]bool{}}
			accs[key] = a
		}
		switch m.Aggregation {
		case tally.AggCount:
			a.n++
			a.any = true
		case tally.AggUniqueCount:
			if m.ValueProperty == tally.MeterValueProp {
				a.distinct[strconv.FormatFloat(e.Value, 'g', -1, 64)] = true
			} else if s := propScalar(e.Props, m.ValueProperty); s != nil {
				a.distinct[*s] = true
			}
		default:
			v, ok := e.Value, true
			if m.ValueProperty != tally.MeterValueProp {
				v, ok = propNumber(e.Props, m.ValueProperty)
			}
			if !ok {
				continue
			}
			v = tally.ClampMeterValue(v)
			if !a.any || v < a.min {
				a.min = v
			}
			if !a.any || v > a.max {
				a.max = v
			}
			a.any = true
			a.n++
			a.sum += v
			if a.latest == nil || e.Timestamp.After(a.latest.Timestamp) || e.Timestamp.Equal(a.latest.Timestamp) && e.ID > a.latest.ID {
				a.latest, a.latestV = e, v
			}
		}
	}
	out := map[string]*float64{}
	for k, a := range accs {
		var v *float64
		set := func(x float64) { v = &x }
		switch m.Aggregation {
		case tally.AggCount:
			set(a.n)
		case tally.AggUniqueCount:
			set(float64(len(a.distinct)))
		case tally.AggSum:
			set(a.sum) // 0 without a value, as count and unique_count
		case tally.AggMin:
			if a.any {
				set(a.min)
			}
		case tally.AggMax:
			if a.any {
				set(a.max)
			}
		case tally.AggAvg:
			if a.any {
				set(a.sum / a.n)
			}
		case tally.AggLatest:
			if a.any {
				set(a.latestV)
			}
		}
		out[k] = v
	}
	return out
}

// MeterRowKey names a (window, group) of a meter answer.
func MeterRowKey(window int, group []*string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d", window)
	for _, g := range group {
		if g == nil {
			b.WriteString("|null")
		} else {
			b.WriteString("|" + strconv.Quote(*g))
		}
	}
	return b.String()
}

// propAt returns the JSON at a props path, or nil.
func propAt(props json.RawMessage, path string) any {
	dec := json.NewDecoder(bytes.NewReader(props))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil
	}
	for _, k := range tally.ParsePropPath(path) {
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = obj[k]
	}
	return v
}

// propScalar is the text of a scalar prop (numbers as written), nil for
// null, objects, arrays and nothing.
func propScalar(props json.RawMessage, path string) *string {
	var s string
	switch v := propAt(props, path).(type) {
	case string:
		s = v
	case json.Number:
		s = v.String()
	case bool:
		s = strconv.FormatBool(v)
	default:
		return nil
	}
	return &s
}

func propNumber(props json.RawMessage, path string) (float64, bool) {
	n, ok := propAt(props, path).(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

// SameMeterValue reports whether two aggregates agree: both null, or equal
// within a relative 1e-9 (sums may add up in another order).
func SameMeterValue(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return math.Abs(*a-*b) <= 1e-9*math.Max(1, math.Max(math.Abs(*a), math.Abs(*b)))
}

// meterCaseDefs are meters over MeterEvents: every aggregation, on value
// and on props (flat and nested), with and without group-by and filters.
func meterCaseDefs() []tally.MeterDef {
	var defs []tally.MeterDef
	for _, agg := range tally.MeterAggregations {
		for _, vp := range []string{"value", "props.qty", "props.usage.input"} {
			if agg == tally.AggCount && vp != "value" {
				continue
			}
			if agg == tally.AggCount {
				vp = ""
			}
			for gi, gb := range [][]string{nil, {"props.model"}, {"props.plan", "props.usage.tier"}} {
				d := tally.MeterDef{Slug: "m", Event: "llm.*", Aggregation: agg, ValueProperty: vp, GroupBy: gb}
				if gi == 2 {
					d.Filter = map[string]string{"source": "api"}
				}
				defs = append(defs, d)
			}
		}
	}
	defs = append(defs,
		tally.MeterDef{Slug: "m", Event: "api.request", Aggregation: tally.AggCount, Filter: map[string]string{"props.plan": "pro"}},
		tally.MeterDef{Slug: "m", Event: "*", Aggregation: tally.AggUniqueCount, ValueProperty: "props.model", Filter: map[string]string{"user_id": "u1"}},
		tally.MeterDef{Slug: "m", Event: "llm.call", Aggregation: tally.AggSum, ValueProperty: "value", GroupBy: []string{"props.plan"}},
	)
	return defs
}

func checkMeterQuery(t *testing.T, s tally.Store, tenantID int64, q tally.MeterQuery, events []tally.Event) {
	t.Helper()
	want := MeterBruteForce(q, events)
	got := map[string]*float64{}
	err := s.QueryMeter(t.Context(), tenantID, q, func(r tally.MeterRow) error {
		k := MeterRowKey(r.Window, r.Group)
		if _, dup := got[k]; dup {
			return fmt.Errorf("row %s twice", k)
		}
		got[k] = r.Value
		return nil
	})
	check(t, err)
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s %s by %v: row %s missing (want %s)", q.Meter.Aggregation, q.Meter.ValueProperty, q.GroupBy, k, fmtVal(w))
			continue
		}
		if !SameMeterValue(g, w) {
			t.Errorf("%s %s by %v filter %v: row %s = %s, want %s", q.Meter.Aggregation, q.Meter.ValueProperty, q.GroupBy, q.Filter, k, fmtVal(g), fmtVal(w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s %s by %v: row %s = %s has no events", q.Meter.Aggregation, q.Meter.ValueProperty, q.GroupBy, k, fmtVal(g))
		}
	}
}

func fmtVal(v *float64) string {
	if v == nil {
		return "null"
	}
	return strconv.FormatFloat(*v, 'g', -1, 64)
}

func testMeterQuery(t *testing.T, s tally.Store) {
	tn := newTenant(t, s, "meters-q")
	start := pastDay().Add(-24 * time.Hour)
	events := insertNew(t, s, MeterEvents(tn.ID, start, 30)...)
	// Late events: stamped in hours already queried once.
	late := MeterEvents(tn.ID, start.Add(30*time.Minute), 5)
	for i := range late {
		late[i].EventID = "late-" + late[i].EventID
	}
	hourly := make([]time.Time, 31)
	for i := range hourly {
		hourly[i] = start.Add(time.Duration(i) * time.Hour)
	}
	uneven := []time.Time{start.Add(-time.Hour), start.Add(5 * time.Minute), start.Add(7 * time.Hour), start.Add(23 * time.Hour), start.Add(48 * time.Hour)}
	total := []time.Time{start, start.Add(30 * time.Hour)}
	for _, d := range meterCaseDefs() {
		for _, bounds := range [][]time.Time{hourly, uneven, total} {
			checkMeterQuery(t, s, tn.ID, tally.MeterQuery{Meter: d, Bounds: bounds, GroupBy: d.GroupBy}, events)
		}
	}
	events = append(events, insertNew(t, s, late...)...)
	for _, d := range meterCaseDefs() {
		q := tally.MeterQuery{Meter: d, Bounds: uneven, GroupBy: d.GroupBy, Filter: map[string]string{"source": "web"}}
		checkMeterQuery(t, s, tn.ID, q, events)
		q = tally.MeterQuery{Meter: d, Bounds: hourly, Filter: map[string]string{"props.plan": "pro"}}
		checkMeterQuery(t, s, tn.ID, q, events)
	}
	err := s.QueryMeter(t.Context(), tn.ID, tally.MeterQuery{Meter: meterCaseDefs()[0], Bounds: []time.Time{start, start}}, func(tally.MeterRow) error { return nil })
	wantCode(t, err, tally.EInvalid, "bounds not ascending")
}

func testMeterQueryTenants(t *testing.T, s tally.Store) {
	a, b := newTenant(t, s, "meters-ta"), newTenant(t, s, "meters-tb")
	start := pastDay()
	insertNew(t, s, MeterEvents(a.ID, start, 4)...)
	d := tally.MeterDef{Slug: "m", Event: "*", Aggregation: tally.AggCount}
	rows := 0
	check(t, s.QueryMeter(t.Context(), b.ID, tally.MeterQuery{Meter: d, Bounds: []time.Time{start, start.Add(24 * time.Hour)}},
		func(tally.MeterRow) error { rows++; return nil }))
	if rows != 0 {
		t.Fatalf("tenant b's query gave %d rows of tenant a's events", rows)
	}
}
