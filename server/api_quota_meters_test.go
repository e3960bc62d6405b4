package server_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/postgres/pgtest"
)

func TestAPIQuotaMeterSQLite(t *testing.T) {
	t.Parallel()
	raceMeterQuotas(t, newHarness(t))
}

func TestAPIQuotaMeterPostgres(t *testing.T) {
	t.Parallel()
	pg := withPostgres(pgtest.FreshSchema(t))
	raceMeterQuotas(t, newHarness(t, pg), newHarness(t, pg), newHarness(t, pg))
}

func TestAPIQuotaMeterPostgresRedis(t *testing.T) {
	t.Parallel()
	pg, rd := withPostgres(pgtest.FreshSchema(t)), withRedis(redisURL(t))
	raceMeterQuotas(t, newHarness(t, pg, rd), newHarness(t, pg, rd), newHarness(t, pg, rd))
}

func TestAPIQuotaMeterClickHouse(t *testing.T) {
	t.Parallel()
	ch := withClickHouse(t)
	raceMeterQuotas(t, newHarness(t, ch), newHarness(t, ch))
}

// meterTotal is the meter query's total of slug over [from, to).
func meterTotal(t *testing.T, h *harness, auth map[string]string, slug string, from, to time.Time) int64 {
	t.Helper()
	var ans meterAnswer
	h.do("GET", meterQueryURL(slug, tally.MeterQueryInput{From: from, To: to, Loc: time.UTC}), nil, auth).want(t, http.StatusOK).decode(t, &ans)
	if len(ans.Data) != 1 || ans.Data[0].Value == nil {
		t.Fatalf("meter %s total: %+v", slug, ans)
	}
	return int64(*ans.Data[0].Value)
}

// raceMeterQuotas: enforced quotas on a count meter with a filter
// (searches of the pro plan) and a sum meter of props.tokens admit,
// under concurrent batches on every instance hs that mix matching and
// other events, exactly up to their limits and refuse the rest; their
// usage equals the meter queries' totals, and a rebuild of the counters
// from the log gives it again.
func raceMeterQuotas(t *testing.T, hs ...*harness) {
	const (
		searchLimit = 60
		tokenLimit  = 900
		senders     = 12
		batches     = 6
	)
	h := hs[0]
	o := h.newTenant("acme")
	k := h.createKey(o, "analytics:write", "analytics:read")
	auth := hdr(k.Key, "")
	h.do("POST", "/api/analytics/meters", map[string]any{"slug": "pro_searches", "event": "search.query", "aggregation": "count",
		"group_by": []string{"props.plan"}, "filter": map[string]string{"props.plan": "pro"}}, o.h()).want(t, http.StatusCreated)
	h.do("POST", "/api/analytics/meters", map[string]any{"slug": "llm_tokens", "event": "llm.*", "aggregation": "sum",
		"value_property": "props.tokens"}, o.h()).want(t, http.StatusCreated)
	h.do("PUT", "/api/analytics/quotas/pro_searches", map[string]any{"limit": searchLimit, "enforced": true}, o.h()).want(t, http.StatusOK)
	h.do("PUT", "/api/analytics/quotas/llm_tokens", map[string]any{"limit": tokenLimit, "enforced": true, "period": "month"}, o.h()).want(t, http.StatusOK)

	var searches, tokens, refused atomic.Int64
	var wg sync.WaitGroup
	for s := range senders {
		h := hs[s%len(hs)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), 7))
			for b := range batches {
				var batch []map[string]any
				var search, tok []int64 // what each event of batch adds
				for i := range 8 {
					id := fmt.Sprintf("s%d-b%d-%d", s, b, i)
					var e map[string]any
					var sn, tn int64
					switch rng.IntN(5) {
					case 0, 1:
						e, sn = map[string]any{"event": "search.query", "props": map[string]any{"plan": "pro"}}, 1
					case 2:
						e = map[string]any{"event": "search.query", "props": map[string]any{"plan": "free"}}
					case 3:
						tn = int64(1 + rng.IntN(40))
						e = map[string]any{"event": "llm.completion", "props": map[string]any{"tokens": tn}}
					default:
						e = map[string]any{"event": "llm.completion", "props": map[string]any{"tokens": "many"}} // not a number: adds 0
					}
					e["event_id"] = id
					batch = append(batch, e)
					search, tok = append(search, sn), append(tok, tn)
				}
				r := until503(func() *apiResponse {
					return h.do("POST", "/api/analytics/events", map[string]any{"batch": batch}, auth)
				})
				if r.Status == http.StatusTooManyRequests {
					// Every event of the batch counts and the quotas are
					// spent: the whole batch is refused, each for a quota.
					p := wantProblem(t, r, http.StatusTooManyRequests)
					for _, fe := range p.Errors {
						if !strings.Contains(fe.Message, "quota exceeded") {
							t.Errorf("%s refused: %s", fe.Field, fe.Message)
						}
					}
					if len(p.Errors) != len(batch) {
						t.Errorf("a refused batch of %d names %d events", len(batch), len(p.Errors))
					}
					refused.Add(int64(len(batch)))
					continue
				}
				var res ingestResult
				r.want(t, http.StatusAccepted).decode(t, &res)
				rejected := map[int]bool{}
				for _, rj := range res.Rejected {
					if !strings.Contains(rj.Error, "quota exceeded") {
						t.Errorf("event %d rejected: %s", rj.Index, rj.Error)
					}
					rejected[rj.Index] = true
					refused.Add(1)
				}
				for i := range batch {
					if !rejected[i] {
						searches.Add(search[i])
						tokens.Add(tok[i])
					}
				}
			}
		})
	}
	wg.Wait()
	if refused.Load() == 0 || searches.Load() != searchLimit {
		t.Errorf("%d pro searches admitted of a limit of %d (%d events refused): want exactly the limit", searches.Load(), searchLimit, refused.Load())
	}
	if tokens.Load() > tokenLimit || tokens.Load() < tokenLimit-39 {
		t.Errorf("%d tokens admitted of a limit of %d", tokens.Load(), tokenLimit)
	}
	// The next matching event is refused; an event the meter does not match passes.
	res := h.send(auth, map[string]any{"batch": []map[string]any{
		{"event": "search.query", "props": map[string]any{"plan": "pro"}},
		{"event": "search.query", "props": map[string]any{"plan": "free"}},
		{"event": "llm.completion", "props": map[string]any{"tokens": tokenLimit}}}})
	if res.Accepted != 1 || len(res.Rejected) != 2 {
		t.Errorf("past the limits: %+v", res)
	}

	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	want := map[string]int64{"pro_searches": searches.Load(), "llm_tokens": tokens.Load()}
	from := map[string]time.Time{"pro_searches": today, "llm_tokens": monthStart}
	check := func(when string) {
		t.Helper()
		for i, h := range hs {
			for slug, n := range want {
				if q := h.quota(auth, slug); q.Current != n || !q.Enforced {
					t.Errorf("%s, instance %d: quota %+v, want current %d", when, i, q, n)
				}
				if got := meterTotal(t, h, auth, slug, from[slug], today.Add(24*time.Hour)); got != n {
					t.Errorf("%s, instance %d: meter %s answers %d, want %d", when, i, slug, got, n)
				}
			}
		}
	}
	check("after the race")
	if err := h.app.Usage.Rebuild(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild from the log")
}

