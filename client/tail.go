package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// TailQuery selects what Tail follows: the events list's filters (zero
// values: every event) and where to start.
type TailQuery struct {
	Event  string // an event name or "prefix*"
	UserID string
	Source string
	From   time.Time // zero: open
	To     time.Time // zero: open
	// After resumes after this event id (as Last-Event-ID); zero starts
	// with the events committed from now on.
	After int64
}

// TailEnd is why the server ended a stream (its "end" frame): Reason is
// slow_consumer, shutting_down or store_unavailable, LastEventID the last
// id it sent. Tail reconnects after one on its own; TailEnd is passed to
// the OnEnd hook of TailOptions.
type TailEnd struct {
	Reason      string `json:"reason"`
	LastEventID int64  `json:"last_event_id"`
}

// Tail follows the tenant's events as they are committed (GET
// /api/analytics/events/stream; the key needs analytics:read) and calls fn
// for each, in id order, until ctx ends (then it returns nil) or fn
// returns an error (returned). When the stream ends or breaks, it
// reconnects with Last-Event-ID after a backoff, so no event is lost or
// repeated; onEnd, when not nil, hears each end the server announced. An
// answer that retrying cannot fix (400, 401, 403) is returned as an
// *APIError.
func (c *Client) Tail(ctx context.Context, q TailQuery, fn func(tally.Event) error, onEnd func(TailEnd)) error {
	hc := *c.cfg.httpClient
	hc.Timeout = 0 // a stream has no end; ctx bounds it
	last, resume := q.After, q.After > 0
	for attempt := 0; ; {
		got, err := c.tailOnce(ctx, &hc, q, &last, resume, fn, onEnd)
		if ctx.Err() != nil {
			return nil
		}
		var cbErr *callbackError
		if errors.As(err, &cbErr) {
			return cbErr.err
		}
		var apiErr *APIError
		if errors.As(err, &apiErr) && !retryable(retryTransient, apiErr.Status) {
			return err
		}
		if got || last > 0 {
			resume = true
		}
		if got {
			attempt = 0
		}
		wait := c.backoff(attempt)
		attempt++
		if err != nil {
			c.cfg.logger.Debug("tally: tail reconnecting", "after", last, "wait", wait, "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil
		}
	}
}

// callbackError is fn's error, told apart from the stream's.
type callbackError struct{ err error }

func (e *callbackError) Error() string { return e.err.Error() }

// tailOnce reads one stream until it ends; got reports whether any event
// or end frame arrived (the connection worked), and *last is the id to
// resume after.
func (c *Client) tailOnce(ctx context.Context, hc *http.Client, q TailQuery, last *int64, resume bool,
	fn func(tally.Event) error, onEnd func(TailEnd)) (got bool, err error) {
	v := url.Values{}
	for k, s := range map[string]string{"event": q.Event, "user_id": q.UserID, "source": q.Source} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.From.IsZero() {
		v.Set("from", q.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.To.IsZero() {
		v.Set("to", q.To.UTC().Format(time.RFC3339Nano))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/api/analytics/events/stream?"+v.Encode(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "text/event-stream, application/problem+json")
	req.Header.Set("User-Agent", userAgent)
	if resume {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(*last, 10))
	}
	res, err := hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("tally: tail: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
		return false, apiError(res.StatusCode, res.Header, b)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), maxAnswerBytes)
	var name, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = line[len("event: "):]
		case strings.HasPrefix(line, "data: "):
			data = line[len("data: "):]
		case line == "" && data != "":
			if name == "end" {
				var end TailEnd
				if json.Unmarshal([]byte(data), &end) == nil {
					if end.LastEventID > *last {
						*last = end.LastEventID
					}
					if onEnd != nil {
						onEnd(end)
					}
				}
				return true, nil
			}
			var e tally.Event
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				return got, fmt.Errorf("tally: tail: bad event: %w", err)
			}
			got = true
			*last = e.ID
			if err := fn(e); err != nil {
				return got, &callbackError{err}
			}
			name, data = "", ""
		case line == "":
			name = ""
		}
	}
	if err := sc.Err(); err != nil {
		return got, fmt.Errorf("tally: tail: %w", err)
	}
	return got, nil
}
