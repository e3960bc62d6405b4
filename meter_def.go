package tally

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Meters: what a tenant measures, defined per tenant and computed from the
// raw event log at query time, so a meter defined today answers for any
// past period the log still holds.
//
// The type is MeterDef, not Meter: tally.Meter is the quota gate of the
// ingest pipeline (usage.Service), a different thing.

// MeterAggregation is how a meter reduces the events of a window.
type MeterAggregation string

// The aggregations of a meter. Over a window (and group) with no event
// that has a numeric value:
//   - count, sum and unique_count are 0;
//   - min, max, avg and latest are null (no value), never 0.
const (
	AggCount       MeterAggregation = "count"        // the matching events
	AggSum         MeterAggregation = "sum"          // the sum of the numeric values
	AggUniqueCount MeterAggregation = "unique_count" // the distinct values (exact, not an estimate)
	AggMin         MeterAggregation = "min"          // the smallest numeric value
	AggMax         MeterAggregation = "max"          // the largest numeric value
	AggAvg         MeterAggregation = "avg"          // the mean of the numeric values
	AggLatest      MeterAggregation = "latest"       // the numeric value of the last event (by timestamp, then id)
)

// MeterAggregations lists every aggregation, in documentation order.
var MeterAggregations = []MeterAggregation{AggCount, AggSum, AggUniqueCount, AggMin, AggMax, AggAvg, AggLatest}

// EmptyIsZero reports whether the aggregation of no values is 0 (count,
// sum, unique_count) rather than null (min, max, avg, latest).
func (a MeterAggregation) EmptyIsZero() bool {
	return a == AggCount || a == AggSum || a == AggUniqueCount
}

// Limits of meters.
const (
	MaxMetersPerTenant = 100 // custom meters per tenant (built-ins not counted)
	MaxMeterGroupBy    = 5   // group_by paths of a meter
	MaxMeterFilters    = 10  // filter entries of a meter or a query
	MaxMeterFilterLen  = 256 // bytes of a filter value
	MaxMeterDescLen    = 500 // bytes of a description
	MaxMeterGroups     = 1000
	MaxMeterWindows    = 10000
	// MeterValueProp is the value_property that names the event's value.
	MeterValueProp = "value"
)

// MeterDef defines one meter of a tenant. Event is an exact event name or a
// prefix ending in "*". ValueProperty is "value" (the event's value) or a
// props path ("props.tokens", "props.usage.input"), required except for
// count. For unique_count a props value is counted by its text (strings,
// numbers and booleans as JSON gives them); for the other aggregations only
// JSON numbers count (a string "12" is not a number) and each is clamped to
// ±MaxValue like event values. GroupBy lists props paths whose scalar
// values split the result; a missing, null, object or array value groups
// as null. Filter keeps the events whose props path (a scalar, compared by
// its text), "source" or "user_id" equals the given string.
//
// Built-in meters (BuiltIn) come from the usage rules; they are read-only.
type MeterDef struct {
	Slug          string            `json:"slug"`
	Event         string            `json:"event"`
	Aggregation   MeterAggregation  `json:"aggregation"`
	ValueProperty string            `json:"value_property,omitempty"`
	GroupBy       []string          `json:"group_by"`
	Filter        map[string]string `json:"filter"`
	Description   string            `json:"description"`
	BuiltIn       bool              `json:"built_in"`
	CreatedAt     time.Time         `json:"created_at"`
	UpdatedAt     time.Time         `json:"updated_at"`
}

// Validate checks the definition and names every field at fault.
func (m *MeterDef) Validate() error {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	if !ValidMetric(m.Slug) {
		bad("slug", "must match ^[a-z0-9_]{1,64}$")
	}
	if m.Event == "" || !ValidEventPattern(m.Event) {
		bad("event", "must be an event name or a prefix ending in *")
	}
	if !slices.Contains(MeterAggregations, m.Aggregation) {
		bad("aggregation", "must be one of count, sum, unique_count, min, max, avg, latest")
	}
	switch {
	case m.ValueProperty == "" && m.Aggregation != AggCount && m.Aggregation != "":
		bad("value_property", "is required for "+string(m.Aggregation)+": value or a props path such as props.tokens")
	case m.ValueProperty != "" && m.ValueProperty != MeterValueProp && ParsePropPath(m.ValueProperty) == nil:
		bad("value_property", "must be value or a props path such as props.tokens ("+msgPropPath+")")
	}
	if len(m.GroupBy) > MaxMeterGroupBy {
		bad("group_by", fmt.Sprintf("at most %d paths", MaxMeterGroupBy))
	}
	for i, g := range m.GroupBy {
		if ParsePropPath(g) == nil {
			bad(fmt.Sprintf("group_by[%d]", i), "must be a props path such as props.plan ("+msgPropPath+")")
		} else if slices.Index(m.GroupBy, g) != i {
			bad(fmt.Sprintf("group_by[%d]", i), "is listed twice")
		}
	}
	if fe := checkMeterFilter("filter", m.Filter); fe != nil {
		errs = append(errs, fe...)
	}
	if len(m.Description) > MaxMeterDescLen {
		bad("description", fmt.Sprintf("at most %d bytes", MaxMeterDescLen))
	} else if msg := CheckText(m.Description, MaxMeterDescLen, ""); msg != "" {
		bad("description", msg)
	}
	if errs != nil {
		return Invalid("invalid meter", errs...)
	}
	return nil
}

