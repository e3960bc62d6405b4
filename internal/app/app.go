// Package app wires tally together: the store, the ingest writer and
// buffer, usage metering, rollups and the HTTP server, started and stopped
// in the right order. `tally serve` and the end-to-end tests share it.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse"
	"github.com/tallyhq/tally/identity"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/insight"
	"github.com/tallyhq/tally/live"
	"github.com/tallyhq/tally/meter"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/redis"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/server"
	"github.com/tallyhq/tally/sqlite"
	"github.com/tallyhq/tally/usage"
)

// Config is everything the services need. Zero values take the documented
// defaults of each part.
type Config struct {
	SQLitePath string
	// PostgresURL, when set, selects the PostgreSQL backend instead of
	// SQLite; several instances may then share it (and Redis).
	PostgresURL string
	// EventsURL, when set (clickhouse://HOST:HTTP_PORT/DATABASE, with
	// PostgresURL), keeps the event log on ClickHouse; everything else stays
	// on PostgreSQL.
	EventsURL string
	// RedisURL, when set, keeps usage counters in Redis so that several
	// instances share them (quota consume stays atomic across instances).
	RedisURL string
	// RedisPrefix starts every Redis key (default "tally:").
	RedisPrefix string
	// RedisTimeout bounds each Redis call (REDIS_TIMEOUT, default 50ms);
	// a call that takes longer fails and counts against the breaker.
	RedisTimeout time.Duration
	// ReconcileInterval is how often the usage counters are compared
	// with the event log (RECONCILE_INTERVAL, default 1m).
	ReconcileInterval time.Duration
	// AbsenceInterval is how often every absence alert is evaluated
	// (ABSENCE_INTERVAL, default 1m).
	AbsenceInterval time.Duration
	// ReservationSweep is how often expired quota reservations are
	// released (default 1s).
	ReservationSweep time.Duration
	SQLiteSync       string // FULL (default) or NORMAL
	// StatementTimeout bounds one database statement or write
	// transaction on either backend (default 5s).
	StatementTimeout time.Duration
	AnalyticsEnabled bool
	QuotasEnabled    bool
	QuotaDefaults    map[string]int64
	UsageRules       tally.UsageRules // nil: tally.DefaultUsageRules
	RedactKeys       []string         // nil: the built-in list
	IngestQueue      int
	LabelCap         int
	RollupDailyAt    time.Duration
	WebhookBackoff   time.Duration // first retry delay of quota webhooks (default 30s)
	WebhookPoll      time.Duration // how often the webhook outbox is polled (default 5s)
	// AllowPrivateWebhooks lets quota webhooks reach loopback and private
	// addresses (off by default: a tenant admin must not make tally call
	// into its own network).
	AllowPrivateWebhooks bool
	// LiveBuffer is how many deliveries (one per read of the log) may wait
	// for one live-tail subscriber before it is dropped (default 64).
	LiveBuffer int
	// LivePoll is how often a followed tenant's log is re-read without a
	// wake (default 2s).
	LivePoll time.Duration
	Server   server.Config
	Logger   *slog.Logger
	Now      func() time.Time
}

// App is a running tally.
type App struct {
	Store    tally.Store
	Accounts *identity.Service
	Registry *prometheus.Registry
	Writer   *ingest.Writer
	Live     *live.Hub // the live tail, fed by the writer
	Pipeline *ingest.Pipeline
	Tracker  *ingest.Buffer
	Recorder *ingest.Recorder
	Usage    *usage.Service
	Webhooks *usage.Dispatcher // sends the webhook outbox
	// Absence manages and evaluates absence alerts (nil when the store
	// does not keep them).
	Absence *usage.Absence
	// Reconciler keeps the usage counters equal to the event log.
	Reconciler *usage.Reconciler
	Rollup     *rollup.Rollup    // the rollup and retention jobs
	Reports    *rollup.Reports   // usage and KPI reads
	Scheduler  *rollup.Scheduler // runs the Rollup's tasks
	Server     *server.Server

	cfg   Config
	redis goredis.UniversalClient
	// redisDown: Redis did not answer at start; the app runs degraded.
	redisDown bool
	// loginFailures are the login limits' counts in Redis (nil without
	// REDIS_URL: each instance counts in memory).
	loginFailures server.LoginFailures
	// runners are the background services started so far, in start
	// order; Close stops them in the reverse order.
	runners   []tally.Runner
	scheduled bool
	closed    bool
}

