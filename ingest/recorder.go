package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"time"

	"github.com/tallyhq/tally"
)

// Quotas is what recording needs of quota accounting (usage.Service):
// reserving a consume and reading today's counters.
type Quotas interface {
	// ConsumeIn reserves amount of metric's quota, atomically, placing
	// its period in the tenant's time zone loc; see
	// usage.Service.ConsumeIn.
	ConsumeIn(ctx context.Context, tenantID int64, loc *time.Location, metric string, amount int64) (bool, tally.QuotaStatus, *tally.Reservation, error)
	// Today returns the tenant's counters of the current UTC day.
	Today(ctx context.Context, tenantID int64) (map[string]int64, error)
	// BeginCommit and EndCommit bracket the write of a reservation's
	// usage event; see usage.Service.BeginCommit.
	BeginCommit(ctx context.Context, tenantID int64, metric, id string, amount *int64) (*tally.QuotaReservation, bool, error)
	EndCommit(ctx context.Context, r *tally.QuotaReservation) (*tally.QuotaReservation, error)
	// Status returns the quota of metric now.
	Status(ctx context.Context, tenantID int64, metric string) (tally.QuotaStatus, error)
	// EventStored reports whether the tenant's log holds an event with
	// that id.
	EventStored(ctx context.Context, tenantID int64, eventID string) (bool, error)
}

// Recorder is the one way events enter tally, whatever brings them: a
// request body of POST /api/analytics/events, an explicit usage increment,
// a quota consume, or an event tally tracks about itself. Each workflow
// validates with the Validator, goes through the Pipeline (quota gate,
// durable write, counters) and answers in tally's terms; the HTTP layer
// only translates.
type Recorder struct {
	v      *Validator
	p      *Pipeline
	buf    *Buffer
	quotas Quotas
	links  tally.LinkStore
	now    func() time.Time
	log    *slog.Logger
}

// RecorderConfig wires a Recorder.
type RecorderConfig struct {
	Validator *Validator // required
	Pipeline  *Pipeline  // required
	Quotas    Quotas     // required for Increment and Consume
	// Tracker queues tally's own events without blocking; nil turns
	// Track off.
	Tracker *Buffer
	// Links keeps identity links for Foreign; nil turns links off.
	Links  tally.LinkStore
	Now    func() time.Time // default time.Now
	Logger *slog.Logger     // default: discarded
}

// NewRecorder returns a Recorder over c.
func NewRecorder(c RecorderConfig) *Recorder {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{v: c.Validator, p: c.Pipeline, buf: c.Tracker, quotas: c.Quotas, links: c.Links, now: c.Now, log: c.Logger}
}

// Events decodes the body of POST /api/analytics/events for tenant t and
// stores its valid events. A body whose shape is wrong is refused whole
// (see Validator.Decode); otherwise Result.Rejected lists, by position in
// the request, the events refused by a rule or by an enforced quota.
func (r *Recorder) Events(ctx context.Context, t *tally.Tenant, body []byte) (*Result, error) {
	d, err := r.v.Decode(body, t, r.now())
	if err != nil {
		return nil, err
	}
	return r.submit(ctx, d)
}

// Increment records an explicit usage increment as a durable
// usage.increment event (deduplicated by its event id like any event) and
// returns the metric's value today (CurrentUnknown when it cannot be read
// after the write: once the increment is durable, Increment never fails).
// Over an enforced quota it is an ERateLimited *tally.Error; with the
// quota's counters unavailable, EUnavailable and nothing is stored.
func (r *Recorder) Increment(ctx context.Context, t *tally.Tenant, in tally.UsageIncrement) (int64, error) {
	if err := in.Validate(); err != nil {
		return 0, err
	}
	e, err := r.usageEvent(t, in, time.Time{})
	if err != nil {
		return 0, err
	}
	res, err := r.p.Submit(ctx, []tally.Event{e})
	if err != nil {
		return 0, err
	}
	if res.RateLimited > 0 {
		return 0, tally.Errorf(tally.ERateLimited, "%s", res.Rejected[0].Error)
	}
	if len(res.Rejected) > 0 {
		return 0, tally.Invalid(res.Rejected[0].Error)
	}
	today, err := r.quotas.Today(ctx, t.ID)
	if err != nil {
		// The increment is durable: never answer an error for it (a
		// client would retry and, without an event id, count twice).
		r.log.WarnContext(ctx, "usage increment stored; its value could not be read", "metric", in.Metric, "err", err)
		return CurrentUnknown, nil
	}
	return today[in.Metric], nil
}

