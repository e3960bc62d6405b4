package server_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
)

// testClock is a clock that tests move forward.
type testClock struct{ offset atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *testClock) advance(d time.Duration) { c.offset.Add(int64(d)) }

func withClock(c *testClock) harnessOption {
	return func(cfg *app.Config) { cfg.Now = c.now }
}

// memberRoles lists the members of o's tenant by email.
func (h *harness) memberRoles(o owner) map[string]string {
	h.t.Helper()
	var list struct {
		Members []struct{ Email, Role string } `json:"members"`
	}
	h.do("GET", "/api/tenants/"+o.slug+"/members", nil, o.h()).want(h.t, http.StatusOK).decode(h.t, &list)
	out := map[string]string{}
	for _, m := range list.Members {
		out[m.Email] = m.Role
	}
	return out
}

// pendingInvitations lists the ids of o's tenant's pending invitations,
// failing when a listed invitation shows a token.
func (h *harness) pendingInvitations(o owner) []int64 {
	h.t.Helper()
	r := h.do("GET", "/api/tenants/"+o.slug+"/invitations", nil, o.h()).want(h.t, http.StatusOK)
	if bytes.Contains(r.Body, []byte("token")) {
		h.t.Errorf("%s: the list shows tokens", r)
	}
	var list struct {
		Invitations []struct{ ID int64 } `json:"invitations"`
	}
	r.decode(h.t, &list)
	var ids []int64
	for _, i := range list.Invitations {
		ids = append(ids, i.ID)
	}
	return ids
}

