package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	jsonv1 "github.com/go-json-experiment/json/v1"
	"github.com/tallyhq/tally"
)

// TimeFormat is the one precision of every time in an answer: RFC 3339
// with exactly six fractional digits (the stores keep microseconds), in
// the zone the value carries, e.g. 2026-01-15T09:30:00.000000Z.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// answerOptions encode answers as encoding/json does, except for times,
// which all take TimeFormat (encoding/json would print each with as many
// digits as it happens to have, from none to nine).
var answerOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsonv2.WithMarshalers(
	jsonv2.MarshalFunc(func(t time.Time) ([]byte, error) {
		return t.AppendFormat(append(make([]byte, 0, len(TimeFormat)+2), '"'), TimeFormat+`"`), nil
	})))

// writeJSON writes v with the given status and content type.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := jsonv2.Marshal(v, answerOptions)
	if err != nil {
		b, status = []byte(`{"type":"urn:tally:problem:internal","title":"Internal Server Error","status":500}`), 500
		contentType = "application/problem+json"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// encode answers v as JSON.
func encode(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, "application/json", v)
}

// readBody reads the whole request body, mapping an oversized body to
// ETooLarge.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tally.Errorf(tally.ETooLarge, "request body is larger than %d bytes", mbe.Limit)
		}
		return nil, tally.Errorf(tally.EInvalid, "could not read the request body")
	}
	return b, nil
}

// decode reads a JSON object into a T, rejecting unknown fields and
// trailing data with a problem that names the field.
func decode[T any](r *http.Request) (T, error) {
	var v T
	b, err := readBody(r)
	if err != nil {
		return v, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return v, tally.Invalid("request body is empty; a JSON object is expected")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, jsonError(err)
	}
	if dec.More() {
		return v, tally.Invalid("request body has data after the JSON object")
	}
	return v, nil
}

// jsonError turns a decoding error into an EInvalid problem naming the
// field, without echoing Go type names.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return tally.Invalid("request body is not valid JSON")
	case errors.As(err, &typ):
		f := typ.Field
		if f == "" {
			return tally.Invalid("request body must be a JSON object")
		}
		return tally.Invalid("invalid field "+f, tally.FieldError{Field: f, Message: "must be a " + jsonKind(typ.Type.Kind().String())})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return tally.Invalid("unknown field "+f, tally.FieldError{Field: f, Message: "unknown field"})
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return tally.Invalid("request body is not valid JSON")
	}
	return tally.Invalid("request body is not valid JSON")
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "list"
	case "struct", "map", "ptr":
		return "object"
	}
	return "number"
}
