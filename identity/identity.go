// Package identity is tally's account workflows: users, logins and
// sessions, tenants and their members, API keys. The HTTP server, the
// dashboard, the command line and the demo seeder all go through Service;
// the rules it applies to input are the Validate methods of package tally.
package identity

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/dedupe"
	"github.com/tallyhq/tally/internal/secret"
)

// Service runs the account workflows on a store.
type Service struct {
	store   tally.Store
	now     func() time.Time
	log     *slog.Logger
	refused *dedupe.Window // of auth.key_failed entries
	keys    keyCache
}

// New returns a service on store. now is the clock of sessions, key
// expiry and revocation (nil: time.Now); log receives the failures that
// are not returned, such as an audit write after a failed login (nil:
// discarded).
func New(store tally.Store, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, now: now, log: log, refused: dedupe.New(tally.RefusalAuditWindow, tally.RefusalAuditMax)}
}

func (s *Service) clock() time.Time { return s.now().UTC() }

// unauthorized is the answer to credentials that do not authenticate,
// whatever the reason: a caller learns nothing from it.
func unauthorized() error {
	return tally.Errorf(tally.EUnauthorized, "missing or invalid credentials")
}

// Register creates the user of in. With in.TenantSlug it also makes the
// user a member (RoleMember) of that tenant, which must allow sign-up:
// EForbidden otherwise, and for an unknown tenant too. EInvalid as
// RegisterInput.Validate; EConflict when the email is taken. The tenant
// is nil without in.TenantSlug.
func (s *Service) Register(ctx context.Context, in tally.RegisterInput) (*tally.User, *tally.Tenant, error) {
	if err := in.Validate(); err != nil {
		return nil, nil, err
	}
	var tenant *tally.Tenant
	if in.TenantSlug != "" {
		t, err := s.store.TenantBySlug(ctx, in.TenantSlug)
		if err != nil || !t.AllowSignup {
			if err != nil && tally.ErrorCodeOf(err) != tally.ENotFound {
				return nil, nil, err
			}
			return nil, nil, tally.Errorf(tally.EForbidden, "this tenant does not allow sign-up")
		}
		tenant = t
	}
	u := &tally.User{Email: tally.NormalizeEmail(in.Email), Name: strings.TrimSpace(in.Name)}
	if err := s.store.CreateUser(ctx, u, secret.HashPassword(in.Password)); err != nil {
		return nil, nil, err
	}
	if tenant != nil {
		if err := s.store.AddMember(ctx, tenant.ID, u.ID, tally.RoleMember); err != nil {
			return nil, nil, err
		}
	}
	return u, tenant, nil
}

// Login checks in's credentials and opens a session of in.TTL. An unknown
// email and a wrong password take the same time and give the same
// EUnauthorized; each failure is written (never the password) to the audit
// log of every tenant the user belongs to, or to the system log (tenant 0)
// when the email is unknown or in no tenant, so that an anonymous caller
// cannot write into a tenant's log by naming it.
func (s *Service) Login(ctx context.Context, in tally.LoginInput) (*tally.Login, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	u, hash, err := s.store.UserByEmail(ctx, in.Email)
	if err != nil && tally.ErrorCodeOf(err) != tally.ENotFound {
		return nil, err
	}
	// hash is "" for an unknown email: CheckPassword then does the same
	// work against a dummy hash.
	if !secret.CheckPassword(hash, in.Password) {
		s.auditFailedLogin(ctx, u, in)
		return nil, tally.Errorf(tally.EUnauthorized, "invalid email or password")
	}
	ms, err := s.store.Memberships(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	token := secret.Token()
	now := s.clock()
	sess := &tally.Session{UserID: u.ID, TokenHash: secret.HashToken(token), CreatedAt: now, ExpiresAt: now.Add(in.TTL)}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return nil, err
	}
	return &tally.Login{Token: token, Session: sess, User: u, Tenants: ms}, nil
}

