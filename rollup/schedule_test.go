package rollup

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestNextRun checks when the Rollup's task table is due, and what.
func TestNextRun(t *testing.T) {
	t.Parallel()
	at := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
	hourly := []string{TaskHourlyRollup}
	daily := []string{TaskDailyRollup, TaskRetentionPurge}
	both := []string{TaskDailyRollup, TaskRetentionPurge, TaskHourlyRollup}
	for _, tc := range []struct {
		now     time.Time
		dailyAt time.Duration
		want    time.Time
		tasks   []string
	}{
		{at(1, 10, 0), 10 * time.Minute, at(1, 10, 5), hourly},
		{at(1, 10, 5), 10 * time.Minute, at(1, 11, 5), hourly}, // strictly after
		{at(1, 10, 5).Add(-time.Nanosecond), 10 * time.Minute, at(1, 10, 5), hourly},
		{at(1, 23, 30), 10 * time.Minute, at(2, 0, 5), hourly},
		{at(2, 0, 5), 10 * time.Minute, at(2, 0, 10), daily},
		{at(2, 0, 7), 10 * time.Minute, at(2, 0, 10), daily},
		{at(2, 0, 10), 10 * time.Minute, at(2, 1, 5), hourly},
		{at(1, 23, 30), 5 * time.Minute, at(2, 0, 5), both},
		{at(1, 2, 5), 150 * time.Minute, at(1, 2, 30), daily},
		{at(1, 2, 30), 150 * time.Minute, at(1, 3, 5), hourly},
		{at(31, 23, 59), 10 * time.Minute, time.Date(2026, 4, 1, 0, 5, 0, 0, time.UTC), hourly},
		{at(2, 0, 5), 0, at(2, 0, 10), daily}, // the default offset
		// Another zone, same instant: the schedule stays UTC.
		{at(1, 23, 30).In(time.FixedZone("X", 5*3600+1800)), 10 * time.Minute, at(2, 0, 5), hourly},
	} {
		s := NewScheduler(SchedulerConfig{Tasks: New(Config{}, nil, nil).Tasks(tc.dailyAt)}, nil)
		got, due := s.next(tc.now)
		if names := taskNames(due); !got.Equal(tc.want) || !slices.Equal(names, tc.tasks) {
			t.Errorf("next(%v) with daily at %v = %v, %v; want %v, %v", tc.now, tc.dailyAt, got, names, tc.want, tc.tasks)
		}
	}
}

func taskNames(tasks []Task) []string {
	var out []string
	for _, t := range tasks {
		out = append(out, t.Name)
	}
	return out
}

