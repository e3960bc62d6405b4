// Package meter is the service of tally's meters: each tenant's meter
// definitions (tally.MeterDef) next to the built-in ones of the usage
// rules, and their queries, computed from the meters' hourly rollups for
// the hours fully rolled up and from the raw event log for the rest
// (rollups.go).
//
// Reading the log where rollups are missing means a meter answers for any
// period its events are still kept for, as soon as it exists, and late
// events count as soon as they are stored. Queries are bounded: MaxMeterWindows windows,
// MaxMeterGroups groups (ETooMany past it) and Config.QueryTimeout.
package meter

import (
	"context"
	"errors"
	"time"

	"github.com/tallyhq/tally"
)

// Store is what the service needs of a store.
type Store interface {
	tally.MeterStore
}

// Quotas is what the service tells the quotas, which may count meters
// (usage.Service).
type Quotas interface {
	// MeterChanging refuses a change of a tenant's meter its quotas could
	// not follow: before is the meter as stored, after the change (nil:
	// a delete). Its error is the answer.
	MeterChanging(ctx context.Context, tenantID int64, before, after *tally.MeterDef) error
	// MeterChanged is told after a tenant's meter was created, changed or
	// deleted.
	MeterChanged(ctx context.Context, tenantID int64, slug string)
}

// Config configures the service. Zero values: no built-ins, a 10-second
// query timeout, no quotas to tell.
type Config struct {
	Rules        tally.UsageRules // the built-in meters' source
	QueryTimeout time.Duration
	Quotas       Quotas
}

// Service manages and queries meters.
type Service struct {
	store    Store
	builtins []tally.MeterDef
	timeout  time.Duration
	quotas   Quotas // nil: none
}

// New returns the service over store.
func New(cfg Config, store Store) *Service {
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 10 * time.Second
	}
	return &Service{store: store, builtins: tally.BuiltinMeters(cfg.Rules), timeout: cfg.QueryTimeout, quotas: cfg.Quotas}
}

func (s *Service) builtin(slug string) *tally.MeterDef {
	for i := range s.builtins {
		if s.builtins[i].Slug == slug {
			m := s.builtins[i]
			return &m
		}
	}
	return nil
}

func readOnly(slug string) error {
	return tally.Errorf(tally.EConflict, "meter %s is built in (a usage rule) and read-only", slug)
}

