package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tallyhq/tally"
)

// Key layout, with <day> the UTC day as yyyy-mm-dd:
//
//	<prefix>usage:<tenant>:<day>                         hash metric → value
//	<prefix>alert:<tenant>:<day>:<metric>:<threshold>    string "1", the FirstCrossing mark
//
// Every write sets its key's expiry to the end of the day's keep window,
// three days after the day starts, as MemoryCounters drop a day three days
// after it. Anchoring the expiry to the day rather than to the last write
// makes a day's counters and its alert marks expire together, so a late
// write cannot find a counter still past a threshold whose mark is gone and
// announce the crossing twice. A write to a day already out of the window
// (a back-dated event) keeps its key for minTTL from the write.
const (
	keep   = 3 * 24 * time.Hour
	minTTL = 24 * time.Hour
)

// Counters are tally.Counters in Redis, shared by every instance that uses
// the same Redis and prefix. Safe for concurrent use.
type Counters struct {
	client goredis.UniversalClient
	prefix string
}

var (
	_ tally.Counters   = (*Counters)(nil)
	_ tally.BatchAdder = (*Counters)(nil)
)

// NewCounters returns counters kept in client under keys starting with
// prefix (for example "tally:"; "" for none). Instances that must share
// counters use the same prefix; tests use a fresh one each.
func NewCounters(client goredis.UniversalClient, prefix string) *Counters {
	return &Counters{client: client, prefix: prefix}
}

// usageKey returns the key of the hash holding a tenant's values of day.
func (c *Counters) usageKey(tenantID int64, day time.Time) string {
	return c.prefix + "usage:" + strconv.FormatInt(tenantID, 10) + ":" + tally.DayStart(day).Format(time.DateOnly)
}

// alertKey returns the key of a FirstCrossing mark.
func (c *Counters) alertKey(tenantID int64, day time.Time, metric string, threshold int) string {
	return c.prefix + "alert:" + strconv.FormatInt(tenantID, 10) + ":" + tally.DayStart(day).Format(time.DateOnly) +
		":" + metric + ":" + strconv.Itoa(threshold)
}

// expireAt returns when the keys of day expire if written now: keep after
// the day's start, and at least minTTL from now.
func (c *Counters) expireAt(day time.Time) time.Time {
	at := tally.DayStart(day).Add(keep)
	if floor := time.Now().Add(minTTL); at.Before(floor) {
		at = floor
	}
	return at.Truncate(time.Second)
}

// Add implements tally.Counters with HINCRBY and EXPIREAT in one MULTI/EXEC
// transaction: HINCRBY is atomic in itself (concurrent adds never lose one
// another), and the transaction makes sure that no write leaves a key
// without its expiry.
func (c *Counters) Add(ctx context.Context, tenantID int64, day time.Time, metric string, n int64) (int64, error) {
	key := c.usageKey(tenantID, day)
	var incr *goredis.IntCmd
	_, err := c.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		incr = p.HIncrBy(ctx, key, metric, n)
		p.ExpireAt(ctx, key, c.expireAt(day))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("redis: add to %s: %w", key, err)
	}
	return incr.Val(), nil
}

// AddBatch implements tally.BatchAdder: every delta's HINCRBY and
// EXPIREAT in one MULTI/EXEC pipeline, one round trip for the batch.
func (c *Counters) AddBatch(ctx context.Context, deltas []tally.CounterDelta) error {
	deltas = tally.MergeDeltas(deltas)
	if len(deltas) == 0 {
		return nil
	}
	_, err := c.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, d := range deltas {
			key := c.usageKey(d.TenantID, d.Day)
			p.HIncrBy(ctx, key, d.Metric, d.N)
			p.ExpireAt(ctx, key, c.expireAt(d.Day))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: add a batch of %d counters: %w", len(deltas), err)
	}
	return nil
}