const msgPropPath = "props. then 1 to 10 dot-separated keys of [A-Za-z0-9_-]"

// ParsePropPath returns the keys of a props path ("props.usage.input" →
// [usage input]), or nil when s is not one: "props." then 1 to
// MaxPropsDepth keys of 1-64 [A-Za-z0-9_-].
func ParsePropPath(s string) []string {
	rest, ok := strings.CutPrefix(s, "props.")
	if !ok {
		return nil
	}
	keys := strings.Split(rest, ".")
	if len(keys) > 10 {
		return nil
	}
	for _, k := range keys {
		if len(k) == 0 || len(k) > 64 {
			return nil
		}
		for i := 0; i < len(k); i++ {
			if c := k[i]; !eventNameChar(c) {
				return nil
			}
		}
	}
	return keys
}

// checkMeterFilter checks filter entries: keys "source", "user_id" or
// props paths; values short, printable strings.
func checkMeterFilter(field string, f map[string]string) []FieldError {
	var errs []FieldError
	if len(f) > MaxMeterFilters {
		return []FieldError{{Field: field, Message: fmt.Sprintf("at most %d entries", MaxMeterFilters)}}
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		name := field + "[" + k + "]"
		switch {
		case k != "source" && k != "user_id" && ParsePropPath(k) == nil:
			errs = append(errs, FieldError{Field: name, Message: "filter keys are source, user_id or props paths such as props.plan"})
		case len(f[k]) > MaxMeterFilterLen:
			errs = append(errs, FieldError{Field: name, Message: fmt.Sprintf("at most %d bytes", MaxMeterFilterLen)})
		default:
			if msg := CheckText(f[k], MaxMeterFilterLen, ""); msg != "" {
				errs = append(errs, FieldError{Field: name, Message: msg})
			}
		}
	}
	return errs
}

// MeterPatch is a change to a meter: the fields set are replaced.
type MeterPatch struct {
	Event         *string            `json:"event"`
	Aggregation   *MeterAggregation  `json:"aggregation"`
	ValueProperty *string            `json:"value_property"`
	GroupBy       *[]string          `json:"group_by"`
	Filter        *map[string]string `json:"filter"`
	Description   *string            `json:"description"`
}

// Apply returns m with the patch applied (not validated).
func (p MeterPatch) Apply(m MeterDef) MeterDef {
	if p.Event != nil {
		m.Event = *p.Event
	}
	if p.Aggregation != nil {
		m.Aggregation = *p.Aggregation
	}
	if p.ValueProperty != nil {
		m.ValueProperty = *p.ValueProperty
	}
	if p.GroupBy != nil {
		m.GroupBy = *p.GroupBy
	}
	if p.Filter != nil {
		m.Filter = *p.Filter
	}
	if p.Description != nil {
		m.Description = *p.Description
	}
	return m
}

// BuiltinMeters returns the read-only meters the usage rules define: one
// per metric of a rule (count, or sum of value for sum rules), so every
// usage metric can be queried as a meter. When several rules feed one
// metric only the first is listed. A built-in meter is computed from the
// log like any meter: it counts events (or sums their raw values) and does
// not add explicit usage.increment amounts, which the usage reads
// (rollup.Reports.Usage, quotas) do.
func BuiltinMeters(rules UsageRules) []MeterDef {
	var out []MeterDef
	for _, r := range rules {
		if slices.ContainsFunc(out, func(m MeterDef) bool { return m.Slug == r.Metric }) {
			continue
		}
		m := MeterDef{Slug: r.Metric, Event: r.Event, Aggregation: AggCount, BuiltIn: true,
			GroupBy: []string{}, Filter: map[string]string{},
			Description: "built-in: the usage rule of metric " + r.Metric}
		if r.Sum {
			m.Aggregation, m.ValueProperty = AggSum, MeterValueProp
		}
		out = append(out, m)
	}
	return out
}

