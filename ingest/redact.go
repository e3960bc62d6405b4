package ingest

import (
	"strings"
	"unicode"
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
// of secretWords).
func secretKey(key string) bool {
	words := keyWords(key)
	for i, w := range words {
		for _, s := range secretWords {
			if strings.Contains(w, s) {
				return true
			}
		}
		next := ""
		if i+1 < len(words) {
			next = words[i+1]
		}
		switch {
		case strings.HasSuffix(w, "token") && !tokenMeasures[next],
			strings.HasSuffix(w, "apikey"),
			w == "api" && (next == "key" || next == "keys"):
			return true
		}
	}
	return false
}
