package server

import (
	"context"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/live"
	"github.com/tallyhq/tally/rollup"
)

// The services the handlers use, each declared here by what the server
// needs of it: internal/app wires the real ones (ingest.Recorder,
// usage.Service, rollup.Rollup), a handler test may pass a small fake.

// Recorder records events: request bodies, usage increments, quota
// consumes and auto-tracked events (ingest.Recorder).
type Recorder interface {
	Events(ctx context.Context, t *tally.Tenant, body []byte) (*ingest.Result, error)
	Foreign(ctx context.Context, t *tally.Tenant, f *ingest.Foreign) (*ingest.Result, error)
	Increment(ctx context.Context, t *tally.Tenant, in tally.UsageIncrement) (int64, error)
	Consume(ctx context.Context, t *tally.Tenant, in tally.UsageIncrement) (bool, tally.QuotaStatus, error)
	Commit(ctx context.Context, t *tally.Tenant, metric, id string, amount *int64, eventID string) (*tally.QuotaReservation, error)
	Track(ctx context.Context, t *tally.Tenant, name, account string, props map[string]any)
	TrackAPIRequest(t *tally.Tenant, r ingest.APIRequest, d time.Duration)
}

// Quotas reads and configures quotas (usage.Service).
type Quotas interface {
	Statuses(ctx context.Context, tenantID int64) ([]tally.QuotaStatus, error)
	Status(ctx context.Context, tenantID int64, metric string) (tally.QuotaStatus, error)
	SetQuota(ctx context.Context, tenantID int64, q tally.Quota) (tally.QuotaStatus, error)
	DeleteQuota(ctx context.Context, tenantID int64, metric string) error
	Reserve(ctx context.Context, tenantID int64, in tally.ReserveInput) (*tally.QuotaReservation, tally.QuotaStatus, bool, error)
	Release(ctx context.Context, tenantID int64, metric, id string) (*tally.QuotaReservation, error)
	Reservation(ctx context.Context, tenantID int64, metric, id string) (*tally.QuotaReservation, error)
	Grant(ctx context.Context, tenantID int64, in tally.GrantInput, actor string) (*tally.QuotaGrant, tally.QuotaStatus, error)
	Grants(ctx context.Context, tenantID int64, metric string) ([]tally.QuotaGrant, error)
}

// Reports answers the usage and KPI queries (rollup.Rollup).
type Reports interface {
	Usage(ctx context.Context, tenantID int64, metrics []string, from, to time.Time, hourly bool, loc *time.Location) ([]rollup.Series, error)
	KPIs(ctx context.Context, tenantID int64, rng string, loc *time.Location, now time.Time) (*rollup.Report, error)
}

// Rollups runs rollups on demand (rollup.Rollup).
type Rollups interface {
	RunDays(ctx context.Context, tenantID int64, from, to time.Time, kind, actor string) (rollup.Result, error)
}

// Meters manages and queries each tenant's meters (meter.Service).
type Meters interface {
	List(ctx context.Context, tenantID int64) ([]tally.MeterDef, error)
	Get(ctx context.Context, tenantID int64, slug string) (*tally.MeterDef, error)
	Create(ctx context.Context, tenantID int64, m tally.MeterDef) (*tally.MeterDef, error)
	Update(ctx context.Context, tenantID int64, slug string, p tally.MeterPatch) (updated, before *tally.MeterDef, err error)
	Delete(ctx context.Context, tenantID int64, slug string) error
	Query(ctx context.Context, tenantID int64, slug string, in tally.MeterQueryInput) (*tally.MeterResult, error)
}

// Absence manages each tenant's absence alerts (usage.Absence).
type Absence interface {
	List(ctx context.Context, tenantID int64) ([]tally.AbsenceAlert, error)
	Get(ctx context.Context, tenantID, id int64) (*tally.AbsenceAlert, error)
	Create(ctx context.Context, tenantID int64, in tally.AbsenceAlertInput) (*tally.AbsenceAlert, error)
	Update(ctx context.Context, tenantID, id int64, in tally.AbsenceAlertInput) (updated, before *tally.AbsenceAlert, err error)
	Delete(ctx context.Context, tenantID, id int64) error
}

// Insights answers funnel and retention queries (insight.Service).
type Insights interface {
	Funnel(ctx context.Context, tenantID int64, q tally.FunnelQuery) (*tally.FunnelResult, error)
	Retention(ctx context.Context, tenantID int64, q tally.RetentionQuery) (*tally.RetentionResult, error)
}

// Live follows a tenant's events as they are committed (live.Hub).
type Live interface {
	Subscribe(ctx context.Context, tenantID int64, f tally.EventFilter) (*live.Subscription, error)
}
