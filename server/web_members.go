package server

import (
	"net/http"

	"github.com/tallyhq/tally"
)

// uiSession returns the dashboard session of r (a cookie, not a Bearer
// token or a key), or nil.
func (s *Server) uiSession(r *http.Request) *credentials {
	c, err := s.authenticate(r)
	if err != nil || c.p.Key != nil || !c.byCookie {
		return nil
	}
	return c
}

type membersPage struct {
	pageMeta
	User        *tally.User
	Tenant      tally.Membership
	Switchable  []tally.Membership
	CSRF        string
	Members     []tally.Member
	Invitations []tally.Invitation
	Roles       []tally.Role // the roles the user may invite with
}

// handleUIMembers serves the members page of a tenant the user
// administers (uiAdminPage): its members, its pending invitations with a
// revoke button each, and the invite form.
func (s *Server) handleUIMembers() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, tenant, admin := s.uiAdminPage(w, r)
		if tenant == nil {
			return
		}
		members, err := s.Accounts.ListMembers(r.Context(), tenant.TenantID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		invs, err := s.Accounts.Invitations(r.Context(), tenant.TenantID)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		roles := []tally.Role{tally.RoleMember, tally.RoleAdmin}
		if tenant.Role == tally.RoleOwner {
			roles = append(roles, tally.RoleOwner)
		}
		page := membersPage{pageMeta: pageMeta{Title: "Members · " + tenant.Name, Nav: "members"}, User: c.p.User, Tenant: *tenant,
			Switchable: admin, CSRF: csrfToken(c.token), Members: members, Invitations: invs, Roles: roles}
		if err := s.web.render(w, http.StatusOK, "members.html", page); err != nil {
			s.writeError(w, r, tally.Internal(err))
		}
	})
}

// uiAdminPage starts a dashboard page of one tenant the user administers:
// it returns the session, the tenant of ?tenant= (default: the user's
// first tenant with the admin role) and every tenant the user administers.
// When it returns a nil tenant it has answered: anonymous visitors are
// sent to the login page, users who administer no such tenant get the 403
// page.
func (s *Server) uiAdminPage(w http.ResponseWriter, r *http.Request) (*credentials, *tally.Membership, []tally.Membership) {
	c := s.uiSession(r)
	if c == nil {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return nil, nil, nil
	}
	ms, err := s.Accounts.Memberships(r.Context(), c.p.User.ID)
	if err != nil {
		s.writeError(w, r, err)
		return nil, nil, nil
	}
	var admin []tally.Membership
	for _, m := range ms {
		if m.Role.AtLeast(tally.RoleAdmin) {
			admin = append(admin, m)
		}
	}
	want := r.URL.Query().Get("tenant")
	for i, m := range admin {
		if want == "" || m.Slug == want {
			return c, &admin[i], admin
		}
	}
	page := forbiddenPage{pageMeta: pageMeta{Title: "No access"}, User: c.p.User, Requested: want,
		AdminTenants: admin, CSRF: csrfToken(c.token)}
	if err := s.web.render(w, http.StatusForbidden, "forbidden.html", page); err != nil {
		s.writeError(w, r, tally.Internal(err))
	}
	return nil, nil, nil
}

type invitationPage struct {
	pageMeta
	User *tally.User // nil: not signed in
	CSRF string
}

// handleUIInvitation serves the page an invitation link opens,
// /ui/invitation#<token>: the token stays in the fragment, which browsers
// never send, so that it reaches no log. Signed in, the page offers to
// join (its script posts the token to /api/invitations/{token}/accept);
// else it asks to sign in and open the link again.
func (s *Server) handleUIInvitation() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page := invitationPage{pageMeta: pageMeta{Title: "Invitation"}}
		if c := s.uiSession(r); c != nil {
			page.User, page.CSRF = c.p.User, csrfToken(c.token)
		}
		if err := s.web.render(w, http.StatusOK, "invitation.html", page); err != nil {
			s.writeError(w, r, tally.Internal(err))
		}
	})
}
