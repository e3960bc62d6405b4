package server

import (
	"net/http"
	"time"

	"github.com/tallyhq/tally"
)

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
			in := tally.RegisterInput{Email: req.Email, Password: req.Password, Name: req.Name, TenantSlug: r.Header.Get("X-Tenant-Slug")}
			if err := in.Validate(); err != nil { // before taking a hash slot
				return err
			}
			var u *tally.User
			var tenant *tally.Tenant
			err = s.logins.slots.do(r.Context(), func() (err error) {
				u, tenant, err = s.Accounts.Register(r.Context(), in)
				return err
			})
			if err != nil {
				return err
			}
			if tenant != nil {
				s.audit(r.Context(), tenant.ID, &tally.Principal{User: u}, "member.added", u.Email, map[string]any{"role": "member", "via": "signup"})
				s.track(r.Context(), tenant, tally.EventOwnRegister, userRef(u), nil)
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

// login checks credentials (after the login limits: the throttles of the
// client's address and of this email at that address, then a free
// password hash slot), creates a session and tracks the login. It is
// shared by the JSON API and the dashboard's login form.
func (s *Server) login(r *http.Request, email, password, slug string) (*loginResult, error) {
	ctx, addr := r.Context(), remoteHost(r)
	in := tally.LoginInput{Email: email, Password: password, TTL: s.cfg.SessionTTL,
		AuditMeta: map[string]any{"remote": r.RemoteAddr, "request_id": requestIDFrom(ctx)}}
	if err := in.Validate(); err != nil { // before any hash: a long password costs nothing
		return nil, err
	}
	if wait := s.logins.wait(ctx, email, addr); wait > 0 {
		return nil, &retryError{tally.Errorf(tally.ERateLimited, "too many failed logins; try again later"), wait}
	}
	var l *tally.Login
	err := s.logins.slots.do(ctx, func() (err error) {
		l, err = s.Accounts.Login(ctx, in)
		return err
	})
	if err != nil {
		if tally.ErrorCodeOf(err) == tally.EUnauthorized {
			s.logins.failed(ctx, email, addr)
		}
		return nil, err
	}
	s.logins.succeeded(ctx, email, addr)
	for _, m := range l.Tenants {
		if slug != "" && m.Slug != slug {
			continue
		}
		t, err := s.Store.TenantByID(r.Context(), m.TenantID)
		if err == nil {
			s.track(r.Context(), t, tally.EventOwnLogin, userRef(l.User), nil)
		}
	}
	return &loginResult{Token: l.Token, ExpiresAt: l.Session.ExpiresAt, User: l.User, Tenants: l.Tenants}, nil
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
		if err := s.Accounts.Logout(r.Context(), token); err != nil {
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
		ms, err := s.Accounts.Memberships(r.Context(), p.User.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{User: p.User, Tenants: ms})
		return nil
	}
}
