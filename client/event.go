package client

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tallyhq/tally"
)

// Event is one analytics event. Only Name is required.
type Event struct {
	// Name is 1-128 chars of dot-separated segments of [A-Za-z0-9_-],
	// e.g. "business.order.completed".
	Name string
	// UserID is the host app's end user (at most 256 chars), if any.
	UserID string
	// Source is 1-64 chars of [a-z0-9_-]; empty takes WithSource's, or
	// the server's default "api".
	Source string
	// Timestamp is when it happened; zero means when Track was called.
	// The server corrects it for this machine's clock skew.
	Timestamp time.Time
	// EventID is the idempotency key (at most 128 chars): the same
	// EventID is stored once per tenant. Empty gets a random one.
	EventID string
	// Value is what usage rules sum (e.g. bytes uploaded); nil means 1.
	Value *float64
	// Props are free-form attributes (at most 8 KiB as JSON, nested at
	// most 5 levels). Keys naming secrets are redacted by the server.
	Props map[string]any
}

// wireEvent is an event as POST /api/analytics/events takes it.
type wireEvent struct {
	Event     string          `json:"event"`
	UserID    string          `json:"user_id,omitempty"`
	Source    string          `json:"source,omitempty"`
	Timestamp string          `json:"timestamp"`
	EventID   string          `json:"event_id"`
	Value     *float64        `json:"value,omitempty"`
	Props     json.RawMessage `json:"props,omitempty"`
}

// EventError says which of tally's event rules an event breaks. It
// matches ErrInvalidEvent under errors.Is.
type EventError struct {
	// Field is the event's field at fault, named as on the wire: "event",
	// "source", "user_id", "event_id", "value" or "props".
	Field string
	// Message completes "<field> ...".
	Message string
}

func (e *EventError) Error() string { return "tally: invalid event: " + e.Field + " " + e.Message }

// Is makes an *EventError match ErrInvalidEvent.
func (e *EventError) Is(target error) bool { return target == ErrInvalidEvent }

// Validate checks e against the event rules the SDK can check before
// sending (the server's, from the same definitions): everything but the
// timestamp's window, which depends on the tenant and the server's clock.
// Props are measured as they are sent; the server measures them again
// after redacting secret-named keys. A broken rule is an *EventError.
func (e Event) Validate() error {
	_, err := e.check()
	return err
}

// check validates e and returns its props as sent (nil for none).
func (e Event) check() ([]byte, error) {
	bad := func(field, msg string) ([]byte, error) { return nil, &EventError{Field: field, Message: msg} }
	if !tally.ValidEventName(e.Name) {
		return bad("event", tally.MsgEventName)
	}
	if e.Source != "" && !tally.ValidSource(e.Source) {
		return bad("source", tally.MsgSource)
	}
	if e.EventID != "" {
		if msg := tally.CheckEventID(e.EventID); msg != "" {
			return bad("event_id", msg)
		}
	}
	if msg := tally.CheckUserID(e.UserID); msg != "" {
		return bad("user_id", msg)
	}
	if e.Value != nil && !tally.ValidValue(*e.Value) {
		return bad("value", tally.MsgValue)
	}
	if e.Props == nil {
		return nil, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as the server re-encodes props
	if err := enc.Encode(e.Props); err != nil {
		return bad("props", "must encode as JSON: "+err.Error())
	}
	p := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if tally.JSONDepth(p) > tally.MaxPropsDepth {
		return bad("props", tally.MsgPropsDeep)
	}
	if len(p) > tally.MaxPropsBytes {
		return bad("props", tally.MsgPropsLarge)
	}
	return p, nil
}

// encode checks e (see Validate), fills in EventID, Timestamp and Source,
// and returns its JSON.
func (c *Client) encode(e Event) ([]byte, error) {
	props, err := e.check()
	if err != nil {
		return nil, err
	}
	if e.Source == "" {
		e.Source = c.cfg.source
	}
	if e.EventID == "" {
		e.EventID = newEventID()
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = time.Now()
	}
	w := wireEvent{
		Event:     e.Name,
		UserID:    e.UserID,
		Source:    e.Source,
		Timestamp: e.Timestamp.UTC().Format(time.RFC3339Nano),
		EventID:   e.EventID,
		Value:     e.Value,
		Props:     props,
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return b, nil
}

// newEventID returns a random idempotency key (26 chars of base32, 130
// bits).
func newEventID() string { return rand.Text() }
