package ingest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tallyhq/tally"
)

// Defaults of the event contract; its limits are tally's (tally.MaxBatchEvents
// and the rest), shared with the SDK.
const (
	// DefaultMaxFuture is how far ahead of the receiving clock an event's
	// (corrected) timestamp may be unless Config says otherwise.
	DefaultMaxFuture = time.Hour
	// Redacted replaces the value of every secret-named props key.
	Redacted = "[redacted]"
)

// DefaultRedactKeys are the props keys whose values are redacted unless
// Config.RedactKeys says otherwise. Matching is case-insensitive and exact;
// keys whose words name a credential (secretKey) are redacted whatever the
// list.
var DefaultRedactKeys = []string{
	"password", "passwd", "secret", "token", "access_token", "refresh_token",
	"authorization", "api_key", "apikey", "card_number", "cvv", "ssn",
	"private_key", "client_secret", "cookie", "set-cookie", "x-api-key", "api-key",
	"x-auth-token", "auth_token", "x-access-token", "proxy-authorization",
	"session_id", "sessionid", "jwt", "credentials",
}

// Config tunes a Validator. The zero value is the documented default.
type Config struct {
	// RedactKeys are the props keys (at any depth, also inside arrays)
	// whose values are stored as "[redacted]". A key matches when it
	// equals an entry ignoring case, or when its words name a credential
	// (a word containing password, passwd or secret; a word token or
	// ending in token not followed by a measure such as count; apikey or
	// api followed by key — that rule always applies, see secretWords).
	// Nil means DefaultRedactKeys; a non-nil list
	// replaces it (append to DefaultRedactKeys to extend it).
	RedactKeys []string
	// MaxFuture is how far after the time received an event's timestamp
	// may be, after clock-skew correction. Zero means DefaultMaxFuture.
	MaxFuture time.Duration
}

// Validator decodes and validates events against the contract of
// POST /api/analytics/events: it applies defaults, corrects client clock
// skew, redacts secrets in props and assigns missing event ids. It is safe
// for concurrent use.
type Validator struct {
	redact    map[string]bool
	maxFuture time.Duration
}

// NewValidator returns a Validator configured by cfg.
func NewValidator(cfg Config) *Validator {
	keys := cfg.RedactKeys
	if keys == nil {
		keys = DefaultRedactKeys
	}
	v := &Validator{redact: make(map[string]bool, len(keys)), maxFuture: cfg.MaxFuture}
	for _, k := range keys {
		if k != "" {
			v.redact[strings.ToLower(k)] = true
		}
	}
	if v.maxFuture <= 0 {
		v.maxFuture = DefaultMaxFuture
	}
	return v
}

// Redacts reports whether the value of a props key named key is redacted.
func (v *Validator) Redacts(key string) bool {
	k := strings.ToLower(key)
	return v.redact[k] || secretKey(key)
}

// Decoded is a decoded request: the valid events, ready to store, and the
// rejected ones.
type Decoded struct {
	// Events are the valid events, in request order.
	Events []tally.Event
	// Index holds, for each of Events, its position in the request (0
	// for a single-event body).
	Index []int
	// Rejected lists the invalid events by position, in request order.
	Rejected []Rejection
	// Batch says the body was the batch form (positions are in "batch").
	Batch bool
}

// Rejection says why the event at Index in a request was not stored.
type Rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
	// Field is the event field at fault ("props.a.b" inside props; empty
	// when the event as a whole is), for problem documents.
	Field string `json:"-"`
}

