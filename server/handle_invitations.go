package server

import (
	"net/http"
	"strconv"

	"github.com/tallyhq/tally"
)

// handleInvitationCreate invites an email into the tenant. The answer is
// the same whether or not the email is registered; the token is in it
// once and only its hash is kept.
func (s *Server) handleInvitationCreate() apiHandler {
	type request struct {
		Email string     `json:"email"`
		Role  tally.Role `json:"role"`
	}
	type response struct {
		Invitation *tally.Invitation `json:"invitation"`
		Token      string            `json:"token"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		req, err := decode[request](r)
		if err != nil {
			return err
		}
		inv, token, err := s.Accounts.Invite(r.Context(), p, tally.InviteInput{Email: req.Email, Role: req.Role})
		if err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "invitation.created", inv.Email,
			map[string]any{"invitation_id": inv.ID, "role": inv.Role, "expires_at": inv.ExpiresAt})
		encode(w, http.StatusCreated, response{Invitation: inv, Token: token})
		return nil
	}
}

func (s *Server) handleInvitationList() apiHandler {
	type response struct {
		Invitations []tally.Invitation `json:"invitations"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		list, err := s.Accounts.Invitations(r.Context(), p.Tenant.ID)
		if err != nil {
			return err
		}
		if list == nil {
			list = []tally.Invitation{}
		}
		encode(w, http.StatusOK, response{Invitations: list})
		return nil
	}
}

func (s *Server) handleInvitationRevoke() apiHandler {
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			return tally.Errorf(tally.ENotFound, "invitation not found")
		}
		if err := s.Accounts.RevokeInvitation(r.Context(), p.Tenant.ID, id); err != nil {
			return err
		}
		s.audit(r.Context(), p.Tenant.ID, p, "invitation.revoked", "invitation:"+itoa64(id), nil)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleInvitationAccept makes the logged-in user a member of the tenant
// of the invitation whose token is in the path, when it is addressed to
// the user's email.
func (s *Server) handleInvitationAccept() apiHandler {
	type response struct {
		Tenant tally.Membership `json:"tenant"`
	}
	return func(w http.ResponseWriter, r *http.Request, p *tally.Principal) error {
		inv, t, err := s.Accounts.AcceptInvitation(r.Context(), p.User, r.PathValue("token"))
		if err != nil {
			return err
		}
		s.audit(r.Context(), t.ID, p, "invitation.accepted", inv.Email,
			map[string]any{"invitation_id": inv.ID, "role": inv.Role, "invited_by": inv.InvitedBy})
		encode(w, http.StatusOK, response{Tenant: tally.Membership{TenantID: t.ID, Slug: t.Slug, Name: t.Name, Role: inv.Role}})
		return nil
	}
}

// handleMemberAddGone answers the former direct add-member route: members
// join by accepting an invitation.
func (s *Server) handleMemberAddGone() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusGone, "gone",
			"members are no longer added directly: invite them with POST /api/tenants/{slug}/invitations; they join by accepting")
	})
}