// List returns the built-in meters, then the tenant's by slug.
func (s *Service) List(ctx context.Context, tenantID int64) ([]tally.MeterDef, error) {
	own, err := s.store.Meters(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return append(append([]tally.MeterDef{}, s.builtins...), own...), nil
}

// Get returns one meter, built-in or the tenant's; ENotFound otherwise.
func (s *Service) Get(ctx context.Context, tenantID int64, slug string) (*tally.MeterDef, error) {
	if m := s.builtin(slug); m != nil {
		return m, nil
	}
	if !tally.ValidMetric(slug) {
		return nil, tally.Errorf(tally.ENotFound, "meter not found")
	}
	return s.store.MeterBySlug(ctx, tenantID, slug)
}

// Create validates and stores a tenant's meter. EConflict for a slug
// taken, by the tenant or by a built-in meter.
func (s *Service) Create(ctx context.Context, tenantID int64, m tally.MeterDef) (*tally.MeterDef, error) {
	m.BuiltIn = false
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if s.builtin(m.Slug) != nil {
		return nil, tally.Errorf(tally.EConflict, "meter %s is built in; choose another slug", m.Slug)
	}
	if err := s.store.CreateMeter(ctx, tenantID, &m); err != nil {
		return nil, err
	}
	s.changed(ctx, tenantID, m.Slug)
	return &m, nil
}

// changed tells the quotas that the tenant's meter slug changed.
func (s *Service) changed(ctx context.Context, tenantID int64, slug string) {
	if s.quotas != nil {
		s.quotas.MeterChanged(ctx, tenantID, slug)
	}
}

// Update applies a patch to a tenant's meter and returns it with the
// meter as it was. Built-in meters are read-only (EConflict); a change a
// quota on the meter cannot follow is refused (Quotas.MeterChanging).
func (s *Service) Update(ctx context.Context, tenantID int64, slug string, p tally.MeterPatch) (updated, before *tally.MeterDef, err error) {
	if s.builtin(slug) != nil {
		return nil, nil, readOnly(slug)
	}
	before, err = s.Get(ctx, tenantID, slug)
	if err != nil {
		return nil, nil, err
	}
	m := p.Apply(*before)
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	if s.quotas != nil {
		if err := s.quotas.MeterChanging(ctx, tenantID, before, &m); err != nil {
			return nil, nil, err
		}
	}
	if err := s.store.UpdateMeter(ctx, tenantID, &m); err != nil {
		return nil, nil, err
	}
	s.changed(ctx, tenantID, m.Slug)
	return &m, before, nil
}

// Delete deletes a tenant's meter. Built-in meters are read-only; a meter
// a quota names may be refused (Quotas.MeterChanging: EConflict naming
// the quota).
func (s *Service) Delete(ctx context.Context, tenantID int64, slug string) error {
	if s.builtin(slug) != nil {
		return readOnly(slug)
	}
	if !tally.ValidMetric(slug) {
		return tally.Errorf(tally.ENotFound, "meter not found")
	}
	if s.quotas != nil {
		m, err := s.store.MeterBySlug(ctx, tenantID, slug)
		if err != nil {
			return err
		}
		if err := s.quotas.MeterChanging(ctx, tenantID, m, nil); err != nil {
			return err
		}
	}
	if err := s.store.DeleteMeter(ctx, tenantID, slug); err != nil {
		return err
	}
	s.changed(ctx, tenantID, slug)
	return nil
}

// Query answers a meter query: every window of [in.From, in.To) in
// in.Loc for every group seen, empty windows as the aggregation gives
// nothing (0 for count, sum and unique_count; null otherwise). Events
// count only within [From, To), also in the first and last windows, which
// may reach past them. Without a window: one total per group. EInvalid for
// a bad query, ETooMany past MaxMeterGroups groups, EUnavailable when it
// runs past the query timeout.
func (s *Service) Query(ctx context.Context, tenantID int64, slug string, in tally.MeterQueryInput) (*tally.MeterResult, error) {
	m, err := s.Get(ctx, tenantID, slug)
	if err != nil {
		return nil, err
	}
	if in.Loc == nil {
		in.Loc = time.UTC
	}
	if err := in.Validate(m); err != nil {
		return nil, err
	}
	windows, err := tally.MeterWindows(in.Window, in.From, in.To, in.Loc)
	if err != nil {
		return nil, err
	}
	bounds := append([]time.Time{}, windows...)
	bounds[0], bounds[len(bounds)-1] = in.From.UTC(), in.To.UTC()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ans := tally.NewMeterAnswer(len(windows) - 1)
	q := tally.MeterQuery{Meter: *m, Bounds: bounds, GroupBy: in.GroupBy, Filter: in.Filter}
	done := false
	if rs, ok := s.store.(tally.MeterRollupStore); ok && !m.BuiltIn {
		done, err = fromRollups(ctx, rs, tenantID, q, ans.Add)
	}
	if err == nil && !done {
		err = s.store.QueryMeter(ctx, tenantID, q, ans.Add)
	}
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &tally.Error{Code: tally.EUnavailable, Message: "the meter query timed out; query a shorter range or fewer groups", Err: err}
		}
		return nil, err
	}
	return &tally.MeterResult{Meter: m.Slug, Window: in.Window, From: in.From.UTC(), To: in.To.UTC(), TZ: in.Loc.String(),
		Data: ans.Points(m.Aggregation, windows, in.GroupBy)}, nil
}
