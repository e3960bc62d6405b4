// Package rollup materialises hourly and daily aggregates of the event log,
// answers the usage and KPI queries that read them, and schedules the
// background jobs that keep them current. It has three parts, one type
// each:
//
//   - Rollup (rollup.go, day.go, retention.go) is the write side: RunDirty,
//     RunDays and PurgeExpired. RecomputeDay recomputes a whole UTC day of
//     a tenant from the log, written once over the small per-transaction
//     primitives each store offers (tally.RollupTx), so running it again
//     changes nothing; an event that arrives late marks its hour dirty
//     until the next run.
//   - Reports (report.go) is the read side: Usage, KPIs, HourlyRows and
//     HourlyMetrics. They use the invariant the store keeps: every hour
//     before a tenant's oldest dirty hour has exact rollup rows, so they
//     read rollups up to there and the raw log after.
//   - Scheduler (schedule.go) runs a declared table of tasks (tasks.go:
//     Rollup.Tasks): every hour at :05 UTC the dirty days, every day at
//     00:00 UTC + a configured offset yesterday in full and then the
//     retention purge.
package rollup

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tallyhq/tally"
)

// The kinds of rollup runs, as recorded in tally.RollupRun.Kind.
const (
	KindHourly = "hourly" // the dirty days, every hour
	KindDaily  = "daily"  // yesterday in full, every day
	KindManual = "manual" // asked for (API, CLI)
)

// maxRunDays bounds the days of one RunDays call, per tenant.
const maxRunDays = 1000

// Config configures a Rollup. The zero value of each field is usable and
// means what its comment says.
type Config struct {
	// Rules map events to metrics (tally.DefaultUsageRules when nil).
	Rules tally.UsageRules
	// RunTimeout bounds one run (default 5m).
	RunTimeout time.Duration
	// Now tells the time (default time.Now).
	Now func() time.Time
	// Logger gets failed runs (default: discarded).
	Logger *slog.Logger
	// PurgeBatch is about how many events one transaction of the
	// retention purge deletes (default 2000): a tenant's purge of more
	// runs as short transactions, oldest first, each deleting the events
	// before a cut that advances by an equal share of the time to purge,
	// so that it never holds the writer (SQLite) or the tenant's lock
	// (PostgreSQL) for long. Negative: the whole purge in one transaction
	// (the ClickHouse tier, where each step would be a mutation of its
	// own).
	PurgeBatch int
}

func (c *Config) setDefaults() {
	if c.Rules == nil {
		c.Rules = tally.DefaultUsageRules()
	}
	if c.RunTimeout <= 0 {
		c.RunTimeout = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.PurgeBatch == 0 {
		c.PurgeBatch = 2000
	}
}

// Rollup is the rollup job: it rolls up the days of tenants that need it
// and purges the raw events past their retention.
type Rollup struct {
	cfg   Config
	store tally.Store

	duration prometheus.Histogram
	runs     *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// New returns a Rollup over store that registers its metrics with reg
// (nil: none registered).
func New(cfg Config, store tally.Store, reg prometheus.Registerer) *Rollup {
	cfg.setDefaults()
	f := promauto.With(reg)
	return &Rollup{
		cfg:   cfg,
		store: store,
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "sbh_analytics_rollup_duration_seconds",
			Help:    "Duration of rollup runs.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8), // 10ms .. ~164s
		}),
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_analytics_rollup_runs_total",
			Help: "Rollup runs by kind (hourly, daily, manual).",
		}, []string{"kind"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_analytics_rollup_failures_total",
			Help: "Rollup runs that failed, by kind.",
		}, []string{"kind"}),
	}
}

// Result is what a run did.
type Result struct {
	Days       int   `json:"days"` // tenant-days rolled up
	Rows       int   `json:"rows"` // rows written
	DurationMS int64 `json:"duration_ms"`
}

// tenantDay is one UTC day of one tenant.
type tenantDay struct {
	tenant int64
	day    time.Time
}

// RunDirty rolls up every (tenant, UTC day) that has a dirty hour before
// the current hour, and records the run as "hourly", by the "system" actor;
// then it backfills the meters' rollups (BackfillMeters).
func (r *Rollup) RunDirty(ctx context.Context) (Result, error) {
	res, err := r.runDirty(ctx)
	if _, berr := r.BackfillMeters(ctx); berr != nil {
		err = errors.Join(err, berr)
	}
	return res, err
}