// New opens the database, starts the ingest writer and the auto-track
// buffer, rebuilds today's usage counters from the log and builds the
// HTTP server. Call Close when done.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UsageRules == nil {
		cfg.UsageRules = tally.DefaultUsageRules()
	}
	store, err := OpenStore(ctx, StoreConfig{SQLitePath: cfg.SQLitePath, SQLiteSync: cfg.SQLiteSync,
		PostgresURL: cfg.PostgresURL, EventsURL: cfg.EventsURL, StatementTimeout: cfg.StatementTimeout, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &App{Store: store, Accounts: identity.New(store, cfg.Now, cfg.Logger), Registry: reg, cfg: cfg}
	im := ingest.NewMetrics(reg, cfg.LabelCap).NameTenants(cfg.LabelCap, func(ctx context.Context, id int64) (string, error) {
		t, err := store.TenantByID(ctx, id)
		if err != nil {
			return "", err
		}
		return t.Slug, nil
	})
	// The stream shows the tenants' opaque event ids; the key is read
	// below, before anything is ingested.
	var eventIDs *tally.EventIDs
	lcfg := live.Config{Buffer: cfg.LiveBuffer, Poll: cfg.LivePoll, Logger: cfg.Logger,
		PublicID: func(tenantID, id int64) int64 { return eventIDs.Public(tenantID, id) }}
	if pg, ok := postgresOf(store); ok {
		lcfg.Broker = pg // every instance's events reach every instance's subscribers
		if db, ok := store.(*postgres.DB); ok {
			// Never past an id another instance has yet to commit. The
			// ClickHouse tier has no such horizon yet (docs/SCALING.md).
			lcfg.Horizon = db.TailHorizon()
		}
	} else {
		lcfg.SoleWriter = true // one process writes a SQLite file: new events from the writer's memory
	}
	a.Live = live.New(store, lcfg)
	wcfg := ingest.WriterConfig{QueueSize: cfg.IngestQueue, Committed: a.Live.Committed}
	if _, ok := store.(*clickhouse.Store); ok {
		// ClickHouse wants few, large inserts, and each batch costs two
		// PostgreSQL transactions and one insert whatever its size: let
		// the batches that pile up during a write grow larger.
		wcfg.MaxBatch = 5000
	}
	a.Writer = ingest.NewWriter(store, wcfg, im)
	// Counters: in Redis when REDIS_URL is set; else in the database when
	// it is PostgreSQL (shared by every instance on it, so exact across
	// them); else in memory, for the one instance a SQLite file serves.
	var counters tally.Counters
	if pg, ok := postgresOf(store); ok {
		counters = pg.Counters()
	} else {
		counters = usage.NewMemoryCounters()
	}
	ready := map[string]func(context.Context) error{}
	degraded := map[string]func(context.Context) error{}
	if cfg.RedisURL != "" {
		goredis.SetLogger(redisLog{cfg.Logger})
		var down *redis.UnreachableError
		if a.redis, err = redis.OpenTimeout(ctx, cfg.RedisURL, cfg.RedisTimeout); errors.As(err, &down) {
			// One clear line instead of the pool's retries: the instance
			// serves (readiness says redis is degraded, enforced quotas
			// answer 503) and the client reconnects when Redis is back.
			cfg.Logger.Error("redis unreachable at start; running degraded", "addr", down.Addr, "err", down.Err.Error())
			a.redisDown = true
		} else if err != nil {
			store.Close()
			return nil, err
		}
		prefix := cfg.RedisPrefix
		if prefix == "" {
			prefix = "tally:"
		}
		identity, err := countersIdentity(ctx, store, cfg.SQLitePath)
		if err != nil {
			store.Close()
			a.redis.Close()
			return nil, err
		}
		rc := redis.New(a.redis, redis.Config{Prefix: prefix, Identity: identity, Timeout: cfg.RedisTimeout, Now: cfg.Now})
		counters = rc
		degraded["redis"] = func(ctx context.Context) error {
			err := rc.Healthy(ctx)
			if err == nil {
				err = a.Reconciler.Err()
			}
			if err != nil {
				return &tally.Error{Code: tally.EUnavailable, Err: err,
					Message: "usage counters in Redis unavailable (unreachable, circuit open, or being rebuilt from the log); enforced quotas answer 503"}
			}
			return nil
		}
		a.loginFailures = redis.NewFailures(a.redis, prefix)
	}
	if p, ok := store.(writeProber); ok {
		ready["database_writes"] = func(ctx context.Context) error { return a.checkWrites(ctx, p) }
	}
	if _, mem := counters.(*usage.MemoryCounters); mem && cfg.PostgresURL != "" {
		store.Close()
		return nil, errors.New("usage counters in memory on a shared PostgreSQL database would let every instance admit a full quota: use the database counters (no REDIS_URL) or REDIS_URL")
	}
	var hc *http.Client
	if !cfg.AllowPrivateWebhooks {
		hc = usage.PublicWebhookClient(10 * time.Second)
	}
	a.Webhooks = usage.NewDispatcher(usage.DispatcherConfig{HTTPClient: hc, Backoff: cfg.WebhookBackoff,
		Poll: cfg.WebhookPoll, Now: cfg.Now, Logger: cfg.Logger}, store)
	a.Usage = usage.NewService(usage.Config{
		Rules: cfg.UsageRules, Defaults: cfg.QuotaDefaults, QuotasEnabled: cfg.QuotasEnabled,
		Wake: a.Webhooks.Wake, Logger: cfg.Logger, Now: cfg.Now,
	}, store, counters, reg, cfg.LabelCap)
	a.Pipeline = ingest.NewPipeline(a.Writer, a.Usage, im)
	a.Tracker = ingest.NewBuffer(a.Pipeline, 4096, im)
	a.Recorder = ingest.NewRecorder(ingest.RecorderConfig{
		Validator: ingest.NewValidator(ingest.Config{RedactKeys: cfg.RedactKeys}),
		Pipeline:  a.Pipeline, Tracker: a.Tracker, Quotas: a.Usage, Now: cfg.Now, Logger: cfg.Logger,
		Links: linkStore(store),
	})
	// The webhook dispatcher first: usage alerts wake it, and it sends
	// until the writer settled its last batch. The writer before the
	// buffer, which writes through it.
	settle := cfg.StatementTimeout
	if settle <= 0 {
		settle = 5 * time.Second
	}
	a.Reconciler = usage.NewReconciler(a.Usage, usage.ReconcileConfig{Interval: cfg.ReconcileInterval, Settle: settle + time.Second})
	a.start(a.Webhooks, a.Live, a.Writer, a.Tracker)
	var absence server.Absence
	if as, ok := store.(usage.AbsenceStore); ok {
		a.Absence = usage.NewAbsence(usage.AbsenceConfig{Interval: cfg.AbsenceInterval, Wake: a.Webhooks.Wake,
			LabelCap: cfg.LabelCap, Now: cfg.Now, Logger: cfg.Logger}, as, reg)
		absence = a.Absence
	}
	quotaMetrics := slices.Sorted(maps.Keys(cfg.QuotaDefaults))
	var leader rollup.Leader
	if l, ok := store.(rollup.Leader); ok {
		leader = l // several instances share this database: one runs the schedule
	}
	rcfg := rollup.Config{Rules: cfg.UsageRules, Logger: cfg.Logger, Now: cfg.Now}
	if _, ok := store.(*clickhouse.Store); ok {
		rcfg.PurgeBatch = -1 // a purge is a ClickHouse mutation: one per run, not per day
	}
	a.Rollup = rollup.New(rcfg, store, reg)
	a.Reports = rollup.NewReports(rollup.ReportsConfig{Rules: cfg.UsageRules, QuotaMetrics: quotaMetrics}, store)
	a.Scheduler = rollup.NewScheduler(rollup.SchedulerConfig{Tasks: a.Rollup.Tasks(cfg.RollupDailyAt),
		Leader: leader, Now: cfg.Now, Logger: cfg.Logger}, reg)
	if err := a.RebuildCounters(ctx); err != nil {
		a.Close(ctx)
		return nil, err
	}
	idKey, err := store.ServerKey(ctx, tally.EventIDKeyName)
	if err != nil {
		a.Close(ctx)
		return nil, err
	}
	eventIDs = tally.NewEventIDs(idKey)
	scfg := cfg.Server
	scfg.AnalyticsEnabled = cfg.AnalyticsEnabled
	scfg.AllowPrivateWebhooks = cfg.AllowPrivateWebhooks
	a.Server, err = server.New(scfg, server.Deps{
		Store: store, Accounts: a.Accounts, Logger: cfg.Logger, Registry: reg, Now: cfg.Now,
		Recorder: a.Recorder, Quotas: a.Usage, Reports: a.Reports, Rollups: a.Rollup,
		Meters:      meter.New(meter.Config{Rules: cfg.UsageRules, Quotas: a.Usage}, store),
		Live:        a.Live,
		Absence:     absence,
		Insights:    insight.New(insight.Config{}, store),
		ReadyChecks: ready, DegradedChecks: degraded, LoginFailures: a.loginFailures,
		EventIDs: eventIDs,
	})
	if err != nil {
		a.Close(ctx)
		return nil, err
	}
	a.start(a.Reconciler, usage.NewExpirer(a.Usage, cfg.ReservationSweep))
	if a.Absence != nil {
		a.start(a.Absence) // every instance evaluates; each transition is won by one
	}
	return a, nil
}

// postgresOf is the PostgreSQL store under store: itself, or the one
// that holds everything but a ClickHouse event log.
func postgresOf(store tally.Store) (*postgres.DB, bool) {
	switch s := store.(type) {
	case *postgres.DB:
		return s, true
	case *clickhouse.Store:
		return s.Postgres(), true
	}
	return nil, false
}

// countersIdentity is the identity of the database whose events the
// counters count, recorded in Redis to detect a Redis that holds another
// database's counters: PostgreSQL's counters epoch, or the SQLite file's
// path (a new file at the same path is not told apart: clear the Redis
// prefix, or use a new one, when replacing it).
func countersIdentity(ctx context.Context, store tally.Store, sqlitePath string) (string, error) {
	if pg, ok := postgresOf(store); ok {
		return pg.Counters().Epoch(ctx)
	}
	return "sqlite:" + sqlitePath, nil
}

// writeProber is a store that can check it takes writes (both backends).
type writeProber interface {
	ProbeWrite(ctx context.Context) error
}

// writeFailureShown is how long a failed ingest commit keeps readiness
// failing when no commit succeeded since, even if a probe passes (a probe
// is a small write; the failed commit was a real one).
const writeFailureShown = 10 * time.Second

// checkWrites is the database_writes readiness check: the store's write
// probe, and the writer's last commit when it failed recently.
func (a *App) checkWrites(ctx context.Context, p writeProber) error {
	if err := p.ProbeWrite(ctx); err != nil {
		return err
	}
	if f := a.Writer.LastFailure(); f != nil && time.Since(f.At) < writeFailureShown &&
		tally.ErrorCodeOf(f.Err) == tally.EUnavailable {
		return f.Err
	}
	return nil
}

// start starts runners in order and adds them to the ones Close stops.
func (a *App) start(runners ...tally.Runner) {
	for _, r := range runners {
		r.Start()
		a.runners = append(a.runners, r)
	}
}

// StoreConfig says which store OpenStore opens and how.
type StoreConfig struct {
	SQLitePath       string
	SQLiteSync       string
	PostgresURL      string           // when set, PostgreSQL instead of SQLite
	EventsURL        string           // when set (with PostgresURL), the event log on ClickHouse
	StatementTimeout time.Duration    // 0: the backend's default (5s)
	Now              func() time.Time // the time rows are stamped with (nil: time.Now)
}

// OpenStore opens the PostgreSQL store when PostgresURL is set (with the
// event log on ClickHouse when EventsURL is set too), else the SQLite file
// at SQLitePath; each applies its pending migrations.
func OpenStore(ctx context.Context, c StoreConfig) (tally.Store, error) {
	if c.EventsURL != "" && c.PostgresURL == "" {
		return nil, errors.New("EVENTS_URL needs a PostgreSQL DATABASE_URL: identity, quotas, counters and rollups stay there")
	}
	if c.PostgresURL != "" {
		db, err := postgres.Open(ctx, c.PostgresURL, postgres.Options{Now: c.Now, StatementTimeout: c.StatementTimeout})
		if err != nil || c.EventsURL == "" {
			return db, err
		}
		s, err := clickhouse.Open(ctx, c.EventsURL, db, clickhouse.Options{Now: c.Now, StatementTimeout: c.StatementTimeout})
		if err != nil {
			db.Close()
			return nil, err
		}
		return s, nil
	}
	return sqlite.Open(ctx, c.SQLitePath, sqlite.Options{Synchronous: c.SQLiteSync, Now: c.Now, StatementTimeout: c.StatementTimeout})
}

// RebuildCounters recomputes today's usage counters from the event log (at
// start, and after events were written around the pipeline, e.g. demo
// data). Counters shared in Redis or PostgreSQL are rebuilt only where they
// are empty: other instances may be counting.
func (a *App) RebuildCounters(ctx context.Context) error {
	if a.redis != nil {
		// Redis heals itself: rebuilt now when emptied, foreign or
		// missing writes (with no settle wait: at start this instance
		// has nothing in flight), else by the Reconciler once it answers.
		err := a.Reconciler.HealIfNeeded(ctx, 0)
		if err == nil {
			err = a.Usage.RebuildMissing(ctx) // tenants written around the pipeline (demo data)
		}
		if err != nil {
			a.cfg.Logger.Warn("usage counters not rebuilt at start; the reconciler retries", "err", err.Error())
		}
		return nil
	}
	if a.cfg.PostgresURL != "" {
		err := a.Usage.RebuildMissing(ctx)
		if err != nil && a.redisDown {
			a.cfg.Logger.Warn("usage counters not rebuilt: redis unreachable", "err", err.Error())
			return nil
		}
		return err
	}
	return a.Usage.Rebuild(ctx)
}

// StartScheduler starts the rollup and retention schedule (when analytics
// is enabled).
func (a *App) StartScheduler() {
	if a.cfg.AnalyticsEnabled && !a.scheduled {
		a.scheduled = true
		a.start(a.Scheduler) // started last, so stopped first
	}
}

// Handler is the HTTP handler of the app.
func (a *App) Handler() http.Handler { return a.Server }

// OperatorHandler is the handler of the operator listener (METRICS_ADDR):
// metrics and readiness details without credentials.
func (a *App) OperatorHandler() http.Handler { return a.Server.Operator() }

// Close stops the scheduler and then the runners in the reverse of their
// start order: producers first, then the writer, which drains and commits
// what is queued, then the webhook dispatcher, which waits for the attempts in flight. Then it
// closes the database.
func (a *App) Close(ctx context.Context) error {
	if a.closed {
		return nil
	}
	a.closed = true
	var errs []error
	for _, r := range slices.Backward(a.runners) {
		errs = append(errs, r.Stop(ctx))
	}
	if a.redis != nil {
		errs = append(errs, a.redis.Close())
	}
	errs = append(errs, a.Store.Close())
	return errors.Join(errs...)
}

// redisLog routes go-redis's own log lines (pool dial retries and the
// like) through slog at debug level: failures reach the log once, as the
// errors of tally's calls, not once per connection attempt.
type redisLog struct{ log *slog.Logger }

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

// linkStore is the store's identity links, nil when it keeps none.
func linkStore(s tally.Store) tally.LinkStore {
	ls, _ := s.(tally.LinkStore)
	return ls
}
