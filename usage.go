package tally

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"time"
)

var metricRE = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// ValidMetric reports whether s is a valid usage metric name.
func ValidMetric(s string) bool { return metricRE.MatchString(s) }

// UsageRule maps events to a daily usage metric. Event is an exact name, a
// prefix ending in "*", or "*" for every event; tally's own events count
// only for a rule that names them ("tally.*", see SelectsEvent). A rule counts matching
// events, or with Sum adds up their values (each rounded to an integer).
type UsageRule struct {
	Event  string `json:"event"`
	Metric string `json:"metric"`
	Sum    bool   `json:"sum,omitempty"`
}

// DefaultUsageRules returns (a fresh copy of) the rules in force unless
// configured otherwise. Explicit increments (usage.increment events) always
// add their amount to the metric they name, whatever the rules say.
func DefaultUsageRules() UsageRules { return slices.Clone(defaultUsageRules) }

var defaultUsageRules = UsageRules{
	{Event: EventAPIRequest, Metric: "api_requests_daily"},
	{Event: "builder.generate.completed", Metric: "builds_daily"},
	{Event: "files.uploaded", Metric: "file_uploads_daily"},
	{Event: "*", Metric: "events_daily"},
}

// UsageRules is an ordered rule set. Every matching rule applies.
type UsageRules []UsageRule

// Validate checks every rule.
func (rs UsageRules) Validate() error {
	for i, r := range rs {
		if r.Event == "" || !ValidMetric(r.Metric) {
			return Errorf(EInvalid, "usage rule %d: needs an event pattern and a metric matching ^[a-z0-9_]{1,64}$", i)
		}
	}
	return nil
}

// Amount is an increment of one metric.
type Amount struct {
	Metric string
	N      int64
}

// MaxAmount is the largest amount one event adds to a metric (1 TiB when
// the value is a byte count).
const MaxAmount = 1 << 40

// roundValue is what one event's value adds to a sum rule's metric: the
// value rounded to a whole number, and clamped to [0, MaxAmount], so that
// usage only grows and a huge value cannot overflow a counter. The SQL
// aggregates (HourRow.SumRounded) apply the same clamp.
func roundValue(v float64) int64 {
	switch {
	case !(v > 0): // also NaN
		return 0
	case v >= MaxAmount:
		return MaxAmount
	}
	return int64(math.Round(v))
}

// Apply returns the metric increments one event gives.
func (rs UsageRules) Apply(e *Event) []Amount {
	var out []Amount
	if e.Name == EventUsageIncrement {
		if m := UsageMetricOf(e.Props); m != "" {
			out = append(out, Amount{m, roundValue(e.Value)})
		}
	}
	for _, r := range rs {
		if SelectsEvent(r.Event, e.Name) {
			n := int64(1)
			if r.Sum {
				n = roundValue(e.Value)
			}
			out = append(out, Amount{r.Metric, n})
		}
	}
	return out
}

// ApplyRows returns the metric totals that aggregated rows give; it agrees
// with Apply summed over the same events.
func (rs UsageRules) ApplyRows(rows []HourRow) map[string]int64 {
	out := map[string]int64{}
	for _, row := range rows {
		if row.Event == EventUsageIncrement && row.Metric != "" {
			out[row.Metric] += row.SumRounded
		}
		for _, r := range rs {
			if SelectsEvent(r.Event, row.Event) {
				if r.Sum {
					out[r.Metric] += row.SumRounded
				} else {
					out[r.Metric] += row.Count
				}
			}
		}
	}
	return out
}

// Metrics lists the metrics the rules can produce, in rule order.
func (rs UsageRules) Metrics() []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen[r.Metric] {
			seen[r.Metric] = true
			out = append(out, r.Metric)
		}
	}
	return out
}

// UsageMetricOf returns the metric a usage.increment event's props name.
func UsageMetricOf(props json.RawMessage) string {
	var p struct {
		Metric string `json:"metric"`
	}
	if json.Unmarshal(props, &p) != nil || !ValidMetric(p.Metric) {
		return ""
	}
	return p.Metric
}