func (r *Rollup) runDirty(ctx context.Context) (Result, error) {
	before := tally.HourStart(r.cfg.Now())
	return r.run(ctx, KindHourly, "", func(ctx context.Context) ([]tenantDay, error) {
		hours, err := r.store.DirtyHours(ctx, before)
		if err != nil {
			return nil, err
		}
		var days []tenantDay // hours come ordered by tenant and hour
		for _, h := range hours {
			td := tenantDay{h.TenantID, tally.DayStart(h.Hour)}
			if n := len(days); n == 0 || days[n-1].tenant != td.tenant || !days[n-1].day.Equal(td.day) {
				days = append(days, td)
			}
		}
		return days, nil
	})
}

// RunDays rolls up every UTC day from the one containing from to the one
// containing to (inclusive) of tenantID, or of every tenant when tenantID
// is 0, and records the run under kind ("manual" when empty) by actor (an
// audit actor: "cli", a tally.Principal's Actor; "system" when empty).
// EInvalid when to is before from or the range is longer than 1000 days.
func (r *Rollup) RunDays(ctx context.Context, tenantID int64, from, to time.Time, kind, actor string) (Result, error) {
	first, last := tally.DayStart(from), tally.DayStart(to)
	if last.Before(first) {
		return Result{}, tally.Invalid("from is after to", tally.FieldError{Field: "from", Message: "must not be after to"})
	}
	if last.Sub(first) >= maxRunDays*24*time.Hour {
		return Result{}, tally.Invalid("range too long", tally.FieldError{Field: "to", Message: "at most 1000 days per run"})
	}
	if kind == "" {
		kind = KindManual
	}
	return r.run(ctx, kind, actor, func(ctx context.Context) ([]tenantDay, error) {
		tenants := []int64{tenantID}
		if tenantID == 0 {
			all, err := r.store.AllTenants(ctx)
			if err != nil {
				return nil, err
			}
			tenants = tenants[:0]
			for _, t := range all {
				tenants = append(tenants, t.ID)
			}
		}
		var days []tenantDay
		for _, t := range tenants {
			for d := first; !d.After(last); d = d.Add(24 * time.Hour) {
				days = append(days, tenantDay{t, d})
			}
		}
		return days, nil
	})
}

// retained drops the days before their tenant's retention start: their raw
// events are purged (or about to be), and rebuilding them from the log
// would erase the aggregates that outlive the raw events.
func (r *Rollup) retained(ctx context.Context, days []tenantDay) ([]tenantDay, error) {
	if len(days) == 0 {
		return days, nil
	}
	tenants, err := r.store.AllTenants(ctx)
	if err != nil {
		return nil, err
	}
	now := r.cfg.Now()
	start := make(map[int64]time.Time, len(tenants))
	for _, t := range tenants {
		start[t.ID] = t.RetentionStart(now)
	}
	kept := days[:0]
	for _, td := range days {
		if s, ok := start[td.tenant]; ok && !td.day.Before(s) {
			kept = append(kept, td)
		}
	}
	return kept, nil
}

