package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/secret"
)

// sessionCookie is the dashboard's session cookie.
const sessionCookie = "tally_session"

// apiHandler is a handler that returns its error; the wrappers answer it
// as a problem document.
type apiHandler func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error

// credentials is what a request authenticated with.
type credentials struct {
	p        *tally.Principal
	token    string // the session token, for sessions
	byCookie bool
}

// authenticate finds the principal of r: a Bearer session token or API key,
// or the dashboard's session cookie. It does not select a tenant.
func (s *Server) authenticate(r *http.Request) (*credentials, error) {
	unauth := tally.Errorf(tally.EUnauthorized, "missing or invalid credentials")
	token, byCookie, ok := presentedToken(r)
	if !ok {
		if token, ok = queryKey(r); ok {
			return s.publishableKeyAuth(r, token)
		}
		return nil, unauth
	}
	if _, ok := secret.ParseKey(token); ok && !byCookie {
		k, t, err := s.Accounts.KeyAuth(r.Context(), token, remoteHost(r))
		if err != nil {
			return nil, err
		}
		return &credentials{p: &tally.Principal{Key: k, Tenant: t}}, nil
	}
	u, err := s.Accounts.SessionUser(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return &credentials{p: &tally.Principal{User: u}, token: token, byCookie: byCookie}, nil
}

// remoteHost is the client's address without its port (a client's port
// changes with every connection).
func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// presentedToken returns the Bearer token of r, else its session cookie.
func presentedToken(r *http.Request) (token string, byCookie, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, found := strings.Cut(h, " ")
		t = strings.TrimSpace(t)
		if !found || !strings.EqualFold(scheme, "Bearer") || t == "" {
			return "", false, false
		}
		return t, false, true
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		return c.Value, true, true
	}
	return "", false, false
}

// csrfToken derives the CSRF token of a session: an HMAC of the session
// token, so it needs no storage and dies with the session.
func csrfToken(sessionToken string) string {
	m := hmac.New(sha256.New, []byte("tally-csrf"))
	m.Write([]byte(sessionToken))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// checkCSRF requires the CSRF token on state-changing cookie requests.
func checkCSRF(r *http.Request, c *credentials) error {
	if !c.byCookie || !unsafeMethod(r.Method) {
		return nil
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	if !hmac.Equal([]byte(got), []byte(csrfToken(c.token))) {
		return tally.Errorf(tally.EForbidden, "missing or invalid CSRF token")
	}
	return nil
}

// serve adapts an apiHandler after authentication. The principal travels
// as the handler's parameter only, never in the request's context.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, p *tally.Principal, h apiHandler) {
	if err := h(w, r, p); err != nil {
		s.writeError(w, r, err)
	}
}

// session serves h for a logged-in user (not an API key), with no tenant.
func (s *Server) session(h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err == nil && c.p.Key != nil {
			err = s.denied(r, c.p, tally.Errorf(tally.EForbidden, "this endpoint needs a user session, not an API key"))
		}
		if err == nil {
			err = checkCSRF(r, c)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.serve(w, r, c.p, h)
	})
}

// tenantAdmin serves h for a user who is at least an admin of the tenant
// named by the {slug} path segment (sessions only).
func (s *Server) tenantAdmin(h apiHandler) http.Handler {
	return s.session(func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		if err := s.selectTenant(r, p, r.PathValue("slug")); err != nil {
			return err
		}
		if !p.Role.AtLeast(tally.RoleAdmin) {
			return s.denied(r, p, tally.Errorf(tally.EForbidden, "this needs the admin or owner role in the tenant"))
		}
		return h(w, r, p)
	})
}

// selectTenant sets p's tenant and role from a slug the user must be a
// member of. Unknown tenants and non-members get the same 403, so that a
// tenant's existence is never revealed.
func (s *Server) selectTenant(r *http.Request, p *tally.Principal, slug string) error {
	forbidden := tally.Errorf(tally.EForbidden, "not a member of this tenant")
	t, role, err := s.Accounts.Membership(r.Context(), slug, p.User.ID)
	if err != nil {
		if tally.ErrorCodeOf(err) == tally.ENotFound {
			return forbidden
		}
		return err
	}
	p.Tenant, p.Role = t, role
	return nil
}

