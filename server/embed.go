package server

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/secret"
)

// Embeds (docs/EMBED.md): tenant admins manage embed secrets and settings
// under /api/analytics/embed/; a host app's customers read their own usage
// with an embed token under /api/embed/ and on the page /embed/usage.

// embedScope is what a verified embed token allows: one tenant, the
// metrics named, and (with a subject) only the subject's events.
type embedScope struct {
	Tenant *tally.Tenant
	Claims tally.EmbedClaims
}

// filter returns the filter entry every query of the scope carries: the
// subject's, or none.
func (e *embedScope) filter() map[string]string {
	f := map[string]string{}
	if e.Claims.Subject != nil {
		k, v := e.Claims.Subject.Filter()
		f[k] = v
	}
	return f
}

// allow checks that the scope may read metric: EForbidden otherwise.
func (e *embedScope) allow(metric string) error {
	if !e.Claims.Allows(metric) {
		return tally.Errorf(tally.EForbidden, "this embed token may not read %s", metric)
	}
	return nil
}

type embedHandler func(w http.ResponseWriter, r *http.Request, e *embedScope) error

// embedToken returns the token of r: Authorization: Bearer, else ?token=.
func embedToken(r *http.Request) string {
	if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(v)
	}
	return r.URL.Query().Get("token")
}

// verifyEmbed checks a token: well-formed HS256, signed by an active
// secret of the tenant it names, within its lifetime. EUnauthorized
// otherwise, the same for every reason a client could probe (unknown
// tenant or secret, revoked, bad signature), but expiry.
func (s *Server) verifyEmbed(ctx context.Context, token string) (*embedScope, error) {
	if token == "" {
		return nil, tally.Errorf(tally.EUnauthorized, "missing embed token")
	}
	tok, err := tally.ParseEmbedToken(token)
	if err != nil {
		return nil, err
	}
	bad := tally.Errorf(tally.EUnauthorized, "invalid embed token")
	t, err := s.Store.TenantBySlug(ctx, tok.Claims.Tenant)
	if tally.ErrorCodeOf(err) == tally.ENotFound {
		return nil, bad
	} else if err != nil {
		return nil, err
	}
	sec, err := s.Store.EmbedSecret(ctx, t.ID, tok.Claims.KeyID)
	if tally.ErrorCodeOf(err) == tally.ENotFound {
		return nil, bad
	} else if err != nil {
		return nil, err
	}
	if !tok.Verify(sec.Secret) || !sec.Active() {
		return nil, bad
	}
	if err := tok.Claims.Validate(s.now()); err != nil {
		return nil, err
	}
	return &embedScope{Tenant: t, Claims: tok.Claims}, nil
}

// embedded serves an embed-token endpoint: read-only, one tenant, no
// session or key. Answers are per token, so they are not cached, and any
// origin may read them (the token is the credential, never a cookie).
func (s *Server) embedded(h embedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		if !s.cfg.AnalyticsEnabled {
			w.Header().Set("Retry-After", "3600")
			s.writeError(w, r, tally.Errorf(tally.EUnavailable, "analytics disabled"))
			return
		}
		e, err := s.verifyEmbed(r.Context(), embedToken(r))
		if err == nil {
			err = h(w, r, e)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// Admin side: secrets, settings and minted tokens.

func (s *Server) handleEmbedSecretCreate() apiHandler {
	type request struct {
		Name string `json:"name"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		name := strings.TrimSpace(req.Name)
		if msg := tally.NameCheck(name); msg != "" {
			return tally.Invalid("invalid embed secret", tally.FieldError{Field: "name", Message: msg})
		}
		sec := &tally.EmbedSecret{TenantID: p.Tenant.ID, Name: name, Secret: tally.EmbedSecretPrefix + secret.Token(), CreatedBy: p.Actor()}
		if err := s.Store.CreateEmbedSecret(r.Context(), sec); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "embed_secret.created", "embed_secret:"+itoa64(sec.ID), map[string]any{"name": name})
		encode(w, http.StatusCreated, sec) // the one answer that shows the secret
		return nil
	}
}

func (s *Server) handleEmbedSecretList() apiHandler {
	type response struct {
		Secrets []tally.EmbedSecret `json:"secrets"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		list, err := s.Store.EmbedSecrets(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		for i := range list {
			list[i].Secret = ""
		}
		encode(w, http.StatusOK, response{Secrets: list})
		return nil
	}
}

func (s *Server) handleEmbedSecretRevoke() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return tally.Errorf(tally.ENotFound, "embed secret not found")
		}
		if err := s.Store.RevokeEmbedSecret(r.Context(), p.Tenant.ID, id, s.now()); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "embed_secret.revoked", "embed_secret:"+itoa64(id), nil)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func (s *Server) handleEmbedSettingsGet() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		e, err := s.Store.EmbedSettings(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, e)
		return nil
	}
}

