package tally

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// Limits of absence alerts.
const (
	// MinAbsenceSilence is the shortest silence an absence alert waits
	// for: the runner looks every minute, so a shorter one could not be
	// told apart.
	MinAbsenceSilence = time.Minute
	// MaxAbsenceSilence is the longest silence an absence alert waits for.
	MaxAbsenceSilence = 90 * 24 * time.Hour
	// MaxAbsenceAlerts is how many absence alerts one tenant may have.
	MaxAbsenceAlerts = 100
	// MaxAlertDescription is the longest description of an alert, in bytes.
	MaxAlertDescription = 500
)

// AbsenceState is where an absence alert stands.
type AbsenceState string

// The states of an absence alert.
const (
	// AbsenceOK: a matching event arrived within the silence (or the
	// alert is younger than its silence).
	AbsenceOK AbsenceState = "ok"
	// AbsenceSilent: no matching event for the whole silence; the alert
	// fired and waits for the next event to announce the resumption.
	AbsenceSilent AbsenceState = "silent"
)

// AbsenceAlert is "no Event for Silence" in one tenant: it fires once when
// no matching event happened for Silence, and once more (resumed) when one
// happens again. Event is an exact name or a prefix ending in "*".
type AbsenceAlert struct {
	ID          int64         `json:"id"`
	TenantID    int64         `json:"-"`
	Event       string        `json:"event"`
	Silence     time.Duration `json:"-"`
	Description string        `json:"description"`
	State       AbsenceState  `json:"state"`
	// StateSince is when the current state began: the start of the
	// silence (the last event's time, or the alert's creation) while
	// silent, the resuming event's time (or the creation) while ok.
	StateSince time.Time `json:"state_since"`
	// LastSeenAt is the time of the latest matching event the runner
	// saw; nil when it saw none.
	LastSeenAt *time.Time `json:"last_seen_at"`
	// Seq counts the alert's changes (state transitions and updates);
	// a transition applies only to the Seq it was computed from.
	Seq       int64     `json:"-"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// MarshalJSON writes a with its silence in whole seconds
// (silence_seconds), as the API takes it.
func (a AbsenceAlert) MarshalJSON() ([]byte, error) {
	type plain AbsenceAlert
	return json.Marshal(struct {
		plain
		SilenceSeconds int64 `json:"silence_seconds"`
	}{plain(a), a.SilenceSeconds()})
}

// UnmarshalJSON reads a as MarshalJSON writes it.
func (a *AbsenceAlert) UnmarshalJSON(b []byte) error {
	type plain AbsenceAlert
	var v struct {
		plain
		SilenceSeconds int64 `json:"silence_seconds"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*a = AbsenceAlert(v.plain)
	a.Silence = time.Duration(v.SilenceSeconds) * time.Second
	return nil
}

// SilenceSeconds is a.Silence in whole seconds (the API's field).
func (a AbsenceAlert) SilenceSeconds() int64 { return int64(a.Silence / time.Second) }

// AbsenceAlertInput is the body of an absence alert's create or update
// (PUT-like: every field is given).
type AbsenceAlertInput struct {
	Event          string `json:"event"`
	SilenceSeconds int64  `json:"silence_seconds"`
	Description    string `json:"description"`
}

// Validate checks in, naming each invalid field.
func (in AbsenceAlertInput) Validate() error {
	var bad []FieldError
	name := in.Event
	if p, ok := cutPattern(name); ok {
		name = p
	}
	if in.Event == "" || in.Event == "*" || !ValidEventPattern(in.Event) || (name == in.Event && !ValidEventName(in.Event)) {
		bad = append(bad, FieldError{Field: "event", Message: "must be an event name or a prefix ending in * (" + MsgEventName + ")"})
	}
	if in.SilenceSeconds < int64(MinAbsenceSilence/time.Second) || in.SilenceSeconds > int64(MaxAbsenceSilence/time.Second) {
		bad = append(bad, FieldError{Field: "silence_seconds", Message: "must be from " +
			strconv.Itoa(int(MinAbsenceSilence/time.Second)) + " to " + strconv.Itoa(int(MaxAbsenceSilence/time.Second)) + " (90 days)"})
	}
	if len(in.Description) > MaxAlertDescription {
		bad = append(bad, FieldError{Field: "description", Message: "must be at most " + strconv.Itoa(MaxAlertDescription) + " bytes"})
	}
	if len(bad) > 0 {
		return Invalid("invalid absence alert", bad...)
	}
	return nil
}

