package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
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
//
// Every call runs under its own deadline (Config.Timeout) and through a
// circuit breaker: a stalled or resetting Redis costs a request at most one
// timeout, and nothing while the breaker is open. Writes that fail during
// a fault (the breaker open) mark the counters as missing writes; Check
// then asks for a rebuild once Redis answers again.
//
// With an Identity, the counters are guarded by it: the key
// <prefix>identity holds the identity of the database the counters count
// (postgres.Counters.Epoch) and every script checks it in the same atomic
// step as its read or write. A Redis restarted empty, flushed, or holding
// another database's counters fails those checks (ErrStale) instead of
// answering wrong values, and Check reports it. While a rebuild runs
// (BeginRebuild … EndRebuild) the key holds "rebuilding:<identity>":
// adds still count, but Consume and the reads refuse, so no admission is
// decided on a half-rebuilt value.
type Counters struct {
	client  goredis.UniversalClient
	prefix  string
	id      string
	timeout time.Duration
	now     func() time.Time
	brk     *breaker

	// dirtySince is when a write first failed since the last rebuild
	// (Unix ms; 0: none).
	dirtySince atomic.Int64
	// token names this instance's rebuild while it holds the lock.
	token string
}

var (
	_ tally.Counters   = (*Counters)(nil)
	_ tally.BatchAdder = (*Counters)(nil)
)

// ErrStale is the error of a call refused because the counters in Redis
// are not (or not yet) those of Config.Identity's database: Redis was
// emptied, holds another database's counters, or is being rebuilt. It is
// a tally.EUnavailable error: retry later.
var ErrStale = tally.Errorf(tally.EUnavailable, "usage counters are being rebuilt; retry later")

// Config configures Counters; the zero value of each field means what its
// comment says.
type Config struct {
	// Prefix starts every key (for example "tally:"; "" for none).
	// Instances that share counters use the same prefix.
	Prefix string
	// Identity is the identity of the database whose events the counters
	// count ("": unguarded, the counters trust whatever Redis holds).
	Identity string
	// Timeout bounds each call (default DefaultTimeout).
	Timeout time.Duration
	// BreakerFailures is how many failed calls in a row open the circuit
	// breaker (default 3).
	BreakerFailures int
	// BreakerCooldown is how long the open breaker refuses calls before it
	// lets one probe through (default 1s).
	BreakerCooldown time.Duration
	// Now tells the time (default time.Now).
	Now func() time.Time
}

// NewCounters returns unguarded counters kept in client under keys
// starting with prefix, with the default timeout and breaker. Tests of the
// counters alone use it with a fresh prefix each.
func NewCounters(client goredis.UniversalClient, prefix string) *Counters {
	return New(client, Config{Prefix: prefix})
}

// New returns the counters of cfg kept in client.
func New(client goredis.UniversalClient, cfg Config) *Counters {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = 3
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Counters{client: client, prefix: cfg.Prefix, id: cfg.Identity, timeout: cfg.Timeout, now: cfg.Now,
		brk: &breaker{threshold: cfg.BreakerFailures, cooldown: cfg.BreakerCooldown, now: cfg.Now}}
}

