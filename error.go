package tally

import (
	"context"
	"errors"
	"fmt"
)

// ErrorCode classifies an error so that every transport can map it to its own
// status (HTTP in one place: server/problem.go).
type ErrorCode string

// The error codes of tally.
const (
	EInvalid      ErrorCode = "invalid"      // the input is malformed or breaks a rule
	EUnauthorized ErrorCode = "unauthorized" // no or bad credentials
	EForbidden    ErrorCode = "forbidden"    // authenticated but not allowed
	ENotFound     ErrorCode = "not_found"    // does not exist in the caller's tenant
	EConflict     ErrorCode = "conflict"     // already exists
	ETooLarge     ErrorCode = "too_large"    // over a size limit
	ETooMany      ErrorCode = "too_many"     // well-formed, but would answer more than a limit allows (422)
	ERateLimited  ErrorCode = "rate_limited" // over a quota or rate limit
	EUnavailable  ErrorCode = "unavailable"  // not ready, overloaded or disabled
	EInternal     ErrorCode = "internal"     // a bug or an infrastructure failure
)

// FieldError names one invalid input field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is tally's error type. Message is safe to show to the caller; the
// wrapped error (if any) is for logs only.
type Error struct {
	Code    ErrorCode
	Message string
	Fields  []FieldError
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EInvalid error that names the fields at fault.
func Invalid(msg string, fields ...FieldError) *Error {
	return &Error{Code: EInvalid, Message: msg, Fields: fields}
}

// Internal wraps an unexpected error; its text never reaches a caller.
func Internal(err error) *Error {
	return &Error{Code: EInternal, Message: "internal error", Err: err}
}

// Unavailable wraps an infrastructure failure that a retry may get past (a
// database that is unreachable, resets connections, times out a statement,
// has a full disk or is busy). Transports answer it as a retryable
// unavailability (HTTP 503 with Retry-After); the wrapped error, driver and
// SQL text included, is for logs only.
func Unavailable(err error) *Error {
	return &Error{Code: EUnavailable, Message: "the database is unavailable; retry later", Err: err}
}

// ErrorCodeOf returns the code of err: EUnavailable for a context whose
// deadline passed (a timeout ran out), EInternal for other errors that are
// not *Error and "" for nil.
func ErrorCodeOf(err error) ErrorCode {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return EUnavailable
	}
	return EInternal
}

// ErrorMessageOf returns the caller-safe message of err.
func ErrorMessageOf(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal {
		return e.Message
	}
	if e == nil && errors.Is(err, context.DeadlineExceeded) {
		return "timed out; retry later"
	}
	return "internal error"
}
