package server_test

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/secret"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/server"
)

// fromAddr returns an HTTP client whose connections come from ip, one of
// the loopback addresses (127.0.0.0/8): to the server, another client
// address.
func fromAddr(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}}}
}

// testLoginLimits are the default limits with blocks long enough (a
// minute and up) that no test outruns them.
func withTestLoginLimits() harnessOption {
	return func(c *app.Config) {
		l := server.DefaultLoginLimits()
		l.PerAddress.Base, l.PerEmail.Base = time.Minute, time.Minute
		c.Server.LoginLimits = l
	}
}

// loginFrom tries email and password through client; it checks that a 429
// carries Retry-After.
func (h *harness) loginFrom(t *testing.T, client *http.Client, email, password string) int {
	t.Helper()
	r := h.doWith(t, client, "POST", "/api/auth/login", map[string]string{"email": email, "password": password}, nil)
	if r.Status == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("%s: Retry-After %q", r, r.Header.Get("Retry-After"))
		}
		assertProblem(t, r)
	}
	return r.Status
}

// attack has one address try 40 emails and another guess the victim's
// password 10 times, through one and two (the same instance or two
// sharing the limits); then the victim logs in from a third address.
func attack(t *testing.T, one, two *harness, victim string) {
	t.Helper()
	x, x2, y := fromAddr("127.0.0.2"), fromAddr("127.0.0.3"), fromAddr("127.0.0.4")

	// Many emails from one address: 20 free failures, then the 21st
	// blocks the address.
	codes := map[int]int{}
	for i := range 40 {
		h := one
		if i >= 10 {
			h = two
		}
		codes[h.loginFrom(t, x, "target"+strconv.Itoa(i)+"@example.com", "wrong-password")]++
	}
	if codes[http.StatusUnauthorized] != 21 || codes[http.StatusTooManyRequests] != 19 {
		t.Errorf("40 emails from one address: %v, want 21 × 401 then 19 × 429", codes)
	}
	if c := two.loginFrom(t, x, victim, harnessPassword); c != http.StatusTooManyRequests {
		t.Errorf("the blocked address still logs in: %d", c)
	}

	// Ten wrong passwords for the victim from another address: 5 free,
	// the 6th blocks that email at that address.
	codes = map[int]int{}
	for i := range 10 {
		h := one
		if i%2 == 1 {
			h = two
		}
		codes[h.loginFrom(t, x2, victim, "wrong-password-"+strconv.Itoa(i))]++
	}
	if codes[http.StatusUnauthorized] != 6 || codes[http.StatusTooManyRequests] != 4 {
		t.Errorf("10 wrong passwords: %v, want 6 × 401 then 4 × 429", codes)
	}
	// The address may still try other emails (its own count is 6).
	if c := two.loginFrom(t, x2, "someone-else@example.com", "wrong-password"); c != http.StatusUnauthorized {
		t.Errorf("another email from the guessing address: %d, want 401", c)
	}

	// The victim, from their own address, is not locked out.
	for _, h := range []*harness{one, two} {
		if c := h.loginFrom(t, y, victim, harnessPassword); c != http.StatusOK {
			t.Errorf("the victim from another address: %d, want 200", c)
		}
	}
}

// TestAPILoginLimits: an address trying many emails is throttled, and so
// is one address guessing one account, but the account's owner still logs
// in from elsewhere; a password over the limit is refused before hashing.
func TestAPILoginLimits(t *testing.T) {
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, append(opts, withTestLoginLimits())...)
		victim := "victim@example.com"
		h.register(victim, nil)
		attack(t, h, h, victim)

		r := h.do("POST", "/api/auth/login", map[string]string{"email": victim, "password": strings.Repeat("p", 1025)}, nil)
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("password") {
			t.Errorf("%s: does not name password", r)
		}
		if m := h.metrics(); !strings.Contains(m, "sbh_password_hash_slots 13") {
			t.Errorf("default hash slots (256 MiB / 19 MiB) not 13:\n%s", grepLines(m, "sbh_password_hash"))
		}
		h.noPanic(t)
	})
}

// TestAPILoginLimitsShared runs the attack across two instances sharing
// PostgreSQL and Redis: what one counts, the other enforces.
func TestAPILoginLimitsShared(t *testing.T) {
	t.Parallel()
	pg, rd := withPostgres(pgtest.FreshSchema(t)), withRedis(redisURL(t))
	one, two := newHarness(t, pg, rd, withTestLoginLimits()), newHarness(t, pg, rd, withTestLoginLimits())
	victim := "victim@example.com"
	one.register(victim, nil)
	attack(t, one, two, victim)
}

// TestAPILoginLimitsRedisDown: with Redis unreachable, the limits hold
// per instance, in memory, and logins keep working.
func TestAPILoginLimitsRedisDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withRedis("redis://127.0.0.1:1/0"), withTestLoginLimits())
	victim := "victim@example.com"
	h.register(victim, nil)
	attack(t, h, h, victim)
	if !strings.Contains(h.logs.String(), "login limits: shared counter failed") {
		t.Errorf("the fallback is not logged:\n%s", h.logs.String())
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAPILoginHashSlotsBound sends many logins at once to a server with
// two password hash slots: each answer is a login's (200, 401) or a clean
// 503 with Retry-After, and no more than two hashes ever ran at once (the
// memory bound), whatever the timing.
func TestAPILoginHashSlotsBound(t *testing.T) {
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, append(opts, func(c *app.Config) {
			c.Server.LoginLimits = server.DefaultLoginLimits()
			c.Server.LoginLimits.HashMemory = 2 * secret.PasswordHashMemory
			c.Server.LoginLimits.HashWait = -1 // refuse at once: more 503s to check
		})...)
		email := "busy@example.com"
		h.register(email, nil)
		var wg sync.WaitGroup
		var mu sync.Mutex
		codes := map[int]int{}
		for i := range 24 {
			wg.Go(func() {
				pw := harnessPassword
				if i%2 == 1 {
					pw = "wrong-" + strconv.Itoa(i)
				}
				c := fromAddr("127.0.1." + strconv.Itoa(i+1)) // no throttle gets in the way
				r := h.doWith(t, c, "POST", "/api/auth/login", map[string]string{"email": email, "password": pw}, nil)
				if r.Status == http.StatusServiceUnavailable {
					assertProblem(t, r)
					if r.Header.Get("Retry-After") == "" {
						t.Errorf("%s: no Retry-After", r)
					}
				}
				mu.Lock()
				codes[r.Status]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if codes[http.StatusOK]+codes[http.StatusUnauthorized]+codes[http.StatusServiceUnavailable] != 24 {
			t.Errorf("answers %v, want only 200, 401 and 503", codes)
		}
		m := h.metrics()
		if !strings.Contains(m, "\nsbh_password_hash_slots 2\n") {
			t.Errorf("slots:\n%s", grepLines(m, "sbh_password_hash"))
		}
		if !strings.Contains(m, "\nsbh_password_hashes_peak 1\n") && !strings.Contains(m, "\nsbh_password_hashes_peak 2\n") {
			t.Errorf("more hashes at once than slots:\n%s", grepLines(m, "sbh_password_hash"))
		}
		if want := "\nsbh_password_hash_refused_total " + strconv.Itoa(codes[http.StatusServiceUnavailable]) + "\n"; !strings.Contains(m, want) {
			t.Errorf("refusals %v, metrics:\n%s", codes, grepLines(m, "sbh_password_hash"))
		}
		t.Logf("24 logins on 2 slots: %v", codes)
	})
}
