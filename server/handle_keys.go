package server

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

func (s *Server) handleKeyCreate() apiHandler {
	type request struct {
		Name      string        `json:"name"`
		Scopes    []tally.Scope `json:"scopes"`
		ExpiresAt *string       `json:"expires_at"` // parsed here, so that a bad time names the field
		// Publishable keys (browser.go).
		Kind               tally.KeyKind `json:"kind"`
		AllowedOrigins     []string      `json:"allowed_origins"`
		RateLimitPerMinute int           `json:"rate_limit_per_minute"`
		AddressRateLimit   int           `json:"address_rate_limit_per_minute"`
	}
	type response struct {
		ID        int64         `json:"id"`
		Name      string        `json:"name"`
		Key       string        `json:"key"`
		Prefix    string        `json:"prefix"`
		Scopes    []tally.Scope `json:"scopes"`
		CreatedAt time.Time     `json:"created_at"`
		ExpiresAt *time.Time    `json:"expires_at"`
		Kind      tally.KeyKind `json:"kind"`
		Origins   []string      `json:"allowed_origins"`
		Rate      int           `json:"rate_limit_per_minute"`
		AddrRate  int           `json:"address_rate_limit_per_minute"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		in := tally.CreateKeyInput{Name: req.Name, Scopes: req.Scopes,
			Kind: req.Kind, Origins: req.AllowedOrigins, RatePerMinute: req.RateLimitPerMinute,
			AddressRatePerMinute: req.AddressRateLimit}
		if req.ExpiresAt != nil {
			at, err := time.Parse(time.RFC3339Nano, *req.ExpiresAt)
			if err != nil {
				// A bad time is reported with the other fields' problems.
				var fields []tally.FieldError
				var invalid *tally.Error
				if errors.As(in.Validate(s.now()), &invalid) {
					fields = invalid.Fields
				}
				fields = append(fields, tally.FieldError{Field: "expires_at", Message: "must be an RFC 3339 time"})
				return tally.Invalid("invalid API key", fields...)
			}
			in.ExpiresAt = &at
		}
		k, key, err := s.Accounts.CreateKey(r.Context(), p.Tenant.ID, in)
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "key.created", k.Prefix, map[string]any{"name": k.Name, "scopes": k.Scopes, "kind": k.Kind})
		encode(w, http.StatusCreated, response{ID: k.ID, Name: k.Name, Key: key, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt,
			Kind: k.Kind, Origins: k.Origins, Rate: k.RatePerMinute, AddrRate: k.AddressRatePerMinute})
		return nil
	}
}

func (s *Server) handleKeyList() apiHandler {
	type response struct {
		Keys []tally.APIKey `json:"keys"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		ks, err := s.Accounts.ListKeys(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Keys: ks})
		return nil
	}
}

func (s *Server) handleKeyRevoke() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return tally.Errorf(tally.ENotFound, "key not found")
		}
		if err := s.Accounts.RevokeKey(r.Context(), p.Tenant.ID, id); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "key.revoked", "key:"+itoa64(id), nil)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
