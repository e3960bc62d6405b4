// Package redis keeps tally's usage counters in Redis, so that several
// tally instances sharing one Redis see the same counters, admit exactly up
// to a quota between them and announce each quota alert once.
//
// Counters implements tally.Counters. Every method is one atomic Redis step
// on one key: a command, a MULTI/EXEC transaction or a Lua script. No
// method reads a value into Go and writes it back, so no interleaving of
// clients can lose an update or pass a limit. Because each step touches a
// single key, the counters also work on Redis Cluster.
//
// Redis is a cache that heals, never a condition of correctness: every
// call has a short deadline (Config.Timeout, REDIS_TIMEOUT) and no retry,
// a circuit breaker stops calling a Redis that keeps failing, and the
// counters are guarded by the identity of the database they count (see
// Counters): a Redis restarted empty, flushed, or holding another
// database's counters is detected and rebuilt from the event log.
//
// Open connects to REDIS_URL; Ping is the readiness check.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// DefaultTimeout bounds one Redis call when no timeout is configured:
// Redis answers in well under a millisecond on a healthy network, so a
// call that takes longer is treated as a failure rather than waited for.
const DefaultTimeout = 50 * time.Millisecond

// Open is OpenTimeout with DefaultTimeout.
func Open(ctx context.Context, rawURL string) (goredis.UniversalClient, error) {
	return OpenTimeout(ctx, rawURL, DefaultTimeout)
}

// OpenTimeout parses rawURL (a REDIS_URL such as redis://user:pass@host:6379/0 or
// rediss://… for TLS, see goredis.ParseURL), connects and pings the
// server. The caller closes the returned client. A server that does not
// answer is an *UnreachableError, returned with the client. Errors never
// include the URL, which may hold a password.
//
// timeout (<= 0: DefaultTimeout) bounds every dial, read, write and wait
// for a pooled connection, and go-redis never retries a command: a failed
// call fails at once and the caller decides (see Counters).
func OpenTimeout(ctx context.Context, rawURL string, timeout time.Duration) (goredis.UniversalClient, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) { // its message quotes the whole URL
			err = uerr.Err
		}
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
	opts.MaxRetries = -1
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout, opts.PoolTimeout = timeout, timeout, timeout, timeout
	opts.ContextTimeoutEnabled = true
	client := goredis.NewClient(opts)
	if err := client.Ping(ctx).Err(); err != nil {
		return client, &UnreachableError{Addr: opts.Addr, Err: err}
	}
	return client, nil
}

// UnreachableError is Open's error when the URL is fine but the server did
// not answer the ping. Open then still returns the client, which connects
// once the server is up: a caller may run degraded with it (or close it).
type UnreachableError struct {
	Addr string
	Err  error
}

func (e *UnreachableError) Error() string { return fmt.Sprintf("redis: ping %s: %v", e.Addr, e.Err) }

func (e *UnreachableError) Unwrap() error { return e.Err }

// Ping reports whether the server answers: the readiness check of an
// instance whose counters live in Redis. It returns ctx's error when ctx
// ends first.
func Ping(ctx context.Context, client goredis.UniversalClient) error {
	if err := client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}
