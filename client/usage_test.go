package client_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
)

func TestIncrementUsage(t *testing.T) {
	t.Parallel()
	ts := newTally(t, nil)
	c := newClient(t, ts, nil)
	ctx := ctxT(t)

	for range 2 { // the same event id counts once
		cur, err := c.IncrementUsage(ctx, "exports_daily", 5, "export-1")
		if err != nil || cur != 5 {
			t.Fatalf("IncrementUsage = %d, %v; want 5", cur, err)
		}
	}
	cur, err := c.IncrementUsage(ctx, "exports_daily", 2, "")
	if err != nil || cur != 7 {
		t.Fatalf("IncrementUsage without event id = %d, %v; want 7", cur, err)
	}

	_, err = c.IncrementUsage(ctx, "Exports-Daily", 1, "")
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("bad metric: %v, want *APIError", err)
	}
	if apiErr.Status != http.StatusBadRequest || apiErr.Type != "urn:tally:problem:invalid" || apiErr.Title == "" ||
		len(apiErr.Errors) != 1 || apiErr.Errors[0].Field != "metric" || apiErr.RequestID == "" {
		t.Errorf("APIError %+v: want a 400 invalid problem naming metric, with a request id", apiErr)
	}
	if !strings.Contains(apiErr.Error(), "metric") {
		t.Errorf("Error() = %q", apiErr.Error())
	}
}

func TestConsume(t *testing.T) {
	t.Parallel()
	ts := newTally(t, map[string]int64{"builds_daily": 3})
	c := newClient(t, ts, nil)
	ctx := ctxT(t)

	for i := range 3 {
		q, err := c.Consume(ctx, "builds_daily", 1)
		if err != nil || !q.Allowed || q.Limit != 3 || q.Remaining != int64(2-i) || q.Metric != "builds_daily" {
			t.Fatalf("consume %d: %+v, %v", i+1, q, err)
		}
	}
	q, err := c.Consume(ctx, "builds_daily", 1)
	var qe *client.QuotaExceededError
	if !errors.As(err, &qe) {
		t.Fatalf("consume 4: %v, want *QuotaExceededError", err)
	}
	if q.Allowed || q.Limit != 3 || q.Current != 3 || !q.Exceeded || qe.Quota != q {
		t.Errorf("denied quota %+v (error's %+v)", q, qe.Quota)
	}
	if qe.RetryAfter <= 0 || qe.RetryAfter > 24*time.Hour || time.Until(q.ResetsAt) > qe.RetryAfter+time.Minute {
		t.Errorf("RetryAfter %s, resets at %s: want the time to the period's end", qe.RetryAfter, q.ResetsAt)
	}
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusTooManyRequests {
		t.Errorf("QuotaExceededError does not unwrap to a 429 *APIError: %v", err)
	}

	got, err := c.Quota(ctx, "builds_daily")
	if err != nil || got.Current != 3 || !got.Exceeded || got.Period != "day" || got.ResetsAt.IsZero() {
		t.Errorf("Quota = %+v, %v", got, err)
	}

	_, err = c.Consume(ctx, "no_such_quota", 1)
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || errors.As(err, &qe) {
		t.Errorf("consume without a quota: %v, want a 404 *APIError", err)
	}
}

func TestConsumeConcurrentNeverPassesLimit(t *testing.T) {
	t.Parallel()
	ts := newTally(t, map[string]int64{"builds_daily": 5})
	c := newClient(t, ts, nil)
	ctx := ctxT(t)
	var allowed, denied atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			_, err := c.Consume(ctx, "builds_daily", 1)
			var qe *client.QuotaExceededError
			switch {
			case err == nil:
				allowed.Add(1)
			case errors.As(err, &qe):
				denied.Add(1)
			default:
				t.Errorf("Consume: %v", err)
			}
		})
	}
	wg.Wait()
	if allowed.Load() != 5 || denied.Load() != 15 {
		t.Errorf("allowed %d, denied %d; want 5 and 15", allowed.Load(), denied.Load())
	}
}

func TestConsumeIsNotRetried(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls.Add(1)
		return fakeAnswer(r, http.StatusServiceUnavailable, "0"), nil
	})
	c, err := client.New("http://tally.invalid", "tk_x", client.WithHTTPClient(&http.Client{Transport: rt}), client.WithRetryBackoff(time.Millisecond, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	if _, err := c.Consume(t.Context(), "builds_daily", 1); err == nil {
		t.Fatal("Consume succeeded against a 503")
	}
	if calls.Load() != 1 {
		t.Errorf("%d attempts: a consume must not be repeated (it could take twice)", calls.Load())
	}
	calls.Store(0)
	if _, err := c.Quota(t.Context(), "builds_daily"); err == nil {
		t.Fatal("Quota succeeded against a 503")
	}
	if calls.Load() != 6 {
		t.Errorf("Quota: %d attempts, want 1 + 5 retries", calls.Load())
	}
}

func TestAPIErrorFromNonProblemAnswer(t *testing.T) {
	t.Parallel()
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusBadGateway, Header: http.Header{"Content-Type": {"text/html"}},
			Body: io.NopCloser(strings.NewReader("<html>proxy error</html>")), Request: r}, nil
	})
	c, err := client.New("http://tally.invalid", "tk_x", client.WithHTTPClient(&http.Client{Transport: rt}), client.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	_, err = c.Quota(t.Context(), "builds_daily")
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadGateway || apiErr.Title != "Bad Gateway" || apiErr.Detail != "" {
		t.Errorf("%#v: want a 502 *APIError without the HTML page", err)
	}
}