// Decode parses and validates the body of POST /api/analytics/events for
// tenant, received at now: either one event object, or
// {"batch": [event, ...], "sent_at": "<RFC 3339>"} with 1 to
// tally.MaxBatchEvents events.
//
// A body that breaks the request's shape is refused whole with a
// *tally.Error naming the field: EInvalid when it is not a JSON object,
// when batch is not a non-empty array, for a field next to batch other than
// sent_at, for a bad sent_at, or for invalid UTF-8 outside the events;
// ETooLarge for more than tally.MaxBatchEvents events. Otherwise every event is
// checked on its own and a bad one is only rejected, with a message naming
// its field; for a single-event body that is Rejected[0].
//
// Rules per event: event is 1-128 chars of dot-separated [A-Za-z0-9_-]
// segments; source (default "api") 1-64 chars of [a-z0-9_-]; timestamp
// (default now) is RFC 3339, shifted by now - sent_at when sent_at is given,
// and must then lie within the tenant's retention and at most MaxFuture
// after now; event_id (assigned when absent) 1-128 chars; user_id at most
// 256 chars; value (default 1) a finite number within ±tally.MaxValue (1e15); props (default {}) an
// object of at most tally.MaxPropsBytes and tally.MaxPropsDepth levels whose
// secret-named keys are redacted and whose numbers keep their text. Null
// counts as absent. Strings and keys must not contain U+0000, the event
// must be valid UTF-8, and unknown or repeated fields reject it. Chars are
// Unicode code points. Times are truncated to microseconds, in UTC.
func (v *Validator) Decode(body []byte, tenant *tally.Tenant, now time.Time) (*Decoded, error) {
	now = now.UTC().Truncate(time.Microsecond)
	trimmed := bytes.TrimLeft(body, jsonSpace)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, requestError("body", "must be a JSON object")
	}
	if !json.Valid(body) {
		return nil, requestError("body", "must be valid JSON")
	}
	var (
		isBatch bool
		elems   [][]byte
		keys    []string
		sentRaw []byte
	)
	r := reader{b: body}
	err := r.object(func(key string) error {
		keys = append(keys, key)
		if key != "batch" || isBatch {
			raw := r.value()
			if key == "sent_at" {
				sentRaw = raw
			}
			return nil
		}
		isBatch = true
		if r.peek() != '[' {
			return requestError("batch", "must be an array of events")
		}
		return r.array(func(int) error {
			if len(elems) == tally.MaxBatchEvents {
				msg := fmt.Sprintf("must hold at most %d events", tally.MaxBatchEvents)
				return &tally.Error{Code: tally.ETooLarge, Message: "batch: " + msg,
					Fields: []tally.FieldError{{Field: "batch", Message: msg}}}
			}
			elems = append(elems, r.value())
			return nil
		})
	})
	var te *tally.Error
	switch {
	case errors.As(err, &te):
		return nil, te
	case err != nil:
		return nil, requestError("body", "must be valid JSON")
	}

	if !isBatch {
		d := &Decoded{}
		ev, rerr := v.decodeEvent(body, tenant, now, 0)
		if rerr != nil {
			d.Rejected = []Rejection{rerr.rejection(0)}
		} else {
			d.Events, d.Index = []tally.Event{ev}, []int{0}
		}
		return d, nil
	}

	// Batch form. Invalid UTF-8 inside an event only rejects that event;
	// anywhere else (a key, sent_at) it spoils the request.
	if !utf8.Valid(body) {
		inEvents := false
		for _, raw := range elems {
			if !utf8.Valid(raw) {
				inEvents = true
				break
			}
		}
		if !inEvents {
			return nil, requestError("body", "must be valid UTF-8")
		}
	}
	for i, k := range keys {
		if k != "batch" && k != "sent_at" {
			return nil, &tally.Error{Code: tally.EInvalid, Message: fmt.Sprintf("unknown field %s next to batch", quote(k)),
				Fields: []tally.FieldError{{Field: k, Message: "unknown field"}}}
		}
		for _, prev := range keys[:i] {
			if prev == k {
				return nil, requestError(k, "must not be repeated")
			}
		}
	}
	if len(elems) == 0 {
		return nil, requestError("batch", "must hold at least one event")
	}
	var skew time.Duration
	if s, ok, err := jsonString(sentRaw); err != nil {
		return nil, requestError("sent_at", "must be an RFC 3339 time")
	} else if ok {
		sentAt, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return nil, requestError("sent_at", "must be an RFC 3339 time")
		}
		skew = now.Sub(sentAt)
	}

	d := &Decoded{Events: make([]tally.Event, 0, len(elems)), Index: make([]int, 0, len(elems)), Batch: true}
	for i, raw := range elems {
		ev, rerr := v.decodeEvent(raw, tenant, now, skew)
		if rerr != nil {
			d.Rejected = append(d.Rejected, rerr.rejection(i))
			continue
		}
		d.Events = append(d.Events, ev)
		d.Index = append(d.Index, i)
	}
	return d, nil
}

