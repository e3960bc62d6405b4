package tally

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The event contract's limits. The ingest decoder, the API's filters and
// the Go SDK all check events against these, through the functions below;
// lengths count characters (Unicode code points), sizes count bytes.
const (
	// MaxBatchEvents is the most events one request may carry.
	MaxBatchEvents = 1000
	// MaxEventNameLen is the longest event name.
	MaxEventNameLen = 128
	// MaxSourceLen is the longest source.
	MaxSourceLen = 64
	// MaxEventIDLen is the longest idempotency key.
	MaxEventIDLen = 128
	// MaxUserIDLen is the longest end-user id.
	MaxUserIDLen = 256
	// MaxPropsBytes is the largest props object, compactly encoded after
	// redaction.
	MaxPropsBytes = 8 << 10
	// MaxPropsDepth is how deeply props may nest: props itself is level 1,
	// and every object or array inside adds one.
	MaxPropsDepth = 5
	// DefaultSource is the source of events that name none.
	DefaultSource = "api"
	// MaxValue is the largest absolute value an event may carry. It keeps
	// every sum the stores compute finite: a billion events of MaxValue
	// sum to 1e24, far inside a double (and usage amounts are clamped to
	// MaxAmount besides), so no tenant's data can make a usage, KPI or
	// rollup query overflow. Stores also clamp each value to ±MaxValue when
	// they sum, so rows written before this rule never break a read.
	MaxValue = 1e15
)

// Messages of the broken event rules, each completing "<field> ...".
var (
	MsgEventName = fmt.Sprintf("must be 1-%d chars of dot-separated [A-Za-z0-9_-] segments", MaxEventNameLen)
	// MsgOwnEvent refuses a client's event under OwnEventPrefix.
	MsgOwnEvent   = "names starting with " + OwnEventPrefix + " are reserved for tally's own activity"
	MsgSource     = fmt.Sprintf("must be 1-%d chars of [a-z0-9_-]", MaxSourceLen)
	MsgEventID    = fmt.Sprintf("must be 1-%d chars", MaxEventIDLen)
	MsgUserID     = fmt.Sprintf("must be at most %d chars", MaxUserIDLen)
	MsgValue      = "must be a finite number from -1e15 to 1e15"
	MsgPropsLarge = fmt.Sprintf("must be at most %d bytes (8 KiB) encoded, after redaction", MaxPropsBytes)
	MsgPropsDeep  = fmt.Sprintf("must nest at most %d levels (props itself is level 1)", MaxPropsDepth)
	MsgNUL        = "must not contain U+0000"
	MsgUTF8       = "must be valid UTF-8"
	MsgMetric     = "must match ^[a-z0-9_]{1,64}$"
	MsgAmount     = "must be a positive integer"
	MsgPropsNum   = "must be a number within the float64 range (about ±1.8e308)"
)

// eventNameChar reports whether c may appear in an event name segment.
func eventNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

// ValidEventName reports whether s is 1-MaxEventNameLen chars of
// dot-separated, non-empty segments of [A-Za-z0-9_-].
func ValidEventName(s string) bool {
	if len(s) == 0 || len(s) > MaxEventNameLen {
		return false
	}
	segment := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if segment == 0 {
				return false
			}
			segment = 0
		case eventNameChar(c):
			segment++
		default:
			return false
		}
	}
	return segment > 0
}

// ValidEventPattern reports whether p is a valid event filter (see
// MatchName): empty, a name's characters, or a prefix of them ending in
// "*", at most one char longer than the longest name.
func ValidEventPattern(p string) bool {
	prefix := strings.TrimSuffix(p, "*")
	if len(p) > MaxEventNameLen+1 {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if c := prefix[i]; c != '.' && !eventNameChar(c) {
			return false
		}
	}
	return true
}

// ValidSource reports whether s is 1-MaxSourceLen chars of [a-z0-9_-].
func ValidSource(s string) bool {
	if len(s) == 0 || len(s) > MaxSourceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// CheckText checks free text of at most max chars: it returns the broken
// rule's message (tooLong for the length) or "" when s is fine.
func CheckText(s string, max int, tooLong string) string {
	switch {
	case !utf8.ValidString(s):
		return MsgUTF8
	case strings.IndexByte(s, 0) >= 0:
		return MsgNUL
	case utf8.RuneCountInString(s) > max:
		return tooLong
	}
	return ""
}

// CheckEventID checks a given (non-empty) idempotency key; "" when fine.
func CheckEventID(id string) string {
	if id == "" {
		return MsgEventID
	}
	return CheckText(id, MaxEventIDLen, MsgEventID)
}

// CheckUserID checks an end-user id (empty is fine); "" when fine.
func CheckUserID(id string) string { return CheckText(id, MaxUserIDLen, MsgUserID) }

// ValidValue reports whether v may be an event's value: a finite number
// of absolute value at most MaxValue.
func ValidValue(v float64) bool { return !math.IsNaN(v) && math.Abs(v) <= MaxValue }

// ValidPropsNumber reports whether text, a JSON number inside props, is
// within the float64 range. Props keep the text of their numbers as sent,
// but every number must mean a finite float64 to every reader (JavaScript,
// PostgreSQL's jsonb, Go's encoding/json): 1e999 is refused, not stored.
// Numbers too small to represent (1e-999) are fine: they read as 0.
func ValidPropsNumber(text string) bool {
	f, err := strconv.ParseFloat(text, 64)
	return err == nil && !math.IsInf(f, 0)
}

// JSONDepth returns how deeply the valid JSON b nests: a scalar is 0, an
// object or array 1 plus the depth of its deepest member.
func JSONDepth(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// UsageIncrement is one explicit increment of a usage metric (POST
// /api/analytics/usage and the SDK's IncrementUsage). EventID, when set,
// makes it idempotent.
type UsageIncrement struct {
	Metric  string
	Amount  int64
	EventID string
}

// Validate checks the increment: a valid metric, an amount from 1 to
// MaxAmount and, when given, a valid event id. It returns an EInvalid
// *Error naming the field.
func (u UsageIncrement) Validate() error {
	if !ValidMetric(u.Metric) {
		return InvalidMetric()
	}
	if err := ValidateAmount(u.Amount); err != nil {
		return err
	}
	if u.EventID != "" {
		if msg := CheckEventID(u.EventID); msg != "" {
			return Invalid("invalid event_id", FieldError{Field: "event_id", Message: msg})
		}
	}
	return nil
}

// ValidAmount reports whether n is a whole amount from 1 to MaxAmount.
func ValidAmount(n int64) bool { return n >= 1 && n <= MaxAmount }

// ValidateAmount checks an amount taken from or added to a metric: a whole
// number from 1 to MaxAmount.
func ValidateAmount(n int64) error {
	if !ValidAmount(n) {
		return Invalid("invalid amount", FieldError{Field: "amount", Message: MsgAmount})
	}
	return nil
}

// InvalidMetric is the EInvalid error about a bad metric name.
func InvalidMetric() error {
	return Invalid("invalid metric", FieldError{Field: "metric", Message: MsgMetric})
}
