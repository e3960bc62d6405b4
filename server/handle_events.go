package server

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
)

func (s *Server) handleEventsPost() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		res, err := s.Recorder.Events(r.Context(), p.Tenant, body)
		if err != nil {
			return err
		}
		if res.Accepted+res.Duplicates == 0 {
			fields := make([]tally.FieldError, len(res.Rejected))
			for i, rj := range res.Rejected {
				fields[i] = tally.FieldError{Field: rejectedField(res.Batch, rj), Message: rj.Error}
			}
			if res.RateLimited > 0 && res.RateLimited == len(res.Rejected) {
				w.Header().Set("Retry-After", strconv.Itoa(int(s.quotaRetryAfter(r.Context(), p.Tenant.ID, "").Seconds())))
				return &tally.Error{Code: tally.ERateLimited, Message: "every event is over an enforced quota", Fields: fields}
			}
			return tally.Invalid("no event was accepted", fields...)
		}
		encode(w, http.StatusAccepted, res)
		return nil
	}
}

// rejectedField names the request field of a rejected event as the body
// spells it: batch[i] (then .field) in the batch form, else the event's
// field ("body" when the event as a whole is at fault).
func rejectedField(batch bool, rj ingest.Rejection) string {
	switch {
	case batch && rj.Field != "":
		return "batch[" + strconv.Itoa(rj.Index) + "]." + rj.Field
	case batch:
		return "batch[" + strconv.Itoa(rj.Index) + "]"
	case rj.Field != "":
		return rj.Field
	}
	return "body"
}

func (s *Server) handleEventsList() apiHandler {
	type response struct {
		Events     []tally.Event `json:"events"`
		NextCursor *string       `json:"next_cursor"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		f, err := s.eventFilter(q, p.Tenant.ID)
		if err != nil {
			return err
		}
		if f.Limit, err = parseLimit(q, 50, 1000); err != nil {
			return err
		}
		start := time.Now()
		events, next, err := s.Store.ListEvents(r.Context(), p.Tenant.ID, f)
		s.observeQuery("events", start)
		if err != nil {
			return err
		}
		for i := range events {
			events[i].ID = s.EventIDs.Public(p.Tenant.ID, events[i].ID)
		}
		res := response{Events: events}
		if next != nil {
			c := s.eventCursor(p.Tenant.ID, next)
			res.NextCursor = &c
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

func (s *Server) handleUserEventsDelete() apiHandler {
	type response struct {
		Deleted int64 `json:"deleted"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		user := r.PathValue("user_id")
		if msg := tally.CheckUserID(user); user == "" || msg != "" {
			if msg == "" {
				msg = "required"
			}
			return tally.Invalid("invalid user_id", tally.FieldError{Field: "user_id", Message: msg})
		}
		n, err := s.Store.DeleteUserEvents(r.Context(), p.Tenant.ID, user)
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "events.user_deleted", user, map[string]any{"deleted": n})
		encode(w, http.StatusOK, response{Deleted: n})
		return nil
	}
}

// handleExport streams the CSV export: oldest first, at most MaxExportRows
// rows. X-Export-Truncated says whether the cap cut it short and
// X-Export-Next-Cursor continues it (pass it as cursor).
func (s *Server) handleExport() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		f, err := s.eventFilter(q, p.Tenant.ID)
		if err != nil {
			return err
		}
		limit, err := parseLimit(q, s.cfg.MaxExportRows, s.cfg.MaxExportRows)
		if err != nil {
			return err
		}
		rows := 0
		var info tally.ExportInfo
		started := false
		cw := csv.NewWriter(w)
		rc := http.NewResponseController(w)
		var record [7]string
		err = s.Store.ExportEvents(r.Context(), p.Tenant.ID, f, limit, func(i tally.ExportInfo) error {
			info, started = i, true
			h := w.Header()
			h.Set("Content-Type", "text/csv; charset=utf-8")
			h.Set("Content-Disposition", `attachment; filename="events-`+p.Tenant.Slug+`.csv"`)
			h.Set("X-Export-Row-Limit", strconv.Itoa(limit))
			h.Set("X-Export-Truncated", strconv.FormatBool(i.Truncated))
			if i.Next != nil {
				h.Set("X-Export-Next-Cursor", s.eventCursor(p.Tenant.ID, i.Next))
			}
			w.WriteHeader(http.StatusOK)
			return cw.Write([]string{"id", "timestamp", "event", "user_id", "source", "value", "props"})
		}, func(e *tally.Event) error {
			record = [7]string{
				strconv.FormatInt(s.EventIDs.Public(p.Tenant.ID, e.ID), 10),
				e.Timestamp.Format(time.RFC3339Nano),
				csvCell(e.Name),
				csvCell(e.UserID),
				csvCell(e.Source),
				strconv.FormatFloat(e.Value, 'g', -1, 64),
				csvCell(string(e.Props)),
			}
			rows++
			if err := cw.Write(record[:]); err != nil {
				return err
			}
			if rows%1000 == 0 {
				cw.Flush()
				rc.Flush()
			}
			return nil
		})
		cw.Flush()
		if err != nil && !started {
			return err
		}
		if err != nil {
			s.log.WarnContext(r.Context(), "export aborted", "request_id", requestIDFrom(r.Context()), "err", err, "rows", rows)
		}
		s.audit(r.Context(), p.Tenant.ID, p, "events.exported", "export.csv", map[string]any{
			"rows": rows, "truncated": info.Truncated, "complete": err == nil,
			"filters": map[string]any{"from": optTime(f.From), "to": optTime(f.To),
				"event": f.Name, "user_id": f.UserID, "source": f.Source, "cursor": q.Get("cursor")},
		})
		return nil
	}
}

// optTime is t for an audit entry: nil (JSON null) for the zero time of an
// open range, else RFC 3339 in UTC.
func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

// csvCell neutralises a cell that a spreadsheet would run as a formula
// (one starting with =, +, -, @, tab or carriage return) by prefixing a
// single quote. encoding/csv does the RFC 4180 quoting.
func csvCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