// CurrentUnknown is what Increment returns as the metric's value when the
// increment is stored but neither the counters nor the log could be read
// just after.
const CurrentUnknown int64 = -1

// Consume takes in.Amount from the quota of in.Metric, atomically, and
// when the quota had room records the amount as a usage.increment event
// in the quota period it was reserved in (also when the clock passed the
// period's end since). It returns whether the quota had room and its
// status; a metric without a quota is ENotFound.
//
// With in.EventID, the consume settles that event for the metric: the
// increment's id is tally.SettlementID(metric, EventID), so a retry is a
// duplicate (allowed, counts nothing, its reservation released), and the
// event with that id, when it is ingested later, is not counted for the
// metric again (usage.Service.Admit marks it settled). When that event is
// stored already, its rules counted it: the consume counts nothing.
func (r *Recorder) Consume(ctx context.Context, t *tally.Tenant, in tally.UsageIncrement) (bool, tally.QuotaStatus, error) {
	if err := in.Validate(); err != nil {
		return false, tally.QuotaStatus{}, err
	}
	metric, amount := in.Metric, in.Amount
	if in.EventID != "" {
		// The event the consume settles is stored already: its rules
		// counted it, so the consume is a duplicate and counts nothing.
		if stored, err := r.quotas.EventStored(ctx, t.ID, in.EventID); err != nil {
			return false, tally.QuotaStatus{}, err
		} else if stored {
			st, err := r.quotas.Status(ctx, t.ID, metric)
			return err == nil, st, err
		}
	}
	allowed, st, resv, err := r.quotas.ConsumeIn(ctx, t.ID, t.Location(), metric, amount)
	if err != nil || !allowed {
		return false, st, err
	}
	at := r.now()
	end := st.ResetsAt
	if !resv.At.IsZero() {
		if dayEnd := tally.DayStart(resv.At).Add(24 * time.Hour); dayEnd.Before(end) {
			end = dayEnd // the UTC day whose counter holds the reservation
		}
	}
	if end = end.Add(-time.Microsecond); at.After(end) {
		at = end
	}
	e, err := r.settlingEvent(t, in, at)
	var res *Result
	if err == nil {
		res, err = r.p.SubmitReserved(ctx, []tally.Event{e}, resv)
	}
	if err != nil {
		return false, st, err
	}
	if res.Duplicates > 0 { // stored before: this call's reservation was released
		st.Current -= amount
		st.Remaining = max(st.Limit+st.Granted-st.Current, 0)
		st.Exceeded = st.Current >= st.Limit+st.Granted
	}
	return true, st, nil
}

// Commit commits reservation id of metric with amount (nil: all of it):
// the committed amount becomes a durable usage.increment event (event id
// tally.QuotaReservation.EventID, so a retried commit counts once) in the
// UTC day and quota period the reservation was taken in, and the unused
// rest returns to the quota. Committing a committed reservation again
// answers it as it is; see usage.Service.BeginCommit for the errors.
func (r *Recorder) Commit(ctx context.Context, t *tally.Tenant, metric, id string, amount *int64, eventID string) (*tally.QuotaReservation, error) {
	if eventID != "" {
		if msg := tally.CheckEventID(eventID); msg != "" {
			return nil, tally.Invalid("invalid event_id", tally.FieldError{Field: "event_id", Message: msg})
		}
	}
	resv, first, err := r.quotas.BeginCommit(ctx, t.ID, metric, id, amount)
	if err != nil || resv.State == tally.ReservationCommitted {
		return resv, err
	}
	if resv.Committed > 0 {
		at := r.now()
		end := resv.ResetsAt
		if dayEnd := tally.DayStart(resv.Day).Add(24 * time.Hour); dayEnd.Before(end) {
			end = dayEnd
		}
		if end = end.Add(-time.Microsecond); at.After(end) {
			at = end
		}
		in := tally.UsageIncrement{Metric: metric, Amount: resv.Committed, EventID: eventID}
		e, err := r.settlingEvent(t, in, at)
		if eventID == "" {
			e, err = r.usageEvent(t, tally.UsageIncrement{Metric: metric, Amount: resv.Committed, EventID: resv.EventID()}, at)
		}
		if err != nil {
			return nil, err
		}
		// The first attempt settles against the hold; a retry holds
		// nothing (the first attempt's outcome settled it) and counts
		// only when its event had not been stored.
		hold := &tally.Reservation{Amounts: [][]tally.Amount{{}}}
		if first {
			hold.Amounts[0] = []tally.Amount{{Metric: metric, N: resv.Committed}}
		}
		if _, err := r.p.SubmitReserved(ctx, []tally.Event{e}, hold); err != nil {
			return nil, err
		}
	}
	return r.quotas.EndCommit(ctx, resv)
}

