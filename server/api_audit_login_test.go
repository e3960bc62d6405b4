package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestAPIFailedLoginAudit checks that a failed login is audited in the
// tenants of the user it names, without the password, and that naming
// another tenant in X-Tenant-Slug does not write into that tenant's log.
func TestAPIFailedLoginAudit(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	victim := h.newTenant(h.uniq("victim"))
	other := h.newTenant(h.uniq("other"))
	email := h.uniq("member") + "@example.com"
	h.join(victim, email, "member", func() string { h.register(email, nil); return h.login(email) }())

	const password = "not-the-password-1"
	h.do("POST", "/api/auth/login", map[string]any{"email": email, "password": password},
		map[string]string{"X-Tenant-Slug": other.slug}).want(t, http.StatusUnauthorized)
	h.do("POST", "/api/auth/login", map[string]any{"email": "nobody@example.com", "password": password},
		map[string]string{"X-Tenant-Slug": other.slug}).want(t, http.StatusUnauthorized)

	r := h.do("GET", "/api/analytics/audit?action=auth.login_failed", nil, victim.h()).want(t, http.StatusOK)
	var page struct {
		Entries []struct {
			Actor, Action, Target string
		}
	}
	r.decode(t, &page)
	if len(page.Entries) != 1 || page.Entries[0].Target != email {
		t.Fatalf("victim tenant audit: %s", r.Body)
	}
	if strings.Contains(string(r.Body), password) {
		t.Fatalf("the password is in the audit log: %s", r.Body)
	}
	r = h.do("GET", "/api/analytics/audit?action=auth.login_failed", nil, other.h()).want(t, http.StatusOK)
	r.decode(t, &page)
	if len(page.Entries) != 0 {
		t.Fatalf("an anonymous caller wrote into another tenant's audit log: %s", r.Body)
	}
}

// TestAPILoginThrottle checks that password guessing from one address is
// refused with 429 and Retry-After after 6 failures for one email (5 free,
// the 6th blocks; docs/LOGIN_LIMITS.md), even with the right password,
// while other emails from that address are unaffected.
func TestAPILoginThrottle(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	email := h.uniq("guess") + "@example.com"
	h.register(email, nil)
	for range 6 {
		h.do("POST", "/api/auth/login", map[string]any{"email": email, "password": "wrong-guess-123"}, nil).want(t, http.StatusUnauthorized)
	}
	r := h.do("POST", "/api/auth/login", map[string]any{"email": email, "password": harnessPassword}, nil)
	wantProblem(t, r, http.StatusTooManyRequests)
	if r.Header.Get("Retry-After") == "" {
		t.Error("429 without Retry-After")
	}
	other := h.uniq("other") + "@example.com"
	h.register(other, nil)
	h.do("POST", "/api/auth/login", map[string]any{"email": other, "password": harnessPassword}, nil).want(t, http.StatusOK)
}