// fakeClock is a clock for the scheduler whose waits end at once, moving
// the time forward, for the first waits calls; later waits never end.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waits == 0 {
		return nil
	}
	c.waits--
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// TestSchedulerTable checks that tasks due together run in table order,
// each with the scheduled time, that a task which runs past its timeout
// is cut there and counted as failed without holding up the next one, and
// that each task's runs, failures and durations are counted.
func TestSchedulerTable(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)
	due := time.Date(2026, 3, 2, 0, 5, 0, 0, time.UTC)
	clock := &fakeClock{now: start, waits: 1}

	var mu sync.Mutex
	var ran []string
	done := make(chan struct{})
	record := func(name string, at time.Time) {
		mu.Lock()
		defer mu.Unlock()
		if !at.Equal(due) {
			t.Errorf("%s ran for %v, want %v", name, at, due)
		}
		ran = append(ran, name)
		if len(ran) == 4 {
			close(done)
		}
	}
	const timeout = 20 * time.Millisecond
	var (
		began, deadline, cut time.Time
		cutErr               error
	)
	tasks := []Task{
		{Name: "first", Schedule: Daily(5 * time.Minute), Run: func(_ context.Context, at time.Time) error {
			record("first", at)
			return nil
		}},
		{Name: "slow", Schedule: Hourly(5 * time.Minute), Timeout: timeout, Run: func(ctx context.Context, at time.Time) error {
			began = time.Now()
			record("slow", at)
			deadline, _ = ctx.Deadline()
			<-ctx.Done() // runs until cut
			cut, cutErr = time.Now(), ctx.Err()
			return cutErr
		}},
		{Name: "failing", Schedule: Daily(5 * time.Minute), Run: func(_ context.Context, at time.Time) error {
			record("failing", at)
			return errors.New("broken")
		}},
		{Name: "later", Schedule: Hourly(30 * time.Minute), Run: func(context.Context, time.Time) error {
			t.Error("a task that was not due ran")
			return nil
		}},
		{Name: "last", Schedule: Hourly(5 * time.Minute), Run: func(_ context.Context, at time.Time) error {
			record("last", at)
			return nil
		}},
	}
	reg := prometheus.NewRegistry()
	s := NewScheduler(SchedulerConfig{Tasks: tasks, Now: clock.Now, After: clock.After}, reg)
	s.Start()
	s.Start() // no second goroutine
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the due tasks did not run")
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal("second Stop:", err)
	}

	if want := []string{"first", "slow", "failing", "last"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	if d := deadline.Sub(began); d <= 0 || d > timeout || cut.Before(deadline) || cut.Sub(began) > timeout+5*time.Second ||
		!errors.Is(cutErr, context.DeadlineExceeded) {
		t.Errorf("slow had %v to run and was cut after %v (%v), want it cut at its timeout %v", d, cut.Sub(began), cutErr, timeout)
	}
	for _, tc := range []struct {
		task           string
		runs, failures float64
	}{{"first", 1, 0}, {"slow", 1, 1}, {"failing", 1, 1}, {"last", 1, 0}, {"later", 0, 0}} {
		if got := testutil.ToFloat64(s.runs.WithLabelValues(tc.task)); got != tc.runs {
			t.Errorf("%s: runs = %v, want %v", tc.task, got, tc.runs)
		}
		if got := testutil.ToFloat64(s.failures.WithLabelValues(tc.task)); got != tc.failures {
			t.Errorf("%s: failures = %v, want %v", tc.task, got, tc.failures)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "sbh_scheduler_task_duration_seconds"); err != nil || n != 4 {
		t.Errorf("duration series = %d, %v; want one per task run", n, err)
	}
}

// TestSchedulerStopWaits checks that Stop lets a running task finish
// until its context is done, then cancels the task and returns ctx.Err().
func TestSchedulerStopWaits(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), waits: 1}
	running := make(chan struct{})
	cancelled := make(chan struct{})
	s := NewScheduler(SchedulerConfig{Now: clock.Now, After: clock.After, Tasks: []Task{{
		Name: "busy", Schedule: Hourly(5 * time.Minute), Timeout: time.Hour,
		Run: func(ctx context.Context, _ time.Time) error {
			close(running)
			<-ctx.Done()
			close(cancelled)
			return ctx.Err()
		},
	}}}, nil)
	s.Start()
	<-running
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if err := s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the deadline of its context", err)
	}
	select {
	case <-cancelled:
	default:
		t.Fatal("Stop returned before the running task did")
	}
}

func TestLayout(t *testing.T) {
	t.Parallel()
	h := func(hh, mm int) time.Time { return time.Date(2026, 3, 1, hh, mm, 0, 0, time.UTC) }
	// From 01:20 to 06:40 with a bucket boundary at 03:30.
	l := newLayout(h(1, 20), h(6, 40), []time.Time{h(3, 30), h(0, 0), h(9, 0)})
	if !l.hours.from.Equal(h(2, 0)) || !l.hours.to.Equal(h(6, 0)) {
		t.Errorf("hours %v..%v", l.hours.from, l.hours.to)
	}
	want := []span{{h(1, 20), h(2, 0)}, {h(3, 0), h(3, 30)}, {h(3, 30), h(4, 0)}, {h(6, 0), h(6, 40)}}
	if len(l.pieces) != len(want) {
		t.Fatalf("pieces %v", l.pieces)
	}
	for i := range want {
		if !l.pieces[i].from.Equal(want[i].from) || !l.pieces[i].to.Equal(want[i].to) {
			t.Errorf("piece %d = %v, want %v", i, l.pieces[i], want[i])
		}
	}
	if l.whole(h(3, 0)) || !l.whole(h(2, 0)) || !l.whole(h(4, 0)) {
		t.Error("03:00 must be split, 02:00 and 04:00 whole")
	}
	// Within one hour: only a piece.
	l = newLayout(h(1, 10), h(1, 50), nil)
	if l.hours.from.Before(l.hours.to) || len(l.pieces) != 1 {
		t.Errorf("within an hour: %+v", l)
	}
}