// TestAPIInvitations: nobody joins a tenant without accepting an
// invitation addressed to them; a token works once, until it expires or
// is revoked; the answer to an invite does not tell whether the email is
// registered; admins cannot invite above their role nor touch another
// tenant's invitations; every step is audited without the token.
func TestAPIInvitations(t *testing.T) {
	backends(t, func(t *testing.T, opts ...harnessOption) {
		clock := &testClock{}
		h := newHarness(t, append(opts, withClock(clock))...)
		o := h.newTenant("inv")
		other := h.newTenant("inv-other")
		invitations := "/api/tenants/" + o.slug + "/invitations"

		// Consent: an invitation adds nobody by itself.
		ada, _ := h.user("ada@example.com")
		inv := h.invite(o, "ADA@example.com", "member")
		if inv.Invitation.Email != "ada@example.com" || inv.Invitation.Role != "member" || inv.Invitation.InvitedBy != "user:"+o.email {
			t.Errorf("invitation %+v", inv.Invitation)
		}
		if got := inv.Invitation.ExpiresAt.Sub(clock.now()); got < 6*24*time.Hour || got > 7*24*time.Hour {
			t.Errorf("expires in %s, want 7 days", got)
		}
		if _, ok := h.memberRoles(o)["ada@example.com"]; ok {
			t.Fatal("invited before accepting: already a member")
		}
		wantProblem(t, h.do("GET", "/api/keys", nil, hdr(ada, o.slug)), http.StatusForbidden)
		if ids := h.pendingInvitations(o); len(ids) != 1 || ids[0] != inv.Invitation.ID {
			t.Fatalf("pending %v, want [%d]", ids, inv.Invitation.ID)
		}

		// Wrong user: bob holds ada's token and gets what a bad token gets.
		bob, _ := h.user("bob@example.com")
		wrong := wantProblem(t, h.accept(bob, inv.Token), http.StatusNotFound)
		bogus := wantProblem(t, h.accept(bob, "no-such-token"), http.StatusNotFound)
		if wrong.Detail != bogus.Detail {
			t.Errorf("another user's invitation %q differs from an unknown token %q", wrong.Detail, bogus.Detail)
		}
		wantProblem(t, h.accept("", inv.Token), http.StatusUnauthorized)
		k := h.createKey(o, "analytics:admin")
		wantProblem(t, h.accept(k.Key, inv.Token), http.StatusForbidden)

		// Accepting joins with the invitation's role; the token is spent.
		var joined struct {
			Tenant struct{ Slug, Name, Role string } `json:"tenant"`
		}
		h.accept(ada, inv.Token).want(t, http.StatusOK).decode(t, &joined)
		if joined.Tenant.Slug != o.slug || joined.Tenant.Role != "member" {
			t.Errorf("joined %+v", joined)
		}
		if h.memberRoles(o)["ada@example.com"] != "member" {
			t.Errorf("members %v", h.memberRoles(o))
		}
		if ids := h.pendingInvitations(o); len(ids) != 0 {
			t.Errorf("an accepted invitation is still pending: %v", ids)
		}
		used := wantProblem(t, h.accept(ada, inv.Token), http.StatusNotFound)
		if used.Detail != bogus.Detail {
			t.Errorf("a used token %q differs from an unknown one %q", used.Detail, bogus.Detail)
		}

		// The same answer whether or not the email is registered.
		shapes := map[string]string{}
		for _, email := range []string{"bob@example.com", "nobody-yet@example.com"} {
			r := h.do("POST", invitations, map[string]string{"email": email, "role": "member"}, o.h()).want(t, http.StatusCreated)
			shape := string(r.Body)
			for _, v := range []string{email, `"id":\d+`} {
				shape = strings.ReplaceAll(shape, v, "X")
			}
			var c createdInvitation
			r.decode(t, &c)
			shape = strings.NewReplacer(c.Token, "T", strconv.FormatInt(c.Invitation.ID, 10), "N",
				c.Invitation.ExpiresAt.Format(time.RFC3339Nano), "E").Replace(shape)
			shapes[email] = shape[:strings.Index(shape, `"created_at"`)]
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("%s: content type", r)
			}
		}
		if shapes["bob@example.com"] != shapes["nobody-yet@example.com"] {
			t.Errorf("registered and unregistered emails answer differently:\n%s\n%s", shapes["bob@example.com"], shapes["nobody-yet@example.com"])
		}

		// An unregistered invitee registers, then accepts.
		late := h.invite(o, "late@example.com", "admin")
		lateTok, _ := h.user("late@example.com")
		h.accept(lateTok, late.Token).want(t, http.StatusOK)
		if h.memberRoles(o)["late@example.com"] != "admin" {
			t.Errorf("members %v", h.memberRoles(o))
		}

		// Already a member: 409, and the invitation stays pending.
		again := h.invite(o, "ada@example.com", "admin")
		wantProblem(t, h.accept(ada, again.Token), http.StatusConflict)
		if h.memberRoles(o)["ada@example.com"] != "member" {
			t.Error("a refused acceptance changed the role")
		}

		// Revocation: the token stops working.
		carl, _ := h.user("carl@example.com")
		rv := h.invite(o, "carl@example.com", "member")
		revoke := invitations + "/" + strconv.FormatInt(rv.Invitation.ID, 10)
		h.do("DELETE", revoke, nil, o.h()).want(t, http.StatusNoContent)
		wantProblem(t, h.do("DELETE", revoke, nil, o.h()), http.StatusNotFound)
		wantProblem(t, h.accept(carl, rv.Token), http.StatusNotFound)
		wantProblem(t, h.do("DELETE", invitations+"/abc", nil, o.h()), http.StatusNotFound)
		wantProblem(t, h.do("DELETE", invitations+"/999999", nil, o.h()), http.StatusNotFound)

		// Cross-tenant: another tenant's admin neither sees nor revokes o's
		// invitations, through its own tenant's path or o's.
		pending := h.invite(o, "carl@example.com", "member")
		if ids := h.pendingInvitations(other); len(ids) != 0 {
			t.Errorf("another tenant lists %v", ids)
		}
		wantProblem(t, h.do("GET", invitations, nil, other.h()), http.StatusForbidden)
		wantProblem(t, h.do("POST", invitations, map[string]string{"email": "x@example.com"}, other.h()), http.StatusForbidden)
		wantProblem(t, h.do("DELETE", "/api/tenants/"+other.slug+"/invitations/"+strconv.FormatInt(pending.Invitation.ID, 10), nil, other.h()),
			http.StatusNotFound)
		wantProblem(t, h.do("DELETE", invitations+"/"+strconv.FormatInt(pending.Invitation.ID, 10), nil, other.h()), http.StatusForbidden)
		if ids := h.pendingInvitations(o); len(ids) == 0 || !containsID(ids, pending.Invitation.ID) {
			t.Fatalf("o's invitation was touched by another tenant: pending %v", ids)
		}
		h.accept(carl, pending.Token).want(t, http.StatusOK)
		if _, ok := h.memberRoles(other)["carl@example.com"]; ok {
			t.Error("accepting o's invitation joined another tenant")
		}

		// Role bounds: a member cannot invite; an admin invites up to admin,
		// never an owner; an owner invites an owner.
		admin := owner{token: lateTok, slug: o.slug, email: "late@example.com"}
		wantProblem(t, h.do("POST", invitations, map[string]string{"email": "x@example.com", "role": "member"}, hdr(ada, "")), http.StatusForbidden)
		wantProblem(t, h.do("GET", invitations, nil, hdr(ada, "")), http.StatusForbidden)
		wantProblem(t, h.do("POST", invitations, map[string]string{"email": "x@example.com", "role": "owner"}, admin.h()), http.StatusForbidden)
		h.invite(admin, "x@example.com", "admin")
		h.invite(admin, "y@example.com", "")
		h.invite(o, "z@example.com", "owner")
		for _, body := range []any{
			map[string]string{"email": "x@example.com", "role": "boss"},
			map[string]string{"email": "not-an-email"},
			map[string]string{},
			`{"email":`,
		} {
			wantProblem(t, h.do("POST", invitations, body, o.h()), http.StatusBadRequest)
		}

		// Expiry: after 7 days the token no longer works and the
		// invitation is no longer listed.
		dora, _ := h.user("dora@example.com")
		exp := h.invite(o, "dora@example.com", "member")
		clock.advance(tally7Days + time.Minute)
		wantProblem(t, h.accept(dora, exp.Token), http.StatusNotFound)
		if ids := h.pendingInvitations(o); containsID(ids, exp.Invitation.ID) {
			t.Errorf("an expired invitation is listed: %v", ids)
		}
		if _, ok := h.memberRoles(o)["dora@example.com"]; ok {
			t.Error("an expired invitation made a member")
		}

		// Audited, never with a token.
		r := h.do("GET", "/api/analytics/audit?limit=200", nil, o.h()).want(t, http.StatusOK)
		var audit struct {
			Entries []struct{ Actor, Action, Target string } `json:"entries"`
		}
		r.decode(t, &audit)
		count := map[string]int{}
		for _, e := range audit.Entries {
			count[e.Action]++
		}
		if count["invitation.created"] < 10 || count["invitation.revoked"] != 1 || count["invitation.accepted"] != 3 {
			t.Errorf("invitation audit entries %v", count)
		}
		for _, tok := range []string{inv.Token, rv.Token, exp.Token, pending.Token} {
			if strings.Contains(string(r.Body), tok) {
				t.Errorf("a token is in the audit log")
			}
		}
		h.noPanic(t)
	})
}

const tally7Days = 7 * 24 * time.Hour

func containsID(ids []int64, id int64) bool {
	for _, i := range ids {
		if i == id {
			return true
		}
	}
	return false
}
