package storetest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// now is the current time at the precision every backend stores.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// pastDay is the start of the UTC day three days ago. Aggregates and rollups
// use fixed hours of that closed day, so that no case straddles the open
// hour or a midnight.
func pastDay() time.Time { return tally.DayStart(time.Now()).AddDate(0, 0, -3) }

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// wantCode fails unless err carries the tally error code want.
func wantCode(t *testing.T, err error, want tally.ErrorCode, what string) {
	t.Helper()
	if got := tally.ErrorCodeOf(err); got != want {
		t.Fatalf("%s: error code %q (err: %v), want %q", what, got, err, want)
	}
}

func newUser(t *testing.T, s tally.Store, email string) *tally.User {
	t.Helper()
	u := &tally.User{Email: email, Name: "Name of " + email}
	check(t, s.CreateUser(t.Context(), u, "hash-of-"+email))
	return u
}

// newTenant creates a tenant with the given slug, owned by a new user.
func newTenant(t *testing.T, s tally.Store, slug string) *tally.Tenant {
	t.Helper()
	owner := newUser(t, s, "owner@"+slug+".example")
	tn := &tally.Tenant{Slug: slug, Name: "Tenant " + slug}
	check(t, s.CreateTenant(t.Context(), tn, owner.ID))
	return tn
}

// ev returns an event with the fields a case does not care about filled in.
func ev(tenantID int64, eventID, name, userID string, ts time.Time) tally.Event {
	return tally.Event{
		TenantID:   tenantID,
		EventID:    eventID,
		Name:       name,
		UserID:     userID,
		Source:     "api",
		Timestamp:  ts,
		ReceivedAt: ts.Add(time.Second),
		Value:      1,
		Props:      json.RawMessage(`{}`),
	}
}

// withValue returns e with Value v.
func withValue(e tally.Event, v float64) tally.Event { e.Value = v; return e }

// increment returns a usage.increment event of metric (as its props name it).
func increment(tenantID int64, eventID, metric, userID string, ts time.Time, v float64) tally.Event {
	e := ev(tenantID, eventID, tally.EventUsageIncrement, userID, ts)
	e.Value = v
	e.Props = json.RawMessage(fmt.Sprintf(`{%q:%q}`, tally.UsageMetricProp, metric))
	return e
}

// insertNew stores events, which must all be new, and returns them with
// their IDs set.
func insertNew(t *testing.T, s tally.Store, events ...tally.Event) []tally.Event {
	t.Helper()
	inserted, err := s.InsertEvents(t.Context(), events)
	check(t, err)
	if len(inserted) != len(events) {
		t.Fatalf("InsertEvents returned %d flags for %d events", len(inserted), len(events))
	}
	for i, ok := range inserted {
		if !ok {
			t.Fatalf("InsertEvents: event %q of tenant %d reported as duplicate", events[i].EventID, events[i].TenantID)
		}
		if events[i].ID == 0 {
			t.Fatalf("InsertEvents: event %q inserted without ID", events[i].EventID)
		}
	}
	return events
}

// listAll pages through a tenant's events with f, checking each page's size
// and that the last page (and only it) has no cursor.
func listAll(t *testing.T, s tally.Store, tenantID int64, f tally.EventFilter) []tally.Event {
	t.Helper()
	var out []tally.Event
	for range 1000 {
		page, next, err := s.ListEvents(t.Context(), tenantID, f)
		check(t, err)
		if len(page) > f.Limit {
			t.Fatalf("ListEvents returned %d events, limit %d", len(page), f.Limit)
		}
		out = append(out, page...)
		if next == nil {
			return out
		}
		if len(page) == 0 {
			t.Fatalf("ListEvents returned an empty page with a cursor")
		}
		f.Cursor = reparse(t, next)
	}
	t.Fatalf("ListEvents never returned a nil cursor")
	return nil
}

// reparse passes a cursor through its text form, as a client does.
func reparse(t *testing.T, c *tally.Cursor) *tally.Cursor {
	t.Helper()
	p, err := tally.ParseCursor(c.Encode())
	check(t, err)
	return p
}

// eventIDs returns the event ids of events, in order.
func eventIDs(events []tally.Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.EventID
	}
	return out
}

