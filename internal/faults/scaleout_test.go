package faults_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	goredis "github.com/redis/go-redis/v9"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
	"github.com/tallyhq/tally/internal/faults"
	"github.com/tallyhq/tally/internal/testenv"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/redis"
)

// The configuration of the scale-out suite, and the bounds derived from
// it (not performance figures: a request that waits past answerBound
// waited on something no timeout bounds; counters not equal to the log
// after convergeBound did not heal).
const (
	instances         = 3
	redisTimeout      = 100 * time.Millisecond
	scaleStmtTimeout  = 500 * time.Millisecond
	reconcileInterval = time.Second
	breakerCooldown   = time.Second // redis.Config's default
	enforcedLimit     = 25
	// A request makes at most a few database statements and Redis calls
	// in sequence, each bounded by its timeout; 2 s of slack for a
	// machine slowed by the race detector and parallel builds.
	answerBound = 6*scaleStmtTimeout + 10*redisTimeout + 2*time.Second
	// Breaker cool-down, the reconciler's tick, the rebuild's settle
	// wait (statement timeout + 1 s), two drift passes, and slack.
	convergeBound = breakerCooldown + 250*time.Millisecond + scaleStmtTimeout + time.Second + 2*reconcileInterval + 3*time.Second
)

func testRedisURL() string {
	if u := os.Getenv("TALLY_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// tier is several tally instances over one PostgreSQL schema and one Redis
// prefix, each reaching both through its fault proxy.
type tier struct {
	t       *testing.T
	pg, rd  *faults.Proxy
	direct  *pgx.Conn
	redis   goredis.UniversalClient // direct, not through the proxy
	prefix  string
	srvs    []*httptest.Server
	key     string
	tenant  int64
	http    *http.Client
	maxWait atomic.Int64 // longest answer seen, ns
	logs    testenv.Buffer
}

func startTier(t *testing.T) *tier {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	direct, err := redis.OpenTimeout(ctx, testRedisURL(), 2*time.Second)
	if err != nil {
		testenv.Missing(t, "Redis at "+testenv.RedactedURL(testRedisURL()), err.Error(), "start it or set TALLY_TEST_REDIS_URL")
	}
	t.Cleanup(func() { direct.Close() })
	pgURL := pgtest.FreshSchema(t)
	tr := &tier{t: t, redis: direct, prefix: "tally-faults-" + rand.Text()[:12] + ":", http: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() { tr.deleteKeys() })
	var pgProxied, rdProxied string
	if tr.pg, pgProxied, err = faults.Front(pgURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.pg.Close)
	if tr.rd, rdProxied, err = faults.Front(testRedisURL()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.rd.Close)
	for range instances {
		_, srv := apptest.Start(t, func(cfg *app.Config) {
			cfg.PostgresURL, cfg.RedisURL, cfg.RedisPrefix = pgProxied, rdProxied, tr.prefix
			cfg.RedisTimeout, cfg.StatementTimeout, cfg.ReconcileInterval = redisTimeout, scaleStmtTimeout, reconcileInterval
			cfg.Logger = slog.New(slog.NewJSONHandler(&tr.logs, &slog.HandlerOptions{Level: slog.LevelError}))
		})
		tr.srvs = append(tr.srvs, srv)
	}
	tr.key = apptest.Key(t, tr.srvs[0], "scale", "analytics:write", "analytics:read", "analytics:admin")
	if tr.direct, err = pgx.Connect(t.Context(), pgURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.direct.Close(context.Background()) })
	if err := tr.direct.QueryRow(t.Context(), `SELECT id FROM tenants WHERE slug = 'scale'`).Scan(&tr.tenant); err != nil {
		t.Fatal(err)
	}
	return tr
}

// deleteKeys empties the tier's Redis prefix: for these instances, what a
// FLUSHDB or a restart without persistence does (the test Redis is
// shared, so the suite leaves other keys alone).
func (tr *tier) deleteKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := tr.redis.Scan(ctx, 0, tr.prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		tr.redis.Del(ctx, keys...)
	}
}

// answer is one request's outcome.
type answer struct {
	status int
	body   []byte
}

// call sends one request to instance i and checks the answer's shape: a
// success, a 429 where quotas apply, or a 503 problem with Retry-After,
// within answerBound.
func (tr *tier) call(i int, path string, body any) answer {
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, tr.srvs[i%len(tr.srvs)].URL+path, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+tr.key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := tr.http.Do(req)
	took := time.Since(start)
	if took.Nanoseconds() > tr.maxWait.Load() {
		tr.maxWait.Store(took.Nanoseconds())
	}
	if err != nil {
		tr.t.Errorf("POST %s: %v", path, err)
		return answer{}
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if took > answerBound {
		tr.t.Errorf("POST %s answered %d after %v; the configuration bounds it to %v", path, res.StatusCode, took, answerBound)
	}
	switch {
	case res.StatusCode/100 == 2, res.StatusCode == http.StatusTooManyRequests && !strings.Contains(path, "/events"):
	case res.StatusCode == http.StatusServiceUnavailable:
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" || res.Header.Get("Retry-After") == "" {
			tr.t.Errorf("POST %s: 503 with Content-Type %q, Retry-After %q: %s", path, ct, res.Header.Get("Retry-After"), b)
		}
	default:
		tr.t.Errorf("POST %s answered %d %s; want 2xx, 429 or 503; request id %s", path, res.StatusCode, b, res.Header.Get("X-Request-ID"))
	}
	return answer{res.StatusCode, b}
}