// inTenant serves h for a principal acting in one tenant: a user session
// with X-Tenant-Slug whose role is at least role, or an API key of that
// tenant with scope (scope "": sessions only). Key requests are auto-tracked as api.request.
func (s *Server) inTenant(role tally.Role, scope tally.Scope, h apiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c, err := s.authenticate(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if c.p.Key == nil {
			if err := s.tenantContext(r, c, role, scope); err != nil {
				s.writeError(w, r, s.denied(r, c.p, err))
				return
			}
			s.serve(w, r, c.p, h)
			return
		}
		// Every request a key authenticated is tracked in the key's tenant,
		// refused ones (wrong scope or tenant) too.
		sw := &statusWriter{ResponseWriter: w}
		if err := s.tenantContext(r, c, role, scope); err != nil {
			s.writeError(sw, r, s.denied(r, c.p, err))
		} else {
			s.serve(sw, r, c.p, h)
		}
		s.trackAPIRequest(r, c.p, sw.code(), time.Since(start))
	})
}

// denied returns err, and when it is a 403 refusal of a principal in a
// known tenant (a role too low, a key without the scope or of another
// tenant) first audits it there as "access.denied": the route, the remote
// address and the reason; once per tenant, actor, address and window
// (tally.RefusalAuditWindow), so that repeating a refused request cannot
// flood the audit log. Non-members are refused without an entry: the
// tenant is not theirs to write to, nor to learn about.
func (s *Server) denied(r *http.Request, p *tally.Principal, err error) error {
	if tally.ErrorCodeOf(err) != tally.EForbidden || p == nil || p.Tenant == nil {
		return err
	}
	remote := remoteHost(r)
	if !s.denials.Allow(fmt.Sprintf("%d\x00%s\x00%s", p.Tenant.ID, p.Actor(), remote), s.now()) {
		return err
	}
	s.audit(r.Context(), p.Tenant.ID, p, "access.denied", r.Pattern, map[string]any{
		"remote": remote, "method": r.Method, "path": loggedPath(r), "reason": tally.ErrorMessageOf(err),
	})
	return err
}

// soleTenant is the slug of the one tenant p's user belongs to, the
// tenant of a session that sends no X-Tenant-Slug; with several (or none)
// the header is required, and the 400 names it.
func (s *Server) soleTenant(r *http.Request, p *tally.Principal) (string, error) {
	ms, err := s.Accounts.Memberships(r.Context(), p.User.ID)
	if err != nil {
		return "", err
	}
	switch len(ms) {
	case 1:
		return ms[0].Slug, nil
	case 0:
		return "", tally.Invalid("the X-Tenant-Slug header is required: this user belongs to no tenant yet",
			tally.FieldError{Field: "X-Tenant-Slug", Message: "required"})
	}
	return "", tally.Invalid(fmt.Sprintf("the X-Tenant-Slug header is required: this user belongs to %d tenants", len(ms)),
		tally.FieldError{Field: "X-Tenant-Slug", Message: "required when the user belongs to several tenants"})
}

// tenantContext applies the tenant context rules (api/openapi.yaml, "Tenant context") to c.
func (s *Server) tenantContext(r *http.Request, c *credentials, role tally.Role, scope tally.Scope) error {
	slug := r.Header.Get("X-Tenant-Slug")
	p := c.p
	if p.Key != nil {
		if slug != "" && slug != p.Tenant.Slug {
			return tally.Errorf(tally.EForbidden, "this API key belongs to another tenant")
		}
		if scope == "" {
			return tally.Errorf(tally.EForbidden, "this endpoint needs a user session, not an API key")
		}
		if !p.Key.HasScope(scope) {
			return tally.Errorf(tally.EForbidden, "this API key lacks the %s scope", scope)
		}
		return s.checkPublishable(r, p.Key)
	}
	if err := checkCSRF(r, c); err != nil {
		return err
	}
	if slug == "" {
		var err error
		if slug, err = s.soleTenant(r, p); err != nil {
			return err
		}
	}
	if err := s.selectTenant(r, p, slug); err != nil {
		return err
	}
	if !p.Role.AtLeast(role) {
		return tally.Errorf(tally.EForbidden, "this needs the %s role or higher in the tenant", role)
	}
	return nil
}

// loggedPath is r's path as logs and audit entries show it: a secret in
// the path (an invitation's {token}) is redacted.
func loggedPath(r *http.Request) string {
	if tok := r.PathValue("token"); tok != "" {
		return strings.Replace(r.URL.Path, tok, "[redacted]", 1)
	}
	return r.URL.Path
}
