package tally

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strconv"
	"time"
)

// Limits of funnel and retention queries (422 past the scan limit, 400 for
// the others).
const (
	MaxFunnelSteps    = 10
	MaxFunnelWindow   = 90 * 24 * time.Hour
	MaxInsightRange   = 366 * 24 * time.Hour
	MaxInsightEvents  = 1_000_000 // events one query may scan
	MaxFunnelGroups   = 100       // breakdown values
	MaxRetentionSlots = 400       // cohorts × periods
)

// FunnelStep is one step: an event name (or "prefix*") and equality
// filters on props paths ("props.plan" → "pro"), source or user_id.
type FunnelStep struct {
	Event  string            `json:"event"`
	Filter map[string]string `json:"filter,omitempty"`
}

// FunnelQuery asks how many users went through Steps in order, each step
// within WindowSeconds of the first, starting in [From, To]. Breakdown,
// when set, is a props path of the first step's event that splits the
// answer.
type FunnelQuery struct {
	Steps         []FunnelStep `json:"steps"`
	WindowSeconds int64        `json:"window_seconds"`
	From          time.Time    `json:"from"`
	To            time.Time    `json:"to"`
	Breakdown     string       `json:"breakdown,omitempty"`
}

// Validate checks q's shape and bounds.
func (q *FunnelQuery) Validate() error {
	var errs []FieldError
	bad := func(f, m string) { errs = append(errs, FieldError{Field: f, Message: m}) }
	if len(q.Steps) < 2 || len(q.Steps) > MaxFunnelSteps {
		bad("steps", fmt.Sprintf("must hold 2 to %d steps", MaxFunnelSteps))
	}
	for i, s := range q.Steps {
		f := "steps[" + strconv.Itoa(i) + "]"
		if s.Event == "" || !ValidEventPattern(s.Event) {
			bad(f+".event", "must be an event name or a prefix ending in *")
		}
		errs = append(errs, checkMeterFilter(f+".filter", s.Filter)...)
	}
	if q.WindowSeconds < 1 || time.Duration(q.WindowSeconds)*time.Second > MaxFunnelWindow {
		bad("window_seconds", fmt.Sprintf("must be from 1 to %d", int64(MaxFunnelWindow/time.Second)))
	}
	errs = append(errs, checkInsightRange(q.From, q.To)...)
	if q.Breakdown != "" && ParsePropPath(q.Breakdown) == nil {
		bad("breakdown", msgPropPath)
	}
	if errs != nil {
		return Invalid("invalid funnel query", errs...)
	}
	return nil
}

func checkInsightRange(from, to time.Time) []FieldError {
	switch {
	case from.IsZero():
		return []FieldError{{Field: "from", Message: "required (RFC 3339)"}}
	case to.IsZero():
		return []FieldError{{Field: "to", Message: "required (RFC 3339)"}}
	case !from.Before(to):
		return []FieldError{{Field: "from", Message: "must be before to"}}
	case to.Sub(from) > MaxInsightRange:
		return []FieldError{{Field: "to", Message: "the range may span at most 366 days"}}
	}
	return nil
}

// FunnelStepResult is one step's answer: users who reached it (Entered),
// of them those who reached the next (Converted; for the last step, equal
// to Entered), the rate, and the median seconds from this step to the
// next (nil when nobody converted, or for the last step).
type FunnelStepResult struct {
	Event                  string   `json:"event"`
	Entered                int64    `json:"entered"`
	Converted              int64    `json:"converted"`
	ConversionRate         float64  `json:"conversion_rate"`
	MedianSecondsToConvert *float64 `json:"median_seconds_to_convert"`
}

// FunnelGroup is the answer for one breakdown value.
type FunnelGroup struct {
	Value string             `json:"value"`
	Steps []FunnelStepResult `json:"steps"`
}

// FunnelResult is a funnel query's answer.
type FunnelResult struct {
	Steps     []FunnelStepResult `json:"steps"`
	Breakdown []FunnelGroup      `json:"breakdown,omitempty"`
	Scanned   int64              `json:"scanned_events"`
}

// InsightEvent is what funnels and retention read of an event.
type InsightEvent struct {
	ID     int64
	UserID string
	Name   string
	Source string
	At     time.Time
	Props  map[string]any // decoded once
	// Steps has bit i set when the event is an occurrence of the query's
	// step i (for retention: bit 0 the start event, bit 1 the return
	// event). ComputeFunnel and ComputeRetention set it from the fields
	// above; the Marked variants read it as given.
	Steps uint32
}

