package client

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// APIError is an error answer of tally: an RFC 9457 problem document.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Type identifies the kind of problem, e.g.
	// "urn:tally:problem:invalid".
	Type string
	// Title is the status text; Detail says what went wrong.
	Title  string
	Detail string
	// Errors name the request fields at fault, if any.
	Errors []FieldError
	// RequestID is the answer's X-Request-ID: quote it when asking the
	// operators of tally.
	RequestID string
	// RetryAfter is the answer's Retry-After (429 and 503), else zero.
	RetryAfter time.Duration
}

// FieldError names a request field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tally: %d %s", e.Status, e.Title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for _, f := range e.Errors {
		fmt.Fprintf(&b, "; %s: %s", f.Field, f.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	return b.String()
}

// QuotaExceededError says that a quota has no room left: Consume's and
// IncrementUsage's error for a 429. Branch on it with errors.As; it
// unwraps to the *APIError.
type QuotaExceededError struct {
	// Quota is the quota as the server reported it (for IncrementUsage
	// only its Metric is known).
	Quota Quota
	// RetryAfter is how long until the quota has room again (its period
	// resets).
	RetryAfter time.Duration
	Err        *APIError
}

func (e *QuotaExceededError) Error() string {
	return fmt.Sprintf("tally: quota %s exceeded (%d of %d used), retry after %s", e.Quota.Metric, e.Quota.Current, e.Quota.Limit, e.RetryAfter)
}

func (e *QuotaExceededError) Unwrap() error { return e.Err }

// apiError builds the APIError of an answer with an error status, also
// when its body is not a problem document (a proxy's page, say).
func apiError(status int, header http.Header, body []byte) *APIError {
	e := &APIError{
		Status:     status,
		Title:      http.StatusText(status),
		RequestID:  header.Get("X-Request-ID"),
		RetryAfter: retryAfter(header, time.Now()),
	}
	var p struct {
		Type   string       `json:"type"`
		Title  string       `json:"title"`
		Detail string       `json:"detail"`
		Errors []FieldError `json:"errors"`
	}
	if json.Unmarshal(body, &p) == nil && (p.Type != "" || p.Title != "") {
		e.Type, e.Detail, e.Errors = p.Type, p.Detail, p.Errors
		if p.Title != "" {
			e.Title = p.Title
		}
		return e
	}
	if s := strings.TrimSpace(string(body)); s != "" && len(s) <= 200 && !strings.HasPrefix(s, "<") {
		e.Detail = s
	}
	return e
}

// retryAfter parses Retry-After (seconds or an HTTP date); zero when
// absent or invalid.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(min(max(secs, 0), 1<<32)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
