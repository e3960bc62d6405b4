package identity_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// clockAt is a fixed clock.
var clockAt = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

const password = "correct-horse-battery"

// env is a service on a fresh SQLite file at clockAt.
type env struct {
	t     *testing.T
	store tally.Store
	svc   *identity.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db := sqlitetest.Open(t)
	return &env{t: t, store: db, svc: identity.New(db, func() time.Time { return clockAt }, nil)}
}

func (e *env) register(email string) *tally.User {
	e.t.Helper()
	u, _, err := e.svc.Register(e.t.Context(), tally.RegisterInput{Email: email, Password: password, Name: "Name of " + email})
	if err != nil {
		e.t.Fatalf("Register(%s): %v", email, err)
	}
	return u
}

// tenant creates a tenant owned by a new user and returns it with the
// owner as a principal acting in it.
func (e *env) tenant(slug string, allowSignup bool) (*tally.Tenant, *tally.Principal) {
	e.t.Helper()
	owner := e.register("owner@" + slug + ".example")
	tn, err := e.svc.CreateTenant(e.t.Context(), tally.CreateTenantInput{Slug: slug, Name: " Tenant " + slug + " ", AllowSignup: allowSignup}, owner.ID)
	if err != nil {
		e.t.Fatalf("CreateTenant(%s): %v", slug, err)
	}
	return tn, &tally.Principal{User: owner, Tenant: tn, Role: tally.RoleOwner}
}

func wantCode(t *testing.T, err error, want tally.ErrorCode, what string) {
	t.Helper()
	if got := tally.ErrorCodeOf(err); got != want {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, want)
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	u, tn, err := e.svc.Register(ctx, tally.RegisterInput{Email: " Ada@Example.COM ", Password: "éééééééé", Name: "  Ada  "})
	if err != nil || tn != nil {
		t.Fatalf("Register = %v, %v", tn, err)
	}
	if u.Email != "ada@example.com" || u.Name != "Ada" || u.ID == 0 {
		t.Fatalf("registered %+v, want the email normalized and the name trimmed", u)
	}
	_, _, err = e.svc.Register(ctx, tally.RegisterInput{Email: "ADA@example.com", Password: password})
	wantCode(t, err, tally.EConflict, "Register(taken email)")
	_, _, err = e.svc.Register(ctx, tally.RegisterInput{Email: "bob@example.com", Password: "ééééééé"})
	wantCode(t, err, tally.EInvalid, "Register(7 characters)")

	open, _ := e.tenant("open", true)
	closed, _ := e.tenant("closed", false)
	for _, slug := range []string{closed.Slug, "nowhere"} {
		_, _, err = e.svc.Register(ctx, tally.RegisterInput{Email: "eve-" + slug + "@example.com", Password: password, TenantSlug: slug})
		wantCode(t, err, tally.EForbidden, "Register(into "+slug+")")
		if _, err := e.svc.UserByEmail(ctx, "eve-"+slug+"@example.com"); tally.ErrorCodeOf(err) != tally.ENotFound {
			t.Fatalf("a refused sign-up into %s created the user: %v", slug, err)
		}
	}
	u, tn, err = e.svc.Register(ctx, tally.RegisterInput{Email: "max@example.com", Password: password, TenantSlug: open.Slug})
	if err != nil || tn == nil || tn.ID != open.ID {
		t.Fatalf("Register(into open) = %v, %v", tn, err)
	}
	if role, err := e.store.MemberRole(ctx, open.ID, u.ID); err != nil || role != tally.RoleMember {
		t.Fatalf("signed-up user's role = %q, %v; want member", role, err)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	tn, owner := e.tenant("acme", false)
	loner := e.register("loner@example.com")

	l, err := e.svc.Login(ctx, tally.LoginInput{Email: "OWNER@acme.example", Password: password, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if l.User.ID != owner.User.ID || len(l.Tenants) != 1 || l.Tenants[0].Slug != "acme" || !l.Session.ExpiresAt.Equal(clockAt.Add(time.Hour)) {
		t.Fatalf("Login = %+v (session %+v)", l, l.Session)
	}
	u, err := e.svc.SessionUser(ctx, l.Token)
	if err != nil || u.ID != owner.User.ID {
		t.Fatalf("SessionUser = %v, %v", u, err)
	}
	if err := e.svc.Logout(ctx, l.Token); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SessionUser(ctx, l.Token)
	wantCode(t, err, tally.EUnauthorized, "SessionUser(after logout)")

	meta := map[string]any{"remote": "192.0.2.1:1234"}
	for _, in := range []tally.LoginInput{
		{Email: "owner@acme.example", Password: "wrong-password", AuditMeta: meta},
		{Email: "nobody@example.com", Password: password, AuditMeta: meta},
		{Email: loner.Email, Password: "wrong-password", AuditMeta: meta},
	} {
		_, err := e.svc.Login(ctx, in)
		wantCode(t, err, tally.EUnauthorized, "Login("+in.Email+")")
		if tally.ErrorMessageOf(err) != "invalid email or password" {
			t.Fatalf("Login(%s) message %q", in.Email, tally.ErrorMessageOf(err))
		}
	}
	// A member's failure is in its tenant's log; the others in the system log.
	for _, c := range []struct {
		tenantID int64
		targets  []string
	}{{tn.ID, []string{"owner@acme.example"}}, {0, []string{"loner@example.com", "nobody@example.com"}}} {
		entries, _, err := e.store.ListAudit(ctx, c.tenantID, tally.AuditFilter{Action: "auth.login_failed", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var targets []string
		for _, a := range entries {
			if a.Actor != "system" || a.Meta["remote"] != "192.0.2.1:1234" {
				t.Fatalf("audit entry %+v", a)
			}
			targets = append(targets, a.Target)
		}
		if !slices.Equal(targets, c.targets) {
			t.Fatalf("failed logins in tenant %d's log: %v, want %v", c.tenantID, targets, c.targets)
		}
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	e.register("ada@example.com")
	_, err := e.svc.ChangePassword(ctx, tally.ChangePasswordInput{Email: "ada@example.com", Password: "short"})
	wantCode(t, err, tally.EInvalid, "ChangePassword(short)")
	_, err = e.svc.ChangePassword(ctx, tally.ChangePasswordInput{Email: "nobody@example.com", Password: password})
	wantCode(t, err, tally.ENotFound, "ChangePassword(unknown user)")
	if _, err := e.svc.ChangePassword(ctx, tally.ChangePasswordInput{Email: "ada@example.com", Password: "üüüüüüüü"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Login(ctx, tally.LoginInput{Email: "ada@example.com", Password: "üüüüüüüü", TTL: time.Hour}); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}
}

func TestMembers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	tn, owner := e.tenant("acme", false)
	adminUser := e.register("admin@example.com")
	e.register("second@example.com")
	e.register("member@example.com")

	m, err := e.svc.AddMember(ctx, owner, tally.AddMemberInput{Email: "ADMIN@example.com", Role: tally.RoleAdmin})
	if err != nil || m.UserID != adminUser.ID || m.Role != tally.RoleAdmin || !m.AddedAt.Equal(clockAt) {
		t.Fatalf("AddMember = %+v, %v", m, err)
	}
	admin := &tally.Principal{User: adminUser, Tenant: tn, Role: tally.RoleAdmin}
	_, err = e.svc.AddMember(ctx, admin, tally.AddMemberInput{Email: "second@example.com", Role: tally.RoleOwner})
	wantCode(t, err, tally.EForbidden, "AddMember(owner, by an admin)")
	_, err = e.svc.AddMember(ctx, owner, tally.AddMemberInput{Email: "nobody@example.com"})
	wantCode(t, err, tally.ENotFound, "AddMember(unregistered)")
	_, err = e.svc.AddMember(ctx, owner, tally.AddMemberInput{Email: "member@example.com", Role: "root"})
	wantCode(t, err, tally.EInvalid, "AddMember(unknown role)")
	m, err = e.svc.AddMember(ctx, admin, tally.AddMemberInput{Email: "member@example.com"})
	if err != nil || m.Role != tally.RoleMember {
		t.Fatalf("AddMember(no role) = %+v, %v; want a member", m, err)
	}
	_, err = e.svc.AddMember(ctx, admin, tally.AddMemberInput{Email: "member@example.com"})
	wantCode(t, err, tally.EConflict, "AddMember(already a member)")

	// The owner cannot leave while it is the only one.
	_, err = e.svc.RemoveMember(ctx, owner, owner.User.ID)
	wantCode(t, err, tally.EConflict, "RemoveMember(last owner)")
	_, err = e.svc.ChangeRole(ctx, owner, owner.User.ID, tally.RoleAdmin)
	wantCode(t, err, tally.EConflict, "ChangeRole(last owner)")
	_, err = e.svc.RemoveMember(ctx, admin, owner.User.ID)
	wantCode(t, err, tally.EForbidden, "RemoveMember(owner, by an admin)")
	_, err = e.svc.ChangeRole(ctx, admin, m.UserID, tally.RoleOwner)
	wantCode(t, err, tally.EForbidden, "ChangeRole(to owner, by an admin)")
	_, err = e.svc.ChangeRole(ctx, owner, m.UserID, "root")
	wantCode(t, err, tally.EInvalid, "ChangeRole(unknown role)")

	if old, err := e.svc.ChangeRole(ctx, admin, m.UserID, tally.RoleAdmin); err != nil || old != tally.RoleMember {
		t.Fatalf("ChangeRole(member to admin, by an admin) = %q, %v", old, err)
	}
	if old, err := e.svc.ChangeRole(ctx, owner, adminUser.ID, tally.RoleOwner); err != nil || old != tally.RoleAdmin {
		t.Fatalf("ChangeRole(admin to owner) = %q, %v", old, err)
	}
	if old, err := e.svc.RemoveMember(ctx, owner, owner.User.ID); err != nil || old != tally.RoleOwner {
		t.Fatalf("RemoveMember(one of two owners) = %q, %v", old, err)
	}
	ms, err := e.svc.ListMembers(ctx, tn.ID)
	if err != nil || len(ms) != 2 || ms[0].UserID != adminUser.ID || ms[0].Role != tally.RoleOwner {
		t.Fatalf("ListMembers = %+v, %v; want the new owner and the member", ms, err)
	}
	_, err = e.svc.RemoveMember(ctx, owner, owner.User.ID)
	wantCode(t, err, tally.ENotFound, "RemoveMember(removed)")
}

func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	tn, _ := e.tenant("acme", false)
	expires := clockAt.Add(time.Hour + time.Nanosecond).In(time.FixedZone("x", 3600))
	k, secret, err := e.svc.CreateKey(ctx, tn.ID, tally.CreateKeyInput{Name: "  ci  ",
		Scopes: []tally.Scope{tally.ScopeWrite, tally.ScopeRead, tally.ScopeWrite}, ExpiresAt: &expires})
	if err != nil {
		t.Fatal(err)
	}
	if k.Name != "ci" || !slices.Equal(k.Scopes, []tally.Scope{tally.ScopeRead, tally.ScopeWrite}) ||
		k.ExpiresAt.Location() != time.UTC || !k.ExpiresAt.Equal(clockAt.Add(time.Hour)) {
		t.Fatalf("CreateKey = %+v (expires %v)", k, k.ExpiresAt)
	}
	past := clockAt
	_, _, err = e.svc.CreateKey(ctx, tn.ID, tally.CreateKeyInput{Name: "old", Scopes: tally.AllScopes, ExpiresAt: &past})
	wantCode(t, err, tally.EInvalid, "CreateKey(expires now)")

	got, gotTenant, err := e.svc.KeyAuth(ctx, secret, "192.0.2.1")
	if err != nil || got.ID != k.ID || gotTenant.ID != tn.ID {
		t.Fatalf("KeyAuth = %+v, %+v, %v", got, gotTenant, err)
	}
	_, _, err = e.svc.KeyAuth(ctx, secret+"x", "192.0.2.1")
	wantCode(t, err, tally.EUnauthorized, "KeyAuth(wrong secret)")
	if err := e.svc.RevokeKey(ctx, tn.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.svc.RevokeKey(ctx, tn.ID, k.ID), tally.ENotFound, "RevokeKey(again)")
	_, _, err = e.svc.KeyAuth(ctx, secret, "192.0.2.1")
	wantCode(t, err, tally.EUnauthorized, "KeyAuth(revoked)")
	ks, err := e.svc.ListKeys(ctx, tn.ID)
	if err != nil || len(ks) != 1 || ks[0].RevokedAt == nil || !ks[0].RevokedAt.Equal(clockAt) {
		t.Fatalf("ListKeys = %+v, %v; want the key revoked at the service's clock", ks, err)
	}
}

func TestInvitations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	tn, owner := e.tenant("acme", false)
	carol := e.register("carol@example.com")
	dave := e.register("dave@example.com")

	inv, token, err := e.svc.Invite(ctx, owner, tally.InviteInput{Email: " Carol@Example.com ", Role: tally.RoleAdmin})
	if err != nil || token == "" || inv.Email != "carol@example.com" || inv.Role != tally.RoleAdmin ||
		!inv.ExpiresAt.Equal(clockAt.Add(tally.InvitationTTL)) || inv.InvitedBy != owner.Actor() {
		t.Fatalf("Invite = %+v, %q, %v", inv, token, err)
	}
	// An unregistered email is invited alike.
	ghost, _, err := e.svc.Invite(ctx, owner, tally.InviteInput{Email: "ghost@example.com"})
	if err != nil || ghost.Role != tally.RoleMember {
		t.Fatalf("Invite(unregistered, no role) = %+v, %v", ghost, err)
	}
	_, _, err = e.svc.Invite(ctx, owner, tally.InviteInput{Email: "not-an-email", Role: "root"})
	wantCode(t, err, tally.EInvalid, "Invite(bad email and role)")
	admin := &tally.Principal{User: carol, Tenant: tn, Role: tally.RoleAdmin}
	_, _, err = e.svc.Invite(ctx, admin, tally.InviteInput{Email: "dave@example.com", Role: tally.RoleOwner})
	wantCode(t, err, tally.EForbidden, "Invite(owner, by an admin)")

	list, err := e.svc.Invitations(ctx, tn.ID)
	if err != nil || len(list) != 2 {
		t.Fatalf("Invitations = %+v, %v", list, err)
	}

	// Another user's token, a wrong token: the same not-found.
	_, _, err = e.svc.AcceptInvitation(ctx, dave, token)
	wantCode(t, err, tally.ENotFound, "AcceptInvitation(another email)")
	_, _, err = e.svc.AcceptInvitation(ctx, carol, token+"x")
	wantCode(t, err, tally.ENotFound, "AcceptInvitation(wrong token)")
	got, gotTenant, err := e.svc.AcceptInvitation(ctx, carol, token)
	if err != nil || got.ID != inv.ID || gotTenant.ID != tn.ID {
		t.Fatalf("AcceptInvitation = %+v, %+v, %v", got, gotTenant, err)
	}
	if _, role, err := e.svc.Membership(ctx, "acme", carol.ID); err != nil || role != tally.RoleAdmin {
		t.Fatalf("carol's membership after accept: %q, %v", role, err)
	}
	_, _, err = e.svc.AcceptInvitation(ctx, carol, token)
	wantCode(t, err, tally.ENotFound, "AcceptInvitation(twice)")

	wantCode(t, e.svc.RevokeInvitation(ctx, tn.ID, inv.ID), tally.ENotFound, "RevokeInvitation(accepted)")
	if err := e.svc.RevokeInvitation(ctx, tn.ID, ghost.ID); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.svc.Invitations(ctx, tn.ID); len(list) != 0 {
		t.Errorf("pending after accept and revoke: %+v", list)
	}
}

func TestInvitationExpires(t *testing.T) {
	t.Parallel()
	db := sqlitetest.Open(t)
	at := clockAt
	svc := identity.New(db, func() time.Time { return at }, nil)
	ctx := t.Context()
	u, _, err := svc.Register(ctx, tally.RegisterInput{Email: "owner@example.com", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	tn, err := svc.CreateTenant(ctx, tally.CreateTenantInput{Slug: "acme", Name: "Acme"}, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	carol, _, err := svc.Register(ctx, tally.RegisterInput{Email: "carol@example.com", Password: password})
	if err != nil {
		t.Fatal(err)
	}
	_, token, err := svc.Invite(ctx, &tally.Principal{User: u, Tenant: tn, Role: tally.RoleOwner}, tally.InviteInput{Email: carol.Email})
	if err != nil {
		t.Fatal(err)
	}
	at = at.Add(tally.InvitationTTL)
	_, _, err = svc.AcceptInvitation(ctx, carol, token)
	wantCode(t, err, tally.ENotFound, "AcceptInvitation(expired)")
}
