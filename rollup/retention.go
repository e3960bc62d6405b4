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
