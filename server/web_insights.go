package server

import (
	"net/http"

	"github.com/tallyhq/tally"
)

type insightsPage struct {
	pageMeta
	User       *tally.User
	Tenant     tally.Membership
	Switchable []tally.Membership
	CSRF       string
	Timezone   string
}

// handleUIInsights serves the funnel and retention page of a tenant the
// user administers; insights.js asks the API and draws the answers.
func (s *Server) handleUIInsights() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, tenant, admin := s.uiAdminPage(w, r)
		if tenant == nil {
			return
		}
		page := insightsPage{pageMeta: pageMeta{Title: "Funnels and retention · " + tenant.Name, Charts: true, Nav: "insights"},
			User: c.p.User, Tenant: *tenant, Switchable: admin, CSRF: csrfToken(c.token)}
		if err := s.web.render(w, http.StatusOK, "insights.html", page); err != nil {
			s.writeError(w, r, tally.Internal(err))
		}
	})
}
