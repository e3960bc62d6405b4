package tally

import (
	"strings"
	"time"
)

// KPIKind says how a KPI is computed from the events of a period.
type KPIKind uint8

// The kinds of KPI.
const (
	KPIEvent         KPIKind = iota + 1 // the events named KPIDef.Event
	KPIMetric                           // the usage metric KPIDef.Metric, as the usage rules give it
	KPIDistinctUsers                    // the distinct non-empty user ids
	KPIAllEvents                        // every event
)

// KPIDef defines one key figure of the analytics report
// (/api/analytics/metrics) and its card on the dashboard.
type KPIDef struct {
	Name   string // the key in the report
	Label  string // the dashboard card's title
	Kind   KPIKind
	Event  string // the event name, for KPIEvent
	Metric string // the usage metric, for KPIMetric
}

// KPIs are the key figures of the analytics report, in the order the
// dashboard shows them.
var KPIs = []KPIDef{
	{Name: "signups", Label: "Sign-ups", Kind: KPIEvent, Event: EventRegister},
	{Name: "logins", Label: "Logins", Kind: KPIEvent, Event: EventLogin},
	{Name: "active_users", Label: "Active users", Kind: KPIDistinctUsers},
	{Name: "builds", Label: "Builds", Kind: KPIMetric, Metric: "builds_daily"},
	{Name: "api_requests", Label: "API requests", Kind: KPIMetric, Metric: "api_requests_daily"},
	{Name: "file_uploads", Label: "File uploads", Kind: KPIMetric, Metric: "file_uploads_daily"},
	{Name: "events", Label: "Events", Kind: KPIAllEvents},
}

// KPIRange is a period the KPI report covers: Days calendar days ending
// with today.
type KPIRange struct {
	Name  string // the value of the report's range parameter
	Label string // the dashboard's range button
	Days  int
}

// KPIRanges are the ranges the KPI report accepts, shortest first.
var KPIRanges = []KPIRange{
	{Name: "today", Label: "Today", Days: 1},
	{Name: "7d", Label: "7 days", Days: 7},
	{Name: "30d", Label: "30 days", Days: 30},
	{Name: "90d", Label: "90 days", Days: 90},
}

// DefaultKPIRange is the period of a report that names none: the KPI
// report, the usage series and the event list alike ("7d").
var DefaultKPIRange = KPIRanges[1]

// Start is the first instant of r's period when it ends at now: the
// midnight in loc that begins the day Days-1 calendar days before now's
// (today alone: today's midnight). From there to now there are exactly
// Days day buckets of loc, DST days included.
func (r KPIRange) Start(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d-(r.Days-1), 0, 0, 0, 0, loc)
}

// KPIRangeByName returns the KPI range named name; ok is false when there
// is none.
func KPIRangeByName(name string) (r KPIRange, ok bool) {
	for _, r := range KPIRanges {
		if r.Name == name {
			return r, true
		}
	}
	return KPIRange{}, false
}

// KPIRangeNames lists the names of KPIRanges, comma-separated, for error
// messages.
func KPIRangeNames() string {
	names := make([]string, len(KPIRanges))
	for i, r := range KPIRanges {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}
