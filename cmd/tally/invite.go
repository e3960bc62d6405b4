package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
)

// inviteUsage lists the invite subcommands.
const inviteUsage = `usage:
  tally invite create -tenant SLUG -email E [-role owner|admin|member] [-json]
  tally invite list -tenant SLUG [-json]
  tally invite revoke -tenant SLUG -id ID [-json]
  tally invite accept -token T -email E [-json]`

// runInvite runs "tally invite <sub>": the operator's side of invitations,
// through identity.Service as the API, audited by the actor "cli". The
// operator invites as an owner of the tenant; accept makes the user with
// -email a member when the invitation is theirs, as the user's own
// acceptance over the API would.
func runInvite(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &configError{msg: inviteUsage}
	}
	sub := args[0]
	var slug, email, role, token string
	var id int64
	var asJSON bool
	flags := map[string]func(fs *flag.FlagSet){
		"create": func(fs *flag.FlagSet) {
			fs.StringVar(&slug, "tenant", "", "tenant slug")
			fs.StringVar(&email, "email", "", "email of the invitee (registered or not)")
			fs.StringVar(&role, "role", "member", "role: owner, admin or member")
		},
		"list": func(fs *flag.FlagSet) { fs.StringVar(&slug, "tenant", "", "tenant slug") },
		"revoke": func(fs *flag.FlagSet) {
			fs.StringVar(&slug, "tenant", "", "tenant slug")
			fs.Int64Var(&id, "id", 0, "invitation id (see invite list)")
		},
		"accept": func(fs *flag.FlagSet) {
			fs.StringVar(&token, "token", "", "the invitation's token")
			fs.StringVar(&email, "email", "", "email of the user accepting (the invitee)")
		},
	}
	bind, ok := flags[sub]
	if !ok {
		return &configError{msg: inviteUsage}
	}
	db, _, err := openStore(ctx, "invite "+sub, args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		bind(fs)
		fs.BoolVar(&asJSON, "json", false, "print JSON (for scripts)")
	})
	if err != nil {
		return err
	}
	defer db.Close()
	accounts := identity.New(db, nil, nil)
	out := func(v any, text func(w io.Writer)) error {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		text(stdout)
		return nil
	}
	audit := func(tenantID int64, action, target string, meta map[string]any) error {
		return db.WriteAudit(ctx, &tally.AuditEntry{TenantID: tenantID, Actor: "cli", Action: action, Target: target, Meta: meta})
	}

	if sub == "accept" {
		if err := required("token", token, "email", email); err != nil {
			return err
		}
		u, err := accounts.UserByEmail(ctx, email)
		if err != nil {
			return err
		}
		inv, t, err := accounts.AcceptInvitation(ctx, u, token)
		if err != nil {
			return err
		}
		if err := audit(t.ID, "invitation.accepted", inv.Email, map[string]any{"invitation_id": inv.ID, "role": inv.Role,
			"invited_by": inv.InvitedBy, "via": "cli"}); err != nil {
			return err
		}
		m := tally.Membership{TenantID: t.ID, Slug: t.Slug, Name: t.Name, Role: inv.Role}
		return out(map[string]any{"tenant": m}, func(w io.Writer) {
			fmt.Fprintf(w, "%s joined %s as %s\n", u.Email, t.Slug, inv.Role)
		})
	}

	if err := required("tenant", slug); err != nil {
		return err
	}
	t, err := accounts.TenantBySlug(ctx, slug)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		if err := required("email", email); err != nil {
			return err
		}
		inv, tok, err := accounts.Invite(ctx, &tally.Principal{Tenant: t, Role: tally.RoleOwner}, tally.InviteInput{Email: email, Role: tally.Role(role)})
		if err != nil {
			return flagError(err)
		}
		if err := audit(t.ID, "invitation.created", inv.Email, map[string]any{"invitation_id": inv.ID, "role": inv.Role,
			"expires_at": inv.ExpiresAt}); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "invitation %d for %s to %s as %s, until %s; the token is shown only once\n",
			inv.ID, inv.Email, t.Slug, inv.Role, inv.ExpiresAt.Format(time.RFC3339))
		return out(map[string]any{"invitation": inv, "token": tok}, func(w io.Writer) { fmt.Fprintln(w, tok) })
	case "list":
		list, err := accounts.Invitations(ctx, t.ID)
		if err != nil {
			return err
		}
		if list == nil {
			list = []tally.Invitation{}
		}
		return out(map[string]any{"invitations": list}, func(w io.Writer) {
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tEMAIL\tROLE\tINVITED BY\tEXPIRES")
			for _, i := range list {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i.ID, i.Email, i.Role, i.InvitedBy, i.ExpiresAt.UTC().Format(time.RFC3339))
			}
			tw.Flush()
		})
	default: // revoke
		if id <= 0 {
			return &configError{msg: "-id must be an invitation id (see tally invite list)"}
		}
		if err := accounts.RevokeInvitation(ctx, t.ID, id); err != nil {
			return err
		}
		if err := audit(t.ID, "invitation.revoked", "invitation:"+strconv.FormatInt(id, 10), nil); err != nil {
			return err
		}
		return out(map[string]any{"revoked": id}, func(w io.Writer) { fmt.Fprintf(w, "invitation %d of %s revoked\n", id, t.Slug) })
	}
}
