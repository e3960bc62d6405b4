package server_test

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAPIKeysCreateListRevoke(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	other := h.newTenant("other")

	r := h.do("POST", "/api/keys", map[string]any{"name": "ci", "scopes": []string{"analytics:write", "analytics:read", "analytics:write"}}, o.h())
	r.want(t, http.StatusCreated)
	var k createdKey
	r.decode(t, &k)
	if !strings.HasPrefix(k.Key, "tk_") || k.Prefix == "" || !strings.HasPrefix(k.Key, k.Prefix) || len(k.Key) < len(k.Prefix)+20 {
		t.Errorf("key %q, prefix %q", k.Key, k.Prefix)
	}
	if k.ID <= 0 || k.Name != "ci" || k.ExpiresAt != nil || time.Since(k.CreatedAt) > time.Minute {
		t.Errorf("created %+v", k)
	}
	if !slices.Equal(k.Scopes, []string{"analytics:read", "analytics:write"}) {
		t.Errorf("scopes %v", k.Scopes)
	}
	var raw map[string]any
	r.decode(t, &raw)
	for _, f := range []string{"id", "name", "key", "prefix", "scopes", "created_at", "expires_at"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("create answer lacks %s: %s", f, r.Body)
		}
	}

	for _, tt := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"no name", map[string]any{"scopes": []string{"analytics:read"}}, "name"},
		{"no scopes", map[string]any{"name": "x"}, "scopes"},
		{"unknown scope", map[string]any{"name": "x", "scopes": []string{"analytics:everything"}}, "scopes"},
		{"past expiry", map[string]any{"name": "x", "scopes": []string{"analytics:read"}, "expires_at": time.Now().Add(-time.Minute).Format(time.RFC3339)}, "expires_at"},
		{"bad expiry", map[string]any{"name": "x", "scopes": []string{"analytics:read"}, "expires_at": "tomorrow"}, "expires_at"},
		{"unknown field", map[string]any{"name": "x", "scopes": []string{"analytics:read"}, "tenant": "other"}, "tenant"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := h.doT(t, "POST", "/api/keys", tt.body, o.h())
			if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
				t.Errorf("%s: does not name %s", r, tt.field)
			}
		})
	}

	// The key works; the list shows it without its secret, with last_used_at.
	h.do("GET", "/api/analytics/events?limit=1", nil, hdr(k.Key, "")).want(t, http.StatusOK)
	otherKey := h.createKey(other, "analytics:read")
	r = h.do("GET", "/api/keys", nil, o.h())
	r.want(t, http.StatusOK)
	secretPart := strings.TrimPrefix(k.Key, k.Prefix)
	if bytes.Contains(r.Body, []byte(k.Key)) || bytes.Contains(r.Body, []byte(secretPart)) {
		t.Fatalf("GET /api/keys shows the secret: %s", r.Body)
	}
	type listedKey struct {
		ID         int64      `json:"id"`
		Name       string     `json:"name"`
		Prefix     string     `json:"prefix"`
		Scopes     []string   `json:"scopes"`
		LastUsedAt *time.Time `json:"last_used_at"`
		RevokedAt  *time.Time `json:"revoked_at"`
	}
	var list struct {
		Keys []listedKey `json:"keys"`
	}
	r.decode(t, &list)
	if len(list.Keys) != 1 {
		t.Fatalf("keys of acme: %s", r.Body)
	}
	if got := list.Keys[0]; got.ID != k.ID || got.Prefix != k.Prefix || got.Name != "ci" || got.LastUsedAt == nil || time.Since(*got.LastUsedAt) > time.Minute || got.RevokedAt != nil {
		t.Errorf("listed %+v", got)
	}

	// Another tenant's key id is not found here, and keeps working.
	wantProblem(t, h.do("DELETE", "/api/keys/"+strconv.FormatInt(otherKey.ID, 10), nil, o.h()), http.StatusNotFound)
	h.do("GET", "/api/analytics/events?limit=1", nil, hdr(otherKey.Key, "")).want(t, http.StatusOK)
	wantProblem(t, h.do("DELETE", "/api/keys/999999", nil, o.h()), http.StatusNotFound)
	wantProblem(t, h.do("DELETE", "/api/keys/x", nil, o.h()), http.StatusNotFound)

	// Revoking stops the key at once.
	h.do("DELETE", "/api/keys/"+strconv.FormatInt(k.ID, 10), nil, o.h()).want(t, http.StatusNoContent)
	wantProblem(t, h.do("GET", "/api/analytics/events?limit=1", nil, hdr(k.Key, "")), http.StatusUnauthorized)
	wantProblem(t, h.do("POST", "/api/analytics/events", map[string]string{"event": "a.b"}, hdr(k.Key, "")), http.StatusUnauthorized)
	wantProblem(t, h.do("DELETE", "/api/keys/"+strconv.FormatInt(k.ID, 10), nil, o.h()), http.StatusNotFound)

	// Key management is audited.
	r = h.do("GET", "/api/analytics/audit", nil, o.h())
	r.want(t, http.StatusOK)
	for _, action := range []string{`"key.created"`, `"key.revoked"`} {
		if !bytes.Contains(r.Body, []byte(action)) {
			t.Errorf("audit lacks %s: %s", action, r.Body)
		}
	}
	if bytes.Contains(r.Body, []byte(secretPart)) {
		t.Errorf("audit shows the key secret")
	}
}

func TestAPIKeyExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	exp := time.Now().Add(time.Second)
	r := h.do("POST", "/api/keys", map[string]any{"name": "short", "scopes": []string{"analytics:read"}, "expires_at": exp.Format(time.RFC3339Nano)}, o.h())
	r.want(t, http.StatusCreated)
	var k createdKey
	r.decode(t, &k)
	if k.ExpiresAt == nil || k.ExpiresAt.Sub(exp).Abs() > time.Millisecond {
		t.Errorf("expires_at %v, want %v", k.ExpiresAt, exp)
	}
	if r := h.do("GET", "/api/analytics/events?limit=1", nil, hdr(k.Key, "")); time.Until(exp) > 100*time.Millisecond {
		r.want(t, http.StatusOK) // checked only when surely not yet expired (slow machines)
	}
	time.Sleep(time.Until(exp) + 200*time.Millisecond)
	wantProblem(t, h.do("GET", "/api/analytics/events?limit=1", nil, hdr(k.Key, "")), http.StatusUnauthorized)
}

// TestAPIKeyScopes checks every analytics route against keys with one
// scope each: the right scope passes, every other gets 403.
func TestAPIKeyScopes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withQuotaDefaults(map[string]int64{"builds_daily": 1000}))
	o := h.newTenant("acme")
	scopes := []string{"analytics:read", "analytics:write", "analytics:export", "analytics:admin"}
	keys := map[string]string{}
	for _, s := range scopes {
		keys[s] = h.createKey(o, s).Key
	}
	routes := []struct {
		method, path string
		body         any
		scope        string
		ok           int
	}{
		{"POST", "/api/analytics/events", map[string]string{"event": "scope.test"}, "analytics:write", http.StatusAccepted},
		{"GET", "/api/analytics/events", nil, "analytics:read", http.StatusOK},
		{"GET", "/api/analytics/export.csv", nil, "analytics:export", http.StatusOK},
		{"POST", "/api/analytics/usage", map[string]string{"metric": "builds_daily"}, "analytics:write", http.StatusAccepted},
		{"GET", "/api/analytics/usage", nil, "analytics:read", http.StatusOK},
		{"GET", "/api/analytics/metrics", nil, "analytics:read", http.StatusOK},
		{"GET", "/api/analytics/quotas", nil, "analytics:read", http.StatusOK},
		{"GET", "/api/analytics/quotas/builds_daily", nil, "analytics:read", http.StatusOK},
		{"PUT", "/api/analytics/quotas/builds_daily", map[string]any{"limit": 2000}, "analytics:admin", http.StatusOK},
		{"POST", "/api/analytics/quotas/builds_daily/consume", map[string]any{}, "analytics:write", http.StatusOK},
		{"POST", "/api/analytics/rollup", map[string]any{}, "analytics:admin", http.StatusOK},
		{"GET", "/api/analytics/audit", nil, "analytics:admin", http.StatusOK},
		{"DELETE", "/api/analytics/users/nobody/events", nil, "analytics:admin", http.StatusOK},
	}
	for _, rt := range routes {
		for _, s := range scopes {
			r := h.do(rt.method, rt.path, rt.body, hdr(keys[s], ""))
			if s == rt.scope {
				if r.Status != rt.ok {
					t.Errorf("%s with %s: want %d", r, s, rt.ok)
				}
				continue
			}
			if p := wantProblem(t, r, http.StatusForbidden); !strings.Contains(p.Detail, rt.scope) {
				t.Errorf("%s with %s: detail does not name the missing scope %s", r, s, rt.scope)
			}
		}
	}
	// A key with every scope passes everywhere, also with its own slug.
	all := h.createKey(o, scopes...)
	for _, rt := range routes {
		if r := h.do(rt.method, rt.path, rt.body, hdr(all.Key, "acme")); r.Status != rt.ok {
			t.Errorf("%s with every scope: want %d", r, rt.ok)
		}
	}
}
