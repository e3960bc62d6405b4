package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
)

// eventsUsage lists the events subcommands.
const eventsUsage = `usage:
  tally events tail [-url URL] [-key KEY] [-event E] [-user U] [-source S] [-after ID] [-json]`

// runEvents runs "tally events <sub>". tail follows a running tally's live
// stream through the Go SDK (client.Tail), with an API key holding
// analytics:read (-key or TALLY_API_KEY), until interrupted; it
// reconnects on its own, resuming after the last event printed.
func runEvents(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "tail" {
		return &configError{msg: eventsUsage}
	}
	fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := getenv("TALLY_URL")
	if base == "" {
		base = "http://127.0.0.1:8080"
	}
	url := fs.String("url", base, "base URL of a running tally (TALLY_URL)")
	key := fs.String("key", getenv("TALLY_API_KEY"), "API key with analytics:read (TALLY_API_KEY)")
	var q client.TailQuery
	fs.StringVar(&q.Event, "event", "", "event name or prefix ending in *")
	fs.StringVar(&q.UserID, "user", "", "only this user_id")
	fs.StringVar(&q.Source, "source", "", "only this source")
	fs.Int64Var(&q.After, "after", 0, "resume after this event id (0: from now on)")
	asJSON := fs.Bool("json", false, "print one JSON object per line (for scripts)")
	if err := fs.Parse(args[1:]); err != nil {
		return &configError{msg: err.Error()}
	}
	if *key == "" {
		return &configError{msg: "missing -key (or TALLY_API_KEY): an API key with analytics:read"}
	}
	c, err := client.New(*url, *key)
	if err != nil {
		return &configError{msg: err.Error()}
	}
	defer c.Close(context.WithoutCancel(ctx))
	enc := json.NewEncoder(stdout)
	return c.Tail(ctx, q, func(e tally.Event) error {
		if *asJSON {
			return enc.Encode(e)
		}
		_, err := fmt.Fprintf(stdout, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Timestamp.UTC().Format(time.RFC3339Nano),
			e.Name, e.UserID, e.Source, strconv.FormatFloat(e.Value, 'g', -1, 64), e.Props)
		return err
	}, func(end client.TailEnd) {
		fmt.Fprintf(stderr, "tally: stream ended (%s) after id %d; reconnecting\n", end.Reason, end.LastEventID)
	})
}
