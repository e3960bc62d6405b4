package server_test

import (
	"bytes"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAPIRegister(t *testing.T) {
	t.Parallel()
	h := newHarness(t)

	r := h.do("POST", "/api/auth/register", map[string]string{"email": "Ada@Example.com", "password": harnessPassword, "name": "Ada"}, nil)
	r.want(t, http.StatusCreated)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var reg struct {
		User map[string]any `json:"user"`
	}
	r.decode(t, &reg)
	keys := make([]string, 0, len(reg.User))
	for k := range reg.User {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"created_at", "email", "id", "name"}; !slices.Equal(keys, want) {
		t.Errorf("user fields %v, want %v", keys, want)
	}
	if reg.User["email"] != "ada@example.com" || reg.User["name"] != "Ada" {
		t.Errorf("user %v", reg.User)
	}
	if id, _ := reg.User["id"].(float64); id <= 0 {
		t.Errorf("user id %v", reg.User["id"])
	}
	if at, err := time.Parse(time.RFC3339, reg.User["created_at"].(string)); err != nil || time.Since(at) > time.Minute {
		t.Errorf("created_at %v (%v)", reg.User["created_at"], err)
	}
	if bytes.Contains(r.Body, []byte(harnessPassword)) || bytes.Contains(bytes.ToLower(r.Body), []byte("argon")) {
		t.Errorf("register answer shows the password or its hash: %s", r.Body)
	}

	tests := []struct {
		name   string
		body   any
		status int
		field  string
	}{
		{"duplicate email", map[string]string{"email": "ada@example.com", "password": harnessPassword}, http.StatusConflict, ""},
		{"duplicate email other case", map[string]string{"email": "  ADA@example.COM ", "password": harnessPassword}, http.StatusConflict, ""},
		{"weak password", map[string]string{"email": "weak@example.com", "password": "short7!"}, http.StatusBadRequest, "password"},
		{"empty password", map[string]string{"email": "weak@example.com"}, http.StatusBadRequest, "password"},
		{"invalid email", map[string]string{"email": "not-an-email", "password": harnessPassword}, http.StatusBadRequest, "email"},
		{"email without domain", map[string]string{"email": "ada@", "password": harnessPassword}, http.StatusBadRequest, "email"},
		{"unknown field", map[string]string{"email": "x@example.com", "password": harnessPassword, "nickname": "x"}, http.StatusBadRequest, "nickname"},
		{"wrong type", map[string]any{"email": 42, "password": harnessPassword}, http.StatusBadRequest, "email"},
		{"not JSON", "{email", http.StatusBadRequest, ""},
		{"empty body", "", http.StatusBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.doT(t, "POST", "/api/auth/register", tt.body, nil)
			p := wantProblem(t, r, tt.status)
			if tt.field != "" && !p.hasField(tt.field) {
				t.Errorf("%s: problem does not name field %q", r, tt.field)
			}
		})
	}
}

func TestAPIRegistrationClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withRegistrationClosed())
	r := h.do("POST", "/api/auth/register", map[string]string{"email": "ada@example.com", "password": harnessPassword}, nil)
	wantProblem(t, r, http.StatusForbidden)
	// Nobody got in: the email cannot log in.
	r = h.do("POST", "/api/auth/login", map[string]string{"email": "ada@example.com", "password": harnessPassword}, nil)
	wantProblem(t, r, http.StatusUnauthorized)
}