func (s *Server) handleEmbedSettingsPut() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		e, err := decode[tally.EmbedSettings](r)
		if err != nil {
			return err
		}
		if e.AllowedOrigins == nil {
			e.AllowedOrigins = []string{}
		}
		if err := e.Validate(); err != nil {
			return err
		}
		if err := s.Store.SetEmbedSettings(r.Context(), p.Tenant.ID, e); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "embed_settings.set", "embed_settings",
			map[string]any{"allowed_origins": e.AllowedOrigins, "theme": e.Theme})
		encode(w, http.StatusOK, e)
		return nil
	}
}

// handleEmbedTokenMint signs a token with the tenant's newest active
// secret (or secret_id), for hosts that prefer a call to minting offline.
func (s *Server) handleEmbedTokenMint() apiHandler {
	type request struct {
		Subject    *tally.EmbedSubject `json:"subject"`
		Metrics    []string            `json:"metrics"`
		TTLSeconds int64               `json:"ttl_seconds"`
		SecretID   int64               `json:"secret_id"`
	}
	type response struct {
		Token     string    `json:"token"`
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		if err := tally.ValidEmbedMetrics(req.Metrics); err != nil {
			return err
		}
		if req.Subject != nil {
			if err := req.Subject.Validate(); err != nil {
				return err
			}
		}
		ttl, err := tally.EmbedTTL(req.TTLSeconds)
		if err != nil {
			return err
		}
		sec, err := s.signingSecret(r.Context(), p.Tenant.ID, req.SecretID)
		if err != nil {
			return err
		}
		now := s.now()
		c := tally.EmbedClaims{Tenant: p.Tenant.Slug, KeyID: sec.ID, Subject: req.Subject, Metrics: req.Metrics,
			IssuedAt: now.Unix(), ExpiresAt: now.Add(ttl).Unix()}
		tok, err := tally.SignEmbedToken(sec.Secret, c)
		if err != nil {
			return tally.Internal(err)
		}
		scheme := "http"
		if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
			scheme = "https"
		}
		encode(w, http.StatusCreated, response{Token: tok, ExpiresAt: time.Unix(c.ExpiresAt, 0).UTC(),
			URL: scheme + "://" + r.Host + "/embed/usage?token=" + url.QueryEscape(tok)})
		return nil
	}
}

// signingSecret returns the active secret id, or the tenant's newest
// active one when id is 0; EInvalid when there is none.
func (s *Server) signingSecret(ctx context.Context, tenantID, id int64) (*tally.EmbedSecret, error) {
	none := tally.Invalid("no embed secret", tally.FieldError{Field: "secret_id", Message: "no active embed secret; create one with POST /api/analytics/embed/secrets"})
	if id == 0 {
		list, err := s.Store.EmbedSecrets(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(list, func(e tally.EmbedSecret) bool { return e.Active() })
		if i < 0 {
			return nil, none
		}
		id = list[i].ID
	}
	sec, err := s.Store.EmbedSecret(ctx, tenantID, id)
	if tally.ErrorCodeOf(err) == tally.ENotFound || (err == nil && !sec.Active()) {
		return nil, none
	}
	return sec, err
}

// Token side: what an embed token reads.

// embedUsage is a metric's daily values for the scope over [from, to).
type embedUsage struct {
	Metric string             `json:"metric"`
	Total  float64            `json:"total"`
	Points []tally.MeterPoint `json:"points"`
}

// usage computes the scope's daily values of metrics over [from, to), as
// the metrics' meters (built-in or the tenant's) give them from the log,
// confined to the subject.
func (s *Server) embedUsageOf(ctx context.Context, e *embedScope, metrics []string, from, to time.Time, loc *time.Location) ([]embedUsage, error) {
	out := []embedUsage{}
	for _, m := range metrics {
		if err := e.allow(m); err != nil {
			return nil, err
		}
		res, err := s.Meters.Query(ctx, e.Tenant.ID, m, tally.MeterQueryInput{From: from, To: to, Window: tally.WindowDay, Loc: loc, Filter: e.filter()})
		if err != nil {
			return nil, err
		}
		u := embedUsage{Metric: m, Points: res.Data}
		for _, p := range res.Data {
			if p.Value != nil {
				u.Total += *p.Value
			}
		}
		out = append(out, u)
	}
	return out, nil
}

// embedMetrics reads ?metric= (comma-separated; default: every metric of
// the token).
func embedMetrics(q url.Values, e *embedScope) []string {
	v := q.Get("metric")
	if v == "" {
		return e.Claims.Metrics
	}
	return strings.Split(v, ",")
}

func (s *Server) handleEmbedUsage() embedHandler {
	type response struct {
		Subject *tally.EmbedSubject `json:"subject"`
		From    time.Time           `json:"from"`
		To      time.Time           `json:"to"`
		Usage   []embedUsage        `json:"usage"`
	}
	return func(w http.ResponseWriter, r *http.Request, e *embedScope) error {
		q := r.URL.Query()
		loc, err := location(q, e.Tenant)
		if err != nil {
			return err
		}
		from, to, err := parseRange(q, s.now(), loc, false)
		if err != nil {
			return err
		}
		usage, err := s.embedUsageOf(r.Context(), e, embedMetrics(q, e), from, to, loc)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Subject: e.Claims.Subject, From: from, To: to, Usage: usage})
		return nil
	}
}