// Get implements tally.Counters with one HGET.
func (c *Counters) Get(ctx context.Context, tenantID int64, day time.Time, metric string) (int64, error) {
	key := c.usageKey(tenantID, day)
	v, err := c.client.HGet(ctx, key, metric).Int64()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis: get %s %s: %w", key, metric, err)
	}
	return v, nil
}

// All implements tally.Counters with one HGETALL, a snapshot of the day.
func (c *Counters) All(ctx context.Context, tenantID int64, day time.Time) (map[string]int64, error) {
	key := c.usageKey(tenantID, day)
	raw, err := c.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: get all of %s: %w", key, err)
	}
	out := make(map[string]int64, len(raw))
	for m, s := range raw {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: %s %s holds %q, not an integer", key, m, s)
		}
		out[m] = v
	}
	return out, nil
}

// consumeScript adds ARGV[2] to field ARGV[1] of hash KEYS[1] only when the
// sum stays at most ARGV[3], and then sets the key's expiry to ARGV[4]
// (Unix seconds). It returns {1, new value} when it added, {0, value}
// when it refused. Lua numbers are doubles, so the check is exact for
// values and limits up to 2^53 (usage grows by at most 2^40 an event);
// the sum itself is HINCRBY's exact 64-bit arithmetic.
var consumeScript = goredis.NewScript(`
local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or 0
if v + tonumber(ARGV[2]) > tonumber(ARGV[3]) then
	return {0, v}
end
v = redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return {1, v}
`)

// Consume implements tally.Counters with one Lua script (EVALSHA, EVAL
// when the server does not have it yet). Redis runs a script to its end
// before any other command, so the check and the add are one step:
// concurrent consumers, from any instance, never together pass the limit
// and are never refused while there is room. A refused call writes
// nothing.
func (c *Counters) Consume(ctx context.Context, tenantID int64, day time.Time, metric string, n, limit int64) (bool, int64, error) {
	key := c.usageKey(tenantID, day)
	r, err := consumeScript.Run(ctx, c.client, []string{key}, metric, n, limit, c.expireAt(day).Unix()).Int64Slice()
	if err != nil {
		return false, 0, fmt.Errorf("redis: consume %s %s: %w", key, metric, err)
	}
	if len(r) != 2 {
		return false, 0, fmt.Errorf("redis: consume %s %s: script returned %v", key, metric, r)
	}
	return r[0] == 1, r[1], nil
}

// Reset implements tally.Counters with DEL, HSET and EXPIREAT in one
// MULTI/EXEC transaction: Redis runs the queued commands with no other
// command in between, so no reader ever sees the day half replaced and no
// concurrent Add lands between the delete and the new values: an Add
// ordered before the transaction is replaced, one ordered after it counts
// on top of the new values.
func (c *Counters) Reset(ctx context.Context, tenantID int64, day time.Time, values map[string]int64) error {
	key := c.usageKey(tenantID, day)
	fields := make([]any, 0, 2*len(values))
	for m, v := range values {
		fields = append(fields, m, v)
	}
	_, err := c.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.Del(ctx, key)
		if len(fields) > 0 { // HSET needs at least one field
			p.HSet(ctx, key, fields...)
			p.ExpireAt(ctx, key, c.expireAt(day))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: reset %s: %w", key, err)
	}
	return nil
}

// FirstCrossing implements tally.Counters with one SET NX (with the day's
// expiry): exactly one caller, from any instance, creates the mark and
// gets true until the mark expires with its day.
func (c *Counters) FirstCrossing(ctx context.Context, tenantID int64, day time.Time, metric string, threshold int) (bool, error) {
	key := c.alertKey(tenantID, day, metric, threshold)
	err := c.client.SetArgs(ctx, key, 1, goredis.SetArgs{Mode: "NX", ExpireAt: c.expireAt(day)}).Err()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, goredis.Nil): // the mark exists
		return false, nil
	default:
		return false, fmt.Errorf("redis: mark %s: %w", key, err)
	}
}