// MeterWindow is the length of a query's windows.
type MeterWindow string

// The windows of a meter query, in the caller's time zone.
const (
	WindowNone   MeterWindow = "" // one total over the whole range
	WindowMinute MeterWindow = "minute"
	WindowHour   MeterWindow = "hour"
	WindowDay    MeterWindow = "day"
	WindowMonth  MeterWindow = "month"
)

// ParseMeterWindow checks a window name ("" is none).
func ParseMeterWindow(s string) (MeterWindow, error) {
	switch w := MeterWindow(s); w {
	case WindowNone, WindowMinute, WindowHour, WindowDay, WindowMonth:
		return w, nil
	}
	return "", Invalid("invalid window", FieldError{Field: "window", Message: "must be minute, hour, day or month"})
}

// MeterWindows returns the starts of the windows of w in loc that cover
// [from, to), and the end of the last: window i is [starts[i],
// starts[i+1]). Days and months step by local midnights
// (time.Date(y, m, d+1, …)), so a day across a daylight-saving change lasts
// 23 or 25 hours; minutes and hours step in elapsed time from the local
// start of the window holding from. The first window may start before from
// and the last end after to. EInvalid past MaxMeterWindows windows.
func MeterWindows(w MeterWindow, from, to time.Time, loc *time.Location) ([]time.Time, error) {
	if w == WindowNone {
		return []time.Time{from.UTC(), to.UTC()}, nil
	}
	lf := from.In(loc)
	y, mo, d := lf.Date()
	var next func(i int) time.Time
	switch w {
	case WindowMinute, WindowHour:
		step := time.Minute
		if w == WindowHour {
			step = time.Hour
		}
		_, off := lf.Zone()
		o := time.Duration(off) * time.Second
		first := from.Add(o).Truncate(step).Add(-o)
		next = func(i int) time.Time { return first.Add(time.Duration(i) * step) }
	case WindowDay:
		next = func(i int) time.Time { return time.Date(y, mo, d+i, 0, 0, 0, 0, loc) }
	case WindowMonth:
		next = func(i int) time.Time { return time.Date(y, mo+time.Month(i), 1, 0, 0, 0, 0, loc) }
	default:
		_, err := ParseMeterWindow(string(w))
		return nil, err
	}
	var out []time.Time
	for i := 0; ; i++ {
		t := next(i).UTC()
		out = append(out, t)
		if !t.Before(to) && i > 0 {
			return out, nil
		}
		if i > MaxMeterWindows {
			return nil, Invalid("too many windows", FieldError{Field: "window", Message: fmt.Sprintf("at most %d windows; use a longer window or a shorter range", MaxMeterWindows)})
		}
	}
}

// MeterQuery is what a store computes for a meter: the aggregation of a
// tenant's events matching the meter (event pattern and filter) and Filter,
// per window Bounds[i] <= timestamp < Bounds[i+1] (row Window i) and per
// distinct tuple of the GroupBy paths' values.
type MeterQuery struct {
	Meter   MeterDef
	Bounds  []time.Time       // window bounds, ascending, at least two
	GroupBy []string          // props paths
	Filter  map[string]string // ANDed with Meter.Filter
	// Skip, when set (one per window), names windows not to compute: a
	// skipped window gives no row and reads no event.
	Skip []bool
	// SkipMetric, when set, leaves out the events whose CountedMetric it
	// is (increments of it, events settled for it): what a quota on the
	// meter counts otherwise (see MeterDef.QuotaAmount). Stores honour it
	// in MeterEvents; the rollups do not keep it.
	SkipMetric string
}

// EventPrefixRange returns the bounds of the event names a pattern
// selects: [lo, hi) for a prefix ("" and "" for "*", every name), or
// lo = the exact name and hi = "". Event names are ASCII below 0x7f, so
// prefix + "\x7f" bounds every name that starts with prefix.
func EventPrefixRange(pattern string) (lo, hi string, prefix bool) {
	p, ok := strings.CutSuffix(pattern, "*")
	if !ok {
		return pattern, "", false
	}
	if p == "" {
		return "", "", true
	}
	return p, p + "\x7f", true
}

