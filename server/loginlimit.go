package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/secret"
)

// LoginFailures counts failed logins per key, shared by every instance
// that uses the same one (redis.Failures); the server keeps its own in
// memory when there is none, and falls back to it while the shared one
// fails.
type LoginFailures interface {
	// Fail counts one failure of key and returns the failures counted for
	// it since it was last quiet for window (a window without failures
	// forgets them).
	Fail(ctx context.Context, key string, window time.Duration) (int64, error)
	// Block refuses key for d from now.
	Block(ctx context.Context, key string, d time.Duration) error
	// Blocked returns how much longer key is refused (0: not refused).
	Blocked(ctx context.Context, key string) (time.Duration, error)
	// Reset forgets key's failures and block.
	Reset(ctx context.Context, key string) error
}

// Backoff is the throttle of one kind of key: after Free failures, each
// further failure blocks the key for Base, doubling with every failure up
// to Max; Window without failures forgets them.
type Backoff struct {
	Free   int64
	Base   time.Duration
	Max    time.Duration
	Window time.Duration
}

// delay is how long the n-th failure blocks the key.
func (b Backoff) delay(n int64) time.Duration {
	if n <= b.Free {
		return 0
	}
	d := b.Base << min(n-b.Free-1, 30)
	if d <= 0 || d > b.Max {
		return b.Max
	}
	return d
}

// LoginLimits are the login abuse limits. Failures are throttled per
// client address (PerAddress: one address trying many emails) and per
// email and address (PerEmail: one address guessing one account), never
// per email alone, so that a third party cannot lock the real user out:
// the user logs in from another address. HashMemory bounds the memory of
// the password hashes computed at once (logins and registrations); one
// more is refused with 503 and Retry-After.
type LoginLimits struct {
	PerAddress Backoff
	PerEmail   Backoff
	HashMemory int64 // bytes; the hash slots are HashMemory / secret.PasswordHashMemory, at least 1
	// HashWait is how long a login may wait for a free slot, when fewer
	// than 4 × slots are waiting already (0: the default, 1s; negative:
	// no wait). Waiting takes no hash memory.
	HashWait time.Duration
}

// DefaultLoginLimits are the documented defaults (docs/LOGIN_LIMITS.md).
func DefaultLoginLimits() LoginLimits {
	return LoginLimits{
		PerAddress: Backoff{Free: 20, Base: 30 * time.Second, Max: 15 * time.Minute, Window: 15 * time.Minute},
		PerEmail:   Backoff{Free: 5, Base: 30 * time.Second, Max: 15 * time.Minute, Window: 15 * time.Minute},
		HashMemory: 256 << 20,
	}
}

// HashSlots is how many password hashes the limits allow at once.
func (l LoginLimits) HashSlots() int {
	return max(1, int(l.HashMemory/secret.PasswordHashMemory))
}

// sharedTimeout bounds one call to the shared failure counter, so that a
// slow Redis delays a login by this much at most before the fallback;
// after a failure the shared counter is left alone for sharedRetry.
const (
	sharedTimeout = 250 * time.Millisecond
	sharedRetry   = 5 * time.Second
)

// loginThrottle applies LoginLimits.
type loginThrottle struct {
	limits LoginLimits
	shared LoginFailures // nil: memory only
	memory *memoryFailures
	log    *slog.Logger
	down   atomic.Bool  // the shared counter failed last time (logged once per outage)
	retry  atomic.Int64 // after a failure: when to try the shared counter again (Unix ns, process clock)
	slots  *hashSlots
}

func newLoginThrottle(limits LoginLimits, shared LoginFailures, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) *loginThrottle {
	wait := limits.HashWait
	switch {
	case wait == 0:
		wait = time.Second
	case wait < 0:
		wait = 0
	}
	t := &loginThrottle{limits: limits, shared: shared, memory: newMemoryFailures(now), log: log,
		slots: newHashSlots(limits.HashSlots(), wait)}
	t.slots.register(reg)
	return t
}

// throttleKeys are the keys of one login attempt: its address, and its
// email at that address. Emails are hashed: the keys may sit in Redis.
func throttleKeys(email, addr string) (perAddress, perEmail string) {
	sum := sha256.Sum256([]byte(tally.NormalizeEmail(email) + "\x00" + addr))
	return "addr:" + addr, "email:" + hex.EncodeToString(sum[:16])
}

// call runs fn on the shared counter, or on memory when there is none or
// the shared one fails.
func (t *loginThrottle) call(ctx context.Context, fn func(context.Context, LoginFailures) error) error {
	if t.shared != nil && time.Now().UnixNano() >= t.retry.Load() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
		err := fn(sctx, t.shared)
		cancel()
		if err == nil {
			if t.down.Swap(false) {
				t.log.InfoContext(ctx, "login limits shared again")
			}
			return nil
		}
		t.retry.Store(time.Now().Add(sharedRetry).UnixNano())
		if !t.down.Swap(true) {
			t.log.WarnContext(ctx, "login limits: shared counter failed; counting in memory", "err", err.Error())
		}
	}
	return fn(ctx, t.memory)
}

// wait returns how long an attempt for email from addr must wait (0: it
// may try now).
func (t *loginThrottle) wait(ctx context.Context, email, addr string) time.Duration {
	var wait time.Duration
	a, e := throttleKeys(email, addr)
	_ = t.call(ctx, func(ctx context.Context, f LoginFailures) error {
		wait = 0
		for _, k := range []string{a, e} {
			d, err := f.Blocked(ctx, k)
			if err != nil {
				return err
			}
			wait = max(wait, d)
		}
		return nil
	})
	return wait
}