func (s *Service) auditFailedLogin(ctx context.Context, u *tally.User, in tally.LoginInput) {
	target := tally.NormalizeEmail(in.Email)
	tenants := []int64{0}
	if u != nil {
		if ms, err := s.store.Memberships(ctx, u.ID); err == nil && len(ms) > 0 {
			tenants = tenants[:0]
			for _, m := range ms {
				tenants = append(tenants, m.TenantID)
			}
		}
	}
	var nobody *tally.Principal // a failed login acts as no one: the "system" actor
	for _, id := range tenants {
		e := &tally.AuditEntry{TenantID: id, Actor: nobody.Actor(), Action: "auth.login_failed", Target: target, Meta: in.AuditMeta}
		if err := s.store.WriteAudit(ctx, e); err != nil {
			s.log.ErrorContext(ctx, "audit write failed", "action", e.Action, "err", err)
		}
	}
}

// auditFailedKey writes an "auth.key_failed" audit entry in the tenant of
// the key whose prefix was presented: the prefix and the remote address,
// never the secret; at most one per key prefix and address and window.
// Presented prefixes that name no key are not audited: they name no tenant.
func (s *Service) auditFailedKey(ctx context.Context, k *tally.APIKey, remote, reason string, now time.Time) {
	if !s.refused.Allow(fmt.Sprintf("key\x00%d\x00%s\x00%s", k.TenantID, k.Prefix, remote), now) {
		return
	}
	var nobody *tally.Principal // a refused key acts as no one: the "system" actor
	e := &tally.AuditEntry{TenantID: k.TenantID, Actor: nobody.Actor(), Action: "auth.key_failed", Target: k.Prefix,
		Meta: map[string]any{"remote": remote, "reason": reason}}
	if err := s.store.WriteAudit(ctx, e); err != nil {
		s.log.ErrorContext(ctx, "audit write failed", "action", e.Action, "err", err)
	}
}

// Logout ends the session of token at once.
func (s *Service) Logout(ctx context.Context, token string) error {
	return s.store.RevokeSession(ctx, secret.HashToken(token))
}

// SessionUser returns the user of an unexpired, unrevoked session token;
// EUnauthorized for any other token.
func (s *Service) SessionUser(ctx context.Context, token string) (*tally.User, error) {
	sess, err := s.store.SessionByHash(ctx, secret.HashToken(token), s.clock())
	if err != nil {
		if tally.ErrorCodeOf(err) == tally.ENotFound {
			return nil, unauthorized()
		}
		return nil, err
	}
	u, err := s.store.UserByID(ctx, sess.UserID)
	if err != nil {
		return nil, unauthorized()
	}
	return u, nil
}

// KeyAuth authenticates a presented API key: the key (active at the
// service's now) and its tenant; EUnauthorized for an unknown, wrong,
// revoked or expired key. It records the use, at most once a minute. A
// key of a known prefix that is refused is audited in its tenant as
// "auth.key_failed" (prefix, remote address and reason, never the secret;
// once per prefix, address and tally.RefusalAuditWindow): remote is the client's
// address as the server sees it.
func (s *Service) KeyAuth(ctx context.Context, key, remote string) (*tally.APIKey, *tally.Tenant, error) {
	prefix, ok := secret.ParseKey(key)
	if !ok {
		return nil, nil, unauthorized()
	}
	// The version is read before the key and tenant, so that a change
	// after it moves the version the next request reads.
	version, err := s.store.AuthVersion(ctx)
	if err != nil {
		return nil, nil, err
	}
	k, t, cached := s.keys.get(prefix, version)
	if !cached {
		if k, err = s.store.KeyByPrefix(ctx, prefix); err != nil {
			if tally.ErrorCodeOf(err) == tally.ENotFound {
				return nil, nil, unauthorized()
			}
			return nil, nil, err
		}
	}
	now := s.clock()
	reason := ""
	switch {
	case !secret.Equal(k.Hash, secret.HashToken(key)):
		reason = "wrong_secret"
	case k.RevokedAt != nil:
		reason = "revoked"
	case !k.Active(now):
		reason = "expired"
	}
	if reason != "" {
		s.auditFailedKey(ctx, k, remote, reason, now)
		return nil, nil, unauthorized()
	}
	if !cached {
		if t, err = s.store.TenantByID(ctx, k.TenantID); err != nil {
			return nil, nil, err
		}
		s.keys.put(prefix, version, k, t)
	}
	if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
		// Throttled: last_used_at is minute-precise, not a write per request.
		if err := s.store.TouchKey(ctx, k.TenantID, k.ID, now); err != nil {
			s.log.WarnContext(ctx, "touch key", "err", err)
		}
		s.keys.touched(prefix, now)
	}
	return k, t, nil
}

