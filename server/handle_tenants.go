package server

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/usage"
)

// internalHost reports whether a webhook host names this machine or a
// private network literally. Names that resolve inside are refused when
// the webhook is delivered (usage.PublicWebhookClient).
func internalHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && !usage.PublicAddr(ip)
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func (s *Server) handleTenantCreate() apiHandler {
	type request struct {
		Name        string `json:"name"`
		Slug        string `json:"slug"`
		AllowSignup bool   `json:"allow_signup"`
	}
	type response struct {
		Tenant *tally.Tenant `json:"tenant"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		t, err := s.Accounts.CreateTenant(r.Context(), tally.CreateTenantInput{Slug: req.Slug, Name: req.Name, AllowSignup: req.AllowSignup}, p.User.ID)
		if err != nil {
			return err
		}
		s.audit(r.Context(), t.ID, p, "tenant.created", t.Slug, map[string]any{"name": t.Name})
		s.track(r.Context(), t, tally.EventOwnTenantCreated, userRef(p.User), map[string]any{"slug": t.Slug})
		encode(w, http.StatusCreated, response{Tenant: t})
		return nil
	}
}

func (s *Server) handleTenantList() apiHandler {
	type response struct {
		Tenants []tally.Membership `json:"tenants"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		ms, err := s.Accounts.Memberships(r.Context(), p.User.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Tenants: ms})
		return nil
	}
}

func (s *Server) handleTenantUpdate() apiHandler {
	type request struct {
		Name          *string `json:"name"`
		AllowSignup   *bool   `json:"allow_signup"`
		Timezone      *string `json:"timezone"`
		RetentionDays *int    `json:"retention_days"`
		WebhookURL    *string `json:"webhook_url"`
	}
	type response struct {
		Tenant        *tally.Tenant `json:"tenant"`
		WebhookSecret string        `json:"webhook_secret,omitempty"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		t := *p.Tenant
		var fields []tally.FieldError
		upd := tally.TenantUpdate{Name: req.Name, AllowSignup: req.AllowSignup, Timezone: req.Timezone, RetentionDays: req.RetentionDays}
		if err := upd.Apply(&t); err != nil {
			var te *tally.Error
			errors.As(err, &te)
			fields = append(fields, te.Fields...)
		}
		newSecret := ""
		if req.WebhookURL != nil {
			switch u, err := url.Parse(*req.WebhookURL); {
			case *req.WebhookURL == "":
				t.WebhookURL, t.WebhookSecret = "", ""
			case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" || u.User != nil:
				fields = append(fields, tally.FieldError{Field: "webhook_url", Message: "must be an http(s) URL"})
			case !s.cfg.AllowPrivateWebhooks && internalHost(u.Hostname()):
				fields = append(fields, tally.FieldError{Field: "webhook_url", Message: "must not point at a loopback or private address"})
			default:
				newSecret = tally.NewWebhookSecret()
				t.WebhookURL, t.WebhookSecret = *req.WebhookURL, newSecret
			}
		}
		if len(fields) > 0 {
			return tally.Invalid("invalid tenant settings", fields...)
		}
		if err := s.Store.UpdateTenant(r.Context(), &t); err != nil {
			return err
		}
		s.audit(r.Context(), t.ID, p, "tenant.updated", t.Slug, map[string]any{"changes": t.Changes(p.Tenant)})
		encode(w, http.StatusOK, response{Tenant: &t, WebhookSecret: newSecret})
		return nil
	}
}

func (s *Server) handleMemberList() apiHandler {
	type response struct {
		Members []tally.Member `json:"members"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		ms, err := s.Accounts.ListMembers(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Members: ms})
		return nil
	}
}

func (s *Server) handleMemberRemove() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		id, err := strconv.ParseInt(r.PathValue("user_id"), 10, 64)
		if err != nil {
			return tally.Errorf(tally.ENotFound, "member not found")
		}
		role, err := s.Accounts.RemoveMember(r.Context(), p, id)
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "member.removed", "user:"+itoa64(id), map[string]any{"role": role})
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
