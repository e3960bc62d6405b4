package server_test

import (
	"bytes"
	"net/http"
	"testing"
)

// TestAPITenantContext walks every 401/403 rule of the tenant
// context: credentials, X-Tenant-Slug for sessions, the key's own tenant,
// roles and session-only routes.
func TestAPITenantContext(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	acme := h.newTenant("acme")
	other := h.newTenant("other")
	memberTok, _ := h.member(acme, "member")
	adminTok, _ := h.member(acme, "admin")
	key := h.createKey(acme, "analytics:read", "analytics:write", "analytics:export", "analytics:admin")
	otherKey := h.createKey(other, "analytics:read")

	event := map[string]string{"event": "context.test"}
	t.Run("401 without or with bad credentials", func(t *testing.T) {
		t.Parallel()
		bad := []map[string]string{
			nil,
			{"Authorization": "Bearer"},
			{"Authorization": "Bearer "},
			{"Authorization": "Basic " + acme.token},
			{"Authorization": acme.token},
			{"Authorization": "Bearer not-a-session"},
			{"Authorization": "Bearer tk_nope_nope"},
			{"Authorization": "Bearer tk_"},
			{"Authorization": "Bearer " + key.Prefix + "_wrongsecret"},
			{"Authorization": "Bearer " + key.Key + "x"},
			// A bad bearer token is not rescued by a valid session cookie.
			{"Authorization": "Bearer x" + acme.token, "Cookie": "tally_session=" + acme.token},
		}
		routes := []struct{ method, path string }{
			{"GET", "/api/auth/me"}, {"GET", "/api/tenants"}, {"POST", "/api/auth/logout"}, {"GET", "/api/keys"},
			{"GET", "/api/analytics/events"}, {"POST", "/api/analytics/events"}, {"PATCH", "/api/tenants/acme"},
			{"GET", "/api/analytics/export.csv"}, {"GET", "/api/analytics/audit"},
		}
		for _, headers := range bad {
			if headers != nil {
				headers["X-Tenant-Slug"] = "acme"
			}
			var first []byte
			for _, rt := range routes {
				r := h.doT(t, rt.method, rt.path, event, headers)
				wantProblem(t, r, http.StatusUnauthorized)
				if first == nil {
					first = r.Body
				} else if !bytes.Equal(first, r.Body) {
					t.Errorf("401 bodies differ: %s vs %s", first, r.Body)
				}
			}
		}
	})

	t.Run("X-Tenant-Slug is needed with several tenants only", func(t *testing.T) {
		t.Parallel()
		// A user of exactly one tenant acts in it without the header,
		// with the role it has there.
		for _, path := range []string{"/api/analytics/events", "/api/keys", "/api/analytics/quotas"} {
			h.doT(t, "GET", path, nil, hdr(acme.token, "")).want(t, http.StatusOK)
		}
		h.doT(t, "POST", "/api/analytics/events", event, hdr(memberTok, "")).want(t, http.StatusAccepted)
		wantProblem(t, h.doT(t, "GET", "/api/keys", nil, hdr(memberTok, "")), http.StatusForbidden)

		// A user of two tenants must say which: 400 naming the header.
		both := h.uniq("both") + "@example.com"
		bothTok, _ := h.user(both)
		for _, o := range []owner{acme, other} {
			h.join(o, both, "member", bothTok)
		}
		for _, path := range []string{"/api/analytics/events", "/api/analytics/quotas"} {
			r := h.doT(t, "GET", path, nil, hdr(bothTok, ""))
			if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("X-Tenant-Slug") {
				t.Errorf("%s: does not name X-Tenant-Slug", r)
			}
		}
		r := h.doT(t, "POST", "/api/analytics/events", event, hdr(bothTok, ""))
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("X-Tenant-Slug") {
			t.Errorf("%s: does not name X-Tenant-Slug", r)
		}
		h.doT(t, "POST", "/api/analytics/events", event, hdr(bothTok, other.slug)).want(t, http.StatusAccepted)
	})

	t.Run("foreign and unknown tenants look the same", func(t *testing.T) {
		t.Parallel()
		for _, rt := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/analytics/events", nil},
			{"POST", "/api/analytics/events", event},
			{"GET", "/api/keys", nil},
			{"POST", "/api/keys", map[string]any{"name": "x", "scopes": []string{"analytics:read"}}},
			{"GET", "/api/analytics/export.csv", nil},
		} {
			foreign := h.doT(t, rt.method, rt.path, rt.body, hdr(acme.token, "other"))
			missing := h.doT(t, rt.method, rt.path, rt.body, hdr(acme.token, "no-such-tenant"))
			invalid := h.doT(t, rt.method, rt.path, rt.body, hdr(acme.token, "NOT A SLUG"))
			wantProblem(t, foreign, http.StatusForbidden)
			wantProblem(t, missing, http.StatusForbidden)
			wantProblem(t, invalid, http.StatusForbidden)
			if !bytes.Equal(foreign.Body, missing.Body) || !bytes.Equal(foreign.Body, invalid.Body) {
				t.Errorf("%s %s: foreign %s, missing %s, invalid %s", rt.method, rt.path, foreign.Body, missing.Body, invalid.Body)
			}
		}
		// The same for the {slug} routes.
		foreign := h.doT(t, "GET", "/api/tenants/other/members", nil, hdr(acme.token, ""))
		missing := h.doT(t, "GET", "/api/tenants/no-such-tenant/members", nil, hdr(acme.token, ""))
		wantProblem(t, foreign, http.StatusForbidden)
		wantProblem(t, missing, http.StatusForbidden)
		if !bytes.Equal(foreign.Body, missing.Body) {
			t.Errorf("members: foreign %s, missing %s", foreign.Body, missing.Body)
		}
	})

	t.Run("a key acts only in its tenant", func(t *testing.T) {
		t.Parallel()
		h.doT(t, "GET", "/api/analytics/events", nil, hdr(key.Key, "")).want(t, http.StatusOK)
		h.doT(t, "GET", "/api/analytics/events", nil, hdr(key.Key, "acme")).want(t, http.StatusOK)
		h.doT(t, "POST", "/api/analytics/events", event, hdr(key.Key, "acme")).want(t, http.StatusAccepted)
		for _, slug := range []string{"other", "no-such-tenant", "ACME"} {
			wantProblem(t, h.doT(t, "GET", "/api/analytics/events", nil, hdr(key.Key, slug)), http.StatusForbidden)
			wantProblem(t, h.doT(t, "POST", "/api/analytics/events", event, hdr(key.Key, slug)), http.StatusForbidden)
		}
		wantProblem(t, h.doT(t, "GET", "/api/analytics/events", nil, hdr(otherKey.Key, "acme")), http.StatusForbidden)
	})

	t.Run("members send events but read nothing", func(t *testing.T) {
		t.Parallel()
		h.doT(t, "POST", "/api/analytics/events", event, hdr(memberTok, "acme")).want(t, http.StatusAccepted)
		h.doT(t, "POST", "/api/analytics/usage", map[string]string{"metric": "member_metric"}, hdr(memberTok, "acme")).want(t, http.StatusAccepted)
		for _, rt := range []struct{ method, path string }{
			{"GET", "/api/analytics/events"},
			{"GET", "/api/analytics/export.csv"},
			{"GET", "/api/analytics/usage"},
			{"GET", "/api/analytics/metrics"},
			{"GET", "/api/analytics/quotas"},
			{"GET", "/api/analytics/quotas/builds_daily"},
			{"PUT", "/api/analytics/quotas/builds_daily"},
			{"POST", "/api/analytics/rollup"},
			{"GET", "/api/analytics/audit"},
			{"DELETE", "/api/analytics/users/u1/events"},
			{"GET", "/api/keys"},
			{"POST", "/api/keys"},
			{"DELETE", "/api/keys/999999"},
			{"GET", "/api/tenants/acme/members"},
		} {
			wantProblem(t, h.doT(t, rt.method, rt.path, map[string]any{"limit": 1}, hdr(memberTok, "acme")), http.StatusForbidden)
			// An admin gets past the role check on each of them.
			if r := h.doT(t, rt.method, rt.path, map[string]any{"limit": 1}, hdr(adminTok, "acme")); r.Status == http.StatusForbidden || r.Status == http.StatusUnauthorized {
				t.Errorf("admin: %s", r)
			}
		}
	})

	t.Run("cookie sessions need a CSRF token to change state", func(t *testing.T) {
		t.Parallel()
		cookie := map[string]string{"Cookie": "tally_session=" + acme.token, "X-Tenant-Slug": "acme"}
		h.doT(t, "GET", "/api/auth/me", nil, cookie).want(t, http.StatusOK)
		h.doT(t, "GET", "/api/analytics/events", nil, cookie).want(t, http.StatusOK)
		for _, rt := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/api/analytics/events", event},
			{"POST", "/api/tenants", map[string]any{"name": "C", "slug": "by-cookie"}},
			{"POST", "/api/keys", map[string]any{"name": "k", "scopes": []string{"analytics:read"}}},
			{"PATCH", "/api/tenants/acme", map[string]any{"name": "C"}},
			{"POST", "/api/auth/logout", nil},
		} {
			wantProblem(t, h.doT(t, rt.method, rt.path, rt.body, cookie), http.StatusForbidden)
			with := map[string]string{"X-CSRF-Token": "forged"}
			for k, v := range cookie {
				with[k] = v
			}
			wantProblem(t, h.doT(t, rt.method, rt.path, rt.body, with), http.StatusForbidden)
		}
		// The session survived the refused logout.
		h.doT(t, "GET", "/api/auth/me", nil, hdr(acme.token, "")).want(t, http.StatusOK)
	})

	t.Run("keys cannot use session routes", func(t *testing.T) {
		t.Parallel()
		for _, rt := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/auth/me", nil},
			{"POST", "/api/auth/logout", nil},
			{"GET", "/api/tenants", nil},
			{"POST", "/api/tenants", map[string]any{"name": "K", "slug": "by-key"}},
			{"PATCH", "/api/tenants/acme", map[string]any{"name": "K"}},
			{"GET", "/api/tenants/acme/members", nil},
			{"GET", "/api/keys", nil},
			{"POST", "/api/keys", map[string]any{"name": "k", "scopes": []string{"analytics:admin"}}},
			{"DELETE", "/api/keys/999999", nil},
		} {
			wantProblem(t, h.doT(t, rt.method, rt.path, rt.body, hdr(key.Key, "")), http.StatusForbidden)
			wantProblem(t, h.doT(t, rt.method, rt.path, rt.body, hdr(key.Key, "acme")), http.StatusForbidden)
		}
		// The key still works where it may.
		h.doT(t, "GET", "/api/analytics/audit", nil, hdr(key.Key, "")).want(t, http.StatusOK)
	})
}
