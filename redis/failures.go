package redis

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Failures counts failed attempts per key in Redis, so that every instance
// sharing the Redis and prefix applies the same login limits. It
// implements server.LoginFailures. Keys:
//
//	<prefix>fail:<key>    integer: failures, expiring a window after the last one
//	<prefix>block:<key>   "1" while the key is refused, expiring when the block ends
//
// Expiry is Redis's own clock, so instances need not agree on the time.
type Failures struct {
	client goredis.UniversalClient
	prefix string
}

// NewFailures returns failure counts kept in client under keys starting
// with prefix.
func NewFailures(client goredis.UniversalClient, prefix string) *Failures {
	return &Failures{client: client, prefix: prefix}
}

// Fail counts a failure of key (INCR and PEXPIRE in one MULTI/EXEC) and
// returns the count since key was last quiet for window.
func (f *Failures) Fail(ctx context.Context, key string, window time.Duration) (int64, error) {
	var n *goredis.IntCmd
	_, err := f.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		n = p.Incr(ctx, f.prefix+"fail:"+key)
		p.PExpire(ctx, f.prefix+"fail:"+key, window)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n.Val(), nil
}

// Block refuses key for d from now.
func (f *Failures) Block(ctx context.Context, key string, d time.Duration) error {
	return f.client.Set(ctx, f.prefix+"block:"+key, "1", d).Err()
}

// Blocked returns how much longer key is refused (0: not refused).
func (f *Failures) Blocked(ctx context.Context, key string) (time.Duration, error) {
	d, err := f.client.PTTL(ctx, f.prefix+"block:"+key).Result()
	if err != nil || d < 0 { // -2: no key; -1: no expiry (never set so)
		return 0, err
	}
	return d, nil
}

// Reset forgets key's failures and block.
func (f *Failures) Reset(ctx context.Context, key string) error {
	return f.client.Del(ctx, f.prefix+"fail:"+key, f.prefix+"block:"+key).Err()
}
