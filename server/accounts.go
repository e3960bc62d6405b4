package server

import (
	"context"

	"github.com/tallyhq/tally"
)

// Accounts is the account work the server needs: registration, logins and
// sessions, tenants, members and API keys. identity.Service implements it;
// the contract of each method (the rules, the authorization and the errors)
// is written there.
type Accounts interface {
	Register(ctx context.Context, in tally.RegisterInput) (*tally.User, *tally.Tenant, error)
	Login(ctx context.Context, in tally.LoginInput) (*tally.Login, error)
	Logout(ctx context.Context, token string) error
	SessionUser(ctx context.Context, token string) (*tally.User, error)
	KeyAuth(ctx context.Context, key, remote string) (*tally.APIKey, *tally.Tenant, error)

	Memberships(ctx context.Context, userID int64) ([]tally.Membership, error)
	Membership(ctx context.Context, slug string, userID int64) (*tally.Tenant, tally.Role, error)
	TenantBySlug(ctx context.Context, slug string) (*tally.Tenant, error)
	CreateTenant(ctx context.Context, in tally.CreateTenantInput, ownerID int64) (*tally.Tenant, error)

	ListMembers(ctx context.Context, tenantID int64) ([]tally.Member, error)
	RemoveMember(ctx context.Context, by *tally.Principal, userID int64) (tally.Role, error)

	Invite(ctx context.Context, by *tally.Principal, in tally.InviteInput) (*tally.Invitation, string, error)
	Invitations(ctx context.Context, tenantID int64) ([]tally.Invitation, error)
	RevokeInvitation(ctx context.Context, tenantID, id int64) error
	AcceptInvitation(ctx context.Context, u *tally.User, token string) (*tally.Invitation, *tally.Tenant, error)

	CreateKey(ctx context.Context, tenantID int64, in tally.CreateKeyInput) (*tally.APIKey, string, error)
	ListKeys(ctx context.Context, tenantID int64) ([]tally.APIKey, error)
	RevokeKey(ctx context.Context, tenantID, id int64) error
}
