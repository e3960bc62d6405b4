package tally

import (
	"fmt"
	"time"
)

// RetentionQuery asks, for the users whose first StartEvent in [From, To]
// falls in each Period (UTC day, week from Monday, or month), how many did
// ReturnEvent in each later period up to To.
type RetentionQuery struct {
	StartEvent  string    `json:"start_event"`
	ReturnEvent string    `json:"return_event"`
	Period      string    `json:"period"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
}

// Validate checks q's shape and bounds.
func (q *RetentionQuery) Validate() error {
	var errs []FieldError
	for f, v := range map[string]string{"start_event": q.StartEvent, "return_event": q.ReturnEvent} {
		if v == "" || !ValidEventPattern(v) {
			errs = append(errs, FieldError{Field: f, Message: "must be an event name or a prefix ending in *"})
		}
	}
	if q.Period != "day" && q.Period != "week" && q.Period != "month" {
		errs = append(errs, FieldError{Field: "period", Message: "must be day, week or month"})
	}
	errs = append(errs, checkInsightRange(q.From, q.To)...)
	if errs == nil {
		if n := len(q.Periods()); n*(n+1)/2 > MaxRetentionSlots {
			errs = append(errs, FieldError{Field: "period", Message: fmt.Sprintf("the range holds %d periods; at most %d cells (choose a longer period or a shorter range)", n, MaxRetentionSlots)})
		}
	}
	if errs != nil {
		return Invalid("invalid retention query", errs...)
	}
	return nil
}

// PeriodStart is the start of t's period (UTC).
func (q *RetentionQuery) PeriodStart(t time.Time) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch q.Period {
	case "week":
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return d
}

func (q *RetentionQuery) next(p time.Time) time.Time {
	switch q.Period {
	case "week":
		return p.AddDate(0, 0, 7)
	case "month":
		return p.AddDate(0, 1, 0)
	}
	return p.AddDate(0, 0, 1)
}

// Periods lists the starts of the periods that [From, To] touches.
func (q *RetentionQuery) Periods() []time.Time {
	var out []time.Time
	for p := q.PeriodStart(q.From); !p.After(q.To) && len(out) <= MaxRetentionSlots; p = q.next(p) {
		out = append(out, p)
	}
	return out
}

// RetentionCohort is one row of the triangle: the users who started in
// the period beginning at Start (Size), and of them how many returned in
// each period from that one on (Counts[0] is the cohort's own period),
// with Rates = Counts / Size.
type RetentionCohort struct {
	Start  time.Time `json:"start"`
	Size   int64     `json:"size"`
	Counts []int64   `json:"counts"`
	Rates  []float64 `json:"rates"`
}

// RetentionResult is a retention query's answer, one cohort per period.
type RetentionResult struct {
	Period  string            `json:"period"`
	Cohorts []RetentionCohort `json:"cohorts"`
	Scanned int64             `json:"scanned_events"`
}

// ComputeRetention answers q over events in [From, To] (any order;
// anonymous events count for nobody). A user's cohort is the period of
// their first StartEvent in the range; they returned in period k of their
// cohort when they did ReturnEvent in it (in period 0 only after their
// first StartEvent, by (timestamp, id)).
func ComputeRetention(q *RetentionQuery, events []InsightEvent) *RetentionResult {
	for i := range events {
		e := &events[i]
		e.Steps = 0
		if MatchName(q.StartEvent, e.Name) {
			e.Steps |= 1
		}
		if MatchName(q.ReturnEvent, e.Name) {
			e.Steps |= 2
		}
	}
	SortInsightEvents(events)
	return ComputeRetentionMarked(q, events)
}

// InsightScan is the scan that answers q: step 0 its start event, step
// 1 its return event.
func (q *RetentionQuery) InsightScan(maxEvents int64) InsightScan {
	return InsightScan{From: q.From, To: q.To, Steps: []FunnelStep{{Event: q.StartEvent}, {Event: q.ReturnEvent}}, MaxEvents: maxEvents}
}

// ComputeRetentionMarked is ComputeRetention over events whose Steps are
// set (bit 0: the start event, bit 1: the return event), grouped by user
// as ComputeFunnelMarked reads them.
func ComputeRetentionMarked(q *RetentionQuery, events []InsightEvent) *RetentionResult {
	periods := q.Periods()
	index := make(map[time.Time]int, len(periods))
	for i, p := range periods {
		index[p] = i
	}
	res := &RetentionResult{Period: q.Period, Cohorts: make([]RetentionCohort, len(periods))}
	for i, p := range periods {
		res.Cohorts[i] = RetentionCohort{Start: p, Counts: make([]int64, len(periods)-i), Rates: make([]float64, len(periods)-i)}
	}
	for user := range byUser(events) {
		cohort := -1
		seen := map[int]bool{}
		for k := range user {
			e := &user[k]
			if e.At.Before(q.From) || e.At.After(q.To) {
				continue
			}
			if cohort < 0 {
				if e.Steps&1 != 0 {
					cohort = index[q.PeriodStart(e.At)]
					res.Cohorts[cohort].Size++
				}
				continue
			}
			if e.Steps&2 != 0 {
				k := index[q.PeriodStart(e.At)] - cohort
				if !seen[k] {
					seen[k] = true
					res.Cohorts[cohort].Counts[k]++
				}
			}
		}
	}
	for i := range res.Cohorts {
		c := &res.Cohorts[i]
		for k := range c.Counts {
			if c.Size > 0 {
				c.Rates[k] = float64(c.Counts[k]) / float64(c.Size)
			}
		}
	}
	return res
}
