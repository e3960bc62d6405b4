package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Check reports whether the counters need a rebuild from the log: Redis
// was emptied or restarted empty (the identity key is gone), holds
// another database's counters, was left half-rebuilt by an instance that
// stopped, or missed writes of this instance (a call failed) since the
// last rebuild. It returns the breaker's ErrOpen or the call's error when
// Redis cannot be asked; it then cannot be rebuilt either.
func (c *Counters) Check(ctx context.Context) (bool, error) {
	var vals []any
	err := c.call(ctx, false, func(ctx context.Context) error {
		var err error
		vals, err = c.client.MGet(ctx, c.identityKey(), c.rebuiltKey(), c.lockKey()).Result()
		return err
	})
	if err != nil {
		return false, err
	}
	id, _ := vals[0].(string)
	rebuilt, _ := vals[1].(string)
	_, locked := vals[2].(string)
	switch {
	case c.id != "" && id == "rebuilding:"+c.id && locked:
		return false, nil // another instance is rebuilding; its rebuild covers this one's misses only if it started after them
	case c.id != "" && id != c.id:
		c.markDirty()
		return true, nil
	}
	since := c.dirtySince.Load()
	if since == 0 {
		return false, nil
	}
	if at, err := strconv.ParseInt(rebuilt, 10, 64); err == nil && at >= since {
		c.dirtySince.CompareAndSwap(since, 0) // a rebuild that started after the miss covers it
		return false, nil
	}
	return true, nil
}

// MarkStale makes the next Check ask for a rebuild (the reconciler calls
// it when the counters drifted from the log).
func (c *Counters) MarkStale() { c.markDirty() }

// BeginRebuild takes the rebuild lock for ttl and marks the counters as
// rebuilding (when they held another database's identity, it deletes all
// of them first): from then on Consume and the reads of every instance refuse
// with ErrStale, while adds still count. ok is false when another
// instance holds the lock. The caller rebuilds with Reset and ends with
// EndRebuild; one that stops half-way leaves the counters rebuilding
// until the lock expires and another instance's Check asks again.
func (c *Counters) BeginRebuild(ctx context.Context, ttl time.Duration) (ok bool, err error) {
	token := rand.Text()
	started := c.now().UnixMilli()
	var prev string
	err = c.call(ctx, true, func(ctx context.Context) error {
		ok, err = c.client.SetNX(ctx, c.lockKey(), token+":"+strconv.FormatInt(started, 10), ttl).Result()
		if err != nil || !ok {
			return err
		}
		prev, err = c.client.SetArgs(ctx, c.identityKey(), "rebuilding:"+c.id, goredis.SetArgs{Get: true}).Result()
		if errors.Is(err, goredis.Nil) {
			err = nil
		}
		return err
	})
	if err != nil || !ok {
		return false, err
	}
	c.token = token + ":" + strconv.FormatInt(started, 10)
	if c.id != "" && prev != "" && prev != c.id && prev != "rebuilding:"+c.id {
		// Another database's counters: none of them may survive, also
		// those of tenants this database does not have (yet).
		if err := c.clear(ctx); err != nil {
			return false, err
		}
	}
	return true, nil
}

// clear deletes every usage counter and alert mark under the prefix, a
// page of keys per call.
func (c *Counters) clear(ctx context.Context) error {
	for _, pattern := range []string{c.prefix + "usage:*", c.prefix + "alert:*"} {
		var cursor uint64
		for {
			var keys []string
			err := c.call(ctx, true, func(ctx context.Context) error {
				var err error
				keys, cursor, err = c.client.Scan(ctx, cursor, pattern, 500).Result()
				if err == nil && len(keys) > 0 {
					err = c.client.Unlink(ctx, keys...).Err()
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("redis: clear another database's counters: %w", err)
			}
			if cursor == 0 {
				break
			}
		}
	}
	return nil
}

// endScript ends a rebuild when KEYS[1] (the lock) still holds ARGV[1]:
// the identity key KEYS[2] becomes ARGV[2], KEYS[3] records the rebuild's
// start ARGV[3] and the lock is released. It returns 0 when the lock was
// lost (expired and taken by another rebuild).
var endScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[1])
return 1
`)

// EndRebuild publishes the rebuilt counters: Consume and the reads work
// again on every instance, and Check stops asking for a rebuild for the
// misses seen before the rebuild started.
func (c *Counters) EndRebuild(ctx context.Context) error {
	token := c.token
	c.token = ""
	_, startedStr, _ := cutLast(token)
	started, _ := strconv.ParseInt(startedStr, 10, 64)
	var r int64
	err := c.call(ctx, true, func(ctx context.Context) error {
		var err error
		r, err = endScript.Run(ctx, c.client, []string{c.lockKey(), c.identityKey(), c.rebuiltKey()},
			token, c.id, started).Int64()
		return err
	})
	if err != nil {
		return fmt.Errorf("redis: end the counters rebuild: %w", err)
	}
	if r != 1 {
		return errors.New("redis: end the counters rebuild: the lock expired first")
	}
	if since := c.dirtySince.Load(); since != 0 && since <= started {
		c.dirtySince.CompareAndSwap(since, 0)
	}
	return nil
}

func cutLast(s string) (before, after string, found bool) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Healthy is the readiness check of the counters: nil when the breaker is
// closed, Redis answers within the timeout, the counters are those of the
// configured database (not being rebuilt) and no rebuild is pending.
func (c *Counters) Healthy(ctx context.Context) error {
	if c.brk.open() {
		return ErrOpen
	}
	var id string
	err := c.call(ctx, false, func(ctx context.Context) error {
		var err error
		id, err = c.client.Get(ctx, c.identityKey()).Result()
		if errors.Is(err, goredis.Nil) {
			err = nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if c.id != "" && id != c.id {
		return errors.New("redis: usage counters are being rebuilt from the event log")
	}
	if c.dirtySince.Load() != 0 {
		return errors.New("redis: usage counters missed writes during a fault; a rebuild from the event log is pending")
	}
	return nil
}
