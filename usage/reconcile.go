package usage

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// Healing is implemented by counters that are a cache which can be lost,
// go stale or miss writes (redis.Counters): the Reconciler asks them
// whether they need a rebuild and rebuilds them between BeginRebuild and
// EndRebuild, during which every instance refuses to admit on them.
type Healing interface {
	// Check reports whether the counters must be rebuilt from the log.
	Check(ctx context.Context) (bool, error)
	// MarkStale makes the next Check ask for a rebuild.
	MarkStale()
	// BeginRebuild takes the cluster-wide rebuild lock for ttl; false when
	// another instance holds it.
	BeginRebuild(ctx context.Context, ttl time.Duration) (bool, error)
	// EndRebuild publishes the rebuilt counters and releases the lock.
	EndRebuild(ctx context.Context) error
}

// ReconcileConfig configures a Reconciler; the zero value of each field
// means what its comment says.
type ReconcileConfig struct {
	// Tick is how often Healing counters are checked for a needed
	// rebuild (default 250ms): the bound on noticing a flushed Redis.
	Tick time.Duration
	// Interval is how often today's counters are compared with the log
	// (default 1m, RECONCILE_INTERVAL). A tenant whose counters differ
	// from the log while no write touched them, at two passes in a row,
	// is repaired.
	Interval time.Duration
	// Settle is how long a rebuild waits, once every instance stopped
	// admitting on the counters, before it reads the log: long enough for
	// every write admitted before to commit or fail (default 6s:
	// DB_STATEMENT_TIMEOUT's default plus a second).
	Settle time.Duration
}

func (c *ReconcileConfig) setDefaults() {
	if c.Tick <= 0 {
		c.Tick = 250 * time.Millisecond
	}
	if c.Interval <= 0 {
		c.Interval = time.Minute
	}
	if c.Settle <= 0 {
		c.Settle = 6 * time.Second
	}
}

// Reconciler keeps the counters equal to the event log. It is a
// tally.Runner:
//
//   - Healing counters (Redis) are checked every Tick; when they were
//     lost, belong to another database or missed writes, they are rebuilt
//     from the log (Heal). After a Redis fault ends, the counters equal the
//     log within the breaker's cool-down + Tick + Settle + the time to read
//     today's log.
//   - Every Interval, each tenant's counters of today are compared with the
//     log; a difference seen twice in a row with no write in between is
//     repaired (a rebuild for Healing counters, a Reset for the others):
//     unexplained drift converges within 2 × Interval + a rebuild.
type Reconciler struct {
	s   *Service
	cfg ReconcileConfig

	healing sync.Mutex // one heal at a time (the loop, and RebuildCounters at start)

	mu      sync.Mutex
	lastErr error // of the last rebuild; nil once one succeeds
	stop    context.CancelFunc
	done    chan struct{}
	drift   map[int64]string // tenant → the drift seen at the last pass
}

var _ tally.Runner = (*Reconciler)(nil)

// NewReconciler returns a Reconciler of s's counters.
func NewReconciler(s *Service, cfg ReconcileConfig) *Reconciler {
	cfg.setDefaults()
	return &Reconciler{s: s, cfg: cfg, drift: map[int64]string{}}
}

// Start implements tally.Runner.
func (r *Reconciler) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.stop, r.done = cancel, make(chan struct{})
	go r.loop(ctx)
}

// Stop implements tally.Runner: it ends a rebuild in progress (leaving
// the lock to expire) and returns once the loop is done.
func (r *Reconciler) Stop(ctx context.Context) error {
	if r.stop == nil {
		return nil
	}
	r.stop()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Err is the readiness check of the counters' rebuild: the error of the
// last rebuild when it failed and none succeeded since.
func (r *Reconciler) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *Reconciler) loop(ctx context.Context) {
	defer close(r.done)
	tick := time.NewTicker(r.cfg.Tick)
	defer tick.Stop()
	next := time.Now().Add(r.cfg.Interval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := r.HealIfNeeded(ctx, r.cfg.Settle); err != nil && ctx.Err() == nil {
			r.s.cfg.Logger.Warn("usage: counters rebuild failed; retrying", "err", err.Error())
		}
		if time.Now().After(next) {
			r.compare(ctx)
			next = time.Now().Add(r.cfg.Interval)
		}
	}
}