// settlingEvent is the usage.increment of a consume or commit: with
// in.EventID, one that settles that event for in.Metric (its id
// tally.SettlementID, props "settles" naming the event).
func (r *Recorder) settlingEvent(t *tally.Tenant, in tally.UsageIncrement, at time.Time) (tally.Event, error) {
	if in.EventID == "" {
		return r.usageEvent(t, in, at)
	}
	props, _ := json.Marshal(map[string]any{tally.UsageMetricProp: in.Metric, "amount": in.Amount, "settles": in.EventID})
	return r.v.Prepare(tally.Event{Name: tally.EventUsageIncrement, EventID: tally.SettlementID(in.Metric, in.EventID), Source: "usage",
		Timestamp: at, Value: float64(in.Amount), Props: props}, t, r.now())
}

// usageEvent is the usage.increment event of in at time at (zero: now).
func (r *Recorder) usageEvent(t *tally.Tenant, in tally.UsageIncrement, at time.Time) (tally.Event, error) {
	props, _ := json.Marshal(map[string]any{tally.UsageMetricProp: in.Metric, "amount": in.Amount})
	return r.v.Prepare(tally.Event{Name: tally.EventUsageIncrement, EventID: in.EventID, Source: "usage",
		Timestamp: at, Value: float64(in.Amount), Props: props}, t, r.now())
}

// Track records an event of tally's own (a login, an API request: name
// under tally.OwnEventPrefix) through the non-blocking buffer: it never
// fails or slows the request it describes. It has source tally.OwnSource
// and no user id; account (a tally account, "user:ID"; "" for none) goes
// into props.account. An event the rules refuse is logged and dropped.
func (r *Recorder) Track(ctx context.Context, t *tally.Tenant, name, account string, props map[string]any) {
	if r.buf == nil || t == nil {
		return
	}
	if account != "" {
		props = maps.Clone(props)
		if props == nil {
			props = map[string]any{}
		}
		props[tally.OwnAccountProp] = account
	}
	raw, _ := json.Marshal(props)
	e, err := r.v.prepareOwn(tally.Event{Name: name, Source: tally.OwnSource, Value: 1, Props: raw}, t, r.now())
	if err != nil {
		r.log.WarnContext(ctx, "auto-track event invalid", "event", name, "err", err)
		return
	}
	r.buf.Track(e)
}

// TrackAPIRequest auto-tracks a call to tally's API with a key (never the
// key itself): the calls of one key with the same route, method and
// status that the buffer holds together are one tally.EventOwnAPIRequest
// event, its value their number (props.requests), at the first one's time,
// with their mean and longest duration (props.duration_ms,
// props.duration_ms_max). Under load that is one row per key and route
// for each commit the buffer waits for, not one per request.
func (r *Recorder) TrackAPIRequest(t *tally.Tenant, req APIRequest, d time.Duration) {
	if r.buf == nil || t == nil {
		return
	}
	r.buf.CountRequest(t, req, r.now(), d, r.requestEvent)
}

// requestEvent is the event of the API requests c counts.
func (r *Recorder) requestEvent(t *tally.Tenant, req APIRequest, c RequestCount) (tally.Event, bool) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	raw, _ := json.Marshal(map[string]any{
		"route":           req.Route,
		"method":          req.Method,
		"status":          req.Status,
		"key_prefix":      req.KeyPrefix,
		"requests":        c.N,
		"duration_ms":     ms(c.Total / time.Duration(c.N)),
		"duration_ms_max": ms(c.Max),
	})
	e, err := r.v.prepareOwn(tally.Event{Name: tally.EventOwnAPIRequest, Source: tally.OwnSource, Value: float64(c.N), Props: raw}, t, c.First)
	if err != nil {
		r.log.Warn("auto-track event invalid", "event", tally.EventOwnAPIRequest, "err", err)
		return tally.Event{}, false
	}
	return e, true
}
