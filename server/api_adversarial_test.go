package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tallyhq/tally/server"
	"gopkg.in/yaml.v3"
)

// advCase is one request of the adversarial suite and what it must get.
type advCase struct {
	category string
	method   string
	path     string
	header   http.Header
	body     []byte // nil: none
	ctype    string // Content-Type of body ("" with a body: application/json)
	// status lists the acceptable answers; problem requires a problem
	// document naming field (when set).
	status []int
	field  string
}

// raw sends c as is (repeated headers included) and reads the answer.
func (h *harness) raw(t *testing.T, c advCase) *apiResponse {
	t.Helper()
	var rd io.Reader
	if c.body != nil {
		rd = bytes.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, h.srv.URL+c.path, rd)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	if c.body != nil {
		ct := c.ctype
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	for k, vs := range c.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return &apiResponse{Status: res.StatusCode, Header: res.Header, Body: b, req: c.method + " " + c.path}
}

// TestAPIAdversarial attacks every API route from outside, on both
// backends: tenant A's owner aims at tenant B's ids and slug (isolation),
// malformed credentials, repeated and non-text tenant headers, unknown
// and malformed query parameters, and non-JSON or malformed bodies. The
// routes come from the server's own list (Patterns, QueryParams). Every
// answer must have the expected status, be a problem document when it is
// an error, carry X-Request-ID, show nothing of B, and leave no panic in
// the log; B's data is intact at the end.
func TestAPIAdversarial(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		a, b := h.newTenant("adv-alpha"), h.newTenant("adv-bravo")
		bKey := h.createKey(b, "analytics:read")
		_, bMember := h.member(b, "member")
		h.send(b.h(), map[string]any{"batch": []any{
			map[string]any{"event": "bravo.secret", "user_id": "bravo-user", "props": map[string]string{"mark": "BRAVO-ONLY"}},
		}})
		h.do("PUT", "/api/analytics/quotas/bravo_quota", map[string]any{"limit": 9}, b.h()).want(t, http.StatusOK)
		bEvents := len(h.listEvents(b.h(), "limit=1000").Events)
		// What only B's data holds (A's own audit log may quote the B slug
		// and ids A tried, which is A's data).
		bMarks := []string{"BRAVO-ONLY", "bravo.secret", bKey.Prefix, b.email}

		fill := func(path, slug string) string {
			r := strings.NewReplacer("{slug}", slug, "{user_id}", strconv.FormatInt(bMember, 10),
				"{id}", strconv.FormatInt(bKey.ID, 10), "{metric}", "bravo_quota")
			if strings.Contains(path, "/users/{user_id}/") {
				return strings.ReplaceAll(path, "{user_id}", "bravo-user")
			}
			return r.Replace(path)
		}
		session := func(slug string) http.Header {
			return http.Header{"Authorization": {"Bearer " + a.token}, "X-Tenant-Slug": {slug}}
		}
		anonymous := map[string]bool{"POST /api/auth/register": true, "POST /api/auth/login": true}
		hasBody := func(m string) bool { return m == "POST" || m == "PUT" || m == "PATCH" }
		// gone answers 410 before reading its body; bodyless POSTs read
		// none, so a malformed one is not refused as such.
		gone := map[string]bool{"POST /api/tenants/{slug}/members": true}
		bodyless := map[string]bool{"POST /api/invitations/{token}/accept": true}
		// keyOnly routes take an API key, never a session (401); so do the
		// embed routes, with an embed token.
		keyOnly := map[string]bool{"POST /api/v1/events": true}
		params := server.QueryParams()
		scopeOf := apiKeyScopes(t)
		scopedKeys := map[string]string{}
		for _, sc := range []string{"analytics:read", "analytics:write", "analytics:export", "analytics:admin"} {
			scopedKeys[sc] = h.createKey(a, sc).Key
		}

		var cases []advCase
		for _, pattern := range h.app.Server.Patterns() {
			method, path, _ := strings.Cut(pattern, " ")
			if !strings.HasPrefix(path, "/api/") || pattern == "POST /api/auth/logout" {
				continue // logout would end A's session mid-suite; it is in its own case below
			}
			if pattern == "GET /api/analytics/events/stream" {
				continue // an accepted stream never ends; TestAPIStreamBadInput and TestAPIStreamLiveTail hold its refusals and scope
			}
			target, own := fill(path, b.slug), fill(path, a.slug)
			first := len(cases)
			var body []byte
			if hasBody(method) {
				body = []byte(`{}`)
			}
			// Isolation: A's session in A's tenant, with B's ids in the
			// path: never B's data, never a 5xx.
			st := []int{200, 201, 202, 204, 400, 403, 404, 409, 429}
			if anonymous[pattern] {
				st = append(st, 401) // login with no password
			}
			cases = append(cases, advCase{category: "isolation", method: method, path: target, header: session(a.slug), body: body,
				status: st})
			// A's session naming B's tenant: 403 like a tenant that does
			// not exist (routes without tenant context ignore the header).
			if !anonymous[pattern] && !strings.HasPrefix(path, "/api/auth/") && path != "/api/tenants" {
				cases = append(cases, advCase{category: "isolation", method: method, path: target, header: session(b.slug), body: body,
					status: []int{400, 403, 404}})
			}
			target = own // the other attacks aim at A's own routes
			// Role × scope: each of A's single-scope keys gets past
			// authorization exactly where the contract names its scope
			// (routes without x-api-key-scope take no key).
			if !anonymous[pattern] {
				for sc, key := range scopedKeys {
					c := advCase{category: "scopes", method: method, path: target, body: body,
						header: http.Header{"Authorization": {"Bearer " + key}}, status: []int{401, 403}}
					if scopeOf[pattern] == sc {
						c.status = []int{200, 201, 202, 204, 400, 404, 409, 429}
					}
					cases = append(cases, c)
				}
			}
			// Malformed credentials.
			if !anonymous[pattern] {
				for _, auth := range []string{"Bearer ", "Bearer tk_not_a_key", "Bearer " + strings.Repeat("x", 5000), "Basic YWRtaW46YWRtaW4=",
					"bearer" + a.token, "Bearer " + a.token + "x", "Bearer \u00e9\u00e8"} {
					cases = append(cases, advCase{category: "credentials", method: method, path: target, body: body,
						header: http.Header{"Authorization": {auth}, "X-Tenant-Slug": {a.slug}}, status: []int{400, 401}})
				}
			}
			// Tenant header: repeated, non-text.
			cases = append(cases,
				advCase{category: "headers", method: method, path: target, body: body, status: []int{400}, field: "X-Tenant-Slug",
					header: http.Header{"Authorization": {"Bearer " + a.token}, "X-Tenant-Slug": {a.slug, b.slug}}},
				advCase{category: "headers", method: method, path: target, body: body, status: []int{400}, field: "X-Tenant-Slug",
					header: http.Header{"Authorization": {"Bearer " + a.token}, "X-Tenant-Slug": {"adv\xff"}}},
			)
			// Query abuse, from the route's own parameter list.
			cases = append(cases, advCase{category: "query", method: method, path: target + "?zz_unknown=1", header: session(a.slug),
				body: body, status: []int{400}, field: "zz_unknown"})
			for _, p := range params[pattern] {
				cases = append(cases,
					advCase{category: "query", method: method, path: target + "?" + p + "=1&" + p + "=2", header: session(a.slug),
						body: body, status: []int{400}, field: p},
					advCase{category: "query", method: method, path: target + "?" + p + "=%ff%00", header: session(a.slug),
						body: body, status: []int{400}, field: p},
				)
			}
			// Bodies: not JSON, malformed JSON, wrong shapes, huge numbers.
			if hasBody(method) {
				for _, c := range []struct {
					body, ctype string
					status      []int
				}{
					{`{"a":1}`, "text/plain", []int{415}},
					{`a=1`, "application/x-www-form-urlencoded", []int{415}},
					{`{"a":`, "", []int{400}},
					{`[1,2,3]`, "", []int{400}},
					{`"\u0000"`, "", []int{400}},
					{`{"limit":1e400,"amount":1e400,"event":"x","email":"x"}`, "", []int{400, 403, 404, 429}},
					{`{"name":"\u0000","email":"a\u0000@b.c","slug":"\ud800"}`, "", []int{400, 403, 404}},
				} {
					st := c.status
					switch {
					case anonymous[pattern] && st[0] != 415:
						st = []int{400, 401}
					case gone[pattern] && st[0] != 415:
						st = []int{410}
					case bodyless[pattern] && st[0] != 415:
						st = append(slices.Clone(st), 404)
					}
					cases = append(cases, advCase{category: "bodies", method: method, path: target, header: session(a.slug),
						body: []byte(c.body), ctype: c.ctype, status: st})
				}
			}
			if keyOnly[pattern] || strings.HasPrefix(path, "/api/embed/") { // a session is no credential there
				for i := first; i < len(cases); i++ {
					if cases[i].header.Get("Authorization") == "Bearer "+a.token && cases[i].field == "" {
						cases[i].status = append(slices.Clone(cases[i].status), 401)
					}
				}
			}
		}
		// Logout last but one: with malformed credentials only.
		cases = append(cases, advCase{category: "credentials", method: "POST", path: "/api/auth/logout",
			header: http.Header{"Authorization": {"Bearer tk_nope"}}, status: []int{401}})

		counts := map[string]int{}
		for _, c := range cases {
			counts[c.category]++
			r := h.raw(t, c)
			name := c.category + ": " + r.req
			if r.Header.Get("X-Request-ID") == "" {
				t.Errorf("%s: no X-Request-ID", name)
			}
			ok := false
			for _, s := range c.status {
				ok = ok || r.Status == s
			}
			if !ok {
				t.Errorf("%s (%v): status %d, want one of %v: %s", name, c.header, r.Status, c.status, trim(r.Body))
			}
			if r.Status >= 500 {
				t.Errorf("%s: server error %d", name, r.Status)
			}
			if r.Status >= 400 {
				p := assertProblem(t, r)
				if c.field != "" && !p.hasField(c.field) {
					t.Errorf("%s: problem %s does not name %s", name, trim(r.Body), c.field)
				}
			}
			for _, m := range bMarks {
				if strings.Contains(string(r.Body), m) && !strings.Contains(c.path, m) {
					t.Errorf("%s shows tenant B's %q: %s", name, m, trim(r.Body))
				}
			}
		}
		if n := len(h.listEvents(b.h(), "limit=1000").Events); n < bEvents {
			t.Errorf("B has %d events after the suite, had %d", n, bEvents)
		}
		if q := h.quota(b.h(), "bravo_quota"); q.Limit != 9 {
			t.Errorf("B's quota after the suite: %+v", q)
		}
		h.noPanic(t)
		keys := make([]string, 0, len(counts))
		total := 0
		for k, n := range counts {
			keys = append(keys, k+"="+strconv.Itoa(n))
			total += n
		}
		sort.Strings(keys)
		t.Logf("adversarial cases: %d (%s)", total, strings.Join(keys, ", "))
		if total < 150 {
			t.Errorf("only %d cases", total)
		}
	})
}

// apiKeyScopes reads the x-api-key-scope of every operation of
// api/openapi.yaml, by route pattern.
func apiKeyScopes(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for path, ops := range doc.Paths {
		for method, node := range ops {
			var op struct {
				Scope string `yaml:"x-api-key-scope"`
			}
			if method != "parameters" && node.Decode(&op) == nil && op.Scope != "" {
				out[strings.ToUpper(method)+" "+path] = op.Scope
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d operations name an API key scope", len(out))
	}
	return out
}

func trim(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) == nil && len(b) > 300 {
		return string(b[:300]) + "…"
	}
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
