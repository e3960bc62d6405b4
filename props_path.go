package tally

import (
	"encoding/json"
	"strings"
)

// propRaw returns the JSON text of the value at the props path keys
// (ParsePropPath's) of the valid JSON document doc, nil when absent. It
// reads the document without decoding what the path does not reach, so
// that ingest can evaluate meters on every event cheaply; a key that
// appears twice in an object resolves to its last value, as decoding
// does (ParseProps).
func propRaw(doc []byte, keys []string) []byte {
	v := doc
	for _, k := range keys {
		v = memberOf(v, k)
		if v == nil {
			return nil
		}
	}
	return v
}

// memberOf returns the text of the last member named key of the JSON
// object obj (nil when obj is no object or has no such member).
func memberOf(obj []byte, key string) []byte {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	var found []byte
	i++
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return found // '}' or broken
		}
		end := skipString(obj, i)
		name := obj[i:end]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return found
		}
		i = skipSpace(obj, i+1)
		vend := skipValue(obj, i)
		if keyIs(name, key) {
			found = obj[i:vend]
		}
		i = skipSpace(obj, vend)
		if i >= len(obj) || obj[i] != ',' {
			return found
		}
		i++
	}
}

// keyIs reports whether the JSON string literal lit is key.
func keyIs(lit []byte, key string) bool {
	if len(lit) < 2 {
		return false
	}
	inner := lit[1 : len(lit)-1]
	if strings.IndexByte(string(inner), '\\') < 0 {
		return string(inner) == key
	}
	var s string
	return json.Unmarshal(lit, &s) == nil && s == key
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at i.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the JSON value starting at i.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}

// propScalarRaw is PropScalar over the raw props: the text of the scalar
// at path, ok false for anything else.
func propScalarRaw(props []byte, path string) (string, bool) {
	raw := propRaw(props, ParsePropPath(path))
	if len(raw) == 0 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case 't', 'f':
		return string(raw), string(raw) == "true" || string(raw) == "false"
	case '{', '[', 'n':
		return "", false
	}
	return string(raw), true // a number, as written
}

// propNumberRaw is the JSON number at path of the raw props; ok false
// when there is none.
func propNumberRaw(props []byte, path string) (json.Number, bool) {
	raw := propRaw(props, ParsePropPath(path))
	if len(raw) == 0 || raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return "", false
	}
	return json.Number(raw), true
}
