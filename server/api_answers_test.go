package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAPIAnswersNoStore: every /api/ answer, success or problem, carries
// Cache-Control: no-store; dashboard assets keep their own caching.
func TestAPIAnswersNoStore(t *testing.T) {
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("nostore")
		k := h.createKey(o, "analytics:read", "analytics:write")
		for _, rt := range []struct {
			method, path string
			body         any
			headers      map[string]string
		}{
			{"GET", "/api/auth/me", nil, o.h()},
			{"GET", "/api/auth/me", nil, nil},
			{"GET", "/api/tenants", nil, o.h()},
			{"GET", "/api/keys", nil, o.h()},
			{"POST", "/api/analytics/events", `{"event":"a.b"}`, hdr(k.Key, "")},
			{"GET", "/api/analytics/events", nil, hdr(k.Key, "")},
			{"GET", "/api/analytics/nope", nil, o.h()},
			{"PUT", "/api/auth/login", nil, nil},
			{"POST", "/api/auth/login", `{"email":"x@y.z","password":"wrong-password"}`, nil},
		} {
			r := h.do(rt.method, rt.path, rt.body, rt.headers)
			if got := r.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s: Cache-Control %q, want no-store", r, got)
			}
		}
		r := h.do("GET", "/ui/static/app.js", nil, nil).want(t, http.StatusOK)
		if got := r.Header.Get("Cache-Control"); got == "no-store" {
			t.Errorf("%s: static asset is no-store", r)
		}
		h.noPanic(t)
	})
}

// TestAPIErrorsAreProblemsEverywhere: 405, unknown static files and
// directories, oversized headers and bodies are problem+json answers with
// X-Request-ID (checked by the harness for every answer).
func TestAPIErrorsAreProblemsEverywhere(t *testing.T) {
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("problems")
		for _, path := range []string{"/ui/static/nope.js", "/ui/static/", "/ui/static/vendor/", "/ui/static/vendor",
			"/ui/static/../templates/layout.html", "/ui/static/vendor/uplot/nope.css"} {
			r := h.do("GET", path, nil, nil)
			if r.Status == http.StatusOK || (r.Status >= 300 && r.Status < 400) {
				t.Errorf("%s: want a 404 problem", r)
				continue
			}
			wantProblem(t, r, http.StatusNotFound)
		}
		wantProblem(t, h.do("POST", "/ui/static/app.js", nil, nil), http.StatusMethodNotAllowed)
		wantProblem(t, h.do("PATCH", "/api/keys", `{}`, o.h()), http.StatusMethodNotAllowed)

		// Headers past tally's 32 KiB limit: a 431 problem, on any route.
		big := strings.Repeat("x", 33<<10)
		for _, path := range []string{"/healthz", "/api/auth/me", "/api/analytics/events", "/ui/static/app.js", "/nope"} {
			wantProblem(t, h.do("GET", path, nil, hdr(o.token, o.slug, "X-Padding", big)), http.StatusRequestHeaderFieldsTooLarge)
		}
		split := map[string]string{}
		for i := range 40 {
			split["X-Pad-"+strings.Repeat("p", i+1)] = strings.Repeat("y", 1<<10)
		}
		wantProblem(t, h.do("GET", "/api/auth/me", nil, split), http.StatusRequestHeaderFieldsTooLarge)
		// Just under the limit is served.
		h.do("GET", "/api/auth/me", nil, hdr(o.token, "", "X-Padding", strings.Repeat("x", 30<<10))).want(t, http.StatusOK)

		body := `{"event":"big.body","props":{"pad":"` + strings.Repeat("x", 1<<20) + `"}}`
		wantProblem(t, h.do("POST", "/api/analytics/events", body, o.h()), http.StatusRequestEntityTooLarge)
		h.noPanic(t)
	})
}