// Prepare applies the rules of Decode to an event made in process (by the
// SDK or auto-tracking) for tenant at time now: a zero Timestamp means now
// (no skew correction applies), an empty Source "api", an empty EventID a
// new random one, nil or null Props {}. Value is taken as it is (0 is a
// valid value; callers that mean a count of one set 1). ID is cleared,
// TenantID and ReceivedAt set. A broken rule is an EInvalid *tally.Error
// naming the field.
func (v *Validator) Prepare(in tally.Event, tenant *tally.Tenant, now time.Time) (tally.Event, error) {
	ev, rerr := v.prepare(in, tenant, now.UTC().Truncate(time.Microsecond), 0)
	if rerr != nil {
		return tally.Event{}, &tally.Error{Code: tally.EInvalid, Message: "invalid event: " + rerr.text(),
			Fields: []tally.FieldError{{Field: rerr.fieldName(), Message: rerr.msg}}}
	}
	return ev, nil
}

// prepareOwn is Prepare for one of tally's own events (names under
// tally.OwnEventPrefix, which Prepare refuses).
func (v *Validator) prepareOwn(in tally.Event, tenant *tally.Tenant, now time.Time) (tally.Event, error) {
	ev, rerr := v.finish(eventInput{name: in.Name, source: in.Source, value: in.Value, props: in.Props, own: true},
		tenant, now.UTC().Truncate(time.Microsecond), 0)
	if rerr != nil {
		return tally.Event{}, tally.Invalid("invalid event: "+rerr.text(), tally.FieldError{Field: rerr.fieldName(), Message: rerr.msg})
	}
	return ev, nil
}

// prepare is Prepare with the receiving time now (UTC, in microseconds)
// and a clock-skew correction applied to a set Timestamp.
func (v *Validator) prepare(in tally.Event, tenant *tally.Tenant, now time.Time, skew time.Duration) (tally.Event, *ruleError) {
	return v.finish(eventInput{
		name:    in.Name,
		userID:  in.UserID,
		source:  in.Source,
		ts:      in.Timestamp,
		tsSet:   !in.Timestamp.IsZero(),
		eventID: in.EventID,
		value:   in.Value,
		props:   in.Props,
	}, tenant, now, skew)
}

// ruleError is one broken per-event rule.
type ruleError struct {
	field string // "" when the event as a whole is at fault
	msg   string
	bare  bool // msg names the field itself
}

func fail(field, msg string) *ruleError { return &ruleError{field: field, msg: msg} }

func (e *ruleError) Error() string { return e.text() }

func (e *ruleError) text() string {
	if e.bare || e.field == "" {
		return e.msg
	}
	return e.field + ": " + e.msg
}

func (e *ruleError) fieldName() string {
	if e.field == "" {
		return "event"
	}
	return e.field
}

func (e *ruleError) rejection(i int) Rejection {
	return Rejection{Index: i, Error: e.text(), Field: e.field}
}

// requestError is an EInvalid error about the request as a whole.
func requestError(field, msg string) *tally.Error {
	return &tally.Error{Code: tally.EInvalid, Message: field + ": " + msg,
		Fields: []tally.FieldError{{Field: field, Message: msg}}}
}

// Messages of the per-event rules that only the decoder checks.
const (
	msgTime   = "must be an RFC 3339 time"
	msgString = "must be a string"
	msgObject = "must be a JSON object"
)