// keyCache keeps authenticated keys with their tenants, valid while the
// store's AuthVersion stays what it was when they were read: any change to
// a key or a tenant, on any instance sharing the store, empties it at the
// next request. It saves KeyByPrefix and TenantByID on every request but
// one version read. The zero value is empty and ready.
type keyCache struct {
	mu      sync.Mutex
	version int64
	entries map[string]cachedKey // by key prefix
}

type cachedKey struct {
	key    tally.APIKey
	tenant tally.Tenant
}

// maxCachedKeys bounds the cache; when full it starts over.
const maxCachedKeys = 10_000

// get returns copies of the key and tenant cached for prefix at version.
func (c *keyCache) get(prefix string, version int64) (*tally.APIKey, *tally.Tenant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if version != c.version {
		c.version, c.entries = version, nil
	}
	e, ok := c.entries[prefix]
	if !ok {
		return nil, nil, false
	}
	k, t := e.key, e.tenant
	k.Scopes = slices.Clone(k.Scopes)
	return &k, &t, true
}

// put caches copies of k and t for prefix, read at version.
func (c *keyCache) put(prefix string, version int64, k *tally.APIKey, t *tally.Tenant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if version != c.version {
		return // older or newer than the cache: leave it to the next get
	}
	if c.entries == nil || len(c.entries) >= maxCachedKeys {
		c.entries = map[string]cachedKey{}
	}
	e := cachedKey{key: *k, tenant: *t}
	e.key.Scopes = slices.Clone(k.Scopes)
	c.entries[prefix] = e
}

// touched records the key's last use in the cache.
func (c *keyCache) touched(prefix string, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[prefix]; ok {
		e.key.LastUsedAt = &at
		c.entries[prefix] = e
	}
}

// UserByEmail returns the user with that email (in any case); ENotFound
// when there is none.
func (s *Service) UserByEmail(ctx context.Context, email string) (*tally.User, error) {
	u, _, err := s.store.UserByEmail(ctx, email)
	return u, err
}

// ChangePassword replaces the password of the user with in.Email and
// returns the user. EInvalid as ChangePasswordInput.Validate; ENotFound
// when there is no such user.
func (s *Service) ChangePassword(ctx context.Context, in tally.ChangePasswordInput) (*tally.User, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	u, _, err := s.store.UserByEmail(ctx, in.Email)
	if err != nil {
		return nil, err
	}
	if err := s.store.SetPassword(ctx, u.ID, secret.HashPassword(in.Password)); err != nil {
		return nil, err
	}
	return u, nil
}

// Memberships lists the tenants userID belongs to, by slug.
func (s *Service) Memberships(ctx context.Context, userID int64) ([]tally.Membership, error) {
	return s.store.Memberships(ctx, userID)
}

// TenantBySlug returns the tenant with that slug; ENotFound when none.
func (s *Service) TenantBySlug(ctx context.Context, slug string) (*tally.Tenant, error) {
	return s.store.TenantBySlug(ctx, slug)
}

// Membership returns the tenant with that slug and userID's role in it.
// An unknown tenant and a tenant the user is not a member of are both
// ENotFound, so that a caller cannot tell them apart.
func (s *Service) Membership(ctx context.Context, slug string, userID int64) (*tally.Tenant, tally.Role, error) {
	t, err := s.store.TenantBySlug(ctx, slug)
	if err != nil {
		return nil, "", err
	}
	role, err := s.store.MemberRole(ctx, t.ID, userID)
	if err != nil {
		return nil, "", err
	}
	return t, role, nil
}

// CreateTenant creates the tenant of in with ownerID as its owner.
// EInvalid as CreateTenantInput.Validate; EConflict when the slug is taken.
func (s *Service) CreateTenant(ctx context.Context, in tally.CreateTenantInput, ownerID int64) (*tally.Tenant, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	t := &tally.Tenant{Slug: in.Slug, Name: strings.TrimSpace(in.Name), AllowSignup: in.AllowSignup, Timezone: in.Timezone}
	if err := s.store.CreateTenant(ctx, t, ownerID); err != nil {
		return nil, err
	}
	return t, nil
}

