package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
	"github.com/tallyhq/tally/usage"
)

// The operator's admin surface: tenant, user, member, key, quota and audit
// commands. Each works through the same services and domain rules as the
// API (identity.Service, the domain's Validate methods, the store's
// tenant-scoped methods), writes the audit entry the API would write (by
// the actor "cli"), and prints a readable table, or JSON with -json.

// adminCmd is one subcommand: its flags (bound to the admin's fields) and
// what it does with the open store.
type adminCmd struct {
	tenant bool   // acts in one tenant, named by -tenant (then in admin.t)
	usage  string // the other flags, for the group's usage line
	flags  func(fs *flag.FlagSet, a *admin)
	run    func(ctx context.Context, a *admin) error
}

// admin is what a subcommand works with: the store and services, the
// configuration, its flags' values and where to print.
type admin struct {
	db       tally.Store
	c        config
	accounts *identity.Service
	out      io.Writer
	errOut   io.Writer
	fs       *flag.FlagSet
	t        *tally.Tenant   // the tenant of -tenant, for commands in one
	set      map[string]bool // flags given on the command line

	json                             bool
	tenant, slug, name, email, owner string
	password, role, metric, userID   string
	action, actor, scopes, timezone  string
	allowSignup                      bool
	id, limit                        int64
	retention, max, anchorDay        int
	period, thresholds               string
	enforced                         bool
	expires                          time.Duration
}

// runGroup runs "tally <group> <sub> [flags]" from the table cmds.
func runGroup(ctx context.Context, group string, cmds map[string]adminCmd, args []string, getenv func(string) string,
	stdout, stderr io.Writer) error {
	names := slices.Sorted(maps.Keys(cmds))
	var usage []string
	for _, n := range names {
		u := cmds[n].usage
		if cmds[n].tenant {
			u = "-tenant SLUG " + u
		}
		usage = append(usage, "tally "+group+" "+n+" "+u)
	}
	if len(args) == 0 || cmds[args[0]].run == nil {
		return &configError{msg: "usage:\n  " + strings.Join(usage, "\n  ")}
	}
	cmd := cmds[args[0]]
	a := &admin{out: stdout, errOut: stderr, set: map[string]bool{}}
	db, c, err := openStore(ctx, group+" "+args[0], args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&a.json, "json", false, "print JSON (for scripts) instead of a table")
		if cmd.tenant {
			fs.StringVar(&a.tenant, "tenant", "", "tenant slug")
		}
		if cmd.flags != nil {
			cmd.flags(fs, a)
		}
		a.fs = fs // openStore parses after this; Visit below sees the flags given
	})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer db.Close()
	a.fs.Visit(func(f *flag.Flag) { a.set[f.Name] = true })
	a.db, a.c, a.accounts = db, c, identity.New(db, nil, nil)
	if cmd.tenant {
		if err := required("tenant", a.tenant); err != nil {
			return err
		}
		if a.t, err = a.accounts.TenantBySlug(ctx, a.tenant); err != nil {
			return err
		}
	}
	return cmd.run(ctx, a)
}

// operator is the principal of the command line in t: an owner, since the
// operator may do anything in any tenant.
func operator(t *tally.Tenant) *tally.Principal {
	return &tally.Principal{Tenant: t, Role: tally.RoleOwner}
}

// audit records an admin action of the command line, as the API records
// its own.
func (a *admin) audit(ctx context.Context, tenantID int64, action, target string, meta map[string]any) error {
	return a.db.WriteAudit(ctx, &tally.AuditEntry{TenantID: tenantID, Actor: "cli", Action: action, Target: target, Meta: meta})
}