const jsonSpace = " \t\r\n"

// eventFields are the fields an event object may have.
var eventFields = []string{"event", "user_id", "source", "timestamp", "event_id", "value", "props"}

// eventInput is an event before defaults and rules.
type eventInput struct {
	name, userID, source, eventID string
	ts                            time.Time
	tsSet                         bool
	value                         float64
	props                         []byte
	trusted                       bool // props is part of a valid JSON body
	own                           bool // one of tally's own events (Recorder.Track)
}

// decodeEvent decodes one event object of a request.
func (v *Validator) decodeEvent(raw []byte, tenant *tally.Tenant, now time.Time, skew time.Duration) (tally.Event, *ruleError) {
	raw = bytes.TrimLeft(raw, jsonSpace)
	if len(raw) == 0 || raw[0] != '{' {
		return tally.Event{}, fail("", "event "+msgObject)
	}
	type field struct {
		key string
		raw []byte
	}
	var fields []field
	r := reader{b: raw}
	if err := r.object(func(key string) error {
		fields = append(fields, field{key, r.value()})
		return nil
	}); err != nil {
		return tally.Event{}, fail("", "event "+msgObject)
	}
	if !utf8.Valid(raw) {
		for _, f := range fields {
			if !utf8.Valid(f.raw) {
				return tally.Event{}, fail(f.key, tally.MsgUTF8)
			}
		}
		return tally.Event{}, fail("", "field names "+tally.MsgUTF8)
	}
	vals := make(map[string][]byte, len(fields))
	for _, f := range fields {
		if _, dup := vals[f.key]; dup {
			return tally.Event{}, &ruleError{field: f.key, msg: "duplicate field " + quote(f.key), bare: true}
		}
		known := false
		for _, k := range eventFields {
			known = known || k == f.key
		}
		if !known {
			return tally.Event{}, &ruleError{field: f.key, msg: "unknown field " + quote(f.key), bare: true}
		}
		vals[f.key] = f.raw
	}

	in := eventInput{value: 1, props: vals["props"], trusted: true}
	var ok bool
	var err error
	if in.name, ok, err = jsonString(vals["event"]); err != nil {
		return tally.Event{}, fail("event", msgString)
	} else if !ok {
		return tally.Event{}, fail("event", "required")
	}
	if in.source, ok, err = jsonString(vals["source"]); err != nil {
		return tally.Event{}, fail("source", msgString)
	} else if ok && in.source == "" {
		return tally.Event{}, fail("source", tally.MsgSource)
	}
	if s, ok, err := jsonString(vals["timestamp"]); err != nil {
		return tally.Event{}, fail("timestamp", msgTime)
	} else if ok {
		if in.ts, err = time.Parse(time.RFC3339, s); err != nil {
			return tally.Event{}, fail("timestamp", msgTime)
		}
		in.tsSet = true
	}
	if in.eventID, ok, err = jsonString(vals["event_id"]); err != nil {
		return tally.Event{}, fail("event_id", msgString)
	} else if ok && in.eventID == "" {
		return tally.Event{}, fail("event_id", tally.MsgEventID)
	}
	if in.userID, _, err = jsonString(vals["user_id"]); err != nil {
		return tally.Event{}, fail("user_id", msgString)
	}
	if n := bytes.TrimLeft(vals["value"], jsonSpace); len(n) > 0 && string(n) != "null" {
		if n[0] != '-' && (n[0] < '0' || n[0] > '9') {
			return tally.Event{}, fail("value", tally.MsgValue)
		}
		f, err := strconv.ParseFloat(string(bytes.TrimRight(n, jsonSpace)), 64)
		if err != nil {
			return tally.Event{}, fail("value", tally.MsgValue) // out of range: ±Inf
		}
		in.value = f
	}
	return v.finish(in, tenant, now, skew)
}