// AddMember adds the registered user in.Email to by's tenant without an
// invitation: for the operator (the command line) only; tenant admins
// invite (Invite). Only an owner adds an owner (EForbidden otherwise).
// EInvalid as
// AddMemberInput.Validate; ENotFound when no user has the email;
// EConflict when already a member.
func (s *Service) AddMember(ctx context.Context, by *tally.Principal, in tally.AddMemberInput) (*tally.Member, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	role := in.Role
	if role == "" {
		role = tally.RoleMember
	}
	if role == tally.RoleOwner && by.Role != tally.RoleOwner {
		return nil, tally.Errorf(tally.EForbidden, "only an owner can add an owner")
	}
	u, _, err := s.store.UserByEmail(ctx, in.Email)
	if err != nil {
		if tally.ErrorCodeOf(err) == tally.ENotFound {
			return nil, tally.Errorf(tally.ENotFound, "no user with this email; they must register first")
		}
		return nil, err
	}
	if err := s.store.AddMember(ctx, by.Tenant.ID, u.ID, role); err != nil {
		return nil, err
	}
	return &tally.Member{UserID: u.ID, Email: u.Email, Name: u.Name, Role: role, AddedAt: s.clock()}, nil
}

// ListMembers lists a tenant's members by join time.
func (s *Service) ListMembers(ctx context.Context, tenantID int64) ([]tally.Member, error) {
	return s.store.ListMembers(ctx, tenantID)
}

// RemoveMember removes userID from by's tenant and returns the role it
// had. Only an owner removes an owner (EForbidden otherwise); the last
// owner stays (tally.LastOwnerError, decided by the store in the removing
// transaction). ENotFound when not a member.
func (s *Service) RemoveMember(ctx context.Context, by *tally.Principal, userID int64) (tally.Role, error) {
	role, err := s.store.MemberRole(ctx, by.Tenant.ID, userID)
	if err != nil {
		return "", err
	}
	if role == tally.RoleOwner && by.Role != tally.RoleOwner {
		return "", tally.Errorf(tally.EForbidden, "only an owner can remove an owner")
	}
	if err := s.store.RemoveMember(ctx, by.Tenant.ID, userID); err != nil {
		return "", err
	}
	return role, nil
}

// ChangeRole gives userID the role in by's tenant and returns the role it
// had. Only an owner makes or demotes an owner (EForbidden otherwise); the
// last owner stays one (tally.LastOwnerError, decided by the store in the
// changing transaction). EInvalid for an unknown role; ENotFound when not
// a member.
func (s *Service) ChangeRole(ctx context.Context, by *tally.Principal, userID int64, role tally.Role) (tally.Role, error) {
	if !role.Valid() {
		return "", tally.Invalid("invalid role", tally.FieldError{Field: "role", Message: "must be owner, admin or member"})
	}
	old, err := s.store.MemberRole(ctx, by.Tenant.ID, userID)
	if err != nil {
		return "", err
	}
	if (old == tally.RoleOwner || role == tally.RoleOwner) && by.Role != tally.RoleOwner {
		return "", tally.Errorf(tally.EForbidden, "only an owner can make or demote an owner")
	}
	if err := s.store.SetMemberRole(ctx, by.Tenant.ID, userID, role); err != nil {
		return "", err
	}
	return old, nil
}

// CreateKey mints an API key of tenantID and stores its hash; the
// returned secret is the only time the full key exists outside the
// caller. Scopes are sorted and deduplicated; ExpiresAt is kept to the
// microsecond in UTC. EInvalid as CreateKeyInput.Validate at the
// service's now.
func (s *Service) CreateKey(ctx context.Context, tenantID int64, in tally.CreateKeyInput) (*tally.APIKey, string, error) {
	if err := in.Validate(s.clock()); err != nil {
		return nil, "", err
	}
	scopes := slices.Compact(slices.Sorted(slices.Values(in.Scopes)))
	expires := in.ExpiresAt
	if expires != nil {
		t := expires.UTC().Truncate(time.Microsecond)
		expires = &t
	}
	kind := in.Kind
	if kind == "" {
		kind = tally.KeySecret
	}
	origins := []string{}
	if kind == tally.KeyPublishable {
		scopes = []tally.Scope{tally.ScopeWrite}
		origins = slices.Compact(slices.Sorted(slices.Values(in.Origins)))
	}
	key, prefix := secret.NewKey()
	k := &tally.APIKey{TenantID: tenantID, Name: strings.TrimSpace(in.Name), Prefix: prefix, Hash: secret.HashToken(key),
		Scopes: scopes, ExpiresAt: expires, Kind: kind, Origins: origins, RatePerMinute: in.RatePerMinute,
		AddressRatePerMinute: in.AddressRatePerMinute}
	if err := s.store.CreateKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, key, nil
}

