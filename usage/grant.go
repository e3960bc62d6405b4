package usage

import (
	"context"
	"time"

	"github.com/tallyhq/tally"
)

// Grant adds in.Amount to the allowance of in.Metric's current quota
// period, until in.ExpiresAt (nil: the period's end), by actor. It returns
// the grant and the quota's status with it. ENotFound when the metric has
// no quota; EInvalid for a bad input.
func (s *Service) Grant(ctx context.Context, tenantID int64, in tally.GrantInput, actor string) (*tally.QuotaGrant, tally.QuotaStatus, error) {
	now := s.cfg.Now()
	if err := in.Validate(now); err != nil {
		return nil, tally.QuotaStatus{}, err
	}
	qs, err := s.quotas(ctx, tenantID)
	if err != nil {
		return nil, tally.QuotaStatus{}, err
	}
	q, ok := qs.by[in.Metric]
	if !ok {
		return nil, tally.QuotaStatus{}, noQuota(in.Metric)
	}
	loc, err := s.zone(ctx, qs)
	if err != nil {
		return nil, tally.QuotaStatus{}, err
	}
	start, _ := q.PeriodAt(now, loc)
	g := &tally.QuotaGrant{TenantID: tenantID, Metric: in.Metric, Amount: in.Amount, Reason: in.Reason,
		PeriodStart: start.UTC(), CreatedBy: actor, CreatedAt: now.UTC().Truncate(time.Microsecond)}
	if in.ExpiresAt != nil {
		at := in.ExpiresAt.UTC().Truncate(time.Microsecond)
		g.ExpiresAt = &at
	}
	if err := s.store.CreateGrant(ctx, g); err != nil {
		return nil, tally.QuotaStatus{}, err
	}
	st, err := s.Status(ctx, tenantID, in.Metric)
	return g, st, err
}

// Grants lists the tenant's grants of metric, newest first (at most
// 100). ENotFound when the metric has no quota.
func (s *Service) Grants(ctx context.Context, tenantID int64, metric string) ([]tally.QuotaGrant, error) {
	if _, ok, err := s.Quota(ctx, tenantID, metric); err != nil {
		return nil, err
	} else if !ok {
		return nil, noQuota(metric)
	}
	return s.store.Grants(ctx, tenantID, metric, 100)
}