// jsonString decodes a JSON string; ok is false for an absent or null
// value, err set for any other type.
func jsonString(raw []byte) (s string, ok bool, err error) {
	raw = bytes.Trim(raw, jsonSpace)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	s, err = unquote(raw)
	return s, err == nil, err
}

// finish applies defaults and the rules shared by Decode and Prepare.
func (v *Validator) finish(in eventInput, tenant *tally.Tenant, now time.Time, skew time.Duration) (tally.Event, *ruleError) {
	if !tally.ValidEventName(in.name) {
		return tally.Event{}, fail("event", tally.MsgEventName)
	}
	if tally.IsOwnEvent(in.name) != in.own {
		return tally.Event{}, fail("event", tally.MsgOwnEvent)
	}
	if in.source == "" {
		in.source = tally.DefaultSource
	}
	if !tally.ValidSource(in.source) {
		return tally.Event{}, fail("source", tally.MsgSource)
	}
	ts := now
	if in.tsSet {
		ts = in.ts.Add(skew).UTC().Truncate(time.Microsecond)
		if ts.After(now.Add(v.maxFuture)) {
			return tally.Event{}, fail("timestamp", fmt.Sprintf("must not be more than %s in the future (after clock-skew correction)", v.maxFuture))
		}
		t := tenant
		if t == nil {
			t = &tally.Tenant{}
		}
		if ts.Before(t.RetentionStart(now)) {
			return tally.Event{}, fail("timestamp", fmt.Sprintf("must not be older than the retention start %s",
				t.RetentionStart(now).Format(time.DateOnly)))
		}
	}
	if in.eventID == "" {
		in.eventID = rand.Text()
	} else if msg := tally.CheckEventID(in.eventID); msg != "" {
		return tally.Event{}, fail("event_id", msg)
	}
	if msg := tally.CheckUserID(in.userID); msg != "" {
		return tally.Event{}, fail("user_id", msg)
	}
	if !tally.ValidValue(in.value) {
		return tally.Event{}, fail("value", tally.MsgValue)
	}
	props, rerr := v.props(in.props, in.trusted)
	if rerr != nil {
		return tally.Event{}, rerr
	}
	if in.name == tally.EventUsageIncrement {
		if rerr := checkIncrement(in.value, props); rerr != nil {
			return tally.Event{}, rerr
		}
	}
	var tenantID int64
	if tenant != nil {
		tenantID = tenant.ID
	}
	return tally.Event{
		TenantID:   tenantID,
		EventID:    in.eventID,
		Name:       in.name,
		UserID:     in.userID,
		Source:     in.source,
		Timestamp:  ts,
		ReceivedAt: now,
		Value:      in.value,
		Props:      props,
	}, nil
}

// checkIncrement holds an explicit usage increment, however it arrives, to
// the rules of POST /api/analytics/usage: a valid metric in props and a
// positive whole amount up to tally.MaxAmount. Usage only ever grows.
func checkIncrement(value float64, props []byte) *ruleError {
	if tally.UsageMetricOf(props) == "" {
		return fail("props.metric", "a usage.increment event needs props.metric, which "+tally.MsgMetric)
	}
	if value != math.Trunc(value) || math.Abs(value) > tally.MaxAmount || !tally.ValidAmount(int64(value)) {
		return fail("value", fmt.Sprintf("a usage.increment amount must be a whole number from 1 to %d", int64(tally.MaxAmount)))
	}
	return nil
}

// quote quotes a client-given name for a message, cut to a readable length.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// pathKey renders a props key inside a field path: escaped like a Go
// string, without quotes, cut to a readable length.
func pathKey(k string) string {
	q := quote(k)
	if cut, ok := strings.CutSuffix(q, "…"); ok {
		return cut[1:len(cut)-1] + "…"
	}
	return q[1 : len(q)-1]
}