// embedQuotas returns the quotas of the scope's metrics: the tenant's
// status, with a subject its current use in the quota's current period against the tenant's limit.
func (s *Server) embedQuotas(ctx context.Context, e *embedScope) ([]tally.QuotaStatus, error) {
	all, err := s.Quotas.Statuses(ctx, e.Tenant.ID)
	if err != nil {
		return nil, err
	}
	out := []tally.QuotaStatus{}
	for _, st := range all {
		if !e.Claims.Allows(st.Metric) {
			continue
		}
		if e.Claims.Subject != nil {
			now := s.now()
			res, err := s.Meters.Query(ctx, e.Tenant.ID, st.Metric, tally.MeterQueryInput{From: st.PeriodStart, To: st.ResetsAt, Loc: time.UTC, Filter: e.filter()})
			if tally.ErrorCodeOf(err) == tally.ENotFound {
				continue // a quota on a metric no meter defines: nothing to show per subject
			}
			if err != nil {
				return nil, err
			}
			var used int64
			for _, p := range res.Data {
				if p.Value != nil {
					used += int64(*p.Value)
				}
			}
			q := tally.Quota{Metric: st.Metric, Limit: st.Limit, Enforced: st.Enforced, Period: st.Period, AnchorDay: st.AnchorDay,
				Thresholds: st.Thresholds}
			st = tally.NewQuotaStatus(q, used, st.Granted, now, e.Tenant.Location())
		}
		out = append(out, st)
	}
	return out, nil
}

func (s *Server) handleEmbedQuotas() embedHandler {
	type response struct {
		Subject *tally.EmbedSubject `json:"subject"`
		Quotas  []tally.QuotaStatus `json:"quotas"`
	}
	return func(w http.ResponseWriter, r *http.Request, e *embedScope) error {
		qs, err := s.embedQuotas(r.Context(), e)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, response{Subject: e.Claims.Subject, Quotas: qs})
		return nil
	}
}

// handleEmbedMeterQuery is the meter query of the scope: the subject's
// filter replaces whatever the query says of its key.
func (s *Server) handleEmbedMeterQuery() embedHandler {
	return func(w http.ResponseWriter, r *http.Request, e *embedScope) error {
		slug := r.PathValue("slug")
		if err := e.allow(slug); err != nil {
			return err
		}
		in, err := parseMeterQuery(r.URL.Query(), e.Tenant, s)
		if err != nil {
			return err
		}
		for k, v := range e.filter() {
			in.Filter[k] = v
		}
		res, err := s.Meters.Query(r.Context(), e.Tenant.ID, slug, in)
		if err != nil {
			return err
		}
		encode(w, http.StatusOK, res)
		return nil
	}
}

// embedCORS answers the CORS preflight of the embed-token reads, so that
// a host page may send the token as Authorization from any origin (the
// token is the credential; answers carry Access-Control-Allow-Origin: *).
func embedCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" || !strings.HasPrefix(r.URL.Path, "/api/embed/") {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET")
		h.Set("Access-Control-Allow-Headers", "Authorization, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	})
}
