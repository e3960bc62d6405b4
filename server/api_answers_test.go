package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
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

// doRaw sends req (built by the test, headers as they are) and reads the
// answer in full.
func (h *harness) doRaw(t testing.TB, req *http.Request) *apiResponse {
	t.Helper()
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	r := &apiResponse{Status: res.StatusCode, Header: res.Header, Body: b, req: req.Method + " " + req.URL.Path}
	if res.Header.Get("X-Request-ID") == "" {
		t.Errorf("%s: no X-Request-ID", r)
	}
	return r
}

// TestAPITenantHeaderAndContentType: a duplicate or non-text X-Tenant-Slug
// is a 400 naming the header; a body that is not JSON on a JSON route is a
// 415, on every route that takes a body.
func TestAPITenantHeaderAndContentType(t *testing.T) {
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("hdrs")
		other := h.newTenant("hdrs-other")
		req := func(method, path, body string, kv ...string) *http.Request {
			var rd io.Reader
			if body != "" {
				rd = strings.NewReader(body)
			}
			r, err := http.NewRequest(method, h.srv.URL+path, rd)
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", "Bearer "+o.token)
			for i := 0; i+1 < len(kv); i += 2 {
				r.Header.Add(kv[i], kv[i+1])
			}
			return r
		}

		for _, rt := range []struct{ method, path string }{
			{"GET", "/api/analytics/events"},
			{"GET", "/api/keys"},
			{"GET", "/api/auth/me"},
			{"GET", "/api/tenants/hdrs/members"},
		} {
			for _, slugs := range [][]string{{o.slug, other.slug}, {other.slug, o.slug}, {o.slug, o.slug}} {
				r := h.doRaw(t, req(rt.method, rt.path, "", "X-Tenant-Slug", slugs[0], "X-Tenant-Slug", slugs[1]))
				if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("X-Tenant-Slug") {
					t.Errorf("%s: problem does not name X-Tenant-Slug", r)
				}
			}
			for _, bad := range []string{"hdrs\xff", "\xc3\x28", "h\xe9"} {
				r := h.doRaw(t, req(rt.method, rt.path, "", "X-Tenant-Slug", bad))
				if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("X-Tenant-Slug") {
					t.Errorf("%s: problem does not name X-Tenant-Slug", r)
				}
			}
		}
		// Login and register read the header too.
		login := `{"email":"` + o.email + `","password":"` + harnessPassword + `"}`
		r := h.doRaw(t, req("POST", "/api/auth/login", login, "Content-Type", "application/json", "X-Tenant-Slug", "a\xff"))
		wantProblem(t, r, http.StatusBadRequest)
		// One slug still works.
		h.doRaw(t, req("GET", "/api/keys", "", "X-Tenant-Slug", o.slug)).want(t, http.StatusOK)

		// A NUL byte never reaches tally: net/http refuses the request
		// line itself (plain text, before any handler; see docs/API.md).
		conn, err := net.Dial("tcp", h.srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /api/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nX-Tenant-Slug: hd\x00rs\r\nConnection: close\r\n\r\n", o.token)
		raw, _ := io.ReadAll(conn)
		conn.Close()
		if !bytes.HasPrefix(raw, []byte("HTTP/1.1 400")) {
			t.Errorf("NUL in X-Tenant-Slug: %q, want 400", raw)
		}

		k := h.createKey(o, "analytics:write", "analytics:admin")
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/api/auth/register", `{"email":"ct@x.test","password":"` + harnessPassword + `"}`},
			{"POST", "/api/auth/login", login},
			{"POST", "/api/tenants", `{"name":"x","slug":"ct-x"}`},
			{"PATCH", "/api/tenants/hdrs", `{"name":"y"}`},
			{"POST", "/api/tenants/hdrs/invitations", `{"email":"a@b.c"}`},
			{"POST", "/api/keys", `{"name":"k","scopes":["analytics:read"]}`},
			{"POST", "/api/analytics/events", `{"event":"a.b"}`},
			{"POST", "/api/analytics/usage", `{"metric":"m","amount":1}`},
			{"PUT", "/api/analytics/quotas/m", `{"limit":1}`},
			{"POST", "/api/analytics/quotas/m/consume", `{"amount":1}`},
		} {
			for _, ct := range []string{"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
				"multipart/form-data; boundary=x", "application/jsonx", "json", "application/xml", ";;"} {
				rq := req(rt.method, rt.path, rt.body, "Content-Type", ct, "X-Tenant-Slug", o.slug)
				if strings.HasPrefix(rt.path, "/api/analytics/") {
					rq.Header.Set("Authorization", "Bearer "+k.Key)
					rq.Header.Del("X-Tenant-Slug")
				}
				wantProblem(t, h.doRaw(t, rq), http.StatusUnsupportedMediaType)
			}
		}
		// JSON types are accepted, with parameters and +json suffixes;
		// a body with no Content-Type is read as JSON.
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON", "application/problem+json", ""} {
			rq := req("POST", "/api/analytics/events", `{"event":"ct.ok"}`, "Authorization", "")
			rq.Header.Set("Authorization", "Bearer "+k.Key)
			if ct != "" {
				rq.Header.Set("Content-Type", ct)
			}
			if r := h.doRaw(t, rq); r.Status/100 != 2 {
				t.Errorf("Content-Type %q: %s, want accepted", ct, r)
			}
		}
		// A bodiless POST needs no Content-Type, whatever it says.
		rq := req("POST", "/api/analytics/quotas/m/consume", "", "Content-Type", "text/plain")
		rq.Header.Set("Authorization", "Bearer "+k.Key)
		if r := h.doRaw(t, rq); r.Status == http.StatusUnsupportedMediaType {
			t.Errorf("%s: bodiless POST refused for its Content-Type", r)
		}
		h.noPanic(t)
	})
}