// failed counts a failed attempt for email from addr.
func (t *loginThrottle) failed(ctx context.Context, email, addr string) {
	a, e := throttleKeys(email, addr)
	_ = t.call(ctx, func(ctx context.Context, f LoginFailures) error {
		for _, kb := range []struct {
			key string
			b   Backoff
		}{{a, t.limits.PerAddress}, {e, t.limits.PerEmail}} {
			n, err := f.Fail(ctx, kb.key, kb.b.Window)
			if err != nil {
				return err
			}
			if d := kb.b.delay(n); d > 0 {
				if err := f.Block(ctx, kb.key, d); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// succeeded forgets the failures of email at addr (not those of addr: a
// guesser cannot clear its address by logging into its own account).
func (t *loginThrottle) succeeded(ctx context.Context, email, addr string) {
	_, e := throttleKeys(email, addr)
	_ = t.call(ctx, func(ctx context.Context, f LoginFailures) error { return f.Reset(ctx, e) })
}

// hashSlots bounds the password hashes computed at once: each takes
// secret.PasswordHashMemory bytes while it runs.
type hashSlots struct {
	ch       chan struct{}
	wait     time.Duration // longest wait for a slot
	waiters  chan struct{} // bounds the requests waiting
	inFlight atomic.Int64
	peak     atomic.Int64
	refused  prometheus.Counter
}

func newHashSlots(n int, wait time.Duration) *hashSlots {
	return &hashSlots{ch: make(chan struct{}, n), wait: wait, waiters: make(chan struct{}, 4*n), refused: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sbh_password_hash_refused_total", Help: "Logins and registrations refused (503) because every password hash slot was busy.",
	})}
}

func (h *hashSlots) register(reg prometheus.Registerer) {
	reg.MustRegister(h.refused,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sbh_password_hash_slots", Help: "Password hashes allowed at once (LOGIN_HASH_MEMORY / memory of one hash)."},
			func() float64 { return float64(cap(h.ch)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sbh_password_hashes_in_flight", Help: "Password hashes running now."},
			func() float64 { return float64(h.inFlight.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sbh_password_hashes_peak", Help: "Most password hashes that ran at once since start."},
			func() float64 { return float64(h.peak.Load()) }))
}

// busy is the answer when every slot is taken.
var busy = &retryError{tally.Errorf(tally.EUnavailable, "too many logins at once; retry shortly"), time.Second}

// acquire takes a slot, waiting up to h.wait when no more than 4 × slots
// requests wait already; false when it got none.
func (h *hashSlots) acquire(ctx context.Context) bool {
	select {
	case h.ch <- struct{}{}:
		return true
	default:
	}
	if h.wait <= 0 {
		return false
	}
	select {
	case h.waiters <- struct{}{}:
		defer func() { <-h.waiters }()
	default:
		return false
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.ch <- struct{}{}:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// do runs fn (which hashes one password) in a slot, or returns busy when
// none is free in time.
func (h *hashSlots) do(ctx context.Context, fn func() error) error {
	if !h.acquire(ctx) {
		h.refused.Inc()
		return busy
	}
	n := h.inFlight.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	defer func() {
		h.inFlight.Add(-1)
		<-h.ch
	}()
	return fn()
}

// memoryFailures is LoginFailures in this process's memory, bounded to
// maxTrackedKeys keys (past it, expired keys go first, then any).
type memoryFailures struct {
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]*failureRecord
}

type failureRecord struct {
	n       int64
	expires time.Time // the count's end: last failure + window
	blocked time.Time // refused until
}

// maxTrackedKeys bounds memoryFailures.
const maxTrackedKeys = 100_000

func newMemoryFailures(now func() time.Time) *memoryFailures {
	return &memoryFailures{now: now, keys: map[string]*failureRecord{}}
}

// get returns key's live record (nil when none).
func (m *memoryFailures) get(key string, now time.Time) *failureRecord {
	r := m.keys[key]
	if r != nil && !now.Before(r.expires) && !now.Before(r.blocked) {
		delete(m.keys, key)
		return nil
	}
	return r
}

func (m *memoryFailures) Fail(_ context.Context, key string, window time.Duration) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	r := m.get(key, now)
	if r == nil {
		if len(m.keys) >= maxTrackedKeys {
			m.evict(now)
		}
		r = &failureRecord{}
		m.keys[key] = r
	}
	if !now.Before(r.expires) {
		r.n = 0
	}
	r.n++
	r.expires = now.Add(window)
	return r.n, nil
}

func (m *memoryFailures) evict(now time.Time) {
	for k := range m.keys {
		m.get(k, now)
	}
	for k := range m.keys {
		if len(m.keys) < maxTrackedKeys*9/10 {
			return
		}
		delete(m.keys, k)
	}
}

func (m *memoryFailures) Block(_ context.Context, key string, d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if r := m.get(key, now); r != nil {
		r.blocked = now.Add(d)
	}
	return nil
}

func (m *memoryFailures) Blocked(_ context.Context, key string) (time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if r := m.get(key, now); r != nil && now.Before(r.blocked) {
		return r.blocked.Sub(now), nil
	}
	return 0, nil
}

func (m *memoryFailures) Reset(_ context.Context, key string) error {
	m.mu.Lock()
	delete(m.keys, key)
	m.mu.Unlock()
	return nil
}
