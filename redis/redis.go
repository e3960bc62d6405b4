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
// Failures holds the login limits' failure counts, so that every instance
// throttles what any instance counted (docs/LOGIN_LIMITS.md).
//
// Open connects to REDIS_URL; Ping is the readiness check.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	goredis "github.com/redis/go-redis/v9"
)

// Open parses rawURL (a REDIS_URL such as redis://user:pass@host:6379/0 or
// rediss://… for TLS, see goredis.ParseURL), connects and pings the
// server. The caller closes the returned client. A server that does not
// answer is an *UnreachableError, returned with the client. Errors never
// include the URL, which may hold a password.
func Open(ctx context.Context, rawURL string) (goredis.UniversalClient, error) {
	opts, err := goredis.ParseURL(rawURL)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) { // its message quotes the whole URL
			err = uerr.Err
		}
		return nil, fmt.Errorf("parse REDIS_URL: %w", err)
	}
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
