package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/redis"
)

// consumeBench holds the flags of the consume phases of tally bench (the
// performance issue's P3): clients calling POST
// /api/analytics/quotas/{metric}/consume on the server of -url, and, for
// the Redis counters, a bare EVAL of a script of the shape of the
// counters' consume script against the same Redis, and the same consume
// phase against a second server that counts in that Redis.
type consumeBench struct {
	clients  int
	metric   string
	only     bool
	redis    string
	redisURL string
}

// consumeFlags declares the consume flags on fs.
func consumeFlags(fs *flag.FlagSet) *consumeBench {
	c := &consumeBench{}
	fs.IntVar(&c.clients, "consume-c", 0, "concurrent clients of consume requests (0: no such phase)")
	fs.StringVar(&c.metric, "consume-metric", "bench_units", "metric consumed; it needs a quota (e.g. QUOTA_DEFAULTS) large enough for the run")
	fs.BoolVar(&c.only, "consume-only", false, "run the healthz and consume phases only")
	fs.StringVar(&c.redis, "redis", "", "Redis address (host:port) for a bare EVAL baseline of the consume script's shape")
	fs.StringVar(&c.redisURL, "consume-redis-url", "", "base URL of a second tally, on the same database and keys, counting in the Redis of -redis")
	return c
}

// check reports bad consume flags.
func (c *consumeBench) check() error {
	if c.clients < 0 || (c.clients == 0 && (c.only || c.redis != "" || c.redisURL != "")) {
		return &configError{msg: "bench: -consume-only, -redis and -consume-redis-url need -consume-c >= 1"}
	}
	if c.redisURL != "" && c.redis == "" {
		return &configError{msg: "bench: -consume-redis-url needs -redis, the Redis its counters use"}
	}
	if !tally.ValidMetric(c.metric) {
		return &configError{msg: "bench: -consume-metric must be a metric name (^[a-z0-9_]{1,64}$)"}
	}
	return nil
}

// run measures the consume phases and adds them and their ratios (to
// healthz, of the same run) to rep. keys are tried in turn, one tenant
// each.
func (c *consumeBench) run(ctx context.Context, client *http.Client, url string, keys []string, d time.Duration, healthz *phase, rep *report) error {
	if c.clients == 0 {
		return nil
	}
	consume := func(base string) *phase {
		return load(ctx, c.clients, d, func(worker, i int) (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPost, base+"/api/analytics/quotas/"+c.metric+"/consume", nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+keys[(worker+i)%len(keys)])
			}
			return req, err
		}, client)
	}
	local := consume(url)
	name := fmt.Sprintf("consume (%d)", c.clients)
	rep.add(name, local, 1)
	if local.ok == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: no consume succeeded; does %s have a quota (QUOTA_DEFAULTS) with room?", name, c.metric))
	}
	rep.ratio("consume p99 / healthz p99", local.pct(0.99), healthz.pct(0.99))
	if c.redis == "" {
		return nil
	}
	eval, err := c.bareEval(ctx, d)
	if err != nil {
		return err
	}
	rep.add(fmt.Sprintf("bare Redis EVAL (%d)", c.clients), eval, 1)
	if c.redisURL == "" {
		return nil
	}
	remote := consume(c.redisURL)
	rep.add(fmt.Sprintf("consume, Redis counters (%d)", c.clients), remote, 1)
	rep.ratio("Redis consume p99 / (EVAL p99 + consume p99) (P3 ≤ 1.5)", remote.pct(0.99), eval.pct(0.99)+local.pct(0.99))
	return nil
}

// benchEvalScript is the Redis counters' consume script itself (an
// identity GET, an HGET, the limit check, HINCRBY and EXPIREAT, one
// round trip), run bare.
var benchEvalScript = goredis.NewScript(redis.ConsumeScriptSource)

// bareEval runs benchEvalScript from c.clients goroutines for d, on keys
// of its own (removed after), each goroutine on its own counter hash.
func (c *consumeBench) bareEval(ctx context.Context, d time.Duration) (*phase, error) {
	rdb := goredis.NewClient(&goredis.Options{Addr: c.redis, PoolSize: c.clients * 2})
	defer rdb.Close()
	prefix := "tally-bench-eval:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	id := prefix + "identity"
	if err := rdb.Set(ctx, id, "bench", time.Hour).Err(); err != nil {
		return nil, fmt.Errorf("bench -redis %s: %w", c.redis, err)
	}
	defer func() {
		keys := []string{id}
		for w := range c.clients {
			keys = append(keys, prefix+strconv.Itoa(w))
		}
		rdb.Del(context.WithoutCancel(ctx), keys...)
	}()
	expire := time.Now().Add(time.Hour).Unix()
	p := measure(ctx, c.clients, d, func(ctx context.Context, w, _ int) error {
		_, err := benchEvalScript.Run(ctx, rdb, []string{id, prefix + strconv.Itoa(w)}, "bench", c.metric, 1, int64(1)<<50, expire).Int64Slice()
		return err
	})
	if p.ok == 0 {
		return nil, fmt.Errorf("bench -redis %s: no EVAL succeeded", c.redis)
	}
	return p, nil
}