// Plan checks the bounds (EInvalid unless they ascend strictly) and
// returns the merged filter with its keys sorted; ok is false when the
// query can match nothing (fewer than two bounds, or a filter key set to
// two values), so a store need not ask its database.
func (q *MeterQuery) Plan() (filter map[string]string, keys []string, ok bool, err error) {
	for i := 1; i < len(q.Bounds); i++ {
		if !q.Bounds[i-1].Before(q.Bounds[i]) {
			return nil, nil, false, Invalid("bounds must ascend", FieldError{Field: "bounds", Message: "must ascend strictly"})
		}
	}
	if q.Skip != nil && len(q.Skip) != len(q.Bounds)-1 {
		return nil, nil, false, Internal(fmt.Errorf("meter query of %d windows skips %d", len(q.Bounds)-1, len(q.Skip)))
	}
	filter, ok = q.Filters()
	if !ok || len(q.Bounds) < 2 {
		return nil, nil, false, nil
	}
	for k := range filter {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return filter, keys, true, nil
}

// Ranges returns the windows to compute: for each one not skipped, its
// index and bounds.
func (q *MeterQuery) Ranges() (index []int, lo, hi []time.Time) {
	for i := 0; i+1 < len(q.Bounds); i++ {
		if q.Skip != nil && q.Skip[i] {
			continue
		}
		index = append(index, i)
		lo, hi = append(lo, q.Bounds[i]), append(hi, q.Bounds[i+1])
	}
	return index, lo, hi
}

// Filters returns the meter's filter and the query's, merged: both must
// hold, so a key both set to different values matches nothing (ok false).
func (q *MeterQuery) Filters() (f map[string]string, ok bool) {
	f = map[string]string{}
	for k, v := range q.Meter.Filter {
		f[k] = v
	}
	for k, v := range q.Filter {
		if old, set := f[k]; set && old != v {
			return nil, false
		}
		f[k] = v
	}
	return f, true
}

// MeterRow is one aggregate a store returns: the window index, the group's
// values (nil: null) in GroupBy order, and the aggregate (nil: no value).
type MeterRow struct {
	Window int
	Group  []*string
	Value  *float64
}

// MeterStore keeps a tenant's meters and computes them from the log.
type MeterStore interface {
	// CreateMeter stores a tenant's meter and sets CreatedAt and UpdatedAt.
	// EConflict when the slug is taken; the EInvalid of a tenant at
	// MaxMetersPerTenant, decided in the same transaction as the insert.
	CreateMeter(ctx context.Context, tenantID int64, m *MeterDef) error
	// Meters lists a tenant's meters by slug.
	Meters(ctx context.Context, tenantID int64) ([]MeterDef, error)
	// MeterBySlug returns one of a tenant's meters.
	MeterBySlug(ctx context.Context, tenantID int64, slug string) (*MeterDef, error)
	// UpdateMeter replaces every field of the tenant's meter m.Slug but
	// CreatedAt, and sets UpdatedAt.
	UpdateMeter(ctx context.Context, tenantID int64, m *MeterDef) error
	// DeleteMeter deletes one of a tenant's meters.
	DeleteMeter(ctx context.Context, tenantID int64, slug string) error
	// QueryMeter aggregates the tenant's raw events for q in the database
	// and calls fn once for each (window, group) that has matching events
	// (its value nil when none of them has a value to aggregate), in no
	// particular order. An error from fn ends the query and is returned as
	// is. EInvalid unless q.Bounds ascend strictly.
	QueryMeter(ctx context.Context, tenantID int64, q MeterQuery, fn func(MeterRow) error) error
}

// ClampMeterValue clamps a props number to ±MaxValue, as the stores do.
func ClampMeterValue(v float64) float64 { return math.Max(-MaxValue, math.Min(MaxValue, v)) }

// MeterPoint is one value of a meter query's answer.
type MeterPoint struct {
	WindowStart time.Time          `json:"window_start"`
	WindowEnd   time.Time          `json:"window_end"`
	Value       *float64           `json:"value"`
	GroupBy     map[string]*string `json:"group_by"`
}

// MeterAnswer collects a store's rows for one query into its answer,
// refusing (ETooMany) past MaxMeterGroups distinct groups.
type MeterAnswer struct {
	nWindows int
	index    map[string]int // group key → position in groups
	groups   [][]*string
	values   map[[2]int]*float64 // (group, window) → value
}

// NewMeterAnswer starts an answer of n windows.
func NewMeterAnswer(n int) *MeterAnswer {
	return &MeterAnswer{nWindows: n, index: map[string]int{}, values: map[[2]int]*float64{}}
}

func groupKey(g []*string) string {
	var b strings.Builder
	for _, v := range g {
		if v == nil {
			b.WriteString("n")
		} else {
			fmt.Fprintf(&b, "s%d:%s", len(*v), *v)
		}
	}
	return b.String()
}

// Add takes one row (QueryMeter's fn).
func (a *MeterAnswer) Add(r MeterRow) error {
	k := groupKey(r.Group)
	gi, ok := a.index[k]
	if !ok {
		if len(a.groups) == MaxMeterGroups {
			return &Error{Code: ETooMany, Message: "too many groups",
				Fields: []FieldError{{Field: "group_by", Message: fmt.Sprintf("the query has more than %d groups; group by fewer paths or filter", MaxMeterGroups)}}}
		}
		gi = len(a.groups)
		a.index[k] = gi
		a.groups = append(a.groups, slices.Clone(r.Group))
	}
	if r.Window < 0 || r.Window >= a.nWindows {
		return Internal(fmt.Errorf("meter row of window %d out of %d", r.Window, a.nWindows))
	}
	a.values[[2]int{gi, r.Window}] = r.Value
	return nil
}

// Points returns the answer: for each group (sorted by its values, null
// first) every window in order, empty ones valued as agg gives nothing (0
// or null). windows are the n+1 bounds of the windows shown; groupBy names
// the group values. With no group and no row, the one group is the empty
// one, so every window is still present.
func (a *MeterAnswer) Points(agg MeterAggregation, windows []time.Time, groupBy []string) []MeterPoint {
	if len(a.groups) == 0 {
		a.groups = append(a.groups, make([]*string, len(groupBy)))
	}
	order := make([]int, len(a.groups))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int {
		gx, gy := a.groups[x], a.groups[y]
		for i := range gx {
			switch {
			case gx[i] == nil && gy[i] == nil:
			case gx[i] == nil:
				return -1
			case gy[i] == nil:
				return 1
			default:
				if c := strings.Compare(*gx[i], *gy[i]); c != 0 {
					return c
				}
			}
		}
		return 0
	})
	out := make([]MeterPoint, 0, len(order)*a.nWindows)
	for _, gi := range order {
		g := a.groups[gi]
		for w := 0; w < a.nWindows; w++ {
			p := MeterPoint{WindowStart: windows[w], WindowEnd: windows[w+1], GroupBy: map[string]*string{}}
			for i, path := range groupBy {
				p.GroupBy[path] = g[i]
			}
			p.Value = a.values[[2]int{gi, w}]
			if p.Value == nil && agg.EmptyIsZero() {
				zero := 0.0
				p.Value = &zero
			}
			out = append(out, p)
		}
	}
	return out
}