// print writes v as indented JSON with -json, else the table of header
// and rows.
func (a *admin) print(v any, header []string, rows [][]string) error {
	if a.json {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// say prints a one-line confirmation, or v as JSON with -json.
func (a *admin) say(v any, format string, args ...any) error {
	if a.json {
		return a.print(v, nil, nil)
	}
	_, err := fmt.Fprintf(a.out, format+"\n", args...)
	return err
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optStamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}

var userCmds = map[string]adminCmd{
	"create": {
		usage: "-email E -password P [-name N] [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.StringVar(&a.email, "email", "", "email address")
			fs.StringVar(&a.password, "password", "", "password (at least 8 characters)")
			fs.StringVar(&a.name, "name", "", "display name")
		},
		run: func(ctx context.Context, a *admin) error {
			if err := required("email", a.email, "password", a.password); err != nil {
				return err
			}
			u, _, err := a.accounts.Register(ctx, tally.RegisterInput{Email: a.email, Password: a.password, Name: a.name})
			if err != nil {
				return flagError(err)
			}
			return a.say(u, "user %d %s created", u.ID, u.Email)
		},
	},
	"passwd": {
		usage: "-email E -password P",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.StringVar(&a.email, "email", "", "email address")
			fs.StringVar(&a.password, "password", "", "new password (at least 8 characters)")
		},
		run: func(ctx context.Context, a *admin) error {
			if err := required("email", a.email, "password", a.password); err != nil {
				return err
			}
			u, err := a.accounts.ChangePassword(ctx, tally.ChangePasswordInput{Email: a.email, Password: a.password})
			if err != nil {
				return flagError(err)
			}
			return a.say(u, "password of %s changed", u.Email)
		},
	},
	"list": {
		usage: "[-json]",
		run: func(ctx context.Context, a *admin) error {
			us, err := a.db.ListUsers(ctx)
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(us))
			for _, u := range us {
				rows = append(rows, []string{strconv.FormatInt(u.ID, 10), u.Email, u.Name, stamp(u.CreatedAt)})
			}
			return a.print(orEmpty(us), []string{"ID", "EMAIL", "NAME", "CREATED"}, rows)
		},
	},
	"delete-events": {
		tenant: true,
		usage:  "-user USER_ID [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.StringVar(&a.userID, "user", "", "the end user's id, as the events carry it (a privacy deletion)")
		},
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			if err := required("user", a.userID); err != nil {
				return err
			}
			if msg := tally.CheckUserID(a.userID); msg != "" {
				return &configError{msg: "-user " + msg}
			}
			n, err := a.db.DeleteUserEvents(ctx, t.ID, a.userID)
			if err != nil {
				return err
			}
			if err := a.audit(ctx, t.ID, "events.user_deleted", a.userID, map[string]any{"deleted": n}); err != nil {
				return err
			}
			return a.say(map[string]int64{"deleted": n}, "deleted %d events of %s in %s", n, a.userID, t.Slug)
		},
	},
}

// tenantView is a tenant as the CLI shows it: the webhook secret never.
type tenantView struct {
	*tally.Tenant
	Members []tally.Member `json:"members,omitempty"`
}

func tenantRow(t *tally.Tenant) []string {
	return []string{t.Slug, t.Name, t.Timezone, strconv.Itoa(t.RetentionDays), strconv.FormatBool(t.AllowSignup), stamp(t.CreatedAt)}
}

var tenantHeader = []string{"SLUG", "NAME", "TIMEZONE", "RETENTION_DAYS", "ALLOW_SIGNUP", "CREATED"}

