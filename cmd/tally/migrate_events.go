package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/tallyhq/tally/clickhouse"
)

// runMigrateEvents is `tally migrate-events -tenant SLUG`: with
// DATABASE_URL (PostgreSQL) and EVENTS_URL (ClickHouse) set, it copies the
// tenant's events from PostgreSQL's events table into ClickHouse with
// their ids and keys (clickhouse.Store.MigrateEvents). Run it again after
// an interruption: it resumes after what was copied.
func runMigrateEvents(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var slug string
	var batch int
	db, c, err := openStore(ctx, "migrate-events", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&slug, "tenant", "", "tenant slug")
		fs.IntVar(&batch, "batch", 10000, "events read from PostgreSQL at a time (1-100000)")
	})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	defer db.Close()
	if err := required("tenant", slug); err != nil {
		return err
	}
	ch, ok := db.(*clickhouse.Store)
	if !ok || c.EventsURL == "" {
		return &configError{msg: "migrate-events needs DATABASE_URL=postgres://… and EVENTS_URL=clickhouse://…"}
	}
	if batch < 1 || batch > 100_000 {
		return &configError{msg: "-batch must be 1-100000"}
	}
	t, err := ch.TenantBySlug(ctx, slug)
	if err != nil {
		return err
	}
	n, err := ch.MigrateEvents(ctx, t.ID, batch, func(copied int64) {
		fmt.Fprintf(stderr, "copied %d events of %s\n", copied, slug)
	})
	if err != nil {
		return fmt.Errorf("after %d events (run again to resume): %w", n, err)
	}
	fmt.Fprintf(stdout, "copied %d events of %s to %s\n", n, slug, redactURL(c.EventsURL))
	return nil
}