// props validates, redacts and compactly re-encodes a props object. Unless
// trusted (a part of a body json.Valid accepted), raw is checked for
// syntax first.
func (v *Validator) props(raw []byte, trusted bool) ([]byte, *ruleError) {
	raw = bytes.Trim(raw, jsonSpace)
	if len(raw) == 0 || string(raw) == "null" {
		return []byte("{}"), nil
	}
	switch {
	case !utf8.Valid(raw):
		return nil, fail("props", tally.MsgUTF8)
	case raw[0] != '{':
		return nil, fail("props", msgObject)
	case !trusted && !json.Valid(raw):
		return nil, fail("props", "must be valid JSON")
	}
	pw := propsWriter{v: v, r: reader{b: raw}, buf: make([]byte, 0, min(len(raw), tally.MaxPropsBytes+1))}
	if rerr := pw.value(1); rerr != nil {
		return nil, rerr
	}
	return pw.buf, nil
}

// propsWriter copies props value by value: it keeps key order and the
// exact text of numbers, drops insignificant space, redacts, and stops as
// soon as a rule breaks.
type propsWriter struct {
	v    *Validator
	r    reader
	buf  []byte
	path []pathElem // where value is, for messages
}

// pathElem is a key (or, with idx >= 0, an array index) on the way into
// props.
type pathElem struct {
	key string
	idx int
}

func (w *propsWriter) fail(msg string) *ruleError {
	var b strings.Builder
	b.WriteString("props")
	for _, e := range w.path {
		if e.idx >= 0 {
			b.WriteString("[" + strconv.Itoa(e.idx) + "]")
		} else {
			b.WriteString("." + pathKey(e.key))
		}
	}
	return fail(b.String(), msg)
}

// value copies the next value, at nesting level depth.
func (w *propsWriter) value(depth int) *ruleError {
	bad := fail("props", "must be valid JSON")
	switch c := w.r.peek(); c {
	case '{', '[':
		if depth > tally.MaxPropsDepth {
			return fail("props", tally.MsgPropsDeep)
		}
		w.buf = append(w.buf, c)
		n := 0
		var rerr *ruleError
		elem := func(key string, idx int) error {
			if n > 0 {
				w.buf = append(w.buf, ',')
			}
			n++
			w.path = append(w.path, pathElem{key, idx})
			defer func() { w.path = w.path[:len(w.path)-1] }()
			if idx < 0 {
				if strings.IndexByte(key, 0) >= 0 {
					rerr = w.fail("key " + tally.MsgNUL)
					return rerr
				}
				w.buf = appendString(w.buf, key)
				w.buf = append(w.buf, ':')
				if w.v.Redacts(key) {
					w.r.value()
					w.buf = appendString(w.buf, Redacted)
					return nil
				}
			}
			if rerr = w.value(depth + 1); rerr != nil {
				return rerr
			}
			if len(w.buf) > tally.MaxPropsBytes {
				rerr = fail("props", tally.MsgPropsLarge)
				return rerr
			}
			return nil
		}
		var err error
		if c == '{' {
			err = w.r.object(func(key string) error { return elem(key, -1) })
			w.buf = append(w.buf, '}')
		} else {
			err = w.r.array(func(i int) error { return elem("", i) })
			w.buf = append(w.buf, ']')
		}
		if rerr != nil {
			return rerr
		}
		if err != nil {
			return bad
		}
	case '"':
		s, err := w.r.str()
		if err != nil {
			return bad
		}
		if strings.IndexByte(s, 0) >= 0 {
			return w.fail(tally.MsgNUL)
		}
		w.buf = appendString(w.buf, s)
	default: // a number (its text kept) or a literal
		raw := w.r.value()
		if len(raw) == 0 {
			return bad
		}
		if (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') && !tally.ValidPropsNumber(string(raw)) {
			return w.fail(tally.MsgPropsNum)
		}
		w.buf = append(w.buf, raw...)
	}
	if len(w.buf) > tally.MaxPropsBytes {
		return fail("props", tally.MsgPropsLarge)
	}
	return nil
}

// appendString appends s, valid UTF-8, as a JSON string without the HTML
// escaping of encoding/json.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
