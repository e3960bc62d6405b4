package server

import (
	"net/http"
	"strings"

	"github.com/tallyhq/tally"
)

// routes registers every route of tally. The whole API on one screen.
func (s *Server) routes() {
	const (
		admin  = tally.RoleAdmin
		member = tally.RoleMember
		read   = tally.ScopeRead
		write  = tally.ScopeWrite
		export = tally.ScopeExport
		adm    = tally.ScopeAdmin
	)
	// Operations.
	s.handle("GET /healthz", s.handleHealthz())
	s.handle("GET /readiness", s.handleReadiness(false))
	s.handle("GET /metrics", s.handleMetrics())

	// Identity and tenants.
	s.handle("POST /api/auth/register", s.handleRegister())
	s.handle("POST /api/auth/login", s.handleLogin())
	s.handle("POST /api/auth/logout", s.session(s.handleLogout()))
	s.handle("GET /api/auth/me", s.session(s.handleMe()))
	s.handle("POST /api/tenants", s.session(s.handleTenantCreate()))
	s.handle("GET /api/tenants", s.session(s.handleTenantList()))
	s.handle("PATCH /api/tenants/{slug}", s.tenantAdmin(s.handleTenantUpdate()))
	s.handle("POST /api/tenants/{slug}/members", s.tenantAdmin(s.handleMemberAddGone()))
	s.handle("GET /api/tenants/{slug}/members", s.tenantAdmin(s.handleMemberList()))
	s.handle("DELETE /api/tenants/{slug}/members/{user_id}", s.tenantAdmin(s.handleMemberRemove()))
	s.handle("POST /api/tenants/{slug}/invitations", s.tenantAdmin(s.handleInvitationCreate()))
	s.handle("GET /api/tenants/{slug}/invitations", s.tenantAdmin(s.handleInvitationList()))
	s.handle("DELETE /api/tenants/{slug}/invitations/{id}", s.tenantAdmin(s.handleInvitationRevoke()))
	s.handle("POST /api/invitations/{token}/accept", s.session(s.handleInvitationAccept()))
	s.handle("POST /api/keys", s.inTenant(admin, "", s.handleKeyCreate()))
	s.handle("GET /api/keys", s.inTenant(admin, "", s.handleKeyList()))
	s.handle("DELETE /api/keys/{id}", s.inTenant(admin, "", s.handleKeyRevoke()))

	// Analytics: events, usage, quotas, rollups, audit.
	s.handle("POST /api/analytics/events", s.analytics(member, write, s.handleEventsPost()))
	s.handle("GET /api/analytics/events", s.analytics(admin, read, s.handleEventsList()))
	s.handle("GET /api/analytics/events/stream", tenantFromQuery(s.analytics(admin, read, s.handleEventsStream())))
	s.handle("DELETE /api/analytics/users/{user_id}/events", s.analytics(admin, adm, s.handleUserEventsDelete()))
	s.handle("GET /api/analytics/export.csv", s.analytics(admin, export, s.handleExport()))
	s.handle("POST /api/analytics/usage", s.analytics(member, write, s.handleUsagePost()))
	s.handle("GET /api/analytics/usage", s.analytics(admin, read, s.handleUsageGet()))
	s.handle("GET /api/analytics/metrics", s.analytics(admin, read, s.handleMetricsGet()))
	s.handle("GET /api/analytics/quotas", s.analytics(admin, read, s.handleQuotaList()))
	s.handle("GET /api/analytics/quotas/{metric}", s.analytics(admin, read, s.handleQuotaGet()))
	s.handle("PUT /api/analytics/quotas/{metric}", s.analytics(admin, adm, s.handleQuotaPut()))
	s.handle("DELETE /api/analytics/quotas/{metric}", s.analytics(admin, adm, s.handleQuotaDelete()))
	s.handle("POST /api/analytics/quotas/{metric}/consume", s.analytics(member, write, s.handleQuotaConsume()))
	s.handle("GET /api/analytics/quotas/{metric}/grants", s.analytics(admin, read, s.handleGrantList()))
	s.handle("POST /api/analytics/quotas/{metric}/grants", s.analytics(admin, adm, s.handleGrantCreate()))
	s.handle("POST /api/analytics/quotas/{metric}/reservations", s.analytics(member, write, s.handleReserve()))
	s.handle("GET /api/analytics/quotas/{metric}/reservations/{id}", s.analytics(admin, read, s.handleReservationGet()))
	s.handle("POST /api/analytics/quotas/{metric}/reservations/{id}/commit", s.analytics(member, write, s.handleReservationCommit()))
	s.handle("POST /api/analytics/quotas/{metric}/reservations/{id}/release", s.analytics(member, write, s.handleReservationRelease()))
	s.handle("POST /api/analytics/rollup", s.analytics(admin, adm, s.handleRollup()))
	s.handle("GET /api/analytics/audit", s.analytics(admin, adm, s.handleAudit()))
	s.handle("GET /api/analytics/webhooks/deliveries", s.analytics(admin, read, s.handleWebhookDeliveries()))
	s.handle("POST /api/analytics/alerts/absence", s.analytics(admin, adm, s.handleAbsenceCreate()))
	s.handle("GET /api/analytics/alerts/absence", s.analytics(admin, read, s.handleAbsenceList()))
	s.handle("GET /api/analytics/alerts/absence/{id}", s.analytics(admin, read, s.handleAbsenceGet()))
	s.handle("PUT /api/analytics/alerts/absence/{id}", s.analytics(admin, adm, s.handleAbsenceUpdate()))
	s.handle("DELETE /api/analytics/alerts/absence/{id}", s.analytics(admin, adm, s.handleAbsenceDelete()))
	s.handle("POST /api/analytics/meters", s.analytics(admin, adm, s.handleMeterCreate()))
	s.handle("GET /api/analytics/meters", s.analytics(admin, read, s.handleMeterList()))
	s.handle("GET /api/analytics/meters/{slug}", s.analytics(admin, read, s.handleMeterGet()))
	s.handle("PATCH /api/analytics/meters/{slug}", s.analytics(admin, adm, s.handleMeterUpdate()))
	s.handle("DELETE /api/analytics/meters/{slug}", s.analytics(admin, adm, s.handleMeterDelete()))
	s.handle("GET /api/analytics/meters/{slug}/query", s.analytics(admin, read, s.handleMeterQuery()))
	s.handle("POST /api/analytics/embed/secrets", s.analytics(admin, adm, s.handleEmbedSecretCreate()))
	s.handle("GET /api/analytics/embed/secrets", s.analytics(admin, adm, s.handleEmbedSecretList()))
	s.handle("DELETE /api/analytics/embed/secrets/{id}", s.analytics(admin, adm, s.handleEmbedSecretRevoke()))
	s.handle("GET /api/analytics/embed/settings", s.analytics(admin, read, s.handleEmbedSettingsGet()))
	s.handle("PUT /api/analytics/embed/settings", s.analytics(admin, adm, s.handleEmbedSettingsPut()))
	s.handle("POST /api/analytics/embed/tokens", s.analytics(admin, adm, s.handleEmbedTokenMint()))

	// Embedded views, by embed token (embed.go): read-only, one tenant, one subject.
	s.handle("GET /api/embed/usage", s.embedded(s.handleEmbedUsage()))
	s.handle("GET /api/embed/quotas", s.embedded(s.handleEmbedQuotas()))
	s.handle("GET /api/embed/meters/{slug}/query", s.embedded(s.handleEmbedMeterQuery()))
	s.handle("GET /embed/usage", s.handleEmbedPage())
	s.handle("POST /api/analytics/funnels/query", s.analytics(admin, read, s.handleFunnelQuery()))
	s.handle("POST /api/analytics/retention/query", s.analytics(admin, read, s.handleRetentionQuery()))

	// Ingestion in other tools' formats (handle_compat.go).
	s.handle("POST /v1/batch", s.handleCompat(segmentFormat("")))
	s.handle("POST /v1/b", s.handleCompat(segmentFormat("")))
	for _, sp := range segmentPaths {
		s.handle("POST "+sp.long, s.handleCompat(segmentFormat(sp.typ)))
		s.handle("POST "+sp.short, s.handleCompat(segmentFormat(sp.typ)))
	}
	for _, path := range postHogPaths {
		s.handle("POST "+path, s.handleCompat(postHogFormat))
		s.mux.Handle("POST "+path+"/{$}", s.handleCompat(postHogFormat))
	}
	for _, path := range []string{"/decide", "/flags"} {
		s.handle("POST "+path, s.handlePostHogFlags())
		s.mux.Handle("POST "+path+"/{$}", s.handlePostHogFlags())
	}
	s.handle("POST /api/v1/events", s.handleCompat(cloudEventsFormat))
	s.handle("GET /js/tally.js", s.handleTallyJS()) // browser.go
	s.handle("GET /api/analytics/audit/export.csv", s.analytics(admin, adm, s.handleAuditExport()))

	// Dashboard.
	s.handle("GET /ui/login", s.handleUILoginForm())
	s.handle("POST /ui/login", s.handleUILogin())
	s.handle("POST /ui/logout", s.handleUILogout())
	s.handle("GET /ui/analytics", s.handleUIAnalytics())
	s.handle("GET /ui/members", s.handleUIMembers())
	s.handle("GET /ui/insights", s.handleUIInsights())
	s.handle("GET /ui/embeds", s.handleUIEmbed())
	s.handle("GET /ui/invitation", s.handleUIInvitation())
	s.handle("GET /ui/meters", s.handleUIMeters())
	s.handle("GET /ui/static/", s.handleUIStatic())
	s.mux.Handle("GET /{$}", http.RedirectHandler("/ui/analytics", http.StatusSeeOther))
	s.mux.Handle("/", s.notFound())
}

// analytics serves an analytics endpoint: 503 while analytics is disabled,
// else the tenant context rules of inTenant.
func (s *Server) analytics(role tally.Role, scope tally.Scope, h apiHandler) http.Handler {
	inner := s.inTenant(role, scope, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.AnalyticsEnabled {
			// A setting, not an overload: no point retrying soon.
			w.Header().Set("Retry-After", "3600")
			s.writeError(w, r, tally.Errorf(tally.EUnavailable, "analytics disabled"))
			return
		}
		inner.ServeHTTP(w, r)
	})
}

// notFound answers unknown paths (404) and known paths with another method
// (405 with Allow) as problems, not as the mux's plain text.
func (s *Server) notFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := s.mux.Handler(probe); pattern != "" && pattern != "/" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			s.writeError(w, r, tally.Errorf(tally.ENotFound, "no such endpoint"))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, http.StatusMethodNotAllowed, "method_not_allowed",
			r.Method+" is not allowed here; use "+strings.Join(allow, ", "))
	})
}
