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
		PostgresURL: c.postgresURL(), EventsURL: c.EventsURL, StatementTimeout: c.StatementTimeout})
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
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
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
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
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
