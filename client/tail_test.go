package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
)

// TestTail: events tracked after Tail started reach its callback in
// order, a filter applies, a second Tail resumes after the last id seen,
// the callback's error ends Tail, and a bad key is an *APIError.
func TestTail(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	c, err := client.New(ts.url, ts.key, client.WithHTTPClient(ts.hc), client.WithFlushInterval(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second) // a guard against a hang
	defer cancel()

	got := make(chan tally.Event, 16)
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		errc <- c.Tail(ctx, client.TailQuery{Event: "deploy.*"}, func(e tally.Event) error {
			got <- e
			if e.EventID == "d-1" {
				return errStop
			}
			return nil
		}, nil)
	}()
	// Tail subscribes once its request is answered; until then, events
	// before it are not delivered. Send a marker until one arrives.
	go func() {
		defer close(started)
		for i := 0; ctx.Err() == nil; i++ {
			if err := c.Track(client.Event{Name: "deploy.marker", EventID: "m-" + time.Now().Format(time.RFC3339Nano)}); err != nil {
				return
			}
			c.Flush(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			if len(got) > 0 {
				return
			}
		}
	}()
	first := <-got
	<-started
	if first.Name != "deploy.marker" {
		t.Fatalf("first event %+v", first)
	}
	for _, id := range []string{"skip-1", "d-0", "d-1"} {
		name := "deploy.finished"
		if id == "skip-1" {
			name = "page.viewed"
		}
		if err := c.Track(client.Event{Name: name, EventID: id}); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var seen []tally.Event
	for e := range got {
		if e.Name == "deploy.marker" {
			continue
		}
		seen = append(seen, e)
		if e.EventID == "d-1" {
			break
		}
	}
	if len(seen) != 2 || seen[0].EventID != "d-0" || seen[1].EventID != "d-1" || seen[0].ID == seen[1].ID {
		t.Fatalf("Tail delivered %+v, want d-0 then d-1", seen)
	}
	if err := <-errc; !errors.Is(err, errStop) {
		t.Fatalf("Tail returned %v, want the callback's error", err)
	}

	// Resume after d-0: d-1 again, then d-2 sent meanwhile.
	c.Track(client.Event{Name: "deploy.finished", EventID: "d-2"})
	c.Flush(ctx)
	var resumed []string
	err = c.Tail(ctx, client.TailQuery{Event: "deploy.finished", After: seen[0].ID}, func(e tally.Event) error {
		resumed = append(resumed, e.EventID)
		if len(resumed) == 2 {
			return errStop
		}
		return nil
	}, nil)
	if !errors.Is(err, errStop) || len(resumed) != 2 || resumed[0] != "d-1" || resumed[1] != "d-2" {
		t.Fatalf("resumed Tail: %v %v, want d-1, d-2", resumed, err)
	}

	bad, err := client.New(ts.url, "tk_not_a_key", client.WithHTTPClient(ts.hc))
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close(context.Background())
	var apiErr *client.APIError
	if err := bad.Tail(ctx, client.TailQuery{}, func(tally.Event) error { return nil }, nil); !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Fatalf("Tail with a bad key: %v", err)
	}
}

var errStop = errors.New("stop")