var tenantCmds = map[string]adminCmd{
	"create": {
		usage: "-slug S -name N -owner EMAIL [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.StringVar(&a.slug, "slug", "", "tenant slug, ^[a-z0-9][a-z0-9-]{1,62}$")
			fs.StringVar(&a.name, "name", "", "tenant name")
			fs.StringVar(&a.owner, "owner", "", "email of the owner (an existing user)")
		},
		run: func(ctx context.Context, a *admin) error {
			if err := required("slug", a.slug, "name", a.name, "owner", a.owner); err != nil {
				return err
			}
			in := tally.CreateTenantInput{Slug: a.slug, Name: a.name}
			if err := in.Validate(); err != nil {
				return flagError(err)
			}
			u, err := a.accounts.UserByEmail(ctx, a.owner)
			if err != nil {
				return err
			}
			t, err := a.accounts.CreateTenant(ctx, in, u.ID)
			if err != nil {
				return err
			}
			if err := a.audit(ctx, t.ID, "tenant.created", t.Slug, map[string]any{"name": t.Name, "owner": u.Email}); err != nil {
				return err
			}
			return a.say(tenantView{Tenant: t}, "tenant %s created, owned by %s", t.Slug, u.Email)
		},
	},
	"list": {
		usage: "[-json]",
		run: func(ctx context.Context, a *admin) error {
			ts, err := a.db.AllTenants(ctx)
			if err != nil {
				return err
			}
			sort.Slice(ts, func(i, j int) bool { return ts[i].Slug < ts[j].Slug })
			rows := make([][]string, 0, len(ts))
			for i := range ts {
				rows = append(rows, tenantRow(&ts[i]))
			}
			return a.print(orEmpty(ts), tenantHeader, rows)
		},
	},
	"show": {
		tenant: true,
		usage:  "[-json]",
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			ms, err := a.accounts.ListMembers(ctx, t.ID)
			if err != nil {
				return err
			}
			if a.json {
				return a.print(tenantView{Tenant: t, Members: orEmpty(ms)}, nil, nil)
			}
			if err := a.print(nil, tenantHeader, [][]string{tenantRow(t)}); err != nil {
				return err
			}
			if t.WebhookURL != "" {
				fmt.Fprintf(a.out, "\nwebhook: %s\n", t.WebhookURL)
			}
			fmt.Fprintln(a.out)
			return a.print(nil, memberHeader, memberRows(ms))
		},
	},
	"update": {
		tenant: true,
		usage:  "[-name N] [-timezone TZ] [-retention-days N] [-allow-signup=true|false] [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.StringVar(&a.name, "name", "", "new name")
			fs.StringVar(&a.timezone, "timezone", "", "IANA time zone of the tenant's day buckets, e.g. Europe/Berlin")
			fs.IntVar(&a.retention, "retention-days", 0, "days raw events are kept (aggregates outlive them)")
			fs.BoolVar(&a.allowSignup, "allow-signup", false, "whether anyone may sign up into the tenant")
		},
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			var upd tally.TenantUpdate
			if a.set["name"] {
				upd.Name = &a.name
			}
			if a.set["timezone"] {
				upd.Timezone = &a.timezone
			}
			if a.set["retention-days"] {
				upd.RetentionDays = &a.retention
			}
			if a.set["allow-signup"] {
				upd.AllowSignup = &a.allowSignup
			}
			next := *t
			if err := upd.Apply(&next); err != nil {
				return flagError(err)
			}
			changes := next.Changes(t)
			if len(changes) == 0 {
				return a.say(tenantView{Tenant: t}, "tenant %s unchanged", t.Slug)
			}
			if err := a.db.UpdateTenant(ctx, &next); err != nil {
				return err
			}
			if err := a.audit(ctx, t.ID, "tenant.updated", t.Slug, map[string]any{"changes": changes}); err != nil {
				return err
			}
			return a.say(tenantView{Tenant: &next}, "tenant %s updated: %s", t.Slug, strings.Join(slices.Sorted(maps.Keys(changes)), ", "))
		},
	},
}

var memberHeader = []string{"USER_ID", "EMAIL", "NAME", "ROLE", "ADDED"}

func memberRows(ms []tally.Member) [][]string {
	rows := make([][]string, 0, len(ms))
	for _, m := range ms {
		rows = append(rows, []string{strconv.FormatInt(m.UserID, 10), m.Email, m.Name, string(m.Role), stamp(m.AddedAt)})
	}
	return rows
}

// memberOf resolves -tenant and -email to the tenant and the user.
func (a *admin) memberOf(ctx context.Context) (*tally.Tenant, *tally.User, error) {
	if err := required("email", a.email); err != nil {
		return nil, nil, err
	}
	u, err := a.accounts.UserByEmail(ctx, a.email)
	return a.t, u, err
}

func memberFlags(fs *flag.FlagSet, a *admin) {
	fs.StringVar(&a.email, "email", "", "the member's email")
}