// TestAPIAccountTextFields: a NUL byte in any text field of the account
// routes is a 400 naming the field on both backends, never a 500 or a
// stored NUL; invalid UTF-8 bytes in a JSON body never reach a store
// (encoding/json reads them as U+FFFD) and never answer 5xx.
func TestAPIAccountTextFields(t *testing.T) {
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("texts")
		email := h.uniq("u") + "@texts.test"
		h.register(email, nil)
		for _, tt := range []struct {
			name, method, path, body, field string
			headers                         map[string]string
		}{
			{"register email", "POST", "/api/auth/register", `{"email":"a\u0000b@x.test","password":"` + harnessPassword + `"}`, "email", nil},
			{"register email end", "POST", "/api/auth/register", `{"email":"ab@x.test\u0000","password":"` + harnessPassword + `"}`, "email", nil},
			{"register name", "POST", "/api/auth/register", `{"email":"nul-name@x.test","password":"` + harnessPassword + `","name":"A\u0000B"}`, "name", nil},
			{"login email", "POST", "/api/auth/login", `{"email":"` + email + `\u0000","password":"` + harnessPassword + `"}`, "email", nil},
			{"login email only NUL", "POST", "/api/auth/login", `{"email":"\u0000","password":"x"}`, "email", nil},
			{"tenant create name", "POST", "/api/tenants", `{"name":"Acme\u0000","slug":"nul-tenant"}`, "name", o.h()},
			{"tenant update name", "PATCH", "/api/tenants/texts", `{"name":"Ac\u0000me"}`, "name", o.h()},
			{"key name", "POST", "/api/keys", `{"name":"k\u0000","scopes":["analytics:read"]}`, "name", o.h()},
			{"invitation email", "POST", "/api/tenants/texts/invitations", `{"email":"` + email + `\u0000"}`, "email", o.h()},
			{"invitation email inside", "POST", "/api/tenants/texts/invitations", `{"email":"a\u0000@texts.test","role":"member"}`, "email", o.h()},
		} {
			t.Run(tt.name, func(t *testing.T) {
				r := h.doT(t, tt.method, tt.path, tt.body, tt.headers)
				if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
					t.Errorf("%s: problem does not name %q", r, tt.field)
				}
			})
		}
		// Nothing with a NUL was stored.
		for _, path := range []string{"/api/tenants", "/api/keys", "/api/tenants/texts/members", "/api/tenants/texts/invitations"} {
			r := h.do("GET", path, nil, o.h()).want(t, http.StatusOK)
			if bytes.Contains(r.Body, []byte(`\u0000`)) {
				t.Errorf("%s: a NUL was stored", r)
			}
		}
		h.do("POST", "/api/tenants", `{"name":"x","slug":"nul-tenant"}`, o.h()).want(t, http.StatusCreated)

		// Raw invalid UTF-8 inside JSON strings: never a 5xx.
		for _, rt := range []struct{ method, path, body string }{
			{"POST", "/api/auth/register", "{\"email\":\"bad\xff@x.test\",\"password\":\"" + harnessPassword + "\",\"name\":\"\xc3\x28\"}"},
			{"POST", "/api/auth/login", "{\"email\":\"\xff\xfe\",\"password\":\"x\"}"},
			{"POST", "/api/tenants", "{\"name\":\"\xff\",\"slug\":\"bad-utf\"}"},
			{"PATCH", "/api/tenants/texts", "{\"name\":\"T\xe9xts\"}"},
			{"POST", "/api/keys", "{\"name\":\"\xff\",\"scopes\":[\"analytics:read\"]}"},
			{"POST", "/api/tenants/texts/invitations", "{\"email\":\"\xff@texts.test\"}"},
		} {
			r := h.do(rt.method, rt.path, []byte(rt.body), o.h())
			if r.Status >= 500 {
				t.Errorf("%s: want no 5xx", r)
			}
			if r.Status >= 400 {
				assertProblem(t, r)
			}
		}
		h.noPanic(t)
	})
}
