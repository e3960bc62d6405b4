package rollup

import (
	"context"
	"time"

	"github.com/tallyhq/tally"
)

// The names of the scheduled tasks of a Rollup, as the scheduler's metrics
// label them.
const (
	TaskDailyRollup    = "daily_rollup"    // yesterday in full, every tenant
	TaskRetentionPurge = "retention_purge" // raw events past their tenant's retention
	TaskHourlyRollup   = "hourly_rollup"   // the days with dirty hours
)

// hourlyAt is when, after each UTC hour starts, the dirty days are rolled up.
const hourlyAt = 5 * time.Minute

// defaultDailyAt is when, after UTC midnight, the daily tasks run unless
// configured otherwise.
const defaultDailyAt = 10 * time.Minute

// Tasks returns the table of r's scheduled tasks, in the order they run
// when due together: the daily rollup of yesterday and then the retention
// purge at UTC midnight + dailyAt (default 10m; values outside [0, 24h)
// mean the default), and the rollup of the dirty days at :05 of every UTC
// hour. Each run is bounded by Config.RunTimeout.
func (r *Rollup) Tasks(dailyAt time.Duration) []Task {
	if dailyAt <= 0 || dailyAt >= 24*time.Hour {
		dailyAt = defaultDailyAt
	}
	return []Task{
		{
			Name: TaskDailyRollup, Schedule: Daily(dailyAt), Timeout: r.cfg.RunTimeout,
			Run: func(ctx context.Context, at time.Time) error {
				yesterday := tally.DayStart(at).Add(-24 * time.Hour)
				_, err := r.RunDays(ctx, 0, yesterday, yesterday, KindDaily, "")
				return err
			},
		},
		{
			Name: TaskRetentionPurge, Schedule: Daily(dailyAt), Timeout: r.cfg.RunTimeout,
			Run: func(ctx context.Context, _ time.Time) error {
				_, err := r.PurgeExpired(ctx)
				return err
			},
		},
		{
			Name: TaskHourlyRollup, Schedule: Hourly(hourlyAt), Timeout: r.cfg.RunTimeout,
			Run: func(ctx context.Context, _ time.Time) error {
				_, err := r.RunDirty(ctx)
				return err
			},
		},
	}
}
