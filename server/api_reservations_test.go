package server_test

import (
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// reservationJSON is a reservation answer.
type reservationJSON struct {
	ID             string          `json:"id"`
	Metric         string          `json:"metric"`
	Amount         int64           `json:"amount"`
	State          string          `json:"state"`
	Committed      int64           `json:"committed"`
	IdempotencyKey string          `json:"idempotency_key"`
	ExpiresAt      time.Time       `json:"expires_at"`
	Remaining      int64           `json:"remaining"`
	Quota          periodQuotaJSON `json:"quota"`
}

// until503 calls do again while it answers 503 (a store or Redis too slow
// on a loaded machine): the calls it is used for are idempotent, so a
// retry settles what the 503 left unknown, as a client would.
func until503(do func() *apiResponse) *apiResponse {
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := do()
		if r.Status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func withReservationSweep(d time.Duration) harnessOption {
	return func(c *app.Config) { c.ReservationSweep = d }
}

func TestAPIReservationsSQLite(t *testing.T) {
	t.Parallel()
	raceReservations(t, newHarness(t, withReservationSweep(100*time.Millisecond)))
}

func TestAPIReservationsPostgres(t *testing.T) {
	t.Parallel()
	pg, sweep := withPostgres(pgtest.FreshSchema(t)), withReservationSweep(100*time.Millisecond)
	raceReservations(t, newHarness(t, pg, sweep), newHarness(t, pg, sweep), newHarness(t, pg, sweep))
}

func TestAPIReservationsPostgresRedis(t *testing.T) {
	t.Parallel()
	pg, rd, sweep := withPostgres(pgtest.FreshSchema(t)), withRedis(redisURL(t)), withReservationSweep(100*time.Millisecond)
	raceReservations(t, newHarness(t, pg, rd, sweep), newHarness(t, pg, rd, sweep), newHarness(t, pg, rd, sweep))
}

// raceReservations runs 64 callers against one enforced quota across the
// instances hs: reserve (some with idempotency keys, retried), commit all
// or part (some twice), release, abandon to expiry, consume, with random
// amounts and lifetimes. Meanwhile watchers read the quota on every
// instance. It checks that no answer ever shows the quota past its limit,
// that an idempotency key never makes a second reservation nor a retried
// commit a second count, that a commit after expiry is refused, and in the
// end that every instance's current equals the sum of what was committed
// and consumed, as the log's usage does.
func raceReservations(t *testing.T, hs ...*harness) {
	const (
		metric  = "gen_tokens"
		limit   = 120
		callers = 64
		rounds  = 4
	)
	o := hs[0].newTenant("acme")
	k := hs[0].createKey(o, "analytics:write", "analytics:read")
	auth := hdr(k.Key, "")
	hs[0].do("PUT", "/api/analytics/quotas/"+metric, map[string]any{"limit": limit, "enforced": true}, o.h()).want(t, http.StatusOK)
	base := "/api/analytics/quotas/" + metric

	var committed, maxSeen atomic.Int64
	seen := func(cur int64) {
		for {
			m := maxSeen.Load()
			if cur <= m || maxSeen.CompareAndSwap(m, cur) {
				return
			}
		}
	}
	stop := make(chan struct{})
	var watchers sync.WaitGroup
	for _, h := range hs {
		watchers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := h.do("GET", base, nil, auth)
				var q periodQuotaJSON
				if r.Status == http.StatusOK {
					r.decode(t, &q)
					seen(q.Current)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}

	var wg sync.WaitGroup
	var refused, expiredRefused, replays atomic.Int64
	for c := range callers {
		h := hs[c%len(hs)]
		other := hs[(c+1)%len(hs)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 13))
			for round := range rounds {
				if rng.IntN(4) == 0 { // a plain consume (with an event id: safe to retry)
					n := int64(1 + rng.IntN(3))
					body := map[string]any{"amount": n, "event_id": "c-" + strconv.Itoa(c) + "-" + strconv.Itoa(round)}
					r := until503(func() *apiResponse { return h.do("POST", base+"/consume", body, auth) })
					var q periodQuotaJSON
					r.decode(t, &q)
					seen(q.Current)
					switch r.Status {
					case http.StatusOK:
						committed.Add(n)
					case http.StatusTooManyRequests:
						refused.Add(1)
					default:
						t.Errorf("consume: %s", r)
					}
					continue
				}
				n := int64(1 + rng.IntN(5))
				action := rng.IntN(4)
				// Only reservations left to expire live briefly: the others
				// must not expire before this caller acts on them.
				ttl := 30 + rng.IntN(60)
				if action == 3 {
					ttl = 1
				}
				body := map[string]any{"amount": n, "ttl_seconds": ttl}
				// Every reservation has a key, so that a 503 is retried
				// safely; half of them are also replayed on purpose.
				key := "k-" + strconv.Itoa(c) + "-" + strconv.Itoa(round)
				body["idempotency_key"] = key
				replay := rng.IntN(2) == 0
				r := until503(func() *apiResponse { return h.do("POST", base+"/reservations", body, auth) })
				if r.Status == http.StatusTooManyRequests {
					var q periodQuotaJSON
					r.decode(t, &q)
					seen(q.Current)
					if r.Header.Get("Retry-After") == "" || r.Header.Get("RateLimit") == "" {
						t.Errorf("refused reservation without Retry-After/RateLimit: %v", r.Header)
					}
					refused.Add(1)
					continue
				}
				if r.Status != http.StatusCreated && r.Status != http.StatusOK { // 200: a retry found the first
					t.Errorf("reserve: %s", r)
					continue
				}
				var resv reservationJSON
				r.decode(t, &resv)
				seen(resv.Quota.Current)
				// One left to expire (1 s) may already have when answered.
				if resv.Remaining != max(limit-resv.Quota.Current, 0) || resv.Amount != n || (resv.State != "open" && action != 3) {
					t.Errorf("reservation %+v", resv)
				}
				if replay { // the retry, on another instance, is the same reservation
					var again reservationJSON
					r := until503(func() *apiResponse { return other.do("POST", base+"/reservations", body, auth) })
					r.want(t, http.StatusOK).decode(t, &again)
					if again.ID != resv.ID {
						t.Errorf("idempotency key %s made %s and %s", key, resv.ID, again.ID)
					}
					replays.Add(1)
				}
				path := base + "/reservations/" + resv.ID
				switch action {
				case 0: // commit all, retried on another instance
					var c1, c2 reservationJSON
					until503(func() *apiResponse { return h.do("POST", path+"/commit", nil, auth) }).want(t, http.StatusOK).decode(t, &c1)
					until503(func() *apiResponse { return other.do("POST", path+"/commit", nil, auth) }).want(t, http.StatusOK).decode(t, &c2)
					if c1.State != "committed" || c1.Committed != n || c2.Committed != n {
						t.Errorf("commit all: %+v then %+v", c1, c2)
					}
					committed.Add(n)
				case 1: // commit part
					part := rng.Int64N(n + 1)
					var c1 reservationJSON
					until503(func() *apiResponse { return h.do("POST", path+"/commit", map[string]any{"amount": part}, auth) }).want(t, http.StatusOK).decode(t, &c1)
					if c1.Committed != part {
						t.Errorf("commit %d of %d: %+v", part, n, c1)
					}
					committed.Add(part)
					wantProblem(t, until503(func() *apiResponse { return other.do("POST", path+"/release", nil, auth) }), http.StatusConflict)
				case 2: // release
					var rel reservationJSON
					until503(func() *apiResponse { return other.do("POST", path+"/release", nil, auth) }).want(t, http.StatusOK).decode(t, &rel)
					if rel.State != "released" {
						t.Errorf("release: %+v", rel)
					}
					wantProblem(t, until503(func() *apiResponse { return h.do("POST", path+"/commit", nil, auth) }), http.StatusConflict)
				default: // abandon: it expires, and a late commit is refused
					time.Sleep(time.Until(resv.ExpiresAt) + 50*time.Millisecond)
					wantProblem(t, until503(func() *apiResponse { return h.do("POST", path+"/commit", nil, auth) }), http.StatusConflict)
					expiredRefused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	watchers.Wait()

	want := committed.Load()
	if maxSeen.Load() > limit {
		t.Errorf("the quota was seen at %d, past its limit %d", maxSeen.Load(), limit)
	}
	for i, h := range hs {
		var last periodQuotaJSON
		deadline := time.Now().Add(10 * time.Second)
		for {
			h.do("GET", base, nil, auth).want(t, http.StatusOK).decode(t, &last)
			if last.Current == want || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if last.Current != want {
			t.Errorf("instance %d: current %d, want the %d committed", i, last.Current, want)
		}
	}
	if got := hs[len(hs)-1].usageToday(auth, metric)[metric]; got != want {
		t.Errorf("usage in the log %d, want %d", got, want)
	}
	if refused.Load() == 0 || expiredRefused.Load() == 0 || replays.Load() == 0 {
		t.Errorf("the run did not reach every case: %d refused, %d expired, %d replays", refused.Load(), expiredRefused.Load(), replays.Load())
	}
	t.Logf("%d committed of %d; %d refused, %d expired, %d key replays", want, limit, refused.Load(), expiredRefused.Load(), replays.Load())
}

// TestAPIReservationInput: bad input is a 400 naming the field, unknown
// ids 404, a commit above the reservation 400, scopes as for consume.
func TestAPIReservationInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	w := h.createKey(o, "analytics:write")
	ro := h.createKey(o, "analytics:read")
	h.do("PUT", "/api/analytics/quotas/gen", map[string]any{"limit": 10, "enforced": true}, o.h()).want(t, http.StatusOK)
	base := "/api/analytics/quotas/gen/reservations"
	for _, tt := range []struct {
		body  any
		field string
	}{
		{map[string]any{}, "amount"},
		{map[string]any{"amount": 0}, "amount"},
		{map[string]any{"amount": "3"}, "amount"},
		{map[string]any{"amount": 1, "ttl_seconds": 86401}, "ttl_seconds"},
		{map[string]any{"amount": 1, "ttl_seconds": -1}, "ttl_seconds"},
		{map[string]any{"amount": 1, "ttl_seconds": int64(1) << 62}, "ttl_seconds"}, // past what a duration holds
		{map[string]any{"amount": 1, "ttl_seconds": -(int64(1) << 62)}, "ttl_seconds"},
		{map[string]any{"amount": 1, "idempotency_key": "bad\nkey"}, "idempotency_key"},
	} {
		r := h.do("POST", base, tt.body, hdr(w.Key, ""))
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%v: %s does not name %s", tt.body, r, tt.field)
		}
	}
	wantProblem(t, h.do("POST", "/api/analytics/quotas/no_quota/reservations", map[string]any{"amount": 1}, hdr(w.Key, "")), http.StatusNotFound)
	wantProblem(t, h.do("POST", base, map[string]any{"amount": 1}, hdr(ro.Key, "")), http.StatusForbidden)
	for _, id := range []string{"nope", "rsv_00000000000000000000000000000000", "rsv_' OR 1=1 --"} {
		wantProblem(t, h.do("POST", base+"/"+url.PathEscape(id)+"/commit", nil, hdr(w.Key, "")), http.StatusNotFound)
		wantProblem(t, h.do("POST", base+"/"+url.PathEscape(id)+"/release", nil, hdr(w.Key, "")), http.StatusNotFound)
	}
	if q := h.quota(o.h(), "gen"); q.Current != 0 {
		t.Fatalf("refused reservations hold %d", q.Current)
	}
	var resv reservationJSON
	h.do("POST", base, map[string]any{"amount": 4}, hdr(w.Key, "")).want(t, http.StatusCreated).decode(t, &resv)
	if resv.Quota.Current != 4 || resv.Remaining != 6 || time.Until(resv.ExpiresAt) < 4*time.Minute {
		t.Errorf("reservation %+v (default ttl 5 minutes)", resv)
	}
	// Another tenant cannot see or touch it.
	b := h.newTenant("bravo")
	h.do("PUT", "/api/analytics/quotas/gen", map[string]any{"limit": 10}, b.h()).want(t, http.StatusOK)
	wantProblem(t, h.do("POST", base+"/"+resv.ID+"/release", nil, b.h()), http.StatusNotFound)
	wantProblem(t, h.do("GET", base+"/"+resv.ID, nil, b.h()), http.StatusNotFound)
	r := h.do("POST", base+"/"+resv.ID+"/commit", map[string]any{"amount": 5}, hdr(w.Key, ""))
	if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("amount") {
		t.Errorf("commit above the reservation: %s", r)
	}
	wantProblem(t, h.do("POST", base+"/"+resv.ID+"/commit", map[string]any{"amount": 3, "extra": 1}, hdr(w.Key, "")), http.StatusBadRequest)
	var c reservationJSON
	h.do("POST", base+"/"+resv.ID+"/commit", map[string]any{"amount": 3}, hdr(w.Key, "")).want(t, http.StatusOK).decode(t, &c)
	if c.State != "committed" || c.Committed != 3 || c.Quota.Current != 3 || c.Remaining != 7 {
		t.Errorf("commit 3 of 4: %+v", c)
	}
	wantProblem(t, h.do("POST", base+"/"+resv.ID+"/commit", map[string]any{"amount": 2}, hdr(w.Key, "")), http.StatusConflict)
	h.do("GET", base+"/"+resv.ID, nil, hdr(ro.Key, "")).want(t, http.StatusOK)
	if got := h.usageToday(hdr(ro.Key, ""), "gen")["gen"]; got != 3 {
		t.Errorf("usage of gen %d, want 3", got)
	}
}
