package server

import (
	"net/http"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/secret"
)

const minPasswordLen = 8

func validEmail(e string) bool {
	at := strings.IndexByte(e, '@')
	return len(e) <= 254 && at > 0 && at < len(e)-1 && !strings.ContainsAny(e, " \t\r\n")
}

func (s *Server) handleRegister() http.Handler {
	type request struct {
		Email    string `json:"email"`
		Password string `json:"password"`
		Name     string `json:"name"`
	}
	type response struct {
		User *tally.User `json:"user"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := func() error {
			if !s.cfg.RegistrationOpen {
				return tally.Errorf(tally.EForbidden, "registration is closed")
			}
			req, err := decode[request](r)
			if err != nil {
				return err
			}
			var fields []tally.FieldError
			email := tally.NormalizeEmail(req.Email)
			if !validEmail(email) {
				fields = append(fields, tally.FieldError{Field: "email", Message: "must be an email address"})
			}
			if len([]rune(req.Password)) < minPasswordLen {
				fields = append(fields, tally.FieldError{Field: "password", Message: "must be at least 8 characters"})
			} else if len(req.Password) > 1024 {
				fields = append(fields, tally.FieldError{Field: "password", Message: "must be at most 1024 bytes"})
			}
			if len(req.Name) > 200 {
				fields = append(fields, tally.FieldError{Field: "name", Message: "must be at most 200 characters"})
			}
			if len(fields) > 0 {
				return tally.Invalid("invalid registration", fields...)
			}
			var tenant *tally.Tenant
			if slug := r.Header.Get("X-Tenant-Slug"); slug != "" {
				t, err := s.Store.TenantBySlug(r.Context(), slug)
				if err != nil || !t.AllowSignup {
					if err != nil && tally.ErrorCodeOf(err) != tally.ENotFound {
						return err
					}
					return tally.Errorf(tally.EForbidden, "this tenant does not allow sign-up")
				}
				tenant = t
			}
			u := &tally.User{Email: email, Name: strings.TrimSpace(req.Name)}
			if err := s.Store.CreateUser(r.Context(), u, secret.HashPassword(req.Password)); err != nil {
				return err
			}
			if tenant != nil {
				if err := s.Store.AddMember(r.Context(), tenant.ID, u.ID, tally.RoleMember); err != nil {
					return err
				}
				s.audit(r.Context(), tenant.ID, &tally.Principal{User: u}, "member.added", u.Email, map[string]any{"role": "member", "via": "signup"})
				s.track(r.Context(), tenant, tally.EventRegister, userRef(u), nil)
			}
			encode(w, http.StatusCreated, response{User: u})
			return nil
		}()
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// userRef is how tally's own events name a user.
func userRef(u *tally.User) string { return "user:" + itoa64(u.ID) }

type loginResult struct {
	Token     string             `json:"token"`
	ExpiresAt time.Time          `json:"expires_at"`
	User      *tally.User        `json:"user"`
	Tenants   []tally.Membership `json:"tenants"`
}

// login checks credentials, creates a session and tracks the login. It is
// shared by the JSON API and the dashboard's login form.
func (s *Server) login(r *http.Request, email, password, slug string) (*loginResult, error) {
	key := tally.NormalizeEmail(email)
	if wait := s.logins.wait(key, s.now()); wait > 0 {
		return nil, &retryError{tally.Errorf(tally.ERateLimited, "too many failed logins for this email; try again later"), wait}
	}
	u, hash, err := s.Store.UserByEmail(r.Context(), email)
	if err != nil && tally.ErrorCodeOf(err) != tally.ENotFound {
		return nil, err
	}
	if !secret.CheckPassword(hash, password) {
		s.logins.failed(key, s.now())
		s.auditFailedLogin(r, u, email)
		return nil, tally.Errorf(tally.EUnauthorized, "invalid email or password")
	}
	s.logins.succeeded(key)
	ms, err := s.Store.Memberships(r.Context(), u.ID)
	if err != nil {
		return nil, err
	}
	token := secret.Token()
	sess := &tally.Session{UserID: u.ID, TokenHash: secret.HashToken(token), CreatedAt: s.now(), ExpiresAt: s.now().Add(s.cfg.SessionTTL)}
	if err := s.Store.CreateSession(r.Context(), sess); err != nil {
		return nil, err
	}
	for _, m := range ms {
		if slug != "" && m.Slug != slug {
			continue
		}
		t, err := s.Store.TenantByID(r.Context(), m.TenantID)
		if err == nil {
			s.track(r.Context(), t, tally.EventLogin, userRef(u), nil)
		}
	}
	return &loginResult{Token: token, ExpiresAt: sess.ExpiresAt, User: u, Tenants: ms}, nil
}

// auditFailedLogin records a failed login (never the password) in the audit
// log of every tenant the user belongs to, or in the system log (tenant 0)
// for an unknown email: an anonymous caller cannot write into a tenant's
// log by naming it.
func (s *Server) auditFailedLogin(r *http.Request, u *tally.User, email string) {
	meta := map[string]any{"remote": r.RemoteAddr, "request_id": requestIDFrom(r.Context())}
	target := tally.NormalizeEmail(email)
	if u != nil {
		ms, err := s.Store.Memberships(r.Context(), u.ID)
		if err == nil && len(ms) > 0 {
			for _, m := range ms {
				s.audit(r.Context(), m.TenantID, nil, "auth.login_failed", target, meta)
			}
			return
		}
	}
	s.audit(r.Context(), 0, nil, "auth.login_failed", target, meta)
}

func (s *Server) handleLogin() http.Handler {
	type request struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := decode[request](r)
		var res *loginResult
		if err == nil {
			res, err = s.login(r, req.Email, req.Password, r.Header.Get("X-Tenant-Slug"))
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, res)
	})
}

func (s *Server) handleLogout() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		token, _, _ := presentedToken(r)
		if err := s.Store.RevokeSession(r.Context(), secret.HashToken(token)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) handleMe() apiHandler {
	type response struct {
		User    *tally.User        `json:"user"`
		Tenants []tally.Membership `json:"tenants"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		ms, err := s.Store.Memberships(r.Context(), p.User.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{User: p.User, Tenants: ms})
		return nil
	}
}