// HealIfNeeded rebuilds Healing counters from the log when they need it,
// waiting settle (see ReconcileConfig.Settle) between stopping admissions
// and reading the log. It does nothing for other counters, while Redis
// cannot be asked, or while another instance rebuilds.
func (r *Reconciler) HealIfNeeded(ctx context.Context, settle time.Duration) error {
	h, ok := r.s.counters.(Healing)
	if !ok {
		return nil
	}
	r.healing.Lock()
	defer r.healing.Unlock()
	need, err := h.Check(ctx)
	if err != nil || !need {
		return nil // Redis is down: nothing to rebuild into yet
	}
	err = r.heal(ctx, h, settle)
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
	return err
}

func (r *Reconciler) heal(ctx context.Context, h Healing, settle time.Duration) error {
	ok, err := h.BeginRebuild(ctx, settle+time.Minute)
	if err != nil || !ok {
		return err
	}
	r.s.cfg.Logger.Info("usage: rebuilding counters from the event log", "settle", settle.String())
	if settle > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(settle):
		}
	}
	if err := r.s.Rebuild(ctx); err != nil {
		return fmt.Errorf("rebuild counters: %w", err)
	}
	return h.EndRebuild(ctx)
}

// compare is one drift pass over every tenant's counters of today.
func (r *Reconciler) compare(ctx context.Context) {
	if p, ok := r.s.counters.(interface {
		Prune(context.Context, time.Time) error
	}); ok {
		if err := p.Prune(ctx, r.s.cfg.Now()); err != nil {
			r.s.cfg.Logger.Warn("usage: prune counters", "err", err.Error())
		}
	}
	tenants, err := r.s.store.AllTenants(ctx)
	if err != nil {
		return
	}
	d := day(r.s.cfg.Now())
	seen := map[int64]string{}
	for _, t := range tenants {
		drift, err := r.driftOf(ctx, t.ID, d)
		if err != nil || drift == "" {
			continue
		}
		if r.drift[t.ID] != drift {
			seen[t.ID] = drift // first sighting: it may be a write in flight
			continue
		}
		r.s.cfg.Logger.Warn("usage: counters drifted from the log; repairing", "tenant", t.ID, "drift", drift)
		if err := r.repair(ctx, t.ID, d); err != nil {
			r.s.cfg.Logger.Warn("usage: repair counters", "tenant", t.ID, "err", err.Error())
		}
	}
	r.drift = seen
}

// driftOf describes how the tenant's counters of day d differ from the
// log, "" when they agree or when a write changed them during the read.
func (r *Reconciler) driftOf(ctx context.Context, tenantID int64, d time.Time) (string, error) {
	before, err := r.s.counters.All(ctx, tenantID, d)
	if err != nil {
		return "", err
	}
	log, err := r.s.logValues(ctx, tenantID, d)
	if err != nil {
		return "", err
	}
	after, err := r.s.counters.All(ctx, tenantID, d)
	if err != nil {
		return "", err
	}
	if !sameValues(before, after) || sameValues(before, log) {
		return "", nil
	}
	return fmt.Sprintf("counters %v, log %v", nonZero(before), nonZero(log)), nil
}

func (r *Reconciler) repair(ctx context.Context, tenantID int64, d time.Time) error {
	if h, ok := r.s.counters.(Healing); ok {
		h.MarkStale() // the next tick rebuilds, with every instance holding admissions
		return nil
	}
	values, err := r.s.logValues(ctx, tenantID, d)
	if err != nil {
		return err
	}
	return r.s.counters.Reset(ctx, tenantID, d, values)
}

func nonZero(m map[string]int64) map[string]int64 {
	out := maps.Clone(m)
	maps.DeleteFunc(out, func(_ string, v int64) bool { return v == 0 })
	return out
}

func sameValues(a, b map[string]int64) bool {
	return maps.Equal(nonZero(a), nonZero(b))
}
