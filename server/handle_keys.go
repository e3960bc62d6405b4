package server

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/admin"
)

func (s *Server) handleKeyCreate() apiHandler {
	type request struct {
		Name      string        `json:"name"`
		Scopes    []tally.Scope `json:"scopes"`
		ExpiresAt *string       `json:"expires_at"` // parsed here, so that a bad time names the field
	}
	type response struct {
		ID        int64         `json:"id"`
		Name      string        `json:"name"`
		Key       string        `json:"key"`
		Prefix    string        `json:"prefix"`
		Scopes    []tally.Scope `json:"scopes"`
		CreatedAt time.Time     `json:"created_at"`
		ExpiresAt *time.Time    `json:"expires_at"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		var fields []tally.FieldError
		name := strings.TrimSpace(req.Name)
		if name == "" || len(name) > 200 {
			fields = append(fields, tally.FieldError{Field: "name", Message: "must be 1-200 characters"})
		}
		if len(req.Scopes) == 0 {
			fields = append(fields, tally.FieldError{Field: "scopes", Message: "must name at least one scope"})
		}
		for _, sc := range req.Scopes {
			if !sc.Valid() {
				fields = append(fields, tally.FieldError{Field: "scopes", Message: "unknown scope " + strconv.Quote(string(sc))})
			}
		}
		var expires *time.Time
		if req.ExpiresAt != nil {
			switch at, err := time.Parse(time.RFC3339Nano, *req.ExpiresAt); {
			case err != nil:
				fields = append(fields, tally.FieldError{Field: "expires_at", Message: "must be an RFC 3339 time"})
			case !at.After(s.now()):
				fields = append(fields, tally.FieldError{Field: "expires_at", Message: "must be in the future"})
			default:
				expires = &at
			}
		}
		if len(fields) > 0 {
			return tally.Invalid("invalid API key", fields...)
		}
		slices.Sort(req.Scopes)
		req.Scopes = slices.Compact(req.Scopes)
		k, key, err := admin.CreateKey(r.Context(), s.Store, p.Tenant.ID, name, req.Scopes, expires)
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "key.created", k.Prefix, map[string]any{"name": name, "scopes": req.Scopes})
		encode(w, http.StatusCreated, response{ID: k.ID, Name: k.Name, Key: key, Prefix: k.Prefix, Scopes: k.Scopes, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt})
		return nil
	}
}

func (s *Server) handleKeyList() apiHandler {
	type response struct {
		Keys []tally.APIKey `json:"keys"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		ks, err := s.Store.ListKeys(r.Context(), p.Tenant.ID)
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
		if err := s.Store.RevokeKey(r.Context(), p.Tenant.ID, id, s.now()); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "key.revoked", "key:"+itoa64(id), nil)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