// TestAPIQuotaMeterLifecycle: a meter defined after its events gets a
// monthly quota that counts them (the past days from the log, today's
// recounted); a consume settling an event by id counts it once; a PATCH
// recounts under the new definition; quotas refuse meters that are not
// count or sum (422 naming the field) and a meter a quota names cannot be
// deleted (409 naming the quota) until the quota goes.
func TestAPIQuotaMeterLifecycle(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("acme")
		k := h.createKey(o, "analytics:write", "analytics:read")
		auth := hdr(k.Key, "")
		now := time.Now().UTC()
		today := now.Truncate(24 * time.Hour)
		yesterday := today.Add(-12 * time.Hour)
		quota := map[string]any{"limit": 100, "enforced": true, "period": "month"}
		periodStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		if now.Day() == 1 { // yesterday is last month: a billing period from yesterday
			quota["period"], quota["anchor_day"] = "billing", yesterday.Day()
			periodStart = yesterday.Truncate(24 * time.Hour)
		}
		completion := func(id string, tokens any, at time.Time) map[string]any {
			return map[string]any{"event": "llm.completion", "event_id": id, "props": map[string]any{"tokens": tokens}, "timestamp": at.Format(time.RFC3339Nano)}
		}
		res := h.send(auth, map[string]any{"batch": []map[string]any{
			completion("old-1", 10, yesterday), completion("old-2", 5, yesterday),
			completion("old-3", 7, now.Add(-time.Second)), completion("old-4", "x", now.Add(-time.Second)),
			{"event": "llm.embedding", "props": map[string]any{"tokens": 1000}}, // not the meter's event
		}})
		if res.Accepted != 5 {
			t.Fatalf("events before the meter: %+v", res)
		}
		h.do("POST", "/api/analytics/meters", map[string]any{"slug": "tokens", "event": "llm.completion", "aggregation": "sum",
			"value_property": "props.tokens", "group_by": []string{"props.model"}}, o.h()).want(t, http.StatusCreated)
		st := h.do("PUT", "/api/analytics/quotas/tokens", quota, o.h()).want(t, http.StatusOK)
		var q periodQuotaJSON
		st.decode(t, &q)
		if q.Current != 22 || !q.PeriodStart.Equal(periodStart) {
			t.Errorf("a new quota on a meter with past events: %+v, want current 22 from %s", q, periodStart)
		}
		end := today.Add(24 * time.Hour)
		if got := meterTotal(t, h, auth, "tokens", periodStart, end); got != 22 {
			t.Errorf("meter total %d, want 22", got)
		}

		// Settle by event id: the consume counts, the event it names does not.
		consume := h.do("POST", "/api/analytics/quotas/tokens/consume", map[string]any{"amount": 30, "event_id": "run-1"}, auth)
		consume.want(t, http.StatusOK)
		h.send(auth, completion("run-1", 30, now))
		h.do("POST", "/api/analytics/quotas/tokens/consume", map[string]any{"amount": 30, "event_id": "run-1"}, auth).want(t, http.StatusOK)
		h.send(auth, completion("run-2", 8, now))
		if q := h.quota(auth, "tokens"); q.Current != 60 {
			t.Errorf("after a settled consume: current %d, want 22 + 30 + 8", q.Current)
		}
		// The usage series of the slug: today's 7 + 30 + 8, also after a rollup.
		if u := h.usageToday(auth, "tokens"); u["tokens"] != 45 {
			t.Errorf("usage of tokens today %v, want 45", u)
		}
		h.do("POST", "/api/analytics/rollup", nil, o.h()).want(t, http.StatusOK)
		if u := h.usageToday(auth, "tokens"); u["tokens"] != 45 {
			t.Errorf("usage of tokens today after a rollup %v, want 45", u)
		}
		if err := h.app.Usage.Rebuild(t.Context()); err != nil {
			t.Fatal(err)
		}
		if q := h.quota(auth, "tokens"); q.Current != 60 {
			t.Errorf("rebuilt from the log: current %d, want 60", q.Current)
		}
		// Enforced: 40 left; 41 tokens are refused, 40 pass.
		res = h.send(auth, map[string]any{"batch": []map[string]any{completion("big", 41, now), completion("fits", 40, now)}})
		if res.Accepted != 1 || len(res.Rejected) != 1 || res.Rejected[0].Index != 0 {
			t.Errorf("at the limit: %+v", res)
		}
		r := h.do("POST", "/api/analytics/events", completion("over", 1, now), auth)
		wantProblem(t, r, http.StatusTooManyRequests)

		// A PATCH recounts: a count of the same events.
		h.do("PATCH", "/api/analytics/meters/tokens", map[string]any{"aggregation": "count"}, o.h()).want(t, http.StatusOK)
		// old-1..4, run-1 (settled: counted by its consume), run-2, fits.
		if q := h.quota(auth, "tokens"); q.Current != 6+30 {
			t.Errorf("after a PATCH to count: current %d, want 6 events + the consume's 30", q.Current)
		}

		// Only count and sum meters.
		h.do("POST", "/api/analytics/meters", map[string]any{"slug": "models", "event": "llm.completion", "aggregation": "unique_count",
			"value_property": "props.model"}, o.h()).want(t, http.StatusCreated)
		r = h.do("PUT", "/api/analytics/quotas/models", map[string]any{"limit": 5}, o.h())
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("metric") || !strings.Contains(r.String(), "unique_count") {
			t.Errorf("quota on a unique_count meter: %s", r)
		}
		r = h.do("PATCH", "/api/analytics/meters/tokens", map[string]any{"aggregation": "max"}, o.h())
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("aggregation") {
			t.Errorf("PATCH of a quota's meter to max: %s", r)
		}
		// A meter a quota names stays until the quota goes.
		r = h.do("DELETE", "/api/analytics/meters/tokens", nil, o.h())
		if wantProblem(t, r, http.StatusConflict); !strings.Contains(r.String(), "quota") {
			t.Errorf("DELETE of a quota's meter: %s", r)
		}
		h.do("DELETE", "/api/analytics/quotas/tokens", nil, o.h()).want(t, http.StatusNoContent)
		h.do("DELETE", "/api/analytics/meters/tokens", nil, o.h()).want(t, http.StatusNoContent)
	})
}