// Quota is a daily limit on one metric. A soft quota only reports and
// alerts; an enforced one rejects what would pass the limit.
type Quota struct {
	Metric   string `json:"metric"`
	Limit    int64  `json:"limit"`
	Enforced bool   `json:"enforced"`
}

// Validate checks a quota override: a valid metric name and a limit of 0
// or more. A broken rule is an EInvalid *Error naming the fields.
func (q Quota) Validate() error {
	var bad []FieldError
	if !ValidMetric(q.Metric) {
		bad = append(bad, FieldError{Field: "metric", Message: "must match ^[a-z0-9_]{1,64}$"})
	}
	if q.Limit < 0 {
		bad = append(bad, FieldError{Field: "limit", Message: "must be 0 or more"})
	}
	if bad != nil {
		return Invalid("invalid quota", bad...)
	}
	return nil
}

// QuotaStatus is a quota with the current usage of its period.
type QuotaStatus struct {
	Metric    string    `json:"metric"`
	Current   int64     `json:"current"`
	Limit     int64     `json:"limit"`
	Remaining int64     `json:"remaining"`
	Exceeded  bool      `json:"exceeded"`
	Enforced  bool      `json:"enforced"`
	Period    string    `json:"period"`
	ResetsAt  time.Time `json:"resets_at"`
}

// NewQuotaStatus computes the status of q at usage current in the UTC day
// that contains now.
func NewQuotaStatus(q Quota, current int64, now time.Time) QuotaStatus {
	return QuotaStatus{
		Metric:    q.Metric,
		Current:   current,
		Limit:     q.Limit,
		Remaining: max(q.Limit-current, 0),
		Exceeded:  current >= q.Limit,
		Enforced:  q.Enforced,
		Period:    "day",
		ResetsAt:  DayStart(now).Add(24 * time.Hour),
	}
}

// DayStart returns the start of the UTC day containing t.
func DayStart(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// HourStart returns the start of the UTC hour containing t.
func HourStart(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// BucketMetrics applies the rules to aggregated rows bucket by bucket and
// returns the non-zero metric values, ordered by bucket start and metric.
func (rs UsageRules) BucketMetrics(rows []HourRow) []MetricPoint {
	byStart := map[time.Time][]HourRow{}
	var starts []time.Time
	for _, r := range rows {
		if _, ok := byStart[r.Start]; !ok {
			starts = append(starts, r.Start)
		}
		byStart[r.Start] = append(byStart[r.Start], r)
	}
	slices.SortFunc(starts, func(a, b time.Time) int { return a.Compare(b) })
	var out []MetricPoint
	for _, s := range starts {
		m := rs.ApplyRows(byStart[s])
		names := make([]string, 0, len(m))
		for k := range m {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			if m[k] != 0 {
				out = append(out, MetricPoint{Start: s, Metric: k, Value: m[k]})
			}
		}
	}
	return out
}

// Meter counts the usage of committed events and gates events by enforced
// quotas. Ingestion calls Admit before the write and Settle after it.
type Meter interface {
	// Admit reserves, atomically per metric, the usage that events would
	// add to metrics with an enforced quota. It returns per event nil, or an
	// ERateLimited error when that event would pass a limit (it then
	// reserves nothing and must not be written).
	Admit(ctx context.Context, events []Event) ([]error, *Reservation)
	// Settle counts the usage of inserted events, releases what r reserved
	// for events that were not inserted (duplicates; every event when the
	// write failed: inserted is nil) and fires quota alerts.
	Settle(ctx context.Context, events []Event, inserted []bool, r *Reservation)
}

// Reservation is what Admit reserved, per event.
type Reservation struct {
	Amounts [][]Amount
}

// RollupBucket names the rollup bucket of length d, "hour" or "day" (the
// suffix of each backend's rollup tables and the name of their time
// column); ok is false for any other length.
func RollupBucket(d time.Duration) (name string, ok bool) {
	switch d {
	case time.Hour:
		return "hour", true
	case 24 * time.Hour:
		return "day", true
	}
	return "", false
}