func TestAPILoginLogoutMe(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")

	r := h.do("POST", "/api/auth/login", map[string]string{"email": "OWNER@acme.test", "password": harnessPassword}, nil)
	r.want(t, http.StatusOK)
	var login struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		User      struct {
			ID    int64  `json:"id"`
			Email string `json:"email"`
		} `json:"user"`
		Tenants []struct {
			Slug string `json:"slug"`
			Name string `json:"name"`
			Role string `json:"role"`
		} `json:"tenants"`
	}
	r.decode(t, &login)
	if len(login.Token) < 22 { // >= 128 random bits in any text encoding
		t.Errorf("token %q is too short", login.Token)
	}
	if login.ExpiresAt.Before(time.Now().Add(time.Hour)) {
		t.Errorf("expires_at %v", login.ExpiresAt)
	}
	if login.User.ID != o.id || login.User.Email != o.email {
		t.Errorf("user %+v", login.User)
	}
	if len(login.Tenants) != 1 || login.Tenants[0].Slug != "acme" || login.Tenants[0].Role != "owner" || login.Tenants[0].Name != "Tenant acme" {
		t.Errorf("tenants %+v", login.Tenants)
	}

	// A user without tenants gets an empty list, not null.
	h.register("lonely@example.com", nil)
	r = h.do("POST", "/api/auth/login", map[string]string{"email": "lonely@example.com", "password": harnessPassword}, nil)
	r.want(t, http.StatusOK)
	if m := r.object(t); m["tenants"] == nil {
		t.Errorf("%s: tenants is null, want []", r)
	}

	// Wrong password and unknown email: the same answer.
	bad := h.do("POST", "/api/auth/login", map[string]string{"email": o.email, "password": "wrong-password"}, nil)
	unknown := h.do("POST", "/api/auth/login", map[string]string{"email": "nobody@acme.test", "password": "wrong-password"}, nil)
	wantProblem(t, bad, http.StatusUnauthorized)
	wantProblem(t, unknown, http.StatusUnauthorized)
	if !bytes.Equal(bad.Body, unknown.Body) {
		t.Errorf("bad password and unknown email differ:\n%s\n%s", bad.Body, unknown.Body)
	}
	wantProblem(t, h.do("POST", "/api/auth/login", map[string]string{"email": o.email}, nil), http.StatusUnauthorized)
	wantProblem(t, h.do("POST", "/api/auth/login", `{"email":1}`, nil), http.StatusBadRequest)

	// /me.
	r = h.do("GET", "/api/auth/me", nil, hdr(login.Token, ""))
	r.want(t, http.StatusOK)
	var me struct {
		User struct {
			ID    int64  `json:"id"`
			Email string `json:"email"`
		} `json:"user"`
		Tenants []struct {
			Slug string `json:"slug"`
			Role string `json:"role"`
		} `json:"tenants"`
	}
	r.decode(t, &me)
	if me.User.ID != o.id || len(me.Tenants) != 1 || me.Tenants[0].Slug != "acme" || me.Tenants[0].Role != "owner" {
		t.Errorf("me %+v", me)
	}
	wantProblem(t, h.do("GET", "/api/auth/me", nil, nil), http.StatusUnauthorized)

	// Logout revokes only that session.
	h.do("POST", "/api/auth/logout", nil, hdr(login.Token, "")).want(t, http.StatusNoContent)
	wantProblem(t, h.do("GET", "/api/auth/me", nil, hdr(login.Token, "")), http.StatusUnauthorized)
	wantProblem(t, h.do("POST", "/api/auth/logout", nil, hdr(login.Token, "")), http.StatusUnauthorized)
	wantProblem(t, h.do("GET", "/api/tenants", nil, hdr(login.Token, "")), http.StatusUnauthorized)
	h.do("GET", "/api/auth/me", nil, hdr(o.token, "")).want(t, http.StatusOK)
	wantProblem(t, h.do("POST", "/api/auth/logout", nil, nil), http.StatusUnauthorized)
}

func TestAPISessionExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withSessionTTL(time.Second))
	h.register("ada@example.com", nil)
	r := h.do("POST", "/api/auth/login", map[string]string{"email": "ada@example.com", "password": harnessPassword}, nil)
	r.want(t, http.StatusOK)
	var login struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	r.decode(t, &login)
	if d := time.Until(login.ExpiresAt); d <= 0 || d > time.Second {
		t.Errorf("expires_at %v is not a second away", login.ExpiresAt)
	}
	if r := h.do("GET", "/api/auth/me", nil, hdr(login.Token, "")); time.Until(login.ExpiresAt) > 100*time.Millisecond {
		r.want(t, http.StatusOK) // checked only when surely not yet expired (slow machines)
	}
	time.Sleep(time.Until(login.ExpiresAt) + 200*time.Millisecond)
	wantProblem(t, h.do("GET", "/api/auth/me", nil, hdr(login.Token, "")), http.StatusUnauthorized)
}