// call runs fn under the breaker and the per-call deadline. A failure
// other than goredis.Nil and ErrStale counts against the breaker. A write
// (write true) that fails while the breaker is open, or opens it, marks
// the counters as missing writes (its outcome is unknown): a Redis fault
// ends with a rebuild. An isolated failure leaves at most an over-count
// of an enforced quota (a consume that applied, a release that did not),
// never an under-count, and the drift pass of usage.Reconciler repairs it
// without holding admissions.
func (c *Counters) call(ctx context.Context, write bool, fn func(ctx context.Context) error) error {
	if err := c.brk.allow(); err != nil {
		if write {
			c.markDirty()
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := fn(ctx)
	failed := err != nil && !errors.Is(err, goredis.Nil) && !errors.Is(err, ErrStale)
	c.brk.done(failed)
	if failed && write && c.brk.open() {
		c.markDirty()
	}
	return err
}

func (c *Counters) markDirty() {
	c.dirtySince.CompareAndSwap(0, c.now().UnixMilli())
}

// identityKey holds the identity the counters belong to.
func (c *Counters) identityKey() string { return c.prefix + "identity" }

// lockKey is held by the instance rebuilding the counters.
func (c *Counters) lockKey() string { return c.prefix + "rebuild" }

// rebuiltKey holds when the last completed rebuild started (Unix ms).
func (c *Counters) rebuiltKey() string { return c.prefix + "rebuilt" }

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

// addScript checks the identity (KEYS[1] against ARGV[1], "" for none;
// a rebuild in progress counts as the identity, so that adds made during
// it are not lost) and then, for each further key KEYS[i], adds
// ARGV[3i-4] to field ARGV[3i-5] with HINCRBY and sets the expiry
// ARGV[3i-3]. It returns {1, new values…}, or {-1} when the identity
// does not match. One script per batch: one round trip, all or nothing.
var addScript = goredis.NewScript(`
local id = redis.call('GET', KEYS[1])
if ARGV[1] ~= '' and id ~= ARGV[1] and id ~= 'rebuilding:' .. ARGV[1] then
	return {-1}
end
local out = {1}
for i = 2, #KEYS do
	local j = 3 * i - 4
	out[i] = redis.call('HINCRBY', KEYS[i], ARGV[j], ARGV[j + 1])
	redis.call('EXPIREAT', KEYS[i], ARGV[j + 2])
end
return out
`)

// add runs addScript over deltas (already merged) and returns the new
// values in their order.
func (c *Counters) add(ctx context.Context, deltas []tally.CounterDelta) ([]int64, error) {
	keys := make([]string, 1, 1+len(deltas))
	keys[0] = c.identityKey()
	args := make([]any, 1, 1+3*len(deltas))
	args[0] = c.id
	for _, d := range deltas {
		keys = append(keys, c.usageKey(d.TenantID, d.Day))
		args = append(args, d.Metric, d.N, c.expireAt(d.Day).Unix())
	}
	var r []int64
	err := c.call(ctx, true, func(ctx context.Context) error {
		var err error
		r, err = addScript.Run(ctx, c.client, keys, args...).Int64Slice()
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(r) == 0 || r[0] != 1 {
		return nil, ErrStale
	}
	return r[1:], nil
}

// Add implements tally.Counters with one script (HINCRBY and EXPIREAT
// after the identity check): HINCRBY is atomic in itself (concurrent adds
// never lose one another), and the script makes sure that no write leaves
// a key without its expiry.
func (c *Counters) Add(ctx context.Context, tenantID int64, day time.Time, metric string, n int64) (int64, error) {
	r, err := c.add(ctx, []tally.CounterDelta{{TenantID: tenantID, Day: day, Metric: metric, N: n}})
	if err != nil {
		return 0, fmt.Errorf("redis: add to %s: %w", c.usageKey(tenantID, day), err)
	}
	return r[0], nil
}

// AddBatch implements tally.BatchAdder: every delta's HINCRBY and
// EXPIREAT in one script, one round trip for the batch.
func (c *Counters) AddBatch(ctx context.Context, deltas []tally.CounterDelta) error {
	deltas = tally.MergeDeltas(deltas)
	if len(deltas) == 0 {
		return nil
	}
	if _, err := c.add(ctx, deltas); err != nil {
		return fmt.Errorf("redis: add a batch of %d counters: %w", len(deltas), err)
	}
	return nil
}

// read returns the identity and the hash of key in one MULTI/EXEC, and
// ErrStale when the identity is not c's.
func (c *Counters) read(ctx context.Context, key string) (map[string]string, error) {
	var id *goredis.StringCmd
	var all *goredis.MapStringStringCmd
	err := c.call(ctx, false, func(ctx context.Context) error {
		_, err := c.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			id = p.Get(ctx, c.identityKey())
			all = p.HGetAll(ctx, key)
			return nil
		})
		if errors.Is(err, goredis.Nil) { // the identity key is missing
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if c.id != "" && id.Val() != c.id {
		return nil, ErrStale
	}
	return all.Val(), nil
}

// Get implements tally.Counters with one HGET (and GET of the identity,
// in one transaction).
func (c *Counters) Get(ctx context.Context, tenantID int64, day time.Time, metric string) (int64, error) {
	all, err := c.All(ctx, tenantID, day)
	if err != nil {
		return 0, err
	}
	return all[metric], nil
}

// All implements tally.Counters with one HGETALL, a snapshot of the day.
func (c *Counters) All(ctx context.Context, tenantID int64, day time.Time) (map[string]int64, error) {
	key := c.usageKey(tenantID, day)
	raw, err := c.read(ctx, key)
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

// consumeScript checks the identity (KEYS[1] against ARGV[1]; a rebuild
// in progress does not match) and then adds ARGV[3] to field ARGV[2] of
// hash KEYS[2] only when the sum stays at most ARGV[4], and sets the
// key's expiry to ARGV[5] (Unix seconds). It returns {1, new value} when
// it added, {0, value} when it refused, {-1, 0} when the identity does
// not match. Lua numbers are doubles, so the check is exact for values
// and limits up to 2^53 (usage grows by at most 2^40 an event); the sum
// itself is HINCRBY's exact 64-bit arithmetic.
var consumeScript = goredis.NewScript(ConsumeScriptSource)

// ConsumeScriptSource is the Lua of the counters' consume, for a bare
// EVAL baseline of the same work (tally bench).
const ConsumeScriptSource = `
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return {-1, 0}
end
local v = tonumber(redis.call('HGET', KEYS[2], ARGV[2])) or 0
if v + tonumber(ARGV[3]) > tonumber(ARGV[4]) then
	return {0, v}
end
v = redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIREAT', KEYS[2], ARGV[5])
return {1, v}
`

// Consume implements tally.Counters with one Lua script (EVALSHA, EVAL
// when the server does not have it yet). Redis runs a script to its end
// before any other command, so the check and the add are one step:
// concurrent consumers, from any instance, never together pass the limit
// and are never refused while there is room. A refused call writes
// nothing. A call that fails may or may not have added: it over-counts
// (never under-counts) until the rebuild that follows.
func (c *Counters) Consume(ctx context.Context, tenantID int64, day time.Time, metric string, n, limit int64) (bool, int64, error) {
	key := c.usageKey(tenantID, day)
	var r []int64
	err := c.call(ctx, true, func(ctx context.Context) error {
		var err error
		r, err = consumeScript.Run(ctx, c.client, []string{c.identityKey(), key}, c.id, metric, n, limit, c.expireAt(day).Unix()).Int64Slice()
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("redis: consume %s %s: %w", key, metric, err)
	}
	if len(r) != 2 {
		return false, 0, fmt.Errorf("redis: consume %s %s: script returned %v", key, metric, r)
	}
	if r[0] == -1 {
		return false, 0, fmt.Errorf("redis: consume %s %s: %w", key, metric, ErrStale)
	}
	return r[0] == 1, r[1], nil
}

// resetScript checks the identity as addScript does, then replaces hash
// KEYS[2] by the field/value pairs ARGV[3…] with the expiry ARGV[2].
var resetScript = goredis.NewScript(`
local id = redis.call('GET', KEYS[1])
if ARGV[1] ~= '' and id ~= ARGV[1] and id ~= 'rebuilding:' .. ARGV[1] then
	return -1
end
redis.call('DEL', KEYS[2])
if #ARGV > 2 then
	redis.call('HSET', KEYS[2], unpack(ARGV, 3))
	redis.call('EXPIREAT', KEYS[2], ARGV[2])
end
return 1
`)

// Reset implements tally.Counters with one script (DEL, HSET and
// EXPIREAT): Redis runs it with no other command in between, so no reader
// ever sees the day half replaced and no concurrent Add lands between the
// delete and the new values: an Add ordered before the script is
// replaced, one ordered after it counts on top of the new values.
func (c *Counters) Reset(ctx context.Context, tenantID int64, day time.Time, values map[string]int64) error {
	key := c.usageKey(tenantID, day)
	args := make([]any, 0, 2+2*len(values))
	args = append(args, c.id, c.expireAt(day).Unix())
	for m, v := range values {
		args = append(args, m, v)
	}
	var r int64
	err := c.call(ctx, true, func(ctx context.Context) error {
		var err error
		r, err = resetScript.Run(ctx, c.client, []string{c.identityKey(), key}, args...).Int64()
		return err
	})
	if err == nil && r != 1 {
		err = ErrStale
	}
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
	err := c.call(ctx, false, func(ctx context.Context) error {
		return c.client.SetArgs(ctx, key, 1, goredis.SetArgs{Mode: "NX", ExpireAt: c.expireAt(day)}).Err()
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, goredis.Nil): // the mark exists
		return false, nil
	default:
		return false, fmt.Errorf("redis: mark %s: %w", key, err)
	}
}
