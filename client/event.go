package client

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
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

const maxPropsBytes = 8 << 10

// encode checks e against the rules that are cheap to check here, fills
// in EventID, Timestamp and Source, and returns its JSON.
func (c *Client) encode(e Event) ([]byte, error) {
	if !validName(e.Name) {
		return nil, fmt.Errorf("%w: name %q must be 1-128 chars of dot-separated [A-Za-z0-9_-] segments", ErrInvalidEvent, e.Name)
	}
	if e.Source == "" {
		e.Source = c.cfg.source
	} else if !validSource(e.Source) {
		return nil, fmt.Errorf("%w: source %q must be 1-64 chars of [a-z0-9_-]", ErrInvalidEvent, e.Source)
	}
	if utf8.RuneCountInString(e.UserID) > 256 {
		return nil, fmt.Errorf("%w: user id longer than 256 chars", ErrInvalidEvent)
	}
	if len(e.EventID) > 128 {
		return nil, fmt.Errorf("%w: event id longer than 128 chars", ErrInvalidEvent)
	}
	if e.Value != nil && (math.IsNaN(*e.Value) || math.IsInf(*e.Value, 0)) {
		return nil, fmt.Errorf("%w: value must be a finite number", ErrInvalidEvent)
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
	}
	if e.Props != nil {
		p, err := json.Marshal(e.Props)
		if err != nil {
			return nil, fmt.Errorf("%w: props: %v", ErrInvalidEvent, err)
		}
		if len(p) > maxPropsBytes {
			return nil, fmt.Errorf("%w: props are %d bytes as JSON, at most %d", ErrInvalidEvent, len(p), maxPropsBytes)
		}
		w.Props = p
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

// validName reports whether s is 1-128 chars of dot-separated, non-empty
// segments of [A-Za-z0-9_-].
func validName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	segment := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if segment == 0 {
				return false
			}
			segment = 0
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			segment++
		default:
			return false
		}
	}
	return segment > 0
}

// validSource reports whether s is 1-64 chars of [a-z0-9_-].
func validSource(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