var memberCmds = map[string]adminCmd{
	"list": {
		tenant: true,
		usage:  "[-json]",
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			ms, err := a.accounts.ListMembers(ctx, t.ID)
			if err != nil {
				return err
			}
			return a.print(orEmpty(ms), memberHeader, memberRows(ms))
		},
	},
	"add": {
		tenant: true,
		usage:  "-email E [-role owner|admin|member] [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			memberFlags(fs, a)
			fs.StringVar(&a.role, "role", "member", "role: owner, admin or member")
		},
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			if err := required("email", a.email); err != nil {
				return err
			}
			m, err := a.accounts.AddMember(ctx, operator(t), tally.AddMemberInput{Email: a.email, Role: tally.Role(a.role)})
			if err != nil {
				return flagError(err)
			}
			if err := a.audit(ctx, t.ID, "member.added", m.Email, map[string]any{"role": m.Role, "via": "cli"}); err != nil {
				return err
			}
			return a.say(m, "%s added to %s as %s", m.Email, t.Slug, m.Role)
		},
	},
	"remove": {
		tenant: true,
		usage:  "-email E [-json]",
		flags:  memberFlags,
		run: func(ctx context.Context, a *admin) error {
			t, u, err := a.memberOf(ctx)
			if err != nil {
				return err
			}
			role, err := a.accounts.RemoveMember(ctx, operator(t), u.ID)
			if err != nil {
				return err
			}
			if err := a.audit(ctx, t.ID, "member.removed", "user:"+strconv.FormatInt(u.ID, 10), map[string]any{"role": role, "email": u.Email}); err != nil {
				return err
			}
			return a.say(map[string]any{"user_id": u.ID, "email": u.Email, "role": role}, "%s (%s) removed from %s", u.Email, role, t.Slug)
		},
	},
	"role": {
		tenant: true,
		usage:  "-email E -role owner|admin|member [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			memberFlags(fs, a)
			fs.StringVar(&a.role, "role", "", "new role: owner, admin or member")
		},
		run: func(ctx context.Context, a *admin) error {
			t, u, err := a.memberOf(ctx)
			if err != nil {
				return err
			}
			if err := required("role", a.role); err != nil {
				return err
			}
			old, err := a.accounts.ChangeRole(ctx, operator(t), u.ID, tally.Role(a.role))
			if err != nil {
				return flagError(err)
			}
			if err := a.audit(ctx, t.ID, "member.role_changed", "user:"+strconv.FormatInt(u.ID, 10),
				map[string]any{"email": u.Email, "from": old, "to": a.role}); err != nil {
				return err
			}
			return a.say(map[string]any{"user_id": u.ID, "email": u.Email, "role": a.role, "previous_role": old},
				"%s is now %s in %s (was %s)", u.Email, a.role, t.Slug, old)
		},
	},
}

// keyStatus is a key's state at now.
func keyStatus(k *tally.APIKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case !k.Active(now):
		return "expired"
	}
	return "active"
}

