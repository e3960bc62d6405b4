package server

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/tallyhq/tally"
)

// queryParams lists, for every API route, the query parameters it takes:
// the one place they are declared. A request with any other parameter,
// one given twice, or a name or value that is not valid percent-encoded
// UTF-8 without NUL is refused with 400 naming it. Values are taken
// literally: ';' is part of a value, never a separator (Go's own parser
// drops such pairs, which would widen a filter to the whole tenant).
// "filter[]" stands for the family filter[KEY] (openapi's deepObject), each
// KEY once. TestQueryParamsMatchOpenAPI holds this table to
// api/openapi.yaml.
var queryParams = map[string][]string{
	"GET /api/analytics/events":              {"from", "to", "event", "user_id", "source", "limit", "cursor"},
	"GET /api/analytics/events/stream":       {"from", "to", "event", "user_id", "source", "last_event_id", "tenant"},
	"GET /api/analytics/export.csv":          {"from", "to", "event", "user_id", "source", "limit", "cursor"},
	"GET /api/analytics/usage":               {"from", "to", "tz", "metric", "granularity"},
	"GET /api/analytics/metrics":             {"range", "tz"},
	"GET /api/analytics/audit":               {"from", "to", "action", "actor", "limit", "cursor"},
	"GET /api/analytics/audit/export.csv":    {"from", "to", "action", "actor", "limit"},
	"GET /api/analytics/webhooks/deliveries": {"limit", "cursor"},
	"GET /api/analytics/meters/{slug}/query": {"from", "to", "window", "tz", "group_by", "user_id", "source", "filter[]"},
	// Embed tokens may come in the URL (an iframe's src).
	"GET /api/embed/usage":               {"from", "to", "metric", "token"},
	"GET /api/embed/quotas":              {"token"},
	"GET /api/embed/meters/{slug}/query": {"from", "to", "window", "token"},
	// A publishable key may come in the URL (navigator.sendBeacon).
	"POST /api/analytics/events": {"key"},
	"POST /api/v1/events":        {"key"},
}

// paramName is the name an entry of queryParams documents: "filter[]" is
// filter.
func paramName(entry string) string { return strings.TrimSuffix(entry, "[]") }

// admits reports whether allowed takes the parameter name.
func admits(allowed []string, name string) bool {
	for _, e := range allowed {
		if e == name {
			return true
		}
		if fam, ok := strings.CutSuffix(e, "[]"); ok {
			if key, found := strings.CutPrefix(name, fam+"["); found && len(key) > 1 && strings.HasSuffix(key, "]") {
				return true
			}
		}
	}
	return false
}

// QueryParams returns the query parameters each API route accepts, by
// route pattern (routes not listed take none).
func QueryParams() map[string][]string {
	out := make(map[string][]string, len(queryParams))
	for k, v := range queryParams {
		names := make([]string, len(v))
		for i, e := range v {
			names[i] = paramName(e)
		}
		out[k] = names
	}
	return out
}

// strictQuery enforces queryParams for pattern: it parses the raw query
// itself and hands h a request whose query is the same pairs re-encoded,
// so that r.URL.Query() sees every value literally.
func (s *Server) strictQuery(pattern string, h http.Handler) http.Handler {
	allowed := queryParams[pattern]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery == "" {
			h.ServeHTTP(w, r)
			return
		}
		vals, err := parseQuery(r.URL.RawQuery, allowed)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.RawQuery = vals.Encode()
		r2.URL = &u
		h.ServeHTTP(w, r2)
	})
}

// parseQuery splits raw on '&' only and decodes each name and value; see
// queryParams for what it refuses.
func parseQuery(raw string, allowed []string) (url.Values, error) {
	vals := url.Values{}
	var bad []tally.FieldError
	refuse := func(field, msg string) {
		for _, b := range bad {
			if b.Field == field {
				return
			}
		}
		bad = append(bad, tally.FieldError{Field: field, Message: msg})
	}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || !cleanText(name) {
			refuse("query", "parameter names must be valid percent-encoded UTF-8 without NUL")
			continue
		}
		switch {
		case !admits(allowed, name):
			if len(allowed) == 0 {
				refuse(name, "unknown parameter: this route takes no query parameters")
			} else {
				names := make([]string, len(allowed))
				for i, e := range allowed {
					names[i] = paramName(e)
					if strings.HasSuffix(e, "[]") {
						names[i] += "[KEY]"
					}
				}
				refuse(name, "unknown parameter; this route takes "+strings.Join(names, ", "))
			}
		case err2 != nil || !cleanText(value):
			refuse(name, "must be valid percent-encoded UTF-8 without NUL")
		case vals.Has(name):
			refuse(name, "given more than once")
		default:
			vals.Set(name, value)
		}
	}
	if len(bad) > 0 {
		return nil, tally.Invalid("invalid query parameters", bad...)
	}
	return vals, nil
}

// cleanText reports whether s is valid UTF-8 without NUL.
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }
