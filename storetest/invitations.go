package storetest

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func invitationCases() []testCase {
	return []testCase{
		{"CreateListRevoke", testInvitationCreateListRevoke},
		{"Accept", testInvitationAccept},
		{"AcceptOnce", testInvitationAcceptOnce},
	}
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func newInvitation(t *testing.T, s tally.Store, tenantID int64, email string, role tally.Role, token string, expires time.Time) *tally.Invitation {
	t.Helper()
	inv := &tally.Invitation{TenantID: tenantID, Email: email, Role: role, TokenHash: tokenHash(token),
		InvitedBy: "user:owner@example.com", ExpiresAt: expires}
	check(t, s.CreateInvitation(t.Context(), inv))
	return inv
}

func testInvitationCreateListRevoke(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme, other := newTenant(t, s, "acme"), newTenant(t, s, "other")
	at := now()
	expires := at.Add(time.Hour)
	a := newInvitation(t, s, acme.ID, "Carol@Example.com", tally.RoleAdmin, "tok-a", expires)
	if a.ID <= 0 || a.CreatedAt.IsZero() || a.Email != "carol@example.com" {
		t.Fatalf("created %+v", a)
	}
	b := newInvitation(t, s, acme.ID, "dave@example.com", tally.RoleMember, "tok-b", expires)
	newInvitation(t, s, acme.ID, "old@example.com", tally.RoleMember, "tok-old", at.Add(-time.Second))
	o := newInvitation(t, s, other.ID, "erin@example.com", tally.RoleMember, "tok-o", expires)

	list, err := s.ListInvitations(ctx, acme.ID, at)
	check(t, err)
	if len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Fatalf("pending of acme = %+v; want b, a (expired and other tenant's left out)", list)
	}
	got := list[1]
	if got.Email != a.Email || got.Role != tally.RoleAdmin || !bytes.Equal(got.TokenHash, a.TokenHash) ||
		got.InvitedBy != a.InvitedBy || !got.CreatedAt.Equal(a.CreatedAt) || !got.ExpiresAt.Equal(expires) {
		t.Errorf("listed %+v; created %+v", got, a)
	}

	wantCode(t, s.RevokeInvitation(ctx, acme.ID, o.ID, at), tally.ENotFound, "revoke another tenant's invitation")
	check(t, s.RevokeInvitation(ctx, acme.ID, a.ID, at))
	wantCode(t, s.RevokeInvitation(ctx, acme.ID, a.ID, at), tally.ENotFound, "revoke twice")
	list, err = s.ListInvitations(ctx, acme.ID, at)
	check(t, err)
	if len(list) != 1 || list[0].ID != b.ID {
		t.Fatalf("pending after revoke = %+v", list)
	}
	u := newUser(t, s, "carol@example.com")
	_, err = s.AcceptInvitation(ctx, tokenHash("tok-a"), u.Email, u.ID, at)
	wantCode(t, err, tally.ENotFound, "accept a revoked invitation")
	if list, _ := s.ListInvitations(ctx, other.ID, at); len(list) != 1 {
		t.Errorf("other tenant's pending = %+v", list)
	}
}

func testInvitationAccept(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme := newTenant(t, s, "acme")
	at := now()
	carol := newUser(t, s, "carol@example.com")
	dave := newUser(t, s, "dave@example.com")
	inv := newInvitation(t, s, acme.ID, "CAROL@example.com", tally.RoleAdmin, "tok", at.Add(time.Hour))
	newInvitation(t, s, acme.ID, "dave@example.com", tally.RoleMember, "expired", at.Add(-time.Microsecond))

	_, err := s.AcceptInvitation(ctx, tokenHash("tok"), dave.Email, dave.ID, at)
	wantCode(t, err, tally.ENotFound, "accept another email's invitation")
	_, err = s.AcceptInvitation(ctx, tokenHash("expired"), dave.Email, dave.ID, at)
	wantCode(t, err, tally.ENotFound, "accept an expired invitation")
	_, err = s.AcceptInvitation(ctx, tokenHash("nope"), carol.Email, carol.ID, at)
	wantCode(t, err, tally.ENotFound, "accept an unknown token")
	if _, err := s.MemberRole(ctx, acme.ID, dave.ID); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Fatalf("dave is a member after refused accepts: %v", err)
	}

	got, err := s.AcceptInvitation(ctx, tokenHash("tok"), "Carol@Example.com", carol.ID, at)
	check(t, err)
	if got.ID != inv.ID || got.TenantID != acme.ID || got.Role != tally.RoleAdmin {
		t.Fatalf("accepted %+v; want %+v", got, inv)
	}
	role, err := s.MemberRole(ctx, acme.ID, carol.ID)
	check(t, err)
	if role != tally.RoleAdmin {
		t.Fatalf("role after accept = %q", role)
	}
	_, err = s.AcceptInvitation(ctx, tokenHash("tok"), carol.Email, carol.ID, at)
	wantCode(t, err, tally.ENotFound, "accept twice")
	if list, _ := s.ListInvitations(ctx, acme.ID, at); len(list) != 0 {
		t.Errorf("pending after accept = %+v", list)
	}

	// Already a member: refused, and the invitation stays pending.
	again := newInvitation(t, s, acme.ID, carol.Email, tally.RoleMember, "again", at.Add(time.Hour))
	_, err = s.AcceptInvitation(ctx, tokenHash("again"), carol.Email, carol.ID, at)
	wantCode(t, err, tally.EConflict, "accept while a member")
	if list, _ := s.ListInvitations(ctx, acme.ID, at); len(list) != 1 || list[0].ID != again.ID {
		t.Errorf("pending after a conflicting accept = %+v", list)
	}
	if role, _ := s.MemberRole(ctx, acme.ID, carol.ID); role != tally.RoleAdmin {
		t.Errorf("role after a conflicting accept = %q", role)
	}
}

// testInvitationAcceptOnce accepts one token from many goroutines (each as
// the same user): exactly one succeeds.
func testInvitationAcceptOnce(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme := newTenant(t, s, "acme")
	at := now()
	u := newUser(t, s, "carol@example.com")
	newInvitation(t, s, acme.ID, u.Email, tally.RoleMember, "tok", at.Add(time.Hour))
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, codes := 0, map[tally.ErrorCode]int{}
	for range 8 {
		wg.Go(func() {
			_, err := s.AcceptInvitation(ctx, tokenHash("tok"), u.Email, u.ID, at)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else {
				codes[tally.ErrorCodeOf(err)]++
			}
		})
	}
	wg.Wait()
	if ok != 1 || codes[tally.ENotFound]+codes[tally.EConflict] != 7 {
		t.Fatalf("%d accepts succeeded, failures %v; want 1 and 7 not-found or conflict", ok, codes)
	}
}