var keyCmds = map[string]adminCmd{
	"create": {
		tenant: true,
		usage:  "-name N [-scopes analytics:read,analytics:write] [-expires 720h] [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.StringVar(&a.name, "name", "", "key name")
			fs.StringVar(&a.scopes, "scopes", "analytics:write", "comma-separated scopes: analytics:read, analytics:write, analytics:export, analytics:admin")
			fs.DurationVar(&a.expires, "expires", 0, "lifetime (0: never expires)")
		},
		run: func(ctx context.Context, a *admin) error {
			if err := required("tenant", a.tenant, "name", a.name); err != nil {
				return err
			}
			var sc []tally.Scope
			for _, s := range strings.Split(a.scopes, ",") {
				sc = append(sc, tally.Scope(strings.TrimSpace(s)))
			}
			var exp *time.Time
			if a.expires > 0 {
				e := time.Now().Add(a.expires)
				exp = &e
			}
			in := tally.CreateKeyInput{Name: a.name, Scopes: sc, ExpiresAt: exp}
			if err := in.Validate(time.Now()); err != nil {
				return flagError(err)
			}
			t := a.t
			k, key, err := a.accounts.CreateKey(ctx, t.ID, in)
			if err != nil {
				return err
			}
			if err := a.audit(ctx, t.ID, "key.created", k.Prefix, map[string]any{"name": k.Name, "scopes": k.Scopes}); err != nil {
				return err
			}
			if a.json {
				return a.print(struct {
					*tally.APIKey
					Key string `json:"key"`
				}{k, key}, nil, nil)
			}
			fmt.Fprintln(a.out, key)
			fmt.Fprintf(a.errOut, "key %d %s (%s) created in %s; it is shown only once\n", k.ID, k.Prefix, k.Name, t.Slug)
			return nil
		},
	},
	"list": {
		tenant: true,
		usage:  "[-json]",
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			ks, err := a.accounts.ListKeys(ctx, t.ID)
			if err != nil {
				return err
			}
			now := time.Now()
			rows := make([][]string, 0, len(ks))
			for i := range ks {
				k := &ks[i]
				scopes := make([]string, len(k.Scopes))
				for j, s := range k.Scopes {
					scopes[j] = string(s)
				}
				rows = append(rows, []string{strconv.FormatInt(k.ID, 10), k.Prefix, k.Name, strings.Join(scopes, ","),
					keyStatus(k, now), stamp(k.CreatedAt), optStamp(k.ExpiresAt), optStamp(k.LastUsedAt)})
			}
			return a.print(orEmpty(ks), []string{"ID", "PREFIX", "NAME", "SCOPES", "STATUS", "CREATED", "EXPIRES", "LAST_USED"}, rows)
		},
	},
	"revoke": {
		tenant: true,
		usage:  "-id N [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.Int64Var(&a.id, "id", 0, "the key's id (tally key list)")
		},
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			if a.id < 1 {
				return &configError{msg: "missing -id"}
			}
			if err := a.accounts.RevokeKey(ctx, t.ID, a.id); err != nil {
				return err
			}
			target := "key:" + strconv.FormatInt(a.id, 10)
			if err := a.audit(ctx, t.ID, "key.revoked", target, nil); err != nil {
				return err
			}
			return a.say(map[string]any{"id": a.id, "revoked": true}, "key %d revoked in %s", a.id, t.Slug)
		},
	},
}

// quotaView is a quota as the CLI lists it: a tenant's override, or the
// configured default (QUOTA_DEFAULTS, soft) where it has none.
type quotaView struct {
	tally.Quota
	Source string `json:"source"` // "override" or "default"
}

func metricFlags(fs *flag.FlagSet, a *admin) {
	fs.StringVar(&a.metric, "metric", "", "usage metric, ^[a-z0-9_]{1,64}$")
}