// InsightScan is what an InsightScanner selects: the events with a user
// id and a timestamp in [From, To] (both inclusive) that the name of one
// of Steps selects (SelectsEvent), each marked with the steps whose name
// (MatchName) and source filter it meets. The filters on props and on
// user_id (which apply to the user id after identity links) are the
// caller's (MatchesUserAndProps): an event carries its props when it is
// marked with a step of PropsOf (a mask of steps).
type InsightScan struct {
	From, To  time.Time
	Steps     []FunnelStep
	PropsOf   uint32
	MaxEvents int64 // past it (counted as ScanInsight says), ETooMany
}

// InsightRow is one event of an InsightScan.
type InsightRow struct {
	UserID string
	At     time.Time
	ID     int64
	Steps  uint32 // as InsightEvent.Steps, user_id and props filters not applied
	Props  []byte // the event's props when Steps&PropsOf != 0, else nil
}

// InsightScanner is an optional capability of an EventStore: it
// selects a funnel's or retention's events in the store and returns of
// each only what the computation reads, so that funnels and retention
// need not export whole events. The insight service uses it when the
// store has it.
type InsightScanner interface {
	// ScanInsight calls fn for each event of tenantID that q selects,
	// each user's events one after the other in (timestamp, id) order,
	// the users in any order, and returns how many events with a user id
	// the steps' names select (those of no step's filters too).
	// When the events each step's name selects, counted per distinct
	// name and with those of no user, add up to more than q.MaxEvents,
	// it is TooManyInsightEvents (possibly after calls of fn, whose rows
	// are then to be dropped). The row and its Props are the store's,
	// valid during the call.
	ScanInsight(ctx context.Context, tenantID int64, q InsightScan, fn func(*InsightRow) error) (int64, error)
}

// TooManyInsightEvents is the ETooMany (422) of a funnel or retention
// query whose range holds more than max events.
func TooManyInsightEvents(max int64) error {
	return Errorf(ETooMany, "the range holds more than %d events; choose a shorter range", max)
}

// propsSteps is the mask of q's steps that filter on props paths.
func (q *FunnelQuery) propsSteps() uint32 {
	var m uint32
	for i, s := range q.Steps {
		if s.filtersProps() {
			m |= 1 << i
		}
	}
	return m
}

// InsightScan is the scan that answers q over events up to end (To plus
// the window): props of the steps that filter on them, and of the
// first step when there is a breakdown.
func (q *FunnelQuery) InsightScan(maxEvents int64) InsightScan {
	props := q.propsSteps()
	if q.Breakdown != "" {
		props |= 1
	}
	return InsightScan{From: q.From, To: q.To.Add(time.Duration(q.WindowSeconds) * time.Second), Steps: q.Steps, PropsOf: props, MaxEvents: maxEvents}
}

// NewInsightEvent decodes e's props once.
func NewInsightEvent(e *Event) InsightEvent {
	ie := InsightEvent{ID: e.ID, UserID: e.UserID, Name: e.Name, Source: e.Source, At: e.Timestamp}
	if len(e.Props) > 0 {
		_ = json.Unmarshal(e.Props, &ie.Props)
	}
	return ie
}

// PropString is the value at a props path as filters compare it: a
// string as is, other JSON values as their JSON text; ok is false when
// the path is absent.
func (e *InsightEvent) PropString(path string) (string, bool) {
	var v any = e.Props
	for _, k := range ParsePropPath(path) {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		if v, ok = m[k]; !ok {
			return "", false
		}
	}
	if s, ok := v.(string); ok {
		return s, true
	}
	b, _ := json.Marshal(v)
	return string(b), true
}

// NeedsProps reports whether answering q reads events' props: a
// breakdown, or a step filter on a props path.
func (q *FunnelQuery) NeedsProps() bool {
	return q.Breakdown != "" || q.propsSteps() != 0
}

func (s *FunnelStep) filtersProps() bool {
	for k := range s.Filter {
		if k != "source" && k != "user_id" {
			return true
		}
	}
	return false
}

// Matches reports whether e is an occurrence of step s.
func (s *FunnelStep) Matches(e *InsightEvent) bool {
	if !MatchName(s.Event, e.Name) {
		return false
	}
	if want, ok := s.Filter["source"]; ok && e.Source != want {
		return false
	}
	return s.MatchesUserAndProps(e)
}

// MatchesUserAndProps reports whether e meets the filters of s on
// user_id and props paths (those an InsightScanner leaves to its
// caller).
func (s *FunnelStep) MatchesUserAndProps(e *InsightEvent) bool {
	for k, want := range s.Filter {
		switch k {
		case "source":
		case "user_id":
			if e.UserID != want {
				return false
			}
		default:
			if got, ok := e.PropString(k); !ok || got != want {
				return false
			}
		}
	}
	return true
}