func cutPattern(p string) (string, bool) {
	if len(p) > 0 && p[len(p)-1] == '*' {
		return p[:len(p)-1], true
	}
	return p, false
}

// AbsenceTransition is what an absence alert's evaluation found at Now,
// given the time of the latest matching event (Last, zero when none).
type AbsenceTransition struct {
	State AbsenceState // the new state
	Since time.Time    // when the new state began
}

// Evaluate returns the transition a's state takes at now, when the latest
// matching event happened at last (zero: none since the alert exists), and
// false when it stays. A silent alert resumes on any event after the
// silence began; an ok alert goes silent when neither an event nor its
// own creation or last update happened within Silence. An event dated
// after now (a client's clock ahead) counts as now.
func (a *AbsenceAlert) Evaluate(last, now time.Time) (AbsenceTransition, bool) {
	switch a.State {
	case AbsenceSilent:
		if !last.IsZero() && last.After(a.StateSince) {
			since := last
			if since.After(now) {
				since = now
			}
			return AbsenceTransition{State: AbsenceOK, Since: since}, true
		}
	default:
		quiet := a.UpdatedAt
		if last.After(quiet) {
			quiet = last
		}
		if !now.Before(quiet.Add(a.Silence)) {
			return AbsenceTransition{State: AbsenceSilent, Since: quiet}, true
		}
	}
	return AbsenceTransition{}, false
}

// AbsenceStore keeps each tenant's absence alerts. It is not part of Store
// (both backends implement it; the app asks for it by this interface).
type AbsenceStore interface {
	// CreateAbsenceAlert stores a (state ok since its CreatedAt) and sets
	// its ID and Seq. EConflict when the tenant has an alert on the same
	// event; EInvalid at MaxAbsenceAlerts alerts, decided in the same
	// transaction as the insert.
	CreateAbsenceAlert(ctx context.Context, a *AbsenceAlert) error
	// AbsenceAlerts lists a tenant's alerts by id.
	AbsenceAlerts(ctx context.Context, tenantID int64) ([]AbsenceAlert, error)
	// AbsenceAlert returns one of a tenant's alerts; ENotFound when the
	// tenant has none such.
	AbsenceAlert(ctx context.Context, tenantID, id int64) (*AbsenceAlert, error)
	// UpdateAbsenceAlert replaces the event, silence and description of a
	// tenant's alert a.ID, sets its UpdatedAt and starts it afresh: state
	// ok since UpdatedAt, the next Seq (a transition computed before it
	// no longer applies). ENotFound or EConflict as the create.
	UpdateAbsenceAlert(ctx context.Context, a *AbsenceAlert) error
	// DeleteAbsenceAlert removes a tenant's alert; ENotFound when the
	// tenant has none such.
	DeleteAbsenceAlert(ctx context.Context, tenantID, id int64) error
	// AllAbsenceAlerts lists every tenant's alerts, for the runner that
	// evaluates them.
	AllAbsenceAlerts(ctx context.Context) ([]AbsenceAlert, error)
	// TransitionAbsenceAlert moves a's row to t, with lastSeen (zero: no
	// event) as its LastSeenAt, when its Seq is still a.Seq, and then
	// sets a's State, StateSince, LastSeenAt and Seq. It reports whether
	// it moved it: of several instances evaluating the same alert, one
	// wins each transition.
	TransitionAbsenceAlert(ctx context.Context, a *AbsenceAlert, t AbsenceTransition, lastSeen time.Time) (bool, error)
	// LastEventAt returns the latest timestamp, at or after from, of a
	// tenant's events whose name matches pattern (MatchName); ok is false
	// when there is none.
	LastEventAt(ctx context.Context, tenantID int64, pattern string, from time.Time) (at time.Time, ok bool, err error)
}