// run rolls up the days plan lists under its own timeout, then records,
// counts and logs the outcome, and writes a "rollup.run" audit entry by
// actor in each tenant it rolled up. A failing day does not stop the others.
func (r *Rollup) run(parent context.Context, kind, actor string, plan func(context.Context) ([]tenantDay, error)) (Result, error) {
	began := time.Now()
	startedAt := r.cfg.Now()
	ctx, cancel := context.WithTimeout(parent, r.cfg.RunTimeout)
	defer cancel()
	var res Result
	days, err := plan(ctx)
	if err == nil {
		days, err = r.retained(ctx, days)
	}
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	var audits []*tenantRun // in order of tenant, as the days come
	probes := map[int64]*tenantProbe{}
	for _, td := range days {
		p := probes[td.tenant]
		if p == nil {
			p = &tenantProbe{from: td.day, to: td.day}
			probes[td.tenant] = p
		}
		p.from, p.to = minTime(p.from, td.day), maxTime(p.to, td.day)
	}
	for _, td := range days {
		if n := len(audits); n == 0 || audits[n-1].tenant != td.tenant {
			audits = append(audits, &tenantRun{tenant: td.tenant, from: td.day, to: td.day})
		}
		a := audits[len(audits)-1]
		a.from, a.to = minTime(a.from, td.day), maxTime(a.to, td.day)
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		n, err := r.rollDay(ctx, td, probes[td.tenant])
		if err != nil {
			a.failed++
			errs = append(errs, err)
			r.cfg.Logger.Error("rollup: day failed", "kind", kind, "tenant", td.tenant, "day", td.day.Format(time.DateOnly), "err", err)
			continue
		}
		res.Days++
		res.Rows += n
		a.days++
		a.rows += n
	}
	elapsed := time.Since(began)
	res.DurationMS = elapsed.Milliseconds()
	err = errors.Join(errs...)

	r.runs.WithLabelValues(kind).Inc()
	r.duration.Observe(elapsed.Seconds())
	run := tally.RollupRun{Kind: kind, StartedAt: startedAt, FinishedAt: r.cfg.Now(), Days: res.Days, Rows: res.Rows}
	if err != nil {
		r.failures.WithLabelValues(kind).Inc()
		run.Err = err.Error()
		r.cfg.Logger.Error("rollup: run failed", "kind", kind, "days", res.Days, "err", err)
	}
	// Record even when the run timed out or its caller went away.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
	defer rcancel()
	if rerr := r.store.RecordRollupRun(rctx, run); rerr != nil {
		r.cfg.Logger.Error("rollup: record run", "kind", kind, "err", rerr)
		err = errors.Join(err, rerr)
	}
	if actor == "" {
		actor = "system"
	}
	at := r.cfg.Now().UTC().Truncate(time.Microsecond)
	for _, a := range audits {
		if a.days == 0 && a.failed == 0 {
			continue // stopped before this tenant
		}
		meta := map[string]any{"kind": kind, "from": a.from.Format(time.DateOnly), "to": a.to.Format(time.DateOnly), "days": a.days, "rows": a.rows}
		if a.failed > 0 {
			meta["failed"] = a.failed
		}
		e := &tally.AuditEntry{TenantID: a.tenant, At: at, Actor: actor, Action: "rollup.run", Target: kind, Meta: meta}
		if aerr := r.store.WriteAudit(rctx, e); aerr != nil {
			r.cfg.Logger.Error("rollup: audit run", "kind", kind, "tenant", a.tenant, "err", aerr)
		}
	}
	return res, err
}

// tenantProbe is what a run learnt of one tenant before rolling up its
// days from..to (inclusive): its oldest dirty hour, and whether the whole
// range has no event and no rollup row.
type tenantProbe struct {
	from, to time.Time
	probed   bool
	oldest   time.Time
	empty    bool
}

// rollDay recomputes one tenant-day unless it has nothing to roll up: no
// event, no rollup rows, and no dirty hour at or before its end. The
// checks are index probes, made once for the tenant's whole range and
// then per day, so an idle tenant costs a few reads per run whatever its
// days, and a run over every tenant and day scales with the data. A stale
// oldest dirty hour is only earlier (the run clears marks), which rolls up
// more, never less; a change racing the checks marks its hour, which the
// next run rolls up.
func (r *Rollup) rollDay(ctx context.Context, td tenantDay, p *tenantProbe) (int, error) {
	if !p.probed {
		var err error
		if p.oldest, err = r.store.OldestDirty(ctx, td.tenant); err != nil {
			return 0, err
		}
		if p.empty, err = r.nothingStored(ctx, td.tenant, p.from, p.to.Add(24*time.Hour)); err != nil {
			return 0, err
		}
		p.probed = true
	}
	end := td.day.Add(24 * time.Hour)
	if p.oldest.IsZero() || !p.oldest.Before(end) {
		if p.empty {
			return 0, nil
		}
		empty, err := r.nothingStored(ctx, td.tenant, td.day, end)
		if err != nil || empty {
			return 0, err
		}
	}
	return RecomputeDay(ctx, r.store, td.tenant, td.day, r.cfg.Rules)
}

// nothingStored tells whether tenantID has neither an event nor a daily
// rollup row in [from, to).
func (r *Rollup) nothingStored(ctx context.Context, tenantID int64, from, to time.Time) (bool, error) {
	evs, _, err := r.store.ListEvents(ctx, tenantID, tally.EventFilter{From: from, To: to.Add(-time.Microsecond), Limit: 1})
	if err != nil || len(evs) > 0 {
		return false, err
	}
	rows, err := r.store.RollupDays(ctx, tenantID, from, to)
	return len(rows) == 0, err
}

// tenantRun is what one run did in one tenant, for its audit entry.
type tenantRun struct {
	tenant     int64
	from, to   time.Time
	days, rows int
	failed     int
}
