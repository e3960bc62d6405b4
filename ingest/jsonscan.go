package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// errSyntax is what reader reports for text json.Valid would refuse.
var errSyntax = errors.New("invalid JSON")

// reader walks JSON text that json.Valid accepted, without the per-token
// allocations of json.Decoder.Token (which made decoding a batch several
// times slower). Raw values it returns alias the text. On text that is not
// valid JSON it returns errSyntax or garbage, but never panics.
type reader struct {
	b []byte
	i int
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// peek skips white space and returns the next byte, 0 at the end.
func (r *reader) peek() byte {
	for r.i < len(r.b) && isSpace(r.b[r.i]) {
		r.i++
	}
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

// value returns the raw text of the next value and moves past it.
func (r *reader) value() []byte {
	c := r.peek()
	start := r.i
	switch c {
	case 0:
	case '"':
		r.skipString()
	case '{', '[':
		depth := 0
	scan:
		for r.i < len(r.b) {
			switch r.b[r.i] {
			case '"':
				r.skipString()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			r.i++
			if depth == 0 {
				break scan
			}
		}
	default: // a number or a literal
		for r.i < len(r.b) && !isSpace(r.b[r.i]) && strings.IndexByte(",:]}", r.b[r.i]) < 0 {
			r.i++
		}
	}
	r.i = min(r.i, len(r.b))
	return r.b[start:r.i]
}

// skipString moves past the string that starts at r.i.
func (r *reader) skipString() {
	r.i++
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case '\\':
			r.i += 2
		case '"':
			r.i++
			return
		default:
			r.i++
		}
	}
	r.i = min(r.i, len(r.b))
}

// str decodes the next value, which must be a string.
func (r *reader) str() (string, error) {
	if r.peek() != '"' {
		return "", errSyntax
	}
	return unquote(r.value())
}

// unquote decodes a raw JSON string. Text without escapes is taken as it
// is, so invalid UTF-8 stays visible to the caller's checks.
func unquote(raw []byte) (string, error) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", errSyntax
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errSyntax
	}
	return s, nil
}

// object calls member for each member of the object that comes next, with
// its decoded key; member must consume the value (or return an error).
func (r *reader) object(member func(key string) error) error {
	if r.peek() != '{' {
		return errSyntax
	}
	r.i++
	if r.peek() == '}' {
		r.i++
		return nil
	}
	for {
		key, err := r.str()
		if err != nil {
			return err
		}
		if r.peek() != ':' {
			return errSyntax
		}
		r.i++
		if err := member(key); err != nil {
			return err
		}
		switch r.peek() {
		case ',':
			r.i++
		case '}':
			r.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// array calls elem for each element of the array that comes next; elem
// must consume the element (or return an error).
func (r *reader) array(elem func(i int) error) error {
	if r.peek() != '[' {
		return errSyntax
	}
	r.i++
	if r.peek() == ']' {
		r.i++
		return nil
	}
	for i := 0; ; i++ {
		start := r.i
		if err := elem(i); err != nil {
			return err
		}
		if r.i == start {
			return errSyntax // nothing consumed: stop rather than loop
		}
		switch r.peek() {
		case ',':
			r.i++
		case ']':
			r.i++
			return nil
		default:
			return errSyntax
		}
	}
}
