package rollup

import (
	"context"
	"errors"
	"time"

	"github.com/tallyhq/tally"
)

// PurgeExpired deletes, for every tenant, the raw events older than its
// retention (tally.Tenant.RetentionDays, default tally.DefaultRetentionDays)
// and writes an "events.purged" audit entry for each tenant that lost
// events. Rollups are kept. It returns how many events it deleted.
//
// The days to purge that have dirty hours (a privacy deletion, a late
// event) are rolled up first, in the same transaction as the purge: the
// purge clears their marks and no rollup rebuilds a day past retention, so
// rollups left as they were would count, for good, what the marks say
// changed — a deleted user's events, for one.
func (r *Rollup) PurgeExpired(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.RunTimeout)
	defer cancel()
	tenants, err := r.store.AllTenants(ctx)
	if err != nil {
		return 0, err
	}
	now := r.cfg.Now().UTC()
	dirty, err := r.store.DirtyHours(ctx, now) // ordered by tenant and hour
	if err != nil {
		return 0, err
	}
	var total int64
	var errs []error
	for _, t := range tenants {
		before := t.RetentionStart(now)
		// Re-roll the dirty days first, each on its own (a store may read
		// them off its writer, see tally.RollupStore.InRollupTx), so that
		// the purge's transaction below finds none left but those a change
		// dirtied meanwhile.
		if err := r.preroll(ctx, t.ID, before, dirty); err != nil {
			errs = append(errs, err)
			continue
		}
		n, reached, err := r.purgeTenant(ctx, t.ID, before)
		if err != nil {
			errs = append(errs, err)
			if n == 0 {
				continue
			}
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
			Meta:     map[string]any{"before": reached.Format(time.RFC3339), "deleted": n},
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// purgeTenant purges tenantID's events before before in steps of about
// Config.PurgeBatch events from its oldest event, each step in a
// transaction of its own that first re-rolls the step's days a change
// dirtied meanwhile (see PurgeExpired). It returns how many events it
// deleted and the time before which it deleted them all, also when a
// later step fails.
func (r *Rollup) purgeTenant(ctx context.Context, tenantID int64, before time.Time) (int64, time.Time, error) {
	cuts, err := r.purgeCuts(ctx, tenantID, before)
	if err != nil {
		return 0, time.Time{}, err
	}
	var (
		total   int64
		reached time.Time
	)
	for _, cut := range cuts {
		var n int64
		err := r.store.InRollupTx(ctx, tenantID, func(tx tally.RollupTx) error {
			hours, err := tx.DirtyHours(ctx, cut)
			if err != nil {
				return err
			}
			var last time.Time
			for _, h := range hours {
				day := tally.DayStart(h)
				if day.Equal(last) {
					continue
				}
				last = day
				if _, err := recomputeDay(ctx, tx, day, r.cfg.Rules); err != nil {
					return err
				}
			}
			n, err = tx.PurgeEvents(ctx, cut)
			return err
		})
		if err != nil {
			return total, reached, err
		}
		total, reached = total+n, cut
	}
	return total, reached, nil
}

// purgeCuts splits the purge of tenantID's events before before into
// steps of about Config.PurgeBatch events: the time from its oldest event
// to before in equal shares (whole seconds, at least one), as many as the
// events to purge hold batches. It returns the end of each step, the last
// before itself.
func (r *Rollup) purgeCuts(ctx context.Context, tenantID int64, before time.Time) ([]time.Time, error) {
	cuts := []time.Time{before}
	if r.cfg.PurgeBatch <= 0 {
		return cuts, nil
	}
	oldest, found, err := r.oldestEvent(ctx, tenantID, time.Time{})
	if err != nil || !found || !oldest.Before(before) {
		return cuts, err
	}
	n, err := r.store.CountEvents(ctx, tenantID, oldest, before)
	if err != nil {
		return nil, err
	}
	steps := (n + int64(r.cfg.PurgeBatch) - 1) / int64(r.cfg.PurgeBatch)
	if steps <= 1 {
		return cuts, nil
	}
	step := max(before.Sub(oldest)/time.Duration(steps), time.Second).Truncate(time.Second)
	cuts = cuts[:0]
	for cut := oldest.Truncate(time.Second).Add(step); cut.Before(before); cut = cut.Add(step) {
		cuts = append(cuts, cut)
	}
	return append(cuts, before), nil
}

// preroll recomputes each of tenantID's days with a dirty hour in hours
// before before, in a transaction of its own.
func (r *Rollup) preroll(ctx context.Context, tenantID int64, before time.Time, hours []tally.TenantHour) error {
	var last time.Time
	for _, h := range hours {
		d := tally.DayStart(h.Hour)
		if h.TenantID != tenantID || !h.Hour.Before(before) || d.Equal(last) {
			continue
		}
		last = d
		if _, err := RecomputeDay(ctx, r.store, tenantID, d, r.cfg.Rules); err != nil {
			return err
		}
	}
	return nil
}
