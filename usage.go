package tally

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

// RoundAmount is what one event's value adds to a sum rule's metric (or
// a quota on a sum meter): the value rounded to a whole number, and
// clamped to [0, MaxAmount], so that usage only grows and a huge value
// cannot overflow a counter. The SQL aggregates (HourRow.SumRounded)
// apply the same clamp.
func RoundAmount(v float64) int64 {
	switch {
	case !(v > 0): // also NaN
		return 0
	case v >= MaxAmount:
		return MaxAmount
	}
	return int64(math.Round(v))
}

// Apply returns the metric increments one event gives. An event settled
// for a metric (Event.Settled) gives nothing to that metric by the rules.
func (rs UsageRules) Apply(e *Event) []Amount {
	var out []Amount
	if e.Name == EventUsageIncrement {
		if m := UsageMetricOf(e.Props); m != "" {
			out = append(out, Amount{m, RoundAmount(e.Value)})
		}
	}
	for _, r := range rs {
		if SelectsEvent(r.Event, e.Name) && (e.Settled != r.Metric || e.Name == EventUsageIncrement) {
			n := int64(1)
			if r.Sum {
				n = RoundAmount(e.Value)
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
			// The metric of a row of other events names the metric they
			// were settled for (Event.Settled): counted by the consume.
			if SelectsEvent(r.Event, row.Event) && (row.Event == EventUsageIncrement || row.Metric != r.Metric) {
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

// Quota periods: a quota's limit applies to each period in turn, and its
// usage starts again from 0 when the next period starts. Calendar periods
// (day, week from Monday, month) and billing periods follow the tenant's
// time zone, stepping by local midnights, so a DST day has 23 or 25 hours.
const (
	PeriodDay     = "day"
	PeriodWeek    = "week"
	PeriodMonth   = "month"
	PeriodBilling = "billing" // monthly from the quota's AnchorDay
)

// Quota is a limit on one metric per period. A soft quota only reports and
// alerts; an enforced one rejects what would pass the limit.
//
// A quota set over the API is a full replacement: a field left out takes
// its default (Period "day", Enforced false), never the previous value.
type Quota struct {
	Metric   string `json:"metric"`
	Limit    int64  `json:"limit"`
	Enforced bool   `json:"enforced"`
	// Period is PeriodDay ("" means day), PeriodWeek, PeriodMonth or
	// PeriodBilling.
	Period string `json:"period"`
	// AnchorDay is the day of the month (1–31) a billing period starts
	// on; a month shorter than it starts on its last day. 0 for the
	// other periods.
	AnchorDay int `json:"anchor_day,omitempty"`
	// Thresholds are the percentages of the period's allowance whose first
	// crossing in a period is announced (webhook, audit, metric), in
	// ascending order; empty means DefaultThresholds.
	Thresholds []int `json:"thresholds,omitempty"`
}

// DefaultThresholds are the alert thresholds of a quota that names none.
var DefaultThresholds = []int{80, 100}

// MaxThresholds is how many alert thresholds a quota may have.
const MaxThresholds = 10

// AlertThresholds returns q's thresholds, DefaultThresholds when unset.
func (q Quota) AlertThresholds() []int {
	if len(q.Thresholds) == 0 {
		return DefaultThresholds
	}
	return q.Thresholds
}

// FormatThresholds and ParseThresholds are the stores' form of
// Quota.Thresholds: comma-separated percentages, "" for none.
func FormatThresholds(t []int) string {
	parts := make([]string, len(t))
	for i, v := range t {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

// ParseThresholds reads FormatThresholds.
func ParseThresholds(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("quota thresholds %q: %w", s, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// Validate checks a quota override: a valid metric name, a limit of 0 or
// more, a known period, and an anchor day of 1–31 with the billing period
// only. A broken rule is an EInvalid *Error naming the fields.
func (q Quota) Validate() error {
	var bad []FieldError
	if !ValidMetric(q.Metric) {
		bad = append(bad, FieldError{Field: "metric", Message: "must match ^[a-z0-9_]{1,64}$"})
	}
	if q.Limit < 0 {
		bad = append(bad, FieldError{Field: "limit", Message: "must be 0 or more"})
	}
	switch q.Period {
	case "", PeriodDay, PeriodWeek, PeriodMonth:
		if q.AnchorDay != 0 {
			bad = append(bad, FieldError{Field: "anchor_day", Message: "only a billing period has an anchor day"})
		}
	case PeriodBilling:
		if q.AnchorDay < 1 || q.AnchorDay > 31 {
			bad = append(bad, FieldError{Field: "anchor_day", Message: "must be a day of the month, 1 to 31"})
		}
	default:
		bad = append(bad, FieldError{Field: "period", Message: "must be day, week, month or billing"})
	}
	if len(q.Thresholds) > MaxThresholds {
		bad = append(bad, FieldError{Field: "thresholds", Message: fmt.Sprintf("at most %d", MaxThresholds)})
	}
	for i, v := range q.Thresholds {
		switch {
		case v < 1 || v > 1000:
			bad = append(bad, FieldError{Field: fmt.Sprintf("thresholds[%d]", i), Message: "must be a percentage from 1 to 1000"})
		case i > 0 && v <= q.Thresholds[i-1]:
			bad = append(bad, FieldError{Field: fmt.Sprintf("thresholds[%d]", i), Message: "must be above the one before (ascending, no repeats)"})
		}
	}
	if bad != nil {
		return Invalid("invalid quota", bad...)
	}
	return nil
}

// PeriodOf returns the period name of q, "day" when unset.
func (q Quota) PeriodOf() string {
	if q.Period == "" {
		return PeriodDay
	}
	return q.Period
}

// PeriodAt returns the start and end of q's period that contains t, in
// loc (nil: UTC): local midnights, so that a day across a DST change has
// 23 or 25 hours. Weeks start on Monday. A billing period starts on the
// anchor day of each month, or the month's last day when it is shorter
// (anchor 31: January 31, February 28 or 29, March 31, …).
func (q Quota) PeriodAt(t time.Time, loc *time.Location) (start, end time.Time) {
	if loc == nil {
		loc = time.UTC
	}
	l := t.In(loc)
	y, m, d := l.Date()
	switch q.PeriodOf() {
	case PeriodWeek:
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		start = time.Date(y, m, d-back, 0, 0, 0, 0, loc)
		end = time.Date(y, m, d-back+7, 0, 0, 0, 0, loc)
	case PeriodMonth:
		start = time.Date(y, m, 1, 0, 0, 0, 0, loc)
		end = time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	case PeriodBilling:
		start = anchorIn(y, m, q.AnchorDay, loc)
		if l.Before(start) {
			end = start
			start = anchorIn(y, m-1, q.AnchorDay, loc)
		} else {
			end = anchorIn(y, m+1, q.AnchorDay, loc)
		}
	default:
		start = time.Date(y, m, d, 0, 0, 0, 0, loc)
		end = time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	}
	return start, end
}

// anchorIn is the local midnight of day anchor of month m of year y (m may
// be out of 1–12, as time.Date takes it), clamped to the month's last day.
func anchorIn(y int, m time.Month, anchor int, loc *time.Location) time.Time {
	first := time.Date(y, m, 1, 0, 0, 0, 0, loc)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(anchor, last), 0, 0, 0, 0, loc)
}

// QuotaStatus is a quota with the usage of its current period. Granted is
// the extra allowance of the period's grants (top-ups), counted in
// Remaining and Exceeded: the period's allowance is Limit + Granted.
type QuotaStatus struct {
	Metric      string    `json:"metric"`
	Current     int64     `json:"current"`
	Limit       int64     `json:"limit"`
	Granted     int64     `json:"granted"`
	Remaining   int64     `json:"remaining"`
	Exceeded    bool      `json:"exceeded"`
	Enforced    bool      `json:"enforced"`
	Period      string    `json:"period"`
	AnchorDay   int       `json:"anchor_day,omitempty"`
	Thresholds  []int     `json:"thresholds"` // the alert thresholds in force
	PeriodStart time.Time `json:"period_start"`
	ResetsAt    time.Time `json:"resets_at"`
}

// NewQuotaStatus computes the status of q at usage current and extra
// allowance granted in q's period that contains now, in loc (nil: UTC).
func NewQuotaStatus(q Quota, current, granted int64, now time.Time, loc *time.Location) QuotaStatus {
	start, end := q.PeriodAt(now, loc)
	allowance := q.Limit + granted
	return QuotaStatus{
		Metric:      q.Metric,
		Current:     current,
		Limit:       q.Limit,
		Granted:     granted,
		Remaining:   max(allowance-current, 0),
		Exceeded:    current >= allowance,
		Enforced:    q.Enforced,
		Period:      q.PeriodOf(),
		AnchorDay:   q.AnchorDay,
		Thresholds:  q.AlertThresholds(),
		PeriodStart: start.UTC(),
		ResetsAt:    end.UTC(),
	}
}

// Location returns the tenant's time zone (UTC when unset or unknown).
func (t *Tenant) Location() *time.Location {
	if t == nil || t.Timezone == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(t.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
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

// Reservation is what Admit (or a quota consume) reserved, per event.
// At is when a consume reserved: its event is written in At's UTC day,
// whose counter holds the reservation. Alerted says that the quota alerts
// of the reserved counters were checked when they grew (a consume checks
// them at once), so Settle need not check them again for what was
// reserved.
type Reservation struct {
	Amounts [][]Amount
	At      time.Time
	Alerted bool
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