// load is the concurrent traffic of one scenario: event batches, soft
// usage increments, and consumes and increments of an enforced metric;
// it records every acknowledged event id.
type load struct {
	tr       *tier
	name     string
	enforced string // the scenario's enforced metric

	mu       sync.Mutex
	acked    map[string]bool // event ids acknowledged
	admitted int             // acknowledged units of the enforced metric
	codes    map[int]int
	seq      atomic.Int64
}

func (l *load) record(a answer, ids []string, enforced bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes[a.status]++
	if a.status/100 != 2 {
		return
	}
	for _, id := range ids {
		l.acked[id] = true
	}
	if enforced {
		l.admitted++
	}
}

func (l *load) id(kind string) string {
	return fmt.Sprintf("%s-%s-%d", l.name, kind, l.seq.Add(1))
}

// run sends traffic from several goroutines until stop closes.
func (l *load) run(stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	worker := func(w int, step func(i int)) {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				step(i)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	for w := range 2 {
		worker(w, func(i int) {
			ids := []string{l.id("ev"), l.id("ev"), l.id("ev")}
			batch := make([]map[string]any, len(ids))
			for j, id := range ids {
				batch[j] = map[string]any{"event": "fault.test", "event_id": id, "user_id": "u"}
			}
			l.record(l.tr.call(i, "/api/analytics/events", map[string]any{"batch": batch}), ids, false)
		})
	}
	worker(0, func(i int) {
		id := l.id("soft")
		l.record(l.tr.call(i, "/api/analytics/usage", map[string]any{"metric": "calls_daily", "event_id": id}), []string{id}, false)
	})
	for w := range 2 {
		worker(w+1, func(i int) {
			id := l.id("enf")
			path, body := "/api/analytics/quotas/"+l.enforced+"/consume", map[string]any{"event_id": id}
			if i%3 == 0 {
				path, body = "/api/analytics/usage", map[string]any{"metric": l.enforced, "event_id": id}
			}
			l.record(l.tr.call(i, path, body), []string{id}, true)
		})
	}
	return &wg
}

// TestScaleOutFaults runs three tally instances over PostgreSQL and Redis,
// each through a fault proxy, under concurrent ingest, usage increments
// and consumes, and breaks one part per scenario: Redis stalled,
// resetting, emptied; PostgreSQL stalled, resetting, down. For each:
// every answer is a success, a 429 or a 503 problem with Retry-After,
// within a bound derived from the timeouts; no acknowledged event is
// lost or stored twice; the enforced metric never passes its limit, in
// the acknowledgements nor in the log; and after the fault the counters
// in Redis equal the log within convergeBound.
func TestScaleOutFaults(t *testing.T) {
	tr := startTier(t)
	type scenario struct {
		name  string
		proxy *faults.Proxy
		mode  faults.Mode // faults.Pass: empty Redis instead
	}
	for _, sc := range []scenario{
		{"redis-stall", tr.rd, faults.Stall},
		{"redis-reset", tr.rd, faults.Reset},
		{"redis-emptied", nil, faults.Pass},
		{"pg-stall", tr.pg, faults.Stall},
		{"pg-reset", tr.pg, faults.Reset},
		{"pg-down", tr.pg, faults.Down},
	} {
		t.Run(sc.name, func(t *testing.T) {
			tr.t = t
			tr.maxWait.Store(0)
			metric := "builds_" + strings.ReplaceAll(strings.TrimPrefix(sc.name, "redis-"), "-", "_")
			if r := tr.put(metric); r != http.StatusOK {
				t.Fatalf("set the quota of %s: %d", metric, r)
			}
			l := &load{tr: tr, name: sc.name, enforced: metric, acked: map[string]bool{}, codes: map[int]int{}}
			stop := make(chan struct{})
			wg := l.run(stop)
			time.Sleep(300 * time.Millisecond)
			if sc.proxy != nil {
				if err := sc.proxy.Set(sc.mode); err != nil {
					t.Fatal(err)
				}
			} else {
				tr.deleteKeys()
			}
			// A stalled PostgreSQL connection fails at the pool's I/O
			// deadline, the statement timeout plus a second (the server's
			// own timeout answers first when it can): a stall shorter
			// than that is ridden out by most requests, so a 503 would
			// show only by chance.
			fault := 1500 * time.Millisecond
			if sc.proxy == tr.pg && sc.mode == faults.Stall {
				fault = scaleStmtTimeout + 2*time.Second
			}
			time.Sleep(fault)
			if sc.proxy != nil {
				if err := sc.proxy.Set(faults.Pass); err != nil {
					t.Fatal(err)
				}
			}
			// Traffic goes on past the heal (breaker cool-down and the
			// rebuild's settle wait), up to the enforced limit.
			time.Sleep(2500 * time.Millisecond)
			close(stop)
			wg.Wait()
			ended := time.Now()
			t.Logf("%s: answers %v, %d events acknowledged, %d of %d enforced units admitted, longest answer %v (bound %v)",
				sc.name, l.codes, len(l.acked), l.admitted, enforcedLimit, time.Duration(tr.maxWait.Load()), answerBound)
			if l.codes[http.StatusServiceUnavailable] == 0 && sc.proxy != nil {
				t.Errorf("no 503 under %s: the fault did not reach tally", sc.name)
			}
			if l.admitted > enforcedLimit {
				t.Errorf("%d units of %s acknowledged, the enforced limit is %d", l.admitted, metric, enforcedLimit)
			}
			tr.checkStored(l)
			if t.Failed() {
				t.Logf("error log:\n%s", tr.logs.String())
			}
			tr.checkConverged(ended, metric)
		})
	}
}

// put sets an enforced quota of enforcedLimit on metric.
func (tr *tier) put(metric string) int {
	raw, _ := json.Marshal(map[string]any{"limit": enforcedLimit, "enforced": true})
	req, _ := http.NewRequest(http.MethodPut, tr.srvs[0].URL+"/api/analytics/quotas/"+metric, bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+tr.key)
	req.Header.Set("Content-Type", "application/json")
	res, err := tr.http.Do(req)
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// checkStored checks the log against the acknowledgements: each
// acknowledged id stored, none stored twice, and the enforced metric's
// stored units within the limit.
func (tr *tier) checkStored(l *load) {
	t := tr.t
	// A consume's usage.increment is stored under the settlement id of
	// the event id it carried (tally.SettlementID): counted by that id.
	checkStoredOnce(t, tr.direct, l.acked, `SELECT regexp_replace(event_id, '^settle:[a-z0-9_]+:', ''), count(*) FROM events
		WHERE tenant_id = $1 AND (event_id LIKE $2 OR event_id LIKE 'settle:%:' || $2) GROUP BY 1`, tr.tenant, l.name+"-%")
	if v := tr.logValues()[l.enforced]; v > enforcedLimit {
		t.Errorf("the log holds %d units of %s, past its enforced limit of %d", v, l.enforced, enforcedLimit)
	}
}

// logValues sums today's usage increments by metric, from the database.
func (tr *tier) logValues() map[string]int64 {
	t := tr.t
	day := tally.DayStart(time.Now())
	rows, err := tr.direct.Query(t.Context(), `SELECT props::jsonb->>'metric', sum(value)::bigint FROM events
		WHERE tenant_id = $1 AND event = 'usage.increment' AND ts >= $2 AND ts < $3 GROUP BY 1`,
		tr.tenant, day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var m string
		var n int64
		if err := rows.Scan(&m, &n); err != nil {
			t.Fatal(err)
		}
		out[m] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkConverged waits until the usage counters in Redis (read directly,
// and guarded by the database's identity) equal the log for the usage
// metrics, failing when that takes longer than convergeBound after the
// fault and the traffic ended.
func (tr *tier) checkConverged(ended time.Time, metric string) {
	t := tr.t
	key := tr.prefix + "usage:" + strconv.FormatInt(tr.tenant, 10) + ":" + tally.DayStart(time.Now()).Format(time.DateOnly)
	var epoch string
	if err := tr.direct.QueryRow(t.Context(), `SELECT epoch FROM counters_epoch`).Scan(&epoch); err != nil {
		t.Fatal(err)
	}
	var last string
	for {
		log := tr.logValues()
		cached, err := tr.redis.HGetAll(t.Context(), key).Result()
		id, _ := tr.redis.Get(t.Context(), tr.prefix+"identity").Result()
		ok := err == nil && id == epoch
		for _, m := range []string{"calls_daily", metric} {
			if cached[m] != strconv.FormatInt(log[m], 10) && !(cached[m] == "" && log[m] == 0) {
				ok = false
			}
		}
		last = fmt.Sprintf("redis %v (identity %q), log %v", cached, id, log)
		if ok {
			t.Logf("converged %v after the fault ended: %s", time.Since(ended).Round(time.Millisecond), last)
			return
		}
		if time.Since(ended) > convergeBound {
			t.Fatalf("counters not equal to the log %v after the fault ended (bound %v): %s", time.Since(ended), convergeBound, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
