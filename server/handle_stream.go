package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/live"
)

// streamCatchUp is how many events one read of a resumed stream's backlog
// takes.
const streamCatchUp = 500

// streamWriteTimeout bounds one round of writes to a stream's client.
const streamWriteTimeout = 30 * time.Second

// handleEventsStream is the live tail: Server-Sent Events of the tenant's
// events as they are committed, with the events list's filters (from
// defaults to open here: a late event with an old timestamp still shows).
// Each event is "id: <id>" and "data: <event JSON>"; Last-Event-ID (or
// last_event_id) resumes after that id from the log. Comment lines keep an
// idle stream alive. The stream ends with an "end" event whose data says
// why ({"reason", "last_event_id"}): slow_consumer when the client did not
// keep up with its buffer, shutting_down, store_unavailable.
func (s *Server) handleEventsStream() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		q := r.URL.Query()
		f, err := parseEventFilter(q, s.now())
		if err != nil {
			return err
		}
		if q.Get("from") == "" {
			f.From = time.Time{}
		}
		f.Cursor = nil
		after, resume, err := s.lastEventID(r, p.Tenant.ID)
		if err != nil {
			return err
		}
		if s.Live == nil {
			return tally.Errorf(tally.EUnavailable, "live tail unavailable")
		}
		ctx := r.Context()
		sub, err := s.Live.Subscribe(ctx, p.Tenant.ID, f)
		if err != nil {
			return err
		}
		defer sub.Close()
		// A resumed stream first replays the log from after to sub.Start
		// (the live channel delivers what follows). Its first page is read
		// before the first byte, so that a store fault is still a problem
		// document.
		var page []tally.Event
		if resume && after < sub.Start {
			if page, err = s.Store.TailEvents(ctx, p.Tenant.ID, f, after, streamCatchUp); err != nil {
				return err
			}
		}
		rc := http.NewResponseController(w)
		// A stream outlives the server's write timeout: each round of
		// writes sets its own deadline instead.
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		sw := &sseWriter{w: w, last: sub.Start, public: func(id int64) int64 { return s.EventIDs.Public(p.Tenant.ID, id) }}
		if resume {
			sw.last = after
		}
		sw.write("retry: 2000\n\n")
		for len(page) > 0 && sw.err == nil {
			for i := range page {
				if page[i].ID > sub.Start {
					break
				}
				sw.event(&page[i])
			}
			if len(page) < streamCatchUp || page[len(page)-1].ID >= sub.Start {
				break
			}
			_ = rc.Flush()
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if page, err = s.Store.TailEvents(ctx, p.Tenant.ID, f, page[len(page)-1].ID, streamCatchUp); err != nil {
				sw.end(rc, live.ReasonStore)
				return nil
			}
		}
		sw.last = max(sw.last, sub.Start)
		beat := s.cfg.LiveHeartbeat
		if beat <= 0 {
			beat = 15 * time.Second
		}
		ticker := time.NewTicker(beat)
		defer ticker.Stop()
		for {
			if err := sw.err; err != nil {
				return nil // the client went away, or stopped reading
			}
			// Each round of writes gets its own deadline: a client that
			// stops reading ends its stream (the hub dropped it already
			// when its buffer filled), never holding the handler forever.
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			if err := rc.Flush(); err != nil {
				return nil
			}
			select {
			case <-sub.Dropped():
				sw.end(rc, sub.Reason())
				return nil
			default:
			}
			select {
			case batch := <-sub.C:
				sw.frames(batch)
			case <-sub.Dropped():
				sw.end(rc, sub.Reason())
				return nil
			case <-s.drained:
				sw.end(rc, live.ReasonShutdown)
				return nil
			case <-ticker.C:
				sw.comment("heartbeat")
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// tenantFromQuery lets a session name its tenant with ?tenant= when it
// sends no X-Tenant-Slug: a browser's EventSource cannot send headers. The
// tenant context rules apply unchanged (membership, role, scope).
func tenantFromQuery(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slug := r.URL.Query().Get("tenant"); slug != "" && r.Header.Get("X-Tenant-Slug") == "" {
			r = r.Clone(r.Context())
			r.Header.Set("X-Tenant-Slug", slug)
		}
		h.ServeHTTP(w, r)
	})
}

// lastEventID reads the id a stream resumes after: the Last-Event-ID
// header (what EventSource sends when it reconnects), else last_event_id.
// Clients see the tenant's public ids; it returns the stored one.
func (s *Server) lastEventID(r *http.Request, tenantID int64) (int64, bool, error) {
	v := r.Header.Get("Last-Event-ID")
	field := "Last-Event-ID"
	if v == "" {
		v, field = r.URL.Query().Get("last_event_id"), "last_event_id"
	}
	if v == "" {
		return 0, false, nil
	}
	bad := tally.Invalid("invalid "+field, tally.FieldError{Field: field, Message: "must be the id of an event of this tenant"})
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, bad
	}
	if n == 0 {
		return 0, true, nil // from the start of the log
	}
	id, ok := s.EventIDs.Stored(tenantID, n)
	if !ok {
		return 0, false, bad
	}
	return id, true, nil
}

// sseWriter writes Server-Sent Events, remembering the first write error
// and the last event id sent.
type sseWriter struct {
	w      io.Writer
	last   int64 // stored id
	public func(id int64) int64
	err    error
}

func (sw *sseWriter) write(format string, args ...any) {
	if sw.err == nil {
		_, sw.err = fmt.Fprintf(sw.w, format, args...)
	}
}

// frames writes a delivery of the hub.
func (sw *sseWriter) frames(batch []*live.Event) {
	if sw.err == nil {
		sw.err = live.WriteFrames(sw.w, batch)
		sw.last = batch[len(batch)-1].ID
	}
}

// frame writes one event of the log, a live.AppendFrame; id is its stored
// id.
func (sw *sseWriter) frame(id int64, frame []byte) {
	if sw.err == nil {
		_, sw.err = sw.w.Write(frame)
		sw.last = id
	}
}

func (sw *sseWriter) comment(text string) { sw.write(": %s\n\n", text) }

func (sw *sseWriter) event(e *tally.Event) {
	shown := *e
	shown.ID = sw.public(e.ID)
	if b, err := json.Marshal(&shown); err == nil {
		sw.frame(e.ID, live.AppendFrame(nil, shown.ID, b))
	}
}

// end writes the final event, bounded in time: the client may be the slow
// one.
func (sw *sseWriter) end(rc *http.ResponseController, reason string) {
	if sw.err != nil {
		return
	}
	_ = rc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	last := int64(0)
	if sw.last > 0 {
		last = sw.public(sw.last)
	}
	b, _ := json.Marshal(map[string]any{"reason": reason, "last_event_id": last})
	sw.write("event: end\ndata: %s\n\n", b)
	_ = rc.Flush()
}
