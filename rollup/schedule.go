package rollup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tallyhq/tally"
)

// Schedule says when a task is due.
type Schedule interface {
	// Next returns the first time strictly after now when the task is due.
	Next(now time.Time) time.Time
}

// Hourly is due every UTC hour at this offset after the hour starts.
type Hourly time.Duration

// Next implements Schedule.
func (h Hourly) Next(now time.Time) time.Time {
	t := tally.HourStart(now).Add(time.Duration(h))
	if !t.After(now) {
		t = t.Add(time.Hour)
	}
	return t
}

// Daily is due every UTC day at this offset after midnight.
type Daily time.Duration

// Next implements Schedule.
func (d Daily) Next(now time.Time) time.Time {
	t := tally.DayStart(now).Add(time.Duration(d))
	if !t.After(now) {
		t = t.Add(24 * time.Hour)
	}
	return t
}

// Task is one entry of a Scheduler's table.
type Task struct {
	// Name names the task in logs and in the label "task" of the
	// scheduler's metrics.
	Name string
	// Schedule says when the task is due.
	Schedule Schedule
	// Timeout bounds one run: its context is cancelled then and the run
	// counts as failed (default 5m).
	Timeout time.Duration
	// Run does the work that is due at the scheduled time at. It must
	// return soon once ctx is done.
	Run func(ctx context.Context, at time.Time) error
}

// Leader elects one instance among several. TryLead returns ok when this
// instance leads until release is called; it never blocks waiting for the
// lead.
type Leader interface {
	TryLead(ctx context.Context) (release func(), ok bool, err error)
}

// SchedulerConfig configures a Scheduler. The zero value of each field but
// Tasks is usable and means what its comment says.
type SchedulerConfig struct {
	// Tasks is the table of tasks. Tasks due at the same time run one
	// after the other in this order.
	Tasks []Task
	// Leader, when set, elects the one instance that runs the due tasks
	// when several tally instances share a database (nil: this instance
	// always runs them). It is asked once per scheduled time.
	Leader Leader
	// Now tells the time (default time.Now).
	Now func() time.Time
	// After waits for a duration, like time.After (the default); tests
	// inject a clock with Now and After.
	After func(d time.Duration) <-chan time.Time
	// Logger gets failed runs (default: discarded).
	Logger *slog.Logger
}

// Scheduler runs a table of tasks, each when its schedule says, on one
// goroutine: tasks never overlap. Start launches it; Stop ends it.
type Scheduler struct {
	cfg SchedulerConfig

	runs     *prometheus.CounterVec
	failures *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu     sync.Mutex
	stop   chan struct{}      // closed by Stop; nil when not started
	done   chan struct{}      // closed when the goroutine returned
	cancel context.CancelFunc // cancels a running task
}

// defaultTaskTimeout bounds a run of a task without a Timeout.
const defaultTaskTimeout = 5 * time.Minute

// NewScheduler returns a Scheduler of cfg.Tasks that registers its metrics
// with reg (nil: none registered).
func NewScheduler(cfg SchedulerConfig, reg prometheus.Registerer) *Scheduler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := promauto.With(reg)
	return &Scheduler{
		cfg: cfg,
		runs: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_scheduler_task_runs_total",
			Help: "Scheduled task runs, by task.",
		}, []string{"task"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_scheduler_task_failures_total",
			Help: "Scheduled task runs that failed or timed out, by task.",
		}, []string{"task"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sbh_scheduler_task_duration_seconds",
			Help:    "Duration of scheduled task runs, by task.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8), // 10ms .. ~164s
		}, []string{"task"}),
	}
}

// Start launches the scheduler's goroutine and returns: it waits until the
// next scheduled time (computed from SchedulerConfig.Now) and runs the
// tasks due then. Calling Start on a started Scheduler does nothing.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop, s.done, s.cancel = make(chan struct{}), make(chan struct{}), cancel
	go s.loop(ctx, s.stop, s.done)
}

// Stop stops the scheduler: no task starts any more, and a running task
// may finish until ctx is done. Then its context is cancelled (a rollup
// day commits or rolls back as a whole, so nothing is half written), Stop
// waits for it to return and returns ctx.Err(). Stop on a stopped
// Scheduler returns nil; Start may be called again afterwards.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	stop, done, cancel := s.stop, s.done, s.cancel
	s.stop, s.done, s.cancel = nil, nil, nil
	s.mu.Unlock()
	if stop == nil {
		return nil
	}
	defer cancel()
	close(stop)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return ctx.Err()
	}
}

func (s *Scheduler) loop(ctx context.Context, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	after := s.cfg.Now()
	for {
		at, due := s.next(after)
		if len(due) == 0 {
			<-stop // nothing is ever due
			return
		}
		select {
		case <-stop:
			return
		case <-s.cfg.After(at.Sub(s.cfg.Now())):
		}
		s.runDue(ctx, at, due)
		// Never run one scheduled time twice, even when the wall clock
		// lags the timer.
		after = s.cfg.Now()
		if after.Before(at) {
			after = at
		}
	}
}

// next returns the first scheduled time strictly after now and the tasks
// due then, in table order.
func (s *Scheduler) next(now time.Time) (time.Time, []Task) {
	var at time.Time
	var due []Task
	for _, t := range s.cfg.Tasks {
		switch n := t.Schedule.Next(now); {
		case len(due) == 0 || n.Before(at):
			at, due = n, []Task{t}
		case n.Equal(at):
			due = append(due, t)
		}
	}
	return at, due
}

// runDue runs the tasks due at time at one after the other, when this
// instance leads. A failing task does not stop the others.
func (s *Scheduler) runDue(ctx context.Context, at time.Time, due []Task) {
	if s.cfg.Leader != nil {
		release, ok, err := s.cfg.Leader.TryLead(ctx)
		if err != nil {
			s.cfg.Logger.Error("scheduler: leader election failed; skipping this run", "err", err)
			return
		}
		if !ok {
			s.cfg.Logger.Debug("scheduler: another instance leads; skipping this run")
			return
		}
		defer release()
	}
	for _, t := range due {
		if ctx.Err() != nil {
			return // stopping
		}
		s.runTask(ctx, t, at)
	}
}

// runTask runs t once under its timeout, and counts and logs the outcome.
func (s *Scheduler) runTask(parent context.Context, t Task, at time.Time) {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = defaultTaskTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	began := time.Now()
	err := t.Run(ctx, at)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// Cut at its timeout (parent has no deadline): a failure, whatever
		// Run returned.
		if err == nil {
			err = ctx.Err()
		}
		err = fmt.Errorf("timed out after %v: %w", timeout, err)
	}
	s.duration.WithLabelValues(t.Name).Observe(time.Since(began).Seconds())
	s.runs.WithLabelValues(t.Name).Inc()
	if err != nil {
		s.failures.WithLabelValues(t.Name).Inc()
		s.cfg.Logger.Error("scheduler: task failed", "task", t.Name, "at", at, "err", err)
	}
}
