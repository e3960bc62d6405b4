package server

import (
	"net/url"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

// parseTime parses a from/to query value: RFC 3339, or a date. A date in
// from is that day's start, in to that day's end (in loc). An instant
// outside tally.MinQueryTime to tally.MaxQueryTime is refused, and still
// returned (so that from and to are compared whatever their range).
func parseTime(field, v string, end bool, loc *time.Location) (time.Time, *tally.FieldError) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		d, derr := time.ParseInLocation(time.DateOnly, v, loc)
		if derr != nil {
			return time.Time{}, &tally.FieldError{Field: field, Message: "must be RFC 3339 or a date (YYYY-MM-DD)"}
		}
		if end {
			d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, loc).Add(-time.Microsecond)
		}
		t = d
	}
	if !tally.InQueryRange(t) {
		return t.UTC(), &tally.FieldError{Field: field, Message: tally.MsgQueryTime}
	}
	return t.UTC(), nil
}

// parseRange reads from and to; defaults: to is now, from begins the
// calendar days of loc the KPI report's default range has (7, today
// included: tally.DefaultKPIRange), so usage and metrics agree. With
// openEnd, a missing to stays zero (no upper bound: events may be stamped
// up to an hour ahead of the server's clock); an explicit to is always a
// bound, whatever its value. Each bound is range-checked and from must not
// be after to; every problem is named at once.
func parseRange(q url.Values, now time.Time, loc *time.Location, openEnd bool) (from, to time.Time, err error) {
	var bad []tally.FieldError
	end, explicitTo := now, false
	if v := q.Get("to"); v != "" {
		t, fe := parseTime("to", v, true, loc)
		if fe != nil {
			bad = append(bad, *fe)
		}
		end, to, explicitTo = t, t, fe == nil || fe.Message == tally.MsgQueryTime
	} else if !openEnd {
		to = end
	}
	from = tally.DefaultKPIRange.Start(end, loc).UTC()
	if from.Before(tally.MinQueryTime) {
		from = tally.MinQueryTime
	}
	if v := q.Get("from"); v != "" {
		t, fe := parseTime("from", v, false, loc)
		if fe != nil {
			bad = append(bad, *fe)
		}
		if fe == nil || fe.Message == tally.MsgQueryTime {
			from = t
			if (explicitTo || !to.IsZero()) && from.After(end) {
				bad = append(bad, tally.FieldError{Field: "from", Message: "must not be after to"})
			}
		}
	}
	if len(bad) > 0 {
		return time.Time{}, time.Time{}, tally.Invalid("invalid time range", bad...)
	}
	return from, to, nil
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

// eventFilter reads the event list and export filters of tenant; its
// cursor is mapped back with storedCursor.
func (s *Server) eventFilter(q url.Values, tenantID int64) (tally.EventFilter, error) {
	f, err := parseEventFilter(q, s.now())
	if err != nil {
		return f, err
	}
	f.Cursor, err = storedCursor(s.EventIDs, tenantID, f.Cursor)
	return f, err
}

// storedCursor maps a cursor's public id (see tally.EventIDs) back to the
// stored one; nil stays nil.
func storedCursor(ids *tally.EventIDs, tenantID int64, c *tally.Cursor) (*tally.Cursor, error) {
	if c == nil {
		return nil, nil
	}
	id, ok := ids.Stored(tenantID, c.ID)
	if !ok {
		return nil, tally.Invalid("invalid cursor", tally.FieldError{Field: "cursor", Message: "not a cursor this server issued"})
	}
	return &tally.Cursor{At: c.At, ID: id}, nil
}

// publicCursor encodes a keyset position of a tenant's list with the
// row's public id.
func publicCursor(ids *tally.EventIDs, tenantID int64, c *tally.Cursor) string {
	return tally.Cursor{At: c.At, ID: ids.Public(tenantID, c.ID)}.Encode()
}

// eventCursor is publicCursor for events.
func (s *Server) eventCursor(tenantID int64, c *tally.Cursor) string {
	return publicCursor(s.EventIDs, tenantID, c)
}
