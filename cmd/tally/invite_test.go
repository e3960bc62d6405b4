package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/app"
)

// TestInviteCommands runs invite create, list, revoke and accept against
// one SQLite file: an invitation makes nobody a member until its invitee
// accepts it, its token works once, for its email only, and not after a
// revoke; each step is audited by "cli" without the token.
func TestInviteCommands(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	env := envOf(map[string]string{"DATABASE_URL": path})
	tally_ := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(t.Context(), args, env, &out, io.Discard)
		return out.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := tally_(args...)
		if err != nil {
			t.Fatalf("tally %s: %v", strings.Join(args, " "), err)
		}
		return out
	}
	must("user", "create", "-email", "owner@example.com", "-password", "long-enough-1")
	must("user", "create", "-email", "ada@example.com", "-password", "long-enough-1")
	must("user", "create", "-email", "bob@example.com", "-password", "long-enough-1")
	must("tenant", "create", "-slug", "acme", "-name", "Acme", "-owner", "owner@example.com")

	token := strings.TrimSpace(must("invite", "create", "-tenant", "acme", "-email", "Ada@Example.com", "-role", "admin"))
	if len(token) < 20 || strings.ContainsAny(token, " \n") {
		t.Fatalf("create printed %q, want the token alone", token)
	}
	var list struct {
		Invitations []tally.Invitation `json:"invitations"`
	}
	if err := json.Unmarshal([]byte(must("invite", "list", "-tenant", "acme", "-json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Invitations) != 1 || list.Invitations[0].Email != "ada@example.com" || list.Invitations[0].Role != tally.RoleAdmin ||
		list.Invitations[0].InvitedBy != "cli" {
		t.Fatalf("list %+v", list.Invitations)
	}
	if table := must("invite", "list", "-tenant", "acme"); !strings.Contains(table, "ada@example.com") || strings.Contains(table, token) {
		t.Errorf("list table %q", table)
	}

	// Another user cannot accept it; the invitee can, once.
	if _, err := tally_("invite", "accept", "-token", token, "-email", "bob@example.com"); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("bob accepting ada's invitation: %v, want not found", err)
	}
	if out := must("invite", "accept", "-token", token, "-email", "ada@example.com"); !strings.Contains(out, "ada@example.com joined acme as admin") {
		t.Errorf("accept printed %q", out)
	}
	if _, err := tally_("invite", "accept", "-token", token, "-email", "ada@example.com"); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("a second accept: %v, want not found", err)
	}

	// Revoked: the token stops working.
	var created struct {
		Invitation tally.Invitation `json:"invitation"`
		Token      string           `json:"token"`
	}
	if err := json.Unmarshal([]byte(must("invite", "create", "-tenant", "acme", "-email", "bob@example.com", "-json")), &created); err != nil {
		t.Fatal(err)
	}
	if created.Token == "" || created.Invitation.Role != tally.RoleMember {
		t.Fatalf("create -json %+v", created)
	}
	must("invite", "revoke", "-tenant", "acme", "-id", strconv.FormatInt(created.Invitation.ID, 10))
	if _, err := tally_("invite", "accept", "-token", created.Token, "-email", "bob@example.com"); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("accepting a revoked invitation: %v", err)
	}
	if _, err := tally_("invite", "revoke", "-tenant", "acme", "-id", strconv.FormatInt(created.Invitation.ID, 10)); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("revoking twice: %v", err)
	}
	if out := must("invite", "list", "-tenant", "acme", "-json"); !strings.Contains(out, `"invitations": []`) {
		t.Errorf("nothing is pending, yet: %s", out)
	}

	// Bad input names the flag.
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"invite", "create", "-tenant", "acme", "-email", "x@example.com", "-role", "boss"}, "-role"},
		{[]string{"invite", "create", "-tenant", "acme", "-email", "nope"}, "-email"},
		{[]string{"invite", "create", "-tenant", "acme"}, "-email"},
		{[]string{"invite", "revoke", "-tenant", "acme"}, "-id"},
		{[]string{"invite", "accept", "-token", "x"}, "-email"},
		{[]string{"invite", "frobnicate"}, "invite create"},
	} {
		_, err := tally_(tc.args...)
		var ce *configError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("tally %s: %v, want a configError naming %s", strings.Join(tc.args, " "), err, tc.flag)
		}
	}

	// Audited by "cli", never with a token.
	db, err := app.OpenStore(t.Context(), app.StoreConfig{SQLitePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tn, err := db.TenantBySlug(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := db.ListAudit(t.Context(), tn.ID, tally.AuditFilter{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range entries {
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), token) || strings.Contains(string(raw), created.Token) {
			t.Errorf("a token is in the audit entry %s", raw)
		}
		if strings.HasPrefix(e.Action, "invitation.") && e.Actor == "cli" {
			count[e.Action]++
		}
	}
	if count["invitation.created"] != 2 || count["invitation.accepted"] != 1 || count["invitation.revoked"] != 1 {
		t.Errorf("audit entries by cli: %v", count)
	}
}
