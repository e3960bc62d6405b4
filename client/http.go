package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"time"
)

// retryPolicy says which failures of a request may be retried.
type retryPolicy int

const (
	// retryNever: the request is not idempotent (consume).
	retryNever retryPolicy = iota
	// retryTransient: network errors and 5xx.
	retryTransient
	// retryEvents: network errors, 5xx and 429 (event batches carry
	// event ids, so a repeat is stored once).
	retryEvents
)

// response is an answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) decode(v any) error { return json.Unmarshal(r.body, v) }

// userAgent names the SDK in tally's logs.
const userAgent = "tally-go-client/1"

// maxAnswerBytes caps how much of an answer is read.
const maxAnswerBytes = 4 << 20

// do sends a request, retrying per policy with exponential backoff and
// jitter, honouring Retry-After up to the longest backoff. body (nil for
// none) is called per attempt. An answer with an error status returns
// the response and an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body func() []byte, policy retryPolicy) (*response, error) {
	for attempt := 0; ; attempt++ {
		res, err := c.attempt(ctx, method, path, body)
		if err == nil && res.status < 300 {
			return res, nil
		}
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("tally: %s %s: %w", method, path, ctx.Err())
			}
			err = fmt.Errorf("tally: %s %s: %w", method, path, err)
		} else {
			apiErr := apiError(res.status, res.header, res.body)
			err, wait = apiErr, apiErr.RetryAfter
			if !retryable(policy, res.status) {
				return res, err
			}
		}
		if policy == retryNever || attempt >= c.cfg.maxRetries || wait > c.cfg.maxBackoff {
			return res, err
		}
		wait = max(wait, c.backoff(attempt))
		c.cfg.logger.Debug("tally: retrying", "method", method, "path", path, "attempt", attempt+1, "wait", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("tally: %s %s: %w (after: %w)", method, path, ctx.Err(), err)
		}
	}
}

// retryable reports whether an answer with status may be retried.
func retryable(p retryPolicy, status int) bool {
	switch {
	case p == retryNever:
		return false
	case status >= 500:
		return true
	case status == http.StatusTooManyRequests:
		return p == retryEvents
	}
	return false
}

// backoff is the delay before retry attempt+1: doubling from the first
// delay up to the longest, of which a random half is taken away (so
// clients that failed together do not retry together).
func (c *Client) backoff(attempt int) time.Duration {
	d := c.cfg.maxBackoff
	if attempt < 30 {
		d = min(c.cfg.minBackoff<<attempt, c.cfg.maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// attempt sends the request once and reads the answer.
func (c *Client) attempt(ctx context.Context, method, path string, body func() []byte) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body())
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	return &response{status: res.StatusCode, header: res.Header, body: b}, nil
}

// jsonBody returns a body func sending v as JSON.
func jsonBody(v any) (func() []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return func() []byte { return b }, nil
}