// newestFirst sorts events the way ListEvents returns them.
func newestFirst(events []tally.Event) []tally.Event {
	out := slices.Clone(events)
	slices.SortFunc(out, func(a, b tally.Event) int {
		return cmp.Or(b.Timestamp.Compare(a.Timestamp), cmp.Compare(b.ID, a.ID))
	})
	return out
}

// oldestFirst sorts events the way ExportEvents streams them.
func oldestFirst(events []tally.Event) []tally.Event {
	out := newestFirst(events)
	slices.Reverse(out)
	return out
}

// keys returns the store ids of events, in order.
func keys(events []tally.Event) []int64 {
	out := make([]int64, len(events))
	for i, e := range events {
		out[i] = e.ID
	}
	return out
}

// jsonEqual reports whether a and b hold the same JSON value, whatever
// their spacing and key order.
func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// diffEvent describes how got differs from want ("" when it does not).
func diffEvent(got, want tally.Event) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s: got %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.TenantID != want.TenantID {
		add("TenantID", got.TenantID, want.TenantID)
	}
	if got.EventID != want.EventID {
		add("EventID", got.EventID, want.EventID)
	}
	if got.Name != want.Name {
		add("Name", got.Name, want.Name)
	}
	if got.UserID != want.UserID {
		add("UserID", got.UserID, want.UserID)
	}
	if got.Source != want.Source {
		add("Source", got.Source, want.Source)
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		add("Timestamp", got.Timestamp, want.Timestamp)
	}
	if !got.ReceivedAt.Equal(want.ReceivedAt) {
		add("ReceivedAt", got.ReceivedAt, want.ReceivedAt)
	}
	if got.Value != want.Value {
		add("Value", got.Value, want.Value)
	}
	if !jsonEqual(got.Props, want.Props) {
		add("Props", string(got.Props), string(want.Props))
	}
	return strings.Join(d, "; ")
}

// wantEvents fails unless got and want hold the same events in order.
func wantEvents(t *testing.T, what string, got, want []tally.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %v, want %d %v", what, len(got), eventIDs(got), len(want), eventIDs(want))
	}
	for i := range got {
		if d := diffEvent(got[i], want[i]); d != "" {
			t.Fatalf("%s: event %d (%q): %s", what, i, want[i].EventID, d)
		}
	}
}

// sameTime reports whether two optional times are both nil or equal.
func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// canonRows puts rows in a comparable form: UTC starts, sorted by start,
// event and metric, nil when empty. The contract fixes no row order.
func canonRows(rows []tally.HourRow) []tally.HourRow {
	if len(rows) == 0 {
		return nil
	}
	out := slices.Clone(rows)
	for i := range out {
		out[i].Start = out[i].Start.UTC()
	}
	slices.SortFunc(out, func(a, b tally.HourRow) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Event, b.Event), cmp.Compare(a.Metric, b.Metric))
	})
	return out
}

// canonPoints is canonRows for metric points.
func canonPoints(ps []tally.MetricPoint) []tally.MetricPoint {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	for i := range out {
		out[i].Start = out[i].Start.UTC()
	}
	slices.SortFunc(out, func(a, b tally.MetricPoint) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Metric, b.Metric))
	})
	return out
}

// wantRows fails unless got and want hold the same rows, in any order.
func wantRows(t *testing.T, what string, got, want []tally.HourRow) {
	t.Helper()
	g, w := canonRows(got), canonRows(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\ngot  %s\nwant %s", what, fmtRows(g), fmtRows(w))
	}
}

// wantPoints fails unless got and want hold the same points, in any order.
func wantPoints(t *testing.T, what string, got, want []tally.MetricPoint) {
	t.Helper()
	g, w := canonPoints(got), canonPoints(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s:\ngot  %v\nwant %v", what, g, w)
	}
}

func fmtRows(rows []tally.HourRow) string {
	var b strings.Builder
	b.WriteString("[")
	for _, r := range rows {
		fmt.Fprintf(&b, "\n  {%s %s/%s count=%d sum=%g rounded=%d users=%d}",
			r.Start.Format(time.RFC3339), r.Event, r.Metric, r.Count, r.Sum, r.SumRounded, r.Users)
	}
	b.WriteString("\n]")
	return b.String()
}
