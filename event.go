package tally

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is one thing that happened in a tenant: the unit of the event log.
// Timestamp is when it happened (after clock-skew correction), ReceivedAt
// when tally got it. EventID is the idempotency key, unique per tenant.
type Event struct {
	ID         int64           `json:"id"`
	TenantID   int64           `json:"-"`
	EventID    string          `json:"event_id"`
	Name       string          `json:"event"`
	UserID     string          `json:"user_id"`
	Source     string          `json:"source"`
	Timestamp  time.Time       `json:"timestamp"`
	ReceivedAt time.Time       `json:"received_at"`
	Value      float64         `json:"value"`
	Props      json.RawMessage `json:"props"`
	// Settled names the metric a quota consume or commit already counted
	// this event for (it carried the event's id; see SettlementID): the
	// usage rules do not count the event for that metric again. Stored
	// in the log with the event (the metric column of a usage.increment).
	Settled string `json:"-"`
}

// CountedMetric is what the log keeps in an event's metric column: the
// metric a usage.increment names, or the one the event was settled for
// (Settled), "" for none. Every store writes it so.
func (e *Event) CountedMetric() string {
	if e.Name == EventUsageIncrement {
		return UsageMetricOf(e.Props)
	}
	if ValidMetric(e.Settled) {
		return e.Settled
	}
	return ""
}

// SettlementID is the event id of the usage.increment a consume or
// commit writes when it carries eventID, the id of the event it settles
// for metric: one per event and metric, so the consume's retries and the
// event itself each count once. Ids too long for an event id are hashed.
func SettlementID(metric, eventID string) string {
	id := "settle:" + metric + ":" + eventID
	if len(id) <= MaxEventIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(eventID))
	return "settle:" + metric + ":sha256:" + hex.EncodeToString(sum[:])
}

// Event names that tally's KPIs and default usage rules read: the host
// app's sign-ups, logins and API requests (tally's own activity has names of
// its own, EventOwnAPIRequest and the rest).
const (
	EventRegister       = "auth.user.register"
	EventLogin          = "auth.user.login"
	EventAPIRequest     = "api.request"
	EventUsageIncrement = "usage.increment"
)

// UsageMetricProp is the props key of a usage.increment event that names the
// metric it increments.
const UsageMetricProp = "metric"

// EventFilter selects events of one tenant. Name is an exact event name or a
// prefix ending in "*". tally's own events (IsOwnEvent) are selected only
// when Name names them or Source is OwnSource (ExcludesOwn).
type EventFilter struct {
	From, To time.Time // inclusive bounds on Timestamp; zero means open
	Name     string
	UserID   string
	Source   string
	Limit    int
	Cursor   *Cursor
}

// Match reports whether f's From, To, Name, UserID and Source select e
// (f.Limit and f.Cursor play no part): the stores' filters, in Go, for
// events already read.
func (f EventFilter) Match(e *Event) bool {
	switch {
	case !f.From.IsZero() && e.Timestamp.Before(f.From),
		!f.To.IsZero() && e.Timestamp.After(f.To),
		f.Name != "" && !MatchName(f.Name, e.Name),
		f.UserID != "" && e.UserID != f.UserID,
		f.Source != "" && e.Source != f.Source,
		IsOwnEvent(e.Name) && ExcludesOwn(f.Name, f.Source):
		return false
	}
	return true
}

// MatchName reports whether the event name n is selected by pattern p: an
// exact name, a prefix ending in "*", or "*" alone for every event.
func MatchName(p, n string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(n, prefix)
	}
	return p == n
}

// Cursor is a keyset position in the event log (or another list ordered by a
// time and an id). Its encoding is opaque to clients.
type Cursor struct {
	At time.Time
	ID int64
}

// Encode returns the opaque text form of c.
func (c Cursor) Encode() string {
	s := strconv.FormatInt(c.At.UnixMicro(), 36) + "." + strconv.FormatInt(c.ID, 36)
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// ParseCursor decodes a cursor made by Encode.
func ParseCursor(s string) (*Cursor, error) {
	bad := Invalid("invalid cursor", FieldError{Field: "cursor", Message: "not a cursor this server issued"})
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(s) > 64 {
		return nil, bad
	}
	at, id, ok := strings.Cut(string(b), ".")
	if !ok {
		return nil, bad
	}
	us, err1 := strconv.ParseInt(at, 36, 64)
	n, err2 := strconv.ParseInt(id, 36, 64)
	if err1 != nil || err2 != nil || n < 0 || !InQueryRange(time.UnixMicro(us)) {
		return nil, bad
	}
	return &Cursor{At: time.UnixMicro(us).UTC(), ID: n}, nil
}

// The bounds of every time a query or a cursor may carry (both stores
// hold every instant between them). Nothing tally stores is older than
// 1970: events are within their tenant's retention, other rows are
// stamped by the server's clock.
var (
	MinQueryTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxQueryTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// MsgQueryTime is the message of a query time out of range.
const MsgQueryTime = "must be from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999999Z"

// InQueryRange reports whether t is within [MinQueryTime, MaxQueryTime].
func InQueryRange(t time.Time) bool { return !t.Before(MinQueryTime) && !t.After(MaxQueryTime) }

// ExportInfo describes an export before its rows stream: whether the row cap
// cuts it short and, if so, the cursor that continues after its last row.
type ExportInfo struct {
	Truncated bool
	Next      *Cursor
}

// HourRow is the aggregate of one tenant's events in one hour (or day) for
// one event name; Metric is set for usage.increment events (and, for
// other events, names the metric they were settled for), which are
// grouped by the metric they name.
type HourRow struct {
	Start      time.Time
	Event      string
	Metric     string
	Count      int64
	Sum        float64
	SumRounded int64 // sum of each value as sum rules add it (rounded, clamped to [0, MaxAmount])
	Users      int64 // distinct user ids
}

// String is for debugging.
func (r HourRow) String() string {
	return fmt.Sprintf("%s %s/%s count=%d sum=%g", r.Start.Format(time.RFC3339), r.Event, r.Metric, r.Count, r.Sum)
}

// Page cuts a keyset page read with one row more than limit down to limit
// and returns the cursor after its last item, or nil when nothing follows.
func Page[T any](items []T, limit int, key func(*T) Cursor) ([]T, *Cursor) {
	if len(items) <= limit {
		return items, nil
	}
	items = items[:limit]
	c := key(&items[len(items)-1])
	return items, &c
}

// EventKey is the keyset position of an event (for Page).
func EventKey(e *Event) Cursor { return Cursor{At: e.Timestamp, ID: e.ID} }

// AuditKey is the keyset position of an audit entry (for Page).
func AuditKey(e *AuditEntry) Cursor { return Cursor{At: e.At, ID: e.ID} }
