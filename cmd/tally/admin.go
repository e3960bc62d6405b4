package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/rollup"
)

// openStore parses flags and opens the database for an operator command.
func openStore(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer,
	extra func(*flag.FlagSet)) (tally.Store, config, error) {
	c, _, err := parseConfig(name, args, getenv, stderr, func(fs *flag.FlagSet, _ *config) {
		if extra != nil {
			extra(fs)
		}
	})
	if err != nil {
		return nil, c, err
	}
	db, err := app.OpenStore(ctx, app.StoreConfig{SQLitePath: c.sqlitePath(), SQLiteSync: c.SQLiteSync,
		PostgresURL: c.postgresURL(), StatementTimeout: c.StatementTimeout})
	return db, c, err
}

func required(pairs ...string) error {
	var missing []string
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			missing = append(missing, "-"+pairs[i])
		}
	}
	if len(missing) > 0 {
		return &configError{msg: "missing " + strings.Join(missing, ", ")}
	}
	return nil
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	db, c, err := openStore(ctx, "migrate", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	where := c.sqlitePath()
	if c.postgresURL() != "" {
		where = redactURL(c.postgresURL())
	}
	fmt.Fprintf(stdout, "database %s is up to date\n", where)
	return nil
}

func runRollup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var from, to, slug string
	db, c, err := openStore(ctx, "rollup", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", "", "first UTC day to roll up, YYYY-MM-DD (default yesterday)")
		fs.StringVar(&to, "to", "", "last UTC day, YYYY-MM-DD (default today)")
		fs.StringVar(&slug, "tenant", "", "only this tenant (default every tenant)")
	})
	if err != nil {
		return err
	}
	defer db.Close()
	today := tally.DayStart(time.Now())
	f, t := today.AddDate(0, 0, -1), today
	if from != "" {
		if f, err = time.Parse(time.DateOnly, from); err != nil {
			return &configError{msg: "-from must be a date YYYY-MM-DD"}
		}
	}
	if to != "" {
		if t, err = time.Parse(time.DateOnly, to); err != nil {
			return &configError{msg: "-to must be a date YYYY-MM-DD"}
		}
	}
	if f.After(t) {
		return &configError{msg: "-from is after -to"}
	}
	var tenantID int64
	if slug != "" {
		tn, err := db.TenantBySlug(ctx, slug)
		if err != nil {
			return err
		}
		tenantID = tn.ID
	}
	r := rollup.New(rollup.Config{Rules: c.UsageRules}, db, prometheus.NewRegistry())
	res, err := r.RunDays(ctx, tenantID, f, t, rollup.KindManual, "cli")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rolled up %d tenant-days, %d rows in %d ms\n", res.Days, res.Rows, res.DurationMS)
	return nil
}

func runUser(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "create" && args[0] != "passwd") {
		return &configError{msg: "usage: tally user create -email E -password P [-name N] | tally user passwd -email E -password P"}
	}
	var email, password, name string
	db, _, err := openStore(ctx, "user "+args[0], args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "email address")
		fs.StringVar(&password, "password", "", "password (at least 8 characters)")
		fs.StringVar(&name, "name", "", "display name")
	})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := required("email", email, "password", password); err != nil {
		return err
	}
	accounts := identity.New(db, nil, nil)
	if args[0] == "passwd" {
		u, err := accounts.ChangePassword(ctx, tally.ChangePasswordInput{Email: email, Password: password})
		if err != nil {
			return flagError(err)
		}
		fmt.Fprintf(stdout, "password of %s changed\n", u.Email)
		return nil
	}
	u, _, err := accounts.Register(ctx, tally.RegisterInput{Email: email, Password: password, Name: name})
	if err != nil {
		return flagError(err)
	}
	fmt.Fprintf(stdout, "user %d %s created\n", u.ID, u.Email)
	return nil
}

// flagError turns an EInvalid error of the account rules into a
// configError (exit code 2) that names the command-line flags at fault;
// other errors are returned as they are.
func flagError(err error) error {
	var e *tally.Error
	if !errors.As(err, &e) || e.Code != tally.EInvalid || len(e.Fields) == 0 {
		return err
	}
	flags := map[string]string{"expires_at": "expires"}
	var parts []string
	for _, f := range e.Fields {
		name := f.Field
		if n, ok := flags[name]; ok {
			name = n
		}
		parts = append(parts, "-"+name+" "+f.Message)
	}
	return &configError{msg: strings.Join(parts, "; ")}
}

func runTenant(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return &configError{msg: "usage: tally tenant create -slug S -name N -owner EMAIL"}
	}
	var slug, name, owner string
	db, _, err := openStore(ctx, "tenant create", args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&slug, "slug", "", "tenant slug, ^[a-z0-9][a-z0-9-]{1,62}$")
		fs.StringVar(&name, "name", "", "tenant name")
		fs.StringVar(&owner, "owner", "", "email of the owner (an existing user)")
	})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := required("slug", slug, "name", name, "owner", owner); err != nil {
		return err
	}
	accounts := identity.New(db, nil, nil)
	in := tally.CreateTenantInput{Slug: slug, Name: name}
	if err := in.Validate(); err != nil {
		return flagError(err)
	}
	u, err := accounts.UserByEmail(ctx, owner)
	if err != nil {
		return err
	}
	t, err := accounts.CreateTenant(ctx, in, u.ID)
	if err != nil {
		return err
	}
	if err := db.WriteAudit(ctx, &tally.AuditEntry{TenantID: t.ID, Actor: "cli", Action: "tenant.created", Target: slug}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tenant %s created, owned by %s\n", t.Slug, u.Email)
	return nil
}

func runKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return &configError{msg: "usage: tally key create -tenant SLUG -name N [-scopes analytics:read,analytics:write] [-expires 720h]"}
	}
	var slug, name, scopes string
	var expires time.Duration
	db, _, err := openStore(ctx, "key create", args[1:], getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&slug, "tenant", "", "tenant slug")
		fs.StringVar(&name, "name", "", "key name")
		fs.StringVar(&scopes, "scopes", "analytics:write", "comma-separated scopes: analytics:read, analytics:write, analytics:export, analytics:admin")
		fs.DurationVar(&expires, "expires", 0, "lifetime (0: never expires)")
	})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := required("tenant", slug, "name", name); err != nil {
		return err
	}
	var sc []tally.Scope
	for _, s := range strings.Split(scopes, ",") {
		sc = append(sc, tally.Scope(strings.TrimSpace(s)))
	}
	var exp *time.Time
	if expires > 0 {
		e := time.Now().Add(expires)
		exp = &e
	}
	in := tally.CreateKeyInput{Name: name, Scopes: sc, ExpiresAt: exp}
	if err := in.Validate(time.Now()); err != nil {
		return flagError(err)
	}
	t, err := db.TenantBySlug(ctx, slug)
	if err != nil {
		return err
	}
	k, key, err := identity.New(db, nil, nil).CreateKey(ctx, t.ID, in)
	if err != nil {
		return err
	}
	if err := db.WriteAudit(ctx, &tally.AuditEntry{TenantID: t.ID, Actor: "cli", Action: "key.created", Target: k.Prefix}); err != nil {
		return err
	}
	fmt.Fprintln(stdout, key)
	fmt.Fprintf(stderr, "key %s (%s) created in %s; it is shown only once\n", k.Prefix, k.Name, slug)
	return nil
}
