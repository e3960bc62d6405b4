package rollup

import (
	"context"
	"errors"
	"time"

	"github.com/tallyhq/tally"
)

// hourlyAt is when, after each UTC hour starts, the dirty days are rolled up.
const hourlyAt = 5 * time.Minute

// jobs is a set of scheduled jobs.
type jobs uint8

const (
	jobHourly jobs = 1 << iota // RunDirty
	jobDaily                   // RunDays(yesterday) and the retention purge
)

// nextRun returns the first scheduled time strictly after now, and the
// jobs due then: RunDirty at :05 of every UTC hour, the daily job at UTC
// midnight + dailyAt. Both are due when the two times coincide.
func nextRun(now time.Time, dailyAt time.Duration) (time.Time, jobs) {
	hourly := tally.HourStart(now).Add(hourlyAt)
	if !hourly.After(now) {
		hourly = hourly.Add(time.Hour)
	}
	daily := tally.DayStart(now).Add(dailyAt)
	if !daily.After(now) {
		daily = daily.Add(24 * time.Hour)
	}
	switch {
	case hourly.Equal(daily):
		return hourly, jobHourly | jobDaily
	case hourly.Before(daily):
		return hourly, jobHourly
	}
	return daily, jobDaily
}

// Start starts the scheduler in a goroutine; it sleeps until the next
// scheduled time (computed from Config.Now) and runs what is due. Calling
// Start on a started Rollup does nothing.
func (r *Rollup) Start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stop != nil {
		return
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.schedule(r.stop, r.done)
}

// Stop stops the scheduler, cancels a running job (a rollup day commits or
// rolls back as a whole, so nothing is half written) and waits for it to
// return. Start may be called again afterwards.
func (r *Rollup) Stop() {
	r.mu.Lock()
	stop, done := r.stop, r.done
	r.stop, r.done = nil, nil
	r.mu.Unlock()
	if stop == nil {
		return
	}
	close(stop)
	<-done
}

func (r *Rollup) schedule(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	after := r.cfg.Now()
	for {
		at, due := nextRun(after, r.cfg.DailyAt)
		t := time.NewTimer(at.Sub(r.cfg.Now()))
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		r.runDue(ctx, at, due)
		cancel()
		// Never run one scheduled time twice, even when the wall clock
		// lags the timer.
		after = r.cfg.Now()
		if after.Before(at) {
			after = at
		}
	}
}

// runDue runs the jobs due at time at, when this instance leads. Failures
// are logged and recorded by the runs themselves.
func (r *Rollup) runDue(ctx context.Context, at time.Time, due jobs) {
	if r.cfg.Leader != nil {
		release, ok, err := r.cfg.Leader.TryLead(ctx)
		if err != nil {
			r.cfg.Logger.Error("rollup: leader election failed; skipping this run", "err", err)
			return
		}
		if !ok {
			r.cfg.Logger.Debug("rollup: another instance leads; skipping this run")
			return
		}
		defer release()
	}
	if due&jobDaily != 0 {
		yesterday := tally.DayStart(at).Add(-24 * time.Hour)
		_, _ = r.RunDays(ctx, 0, yesterday, yesterday, KindDaily)
		if _, err := r.PurgeExpired(ctx); err != nil {
			r.cfg.Logger.Error("rollup: retention purge failed", "err", err)
		}
	}
	if due&jobHourly != 0 {
		_, _ = r.RunDirty(ctx)
	}
}

// PurgeExpired deletes, for every tenant, the raw events older than its
// retention (tally.Tenant.RetentionDays, default tally.DefaultRetentionDays)
// and writes an "events.purged" audit entry for each tenant that lost
// events. Rollups are kept. It returns how many events it deleted.
func (r *Rollup) PurgeExpired(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RunTimeout)
	defer cancel()
	tenants, err := r.store.AllTenants(ctx)
	if err != nil {
		return 0, err
	}
	now := r.cfg.Now().UTC()
	var total int64
	var errs []error
	for _, t := range tenants {
		before := t.RetentionStart(now)
		n, err := r.store.PurgeEvents(ctx, t.ID, before)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		total += n
		if n == 0 {
			continue
		}
		err = r.store.WriteAudit(ctx, &tally.AuditEntry{
			TenantID: t.ID,
			At:       now.Truncate(time.Microsecond),
			Actor:    "system",
			Action:   "events.purged",
			Target:   "events",
			Meta:     map[string]any{"before": before.Format(time.RFC3339), "deleted": n},
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}
