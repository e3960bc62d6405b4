package server

import (
	"net/url"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

// parseTime parses a from/to query value: RFC 3339, or a date. A date in
// from is that day's start, in to that day's end (in loc).
func parseTime(field, v string, end bool, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	d, err := time.ParseInLocation(time.DateOnly, v, loc)
	if err != nil {
		return time.Time{}, tally.Invalid("invalid "+field, tally.FieldError{Field: field, Message: "must be RFC 3339 or a date (YYYY-MM-DD)"})
	}
	if end {
		d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc).Add(-time.Microsecond)
	}
	return d.UTC(), nil
}

// parseRange reads from and to; defaults: to is now, from begins the
// calendar days of loc the KPI report's default range has (7, today
// included: tally.DefaultKPIRange), so usage and metrics agree. With
// openEnd, a missing to stays zero (no upper bound: events may be stamped
// up to an hour ahead of the server's clock).
func parseRange(q url.Values, now time.Time, loc *time.Location, openEnd bool) (from, to time.Time, err error) {
	end := now
	if v := q.Get("to"); v != "" {
		if end, err = parseTime("to", v, true, loc); err != nil {
			return
		}
		to = end
	} else if !openEnd {
		to = end
	}
	from = tally.DefaultKPIRange.Start(end, loc).UTC()
	if v := q.Get("from"); v != "" {
		if from, err = parseTime("from", v, false, loc); err != nil {
			return
		}
	}
	if !to.IsZero() && from.After(to) {
		err = tally.Invalid("from is after to", tally.FieldError{Field: "from", Message: "must not be after to"})
	}
	return
}

// parseLimit reads limit in [1, max] with a default.
func parseLimit(q url.Values, def, max int) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, tally.Invalid("invalid limit", tally.FieldError{Field: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(max)})
	}
	return n, nil
}

// parseCursor reads the opaque cursor, if any.
func parseCursor(q url.Values) (*tally.Cursor, error) {
	if v := q.Get("cursor"); v != "" {
		return tally.ParseCursor(v)
	}
	return nil, nil
}

// parseEventFilter reads the event list and export filters.
func parseEventFilter(q url.Values, now time.Time) (tally.EventFilter, error) {
	var f tally.EventFilter
	var err error
	if f.From, f.To, err = parseRange(q, now, time.UTC, true); err != nil {
		return f, err
	}
	if f.Cursor, err = parseCursor(q); err != nil {
		return f, err
	}
	f.Name = q.Get("event")
	if !tally.ValidEventPattern(f.Name) {
		return f, tally.Invalid("invalid event filter", tally.FieldError{Field: "event", Message: "must be an event name or a prefix ending in *"})
	}
	f.UserID, f.Source = q.Get("user_id"), q.Get("source")
	if msg := tally.CheckUserID(f.UserID); msg != "" {
		return f, tally.Invalid("invalid user_id filter", tally.FieldError{Field: "user_id", Message: msg})
	}
	if f.Source != "" && !tally.ValidSource(f.Source) {
		return f, tally.Invalid("invalid source filter", tally.FieldError{Field: "source", Message: tally.MsgSource})
	}
	return f, nil
}

// location resolves the tz query parameter, else the tenant's time zone.
func location(q url.Values, t *tally.Tenant) (*time.Location, error) {
	name := q.Get("tz")
	if name == "" {
		name = t.Timezone
	}
	if name == "" || name == "Local" {
		name = "UTC"
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, tally.Invalid("invalid tz", tally.FieldError{Field: "tz", Message: "must be an IANA time zone name"})
	}
	return loc, nil
}
