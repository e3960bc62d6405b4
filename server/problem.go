package server

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

// problem is an RFC 9457 problem document.
type problem struct {
	Type   string             `json:"type"`
	Title  string             `json:"title"`
	Status int                `json:"status"`
	Detail string             `json:"detail,omitempty"`
	Errors []tally.FieldError `json:"errors,omitempty"`
}

// statusOf maps tally's error codes to HTTP: the one place that does.
var statusOf = map[tally.ErrorCode]int{
	tally.EInvalid:      http.StatusBadRequest,
	tally.EUnauthorized: http.StatusUnauthorized,
	tally.EForbidden:    http.StatusForbidden,
	tally.ENotFound:     http.StatusNotFound,
	tally.EConflict:     http.StatusConflict,
	tally.ETooLarge:     http.StatusRequestEntityTooLarge,
	tally.ETooMany:      http.StatusUnprocessableEntity,
	tally.ERateLimited:  http.StatusTooManyRequests,
	tally.EUnavailable:  http.StatusServiceUnavailable,
	tally.EInternal:     http.StatusInternalServerError,
}

// problemFor renders err as a problem document: the caller-safe message
// only, never a Go error text.
func problemFor(err error) problem {
	code := tally.ErrorCodeOf(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	p := problem{
		Type:   "urn:tally:problem:" + string(code),
		Title:  http.StatusText(status),
		Status: status,
		Detail: tally.ErrorMessageOf(err),
	}
	var te *tally.Error
	if errors.As(err, &te) && code != tally.EInternal {
		p.Errors = te.Fields
	}
	return p
}

// retryError is an error whose answer carries Retry-After.
type retryError struct {
	error
	after time.Duration
}

func (e *retryError) Unwrap() error { return e.error }

// setRetryAfter sets Retry-After when err is a retryError, in whole
// seconds, at least 1.
func setRetryAfter(w http.ResponseWriter, err error) {
	var re *retryError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(re.after.Round(time.Second), time.Second).Seconds())))
	}
}

// writeError answers err as application/problem+json. Internal errors are
// logged with the request id; their text never reaches the client.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	p := s.errorAnswer(w, r, err)
	writeJSON(w, p.Status, "application/problem+json", p)
}

// errorAnswer is the problem of err, with its headers (Retry-After,
// WWW-Authenticate) set on w and, for 5xx, logged: what every error answer
// shares, whatever shape its body has.
func (s *Server) errorAnswer(w http.ResponseWriter, r *http.Request, err error) problem {
	p := problemFor(err)
	setRetryAfter(w, err)
	if p.Status >= 500 {
		level := slog.LevelError
		if p.Status == http.StatusServiceUnavailable {
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "request failed", "request_id", requestIDFrom(r.Context()), "err", err)
	}
	if p.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tally"`)
	}
	if p.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	return p
}

// writeProblem answers a problem of the HTTP layer itself (no tally error
// code maps to it: 405, 415, 431).
func writeProblem(w http.ResponseWriter, status int, typ, detail string) {
	writeJSON(w, status, "application/problem+json", problem{
		Type: "urn:tally:problem:" + typ, Title: http.StatusText(status), Status: status, Detail: detail,
	})
}