// ListKeys lists a tenant's keys, newest first.
func (s *Service) ListKeys(ctx context.Context, tenantID int64) ([]tally.APIKey, error) {
	return s.store.ListKeys(ctx, tenantID)
}

// RevokeKey revokes a key of tenantID now; ENotFound when the key is not
// the tenant's or already revoked.
func (s *Service) RevokeKey(ctx context.Context, tenantID, id int64) error {
	return s.store.RevokeKey(ctx, tenantID, id, s.clock())
}

// Invite creates an invitation to by's tenant for in.Email with in.Role
// (RoleMember when empty), expiring after tally.InvitationTTL, and returns
// it with its token: the only time the token exists outside the caller.
// Whether the email is registered is not looked at, so the answer is the
// same either way. Only an owner invites an owner (EForbidden otherwise).
// A principal with neither user nor key is the operator's command line,
// named "cli" as the inviter. EInvalid as InviteInput.Validate.
func (s *Service) Invite(ctx context.Context, by *tally.Principal, in tally.InviteInput) (*tally.Invitation, string, error) {
	if err := in.Validate(); err != nil {
		return nil, "", err
	}
	role := in.Role
	if role == "" {
		role = tally.RoleMember
	}
	if role == tally.RoleOwner && by.Role != tally.RoleOwner {
		return nil, "", tally.Errorf(tally.EForbidden, "only an owner can invite an owner")
	}
	token := secret.Token()
	inviter := by.Actor()
	if by.User == nil && by.Key == nil {
		inviter = "cli" // the operator, on the command line
	}
	inv := &tally.Invitation{TenantID: by.Tenant.ID, Email: tally.NormalizeEmail(in.Email), Role: role,
		TokenHash: secret.HashToken(token), InvitedBy: inviter, ExpiresAt: s.clock().Add(tally.InvitationTTL)}
	if err := s.store.CreateInvitation(ctx, inv); err != nil {
		return nil, "", err
	}
	return inv, token, nil
}

// Invitations lists a tenant's pending invitations, newest first.
func (s *Service) Invitations(ctx context.Context, tenantID int64) ([]tally.Invitation, error) {
	return s.store.ListInvitations(ctx, tenantID, s.clock())
}

// RevokeInvitation revokes a pending invitation of tenantID now; ENotFound
// when it is not the tenant's or no longer pending.
func (s *Service) RevokeInvitation(ctx context.Context, tenantID, id int64) error {
	return s.store.RevokeInvitation(ctx, tenantID, id, s.clock())
}

// AcceptInvitation makes u a member of the tenant of the invitation with
// that token, with the invitation's role, and returns the invitation and
// the tenant. The invitation must be pending and addressed to u's email
// (in any case). ENotFound, the same for an unknown, used, revoked or
// expired token and for another user's invitation, so that the answer
// tells nothing about an invitation the caller may not accept; EConflict
// when u is already a member (the invitation stays pending).
func (s *Service) AcceptInvitation(ctx context.Context, u *tally.User, token string) (*tally.Invitation, *tally.Tenant, error) {
	inv, err := s.store.AcceptInvitation(ctx, secret.HashToken(token), u.Email, u.ID, s.clock())
	if err != nil {
		if tally.ErrorCodeOf(err) == tally.ENotFound {
			return nil, nil, tally.Errorf(tally.ENotFound,
				"no pending invitation for this account with this token: it may have been used, revoked or expired, or be for another email")
		}
		return nil, nil, err
	}
	t, err := s.store.TenantByID(ctx, inv.TenantID)
	if err != nil {
		return nil, nil, err
	}
	return inv, t, nil
}