var quotaCmds = map[string]adminCmd{
	"list": {
		tenant: true,
		usage:  "[-json]",
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			qs, err := a.db.Quotas(ctx, t.ID)
			if err != nil {
				return err
			}
			byMetric := map[string]quotaView{}
			for m, n := range a.c.QuotaDefaults {
				byMetric[m] = quotaView{Quota: tally.Quota{Metric: m, Limit: n, Period: tally.PeriodDay}, Source: "default"}
			}
			for _, q := range qs {
				byMetric[q.Metric] = quotaView{Quota: q, Source: "override"}
			}
			out := make([]quotaView, 0, len(byMetric))
			rows := make([][]string, 0, len(byMetric))
			for _, m := range slices.Sorted(maps.Keys(byMetric)) {
				q := byMetric[m]
				out = append(out, q)
				rows = append(rows, []string{q.Metric, strconv.FormatInt(q.Limit, 10), strconv.FormatBool(q.Enforced), q.Source})
			}
			return a.print(out, []string{"METRIC", "LIMIT", "ENFORCED", "SOURCE"}, rows)
		},
	},
	"set": {
		tenant: true,
		usage:  "-metric M -limit N [-enforced] [-period day|week|month|billing] [-anchor-day D] [-thresholds 50,80,100] [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			metricFlags(fs, a)
			fs.Int64Var(&a.limit, "limit", -1, "limit per period, 0 or more")
			fs.BoolVar(&a.enforced, "enforced", false, "refuse usage past the limit (default: report only)")
			fs.StringVar(&a.period, "period", "day", "day, week or month in the tenant's time zone, or billing (with -anchor-day)")
			fs.IntVar(&a.anchorDay, "anchor-day", 0, "the day of the month a billing period starts, 1-31")
			fs.StringVar(&a.thresholds, "thresholds", "", "alert thresholds, ascending percentages of the allowance (default 80,100)")
		},
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			if !a.set["limit"] {
				return &configError{msg: "missing -limit"}
			}
			q := tally.Quota{Metric: a.metric, Limit: a.limit, Enforced: a.enforced, Period: a.period, AnchorDay: a.anchorDay}
			th, err := tally.ParseThresholds(a.thresholds)
			if err != nil {
				return &configError{msg: "-thresholds: want comma-separated percentages, e.g. 50,80,100"}
			}
			q.Thresholds = th
			if err := q.Validate(); err != nil {
				return flagError(err)
			}
			if _, err := usage.QuotaMeter(ctx, a.db, t.ID, q.Metric); err != nil {
				return flagError(err)
			}
			if err := a.db.SetQuota(ctx, t.ID, q); err != nil {
				return err
			}
			meta := map[string]any{"limit": q.Limit, "enforced": q.Enforced, "period": q.PeriodOf()}
			if q.AnchorDay != 0 {
				meta["anchor_day"] = q.AnchorDay
			}
			if len(q.Thresholds) > 0 {
				meta["thresholds"] = q.Thresholds
			}
			if err := a.audit(ctx, t.ID, "quota.set", q.Metric, meta); err != nil {
				return err
			}
			return a.say(q, "quota %s of %s set to %d a %s (enforced: %t)", q.Metric, t.Slug, q.Limit, q.PeriodOf(), q.Enforced)
		},
	},
	"delete": {
		tenant: true,
		usage:  "-metric M [-json]",
		flags:  metricFlags,
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			if err := required("metric", a.metric); err != nil {
				return err
			}
			if err := a.db.DeleteQuota(ctx, t.ID, a.metric); err != nil {
				return err
			}
			if err := a.audit(ctx, t.ID, "quota.deleted", a.metric, nil); err != nil {
				return err
			}
			return a.say(map[string]any{"metric": a.metric, "deleted": true}, "quota %s of %s deleted", a.metric, t.Slug)
		},
	},
}

var auditCmds = map[string]adminCmd{
	"list": {
		tenant: true,
		usage:  "[-action A] [-actor A] [-limit N] [-json]",
		flags: func(fs *flag.FlagSet, a *admin) {
			fs.StringVar(&a.action, "action", "", "only entries of this action, e.g. key.created")
			fs.StringVar(&a.actor, "actor", "", "only entries by this actor, e.g. cli or user:ada@example.com")
			fs.IntVar(&a.max, "limit", 50, "at most this many entries, newest first (1-1000)")
		},
		run: func(ctx context.Context, a *admin) error {
			t := a.t
			if a.max < 1 || a.max > 1000 {
				return &configError{msg: "-limit must be 1-1000"}
			}
			es, _, err := a.db.ListAudit(ctx, t.ID, tally.AuditFilter{Action: a.action, Actor: a.actor, Limit: a.max})
			if err != nil {
				return err
			}
			rows := make([][]string, 0, len(es))
			for _, e := range es {
				meta := ""
				if len(e.Meta) > 0 {
					b, _ := json.Marshal(e.Meta)
					meta = string(b)
				}
				rows = append(rows, []string{stamp(e.At), e.Actor, e.Action, e.Target, meta})
			}
			return a.print(orEmpty(es), []string{"AT", "ACTOR", "ACTION", "TARGET", "META"}, rows)
		},
	},
}

// orEmpty makes a nil list print as [] in JSON.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