// SortInsightEvents orders events by user, then time, then id.
func SortInsightEvents(events []InsightEvent) {
	slices.SortFunc(events, func(a, b InsightEvent) int {
		if a.UserID != b.UserID {
			if a.UserID < b.UserID {
				return -1
			}
			return 1
		}
		return CompareInsightTime(&a, &b)
	})
}

// CompareInsightTime orders events by time, then id.
func CompareInsightTime(a, b *InsightEvent) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// byUser yields each known user's events of events grouped by user (see
// ComputeFunnelMarked); anonymous ones, user_id "", count for nobody.
func byUser(events []InsightEvent) iter.Seq[[]InsightEvent] {
	return func(yield func([]InsightEvent) bool) {
		for i := 0; i < len(events); {
			j := i
			for j < len(events) && events[j].UserID == events[i].UserID {
				j++
			}
			if events[i].UserID != "" && !yield(events[i:j]) {
				return
			}
			i = j
		}
	}
}

// ComputeFunnel answers q over events (any order; events of anonymous
// users, user_id "", count for nobody). A user's run starts at an
// occurrence of the first step within [From, To]; each next step is its
// earliest occurrence after the previous step's (strictly later in
// (timestamp, id) order) and no later than start + window. A user counts
// once, with the run that reaches the most steps (the earliest such
// start on a tie); the breakdown value is that run's first event's.
func ComputeFunnel(q *FunnelQuery, events []InsightEvent) (*FunnelResult, error) {
	for i := range events {
		e := &events[i]
		e.Steps = 0
		for k := range q.Steps {
			if q.Steps[k].Matches(e) {
				e.Steps |= 1 << k
			}
		}
	}
	SortInsightEvents(events)
	return ComputeFunnelMarked(q, events)
}

// ComputeFunnelMarked is ComputeFunnel over events whose Steps are set
// (names, filters and props need not be; Props only for the breakdown)
// and that are grouped by user: each user's events together, in (time,
// id) order, the users in any order (the answer does not depend on it).
func ComputeFunnelMarked(q *FunnelQuery, events []InsightEvent) (*FunnelResult, error) {
	window := time.Duration(q.WindowSeconds) * time.Second
	type run struct {
		times []time.Time
		group string
	}
	var runs []run
	for user := range byUser(events) {
		var best []time.Time
		group := ""
		for s := range user {
			e := &user[s]
			if e.At.Before(q.From) || e.At.After(q.To) || e.Steps&1 == 0 {
				continue
			}
			times := []time.Time{e.At}
			k := s + 1
			for step := 1; step < len(q.Steps) && k < len(user); {
				n := &user[k]
				if n.At.After(e.At.Add(window)) {
					break
				}
				if n.Steps&(1<<step) != 0 {
					times = append(times, n.At)
					step++
				}
				k++
			}
			if len(times) > len(best) {
				best = times
				group = ""
				if q.Breakdown != "" {
					if v, ok := e.PropString(q.Breakdown); ok {
						group = v
					}
				}
			}
			if len(best) == len(q.Steps) {
				break
			}
		}
		if best != nil {
			runs = append(runs, run{best, group})
		}
	}
	steps := func(rs []run) []FunnelStepResult {
		out := make([]FunnelStepResult, len(q.Steps))
		for i := range q.Steps {
			out[i].Event = q.Steps[i].Event
			var gaps []float64
			for _, r := range rs {
				if len(r.times) > i {
					out[i].Entered++
				}
				if len(r.times) > i+1 {
					out[i].Converted++
					gaps = append(gaps, r.times[i+1].Sub(r.times[i]).Seconds())
				}
			}
			if i == len(q.Steps)-1 {
				out[i].Converted = out[i].Entered
				gaps = nil
			}
			if out[i].Entered > 0 {
				out[i].ConversionRate = float64(out[i].Converted) / float64(out[i].Entered)
			}
			if len(gaps) > 0 {
				m := Median(gaps)
				out[i].MedianSecondsToConvert = &m
			}
		}
		return out
	}
	res := &FunnelResult{Steps: steps(runs)}
	if q.Breakdown != "" {
		groups := map[string][]run{}
		for _, r := range runs {
			groups[r.group] = append(groups[r.group], r)
		}
		if len(groups) > MaxFunnelGroups {
			return nil, Errorf(ETooMany, "the breakdown has more than %d values", MaxFunnelGroups)
		}
		keys := make([]string, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			res.Breakdown = append(res.Breakdown, FunnelGroup{Value: k, Steps: steps(groups[k])})
		}
	}
	return res, nil
}

// Median is the median of xs (the mean of the middle two for an even
// count); xs is sorted in place.
func Median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