// MeterQueryInput is a query of one meter: [From, To) in windows of Window
// in Loc (WindowNone: one total), split by GroupBy (props paths among the
// meter's group_by) and narrowed by Filter (as MeterDef.Filter, ANDed).
type MeterQueryInput struct {
	From, To time.Time
	Window   MeterWindow
	Loc      *time.Location
	GroupBy  []string
	Filter   map[string]string
}

// Validate checks the query against its meter m.
func (in *MeterQueryInput) Validate(m *MeterDef) error {
	var errs []FieldError
	if _, err := ParseMeterWindow(string(in.Window)); err != nil {
		errs = append(errs, FieldError{Field: "window", Message: "must be minute, hour, day or month"})
	}
	if !in.From.Before(in.To) {
		errs = append(errs, FieldError{Field: "from", Message: "must be before to"})
	}
	for _, g := range in.GroupBy {
		if !slices.Contains(m.GroupBy, g) {
			msg := "this meter has no group_by"
			if len(m.GroupBy) > 0 {
				msg = "must be among the meter's group_by: " + strings.Join(m.GroupBy, ", ")
			}
			errs = append(errs, FieldError{Field: "group_by", Message: g + ": " + msg})
		}
	}
	errs = append(errs, checkMeterFilter("filter", in.Filter)...)
	if errs != nil {
		return Invalid("invalid meter query", errs...)
	}
	return nil
}

// MeterResult is the answer of a meter query: every window of every group
// (see MeterAnswer.Points).
type MeterResult struct {
	Meter  string       `json:"meter"`
	Window MeterWindow  `json:"window,omitempty"`
	From   time.Time    `json:"from"`
	To     time.Time    `json:"to"`
	TZ     string       `json:"tz"`
	Data   []MeterPoint `json:"data"`
}
