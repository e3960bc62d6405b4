package server

import (
	"net/http"

	"github.com/tallyhq/tally"
)

// scriptPage is a dashboard page whose script does its work through the
// JSON API: the funnels and retention page, the embeds page.
type scriptPage struct {
	pageMeta
	User       *tally.User
	Tenant     tally.Membership
	Switchable []tally.Membership
	CSRF       string
	Timezone   string
}

// handleScriptPage serves template (titled title, nav naming it in the top
// navigation) to a user who administers the tenant (uiAdminPage).
func (s *Server) handleScriptPage(template, title, nav string, charts bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, tenant, admin := s.uiAdminPage(w, r)
		if tenant == nil {
			return
		}
		page := scriptPage{pageMeta: pageMeta{Title: title + " · " + tenant.Name, Charts: charts, Nav: nav},
			User: c.p.User, Tenant: *tenant, Switchable: admin, CSRF: csrfToken(c.token)}
		if err := s.web.render(w, http.StatusOK, template, page); err != nil {
			s.writeError(w, r, tally.Internal(err))
		}
	})
}

// handleUIInsights serves the funnel and retention page; insights.js asks
// the API and draws the answers.
func (s *Server) handleUIInsights() http.Handler {
	return s.handleScriptPage("insights.html", "Funnels and retention", "insights", true)
}

// handleUIEmbed serves the embeds page: embed secrets (created, shown once,
// revoked), the settings of the embedded views (allowed origins, theme)
// and a token minted to open the view as a subject; embed-admin.js does it
// through /api/analytics/embed/*.
func (s *Server) handleUIEmbed() http.Handler {
	return s.handleScriptPage("embeds.html", "Embeds", "embeds", false)
}
