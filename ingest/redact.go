package ingest

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"
)

// secretWords are the words of a props key that always mark it secret,
// whatever Config.RedactKeys holds: a key is cut into words at "_", "-",
// ".", ":", spaces and camelCase humps ("apiToken" → api, token;
// "APIKey" → api, key), and is secret when
//
//   - a word contains password, passwd or secret ("db_password",
//     "passwordHints", "clientSecret", "dbpassword");
//   - a word is token or ends with it ("token", "access_token",
//     "githubToken", "csrftoken", "X-Auth-Token"), unless the next word
//     says it is a measure of tokens ("token_count", "token_type");
//   - a word is apikey or ends with it, or the word api is followed by
//     key or keys ("api_key", "StripeApiKey", "x-api-key").
//
// So LLM token meters ("tokens", "prompt_tokens", "completion_tokens",
// "max_tokens", "token_count") are stored as sent, while every key that
// names a credential stays redacted.
var secretWords = []string{"password", "passwd", "secret"}

// tokenMeasures are the words after "token" that make a key a count or a
// description of tokens rather than a token.
var tokenMeasures = map[string]bool{
	"count": true, "counts": true, "total": true, "totals": true, "used": true, "usage": true,
	"limit": true, "limits": true, "max": true, "min": true, "number": true, "num": true,
	"len": true, "length": true, "size": true, "budget": true, "cost": true, "estimate": true,
	"type": true, "kind": true,
}

// keyWords cuts a props key into lower-cased words (see secretWords).
func keyWords(key string) []string {
	var words []string
	rs := []rune(key)
	start := -1
	flush := func(end int) {
		if start >= 0 && end > start {
			words = append(words, strings.ToLower(string(rs[start:end])))
		}
		start = -1
	}
	for i, r := range rs {
		switch {
		case r == '_' || r == '-' || r == '.' || r == ':' || r == '/' || unicode.IsSpace(r):
			flush(i)
			continue
		case start >= 0 && unicode.IsUpper(r):
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || (unicode.IsUpper(prev) && nextLower) {
				flush(i)
			}
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(rs))
	return words
}

// secretKey reports whether the words of key name a credential (the rule
// of secretWords). It runs on every props key of every event, so ASCII
// keys (nearly all) are cut in place, without allocating.
func secretKey(key string) bool {
	var lowerBuf [128]byte
	var boundsBuf [32][2]int
	if len(key) > len(lowerBuf) || !isASCII(key) {
		ws := keyWords(key)
		lower := []byte(strings.Join(ws, " "))
		bounds := boundsBuf[:0]
		at := 0
		for _, w := range ws {
			bounds = append(bounds, [2]int{at, at + len(w)})
			at += len(w) + 1
		}
		return secretIn(lower, bounds)
	}
	lower := lowerBuf[:len(key)]
	for i := 0; i < len(key); i++ {
		c := key[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	if !mayBeSecret(lower) {
		return false // no word can match: most keys stop here
	}
	bounds := boundsBuf[:0]
	start := -1
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c == '_' || c == '-' || c == '.' || c == ':' || c == '/' || c == ' ' || c == '\t':
			if start >= 0 {
				bounds = append(bounds, [2]int{start, i})
			}
			start = -1
			continue
		case start >= 0 && isUpper(c):
			prev := key[i-1]
			nextLower := i+1 < len(key) && isLower(key[i+1])
			if isLower(prev) || isDigit(prev) || (isUpper(prev) && nextLower) {
				bounds = append(bounds, [2]int{start, i})
				start = -1
			}
		}
		if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		bounds = append(bounds, [2]int{start, len(key)})
	}
	return secretIn(lower, bounds)
}

// secretIn applies the rule of secretWords to the lower-cased words
// lower[b[0]:b[1]] of a key, for each b of bounds.
func secretIn(lower []byte, bounds [][2]int) bool {
	for i, b := range bounds {
		w := lower[b[0]:b[1]]
		for _, s := range secretWordBytes {
			if bytes.Contains(w, s) {
				return true
			}
		}
		var next []byte
		if i+1 < len(bounds) {
			next = lower[bounds[i+1][0]:bounds[i+1][1]]
		}
		switch {
		case bytes.HasSuffix(w, wordToken) && !tokenMeasures[string(next)],
			bytes.HasSuffix(w, wordAPIKey),
			string(w) == "api" && (string(next) == "key" || string(next) == "keys"):
			return true
		}
	}
	return false
}

var (
	secretWordBytes = func() [][]byte {
		out := make([][]byte, len(secretWords))
		for i, w := range secretWords {
			out[i] = []byte(w)
		}
		return out
	}()
	wordToken  = []byte("token")
	wordAPIKey = []byte("apikey")
)

// secretHints are what a lower-cased key holds when one of its words can
// name a credential.
var secretHints = [][]byte{[]byte("passw"), []byte("secret"), []byte("token"), []byte("api")}

func mayBeSecret(lower []byte) bool {
	for _, h := range secretHints {
		if bytes.Contains(lower, h) {
			return true
		}
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }
func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
