package usage

import (
	"context"
	"time"

	"github.com/tallyhq/tally"
)

// Reserve takes in.Amount of in.Metric's current quota period for in.TTL
// (default tally.DefaultReservationTTL), atomically like Consume: the
// amount is in the quota's counter at once, so concurrent consumers and
// reservers on any instance never together pass the allowance. Nothing is
// in the event log until Commit. It returns the reservation, the quota
// status after the call and whether this call created it; over the
// allowance r is nil and nothing is held.
//
// With an idempotency key, a reservation the tenant already made of the
// metric with that key is returned as it is (created false), whatever its
// state, and nothing more is taken.
func (s *Service) Reserve(ctx context.Context, tenantID int64, in tally.ReserveInput) (r *tally.QuotaReservation, st tally.QuotaStatus, created bool, err error) {
	if err := in.Validate(); err != nil {
		return nil, st, false, err
	}
	if in.IdempotencyKey != "" {
		r, err := s.store.ReservationByKey(ctx, tenantID, in.Metric, in.IdempotencyKey)
		if err == nil {
			st, err := s.Status(ctx, tenantID, in.Metric)
			return r, st, false, err
		}
		if tally.ErrorCodeOf(err) != tally.ENotFound {
			return nil, st, false, err
		}
	}
	t, err := s.take(ctx, tenantID, nil, in.Metric, in.Amount)
	if err != nil || !t.allowed {
		return nil, t.st, false, err
	}
	ttl := in.TTL
	if ttl == 0 {
		ttl = tally.DefaultReservationTTL
	}
	now := t.now.UTC().Truncate(time.Microsecond)
	want := &tally.QuotaReservation{
		ID: tally.NewReservationID(), TenantID: tenantID, Metric: in.Metric, Amount: in.Amount,
		IdempotencyKey: in.IdempotencyKey, Day: t.day, ResetsAt: t.w.end.UTC(), CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	r, created, err = s.store.CreateReservation(ctx, want)
	if err != nil || !created {
		// Not stored (or another call with the key won): give back what
		// was taken.
		s.give(ctx, tenantID, t.day, in.Metric, in.Amount)
		if err != nil {
			return nil, st, false, err
		}
		st, err := s.Status(ctx, tenantID, in.Metric)
		return r, st, false, err
	}
	return r, t.st, true, nil
}

// give returns n of metric to the counter of day; a failure is logged
// (an over-count the reconciler repairs, never an under-count).
func (s *Service) give(ctx context.Context, tenantID int64, d time.Time, metric string, n int64) {
	if n <= 0 {
		return
	}
	if _, err := s.counters.Add(ctx, tenantID, d, metric, -n); err != nil {
		s.cfg.Logger.Error("usage: return reserved amount", "tenant", tenantID, "metric", metric, "err", err)
		if s.healing != nil {
			s.healing.MarkStale()
		}
	}
}

// BeginCommit claims the reservation for commit with amount (nil: all of
// it; at most the reserved amount) and returns the unused rest to the
// quota. It returns the reservation and whether its usage event must be
// written with the reservation's hold (first means this call claimed it;
// otherwise a commit claimed it before and the event may or may not be
// stored: write it again, its event id makes a stored one a duplicate).
// A committed reservation is returned as it is (State committed: nothing
// to write). One that was released or expired, or an amount other than
// the one a previous commit claimed, is EConflict; an amount above the
// reservation EInvalid; an unknown id ENotFound.
func (s *Service) BeginCommit(ctx context.Context, tenantID int64, metric, id string, amount *int64) (r *tally.QuotaReservation, first bool, err error) {
	if !tally.ValidMetric(metric) || !tally.ValidReservationID(id) {
		return nil, false, tally.Errorf(tally.ENotFound, "reservation not found")
	}
	r, err = s.store.Reservation(ctx, tenantID, metric, id)
	if err != nil {
		return nil, false, err
	}
	n := r.Amount
	if amount != nil {
		n = *amount
	}
	if n < 0 || n > r.Amount {
		return nil, false, tally.Invalid("invalid amount", tally.FieldError{Field: "amount", Message: "must be from 0 to the reserved amount"})
	}
	r, moved, err := s.store.ClaimReservation(ctx, tenantID, metric, id, []string{tally.ReservationOpen}, tally.ReservationCommitting, n, s.cfg.Now())
	if err != nil {
		return nil, false, err
	}
	if moved {
		s.give(ctx, tenantID, r.Day, metric, r.Amount-n)
		return r, true, nil
	}
	switch r.State {
	case tally.ReservationCommitting, tally.ReservationCommitted:
		if amount != nil && *amount != r.Committed {
			return nil, false, tally.Errorf(tally.EConflict, "reservation already committed with amount %d", r.Committed)
		}
		return r, false, nil
	case tally.ReservationOpen:
		return nil, false, tally.Errorf(tally.EConflict, "reservation expired")
	}
	return nil, false, tally.Errorf(tally.EConflict, "reservation %s", r.State)
}

// EndCommit marks a reservation whose usage event is stored committed.
func (s *Service) EndCommit(ctx context.Context, r *tally.QuotaReservation) (*tally.QuotaReservation, error) {
	out, _, err := s.store.ClaimReservation(ctx, r.TenantID, r.Metric, r.ID,
		[]string{tally.ReservationCommitting}, tally.ReservationCommitted, r.Committed, s.cfg.Now())
	return out, err
}

// Release returns an open reservation whole to the quota. Releasing one
// already released or expired answers it as it is; one being or already
// committed is EConflict; an unknown id ENotFound.
func (s *Service) Release(ctx context.Context, tenantID int64, metric, id string) (*tally.QuotaReservation, error) {
	if !tally.ValidMetric(metric) || !tally.ValidReservationID(id) {
		return nil, tally.Errorf(tally.ENotFound, "reservation not found")
	}
	r, moved, err := s.store.ClaimReservation(ctx, tenantID, metric, id, []string{tally.ReservationOpen}, tally.ReservationReleased, 0, s.cfg.Now())
	if err != nil {
		return nil, err
	}
	if moved {
		s.give(ctx, tenantID, r.Day, metric, r.Amount)
		return r, nil
	}
	switch r.State {
	case tally.ReservationReleased, tally.ReservationExpired:
		return r, nil
	case tally.ReservationOpen: // past its expiry, not yet swept
		if rs, err := s.ExpireDue(ctx); err != nil {
			return nil, err
		} else if rs > 0 {
			return s.store.Reservation(ctx, tenantID, metric, id)
		}
		return r, nil
	}
	return nil, tally.Errorf(tally.EConflict, "reservation %s", r.State)
}

// Reservation returns one of the tenant's reservations.
func (s *Service) Reservation(ctx context.Context, tenantID int64, metric, id string) (*tally.QuotaReservation, error) {
	if !tally.ValidMetric(metric) || !tally.ValidReservationID(id) {
		return nil, tally.Errorf(tally.ENotFound, "reservation not found")
	}
	return s.store.Reservation(ctx, tenantID, metric, id)
}

// ExpireDue moves every open reservation past its expiry to expired and
// returns their amounts to the quotas; it returns how many expired.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	total := 0
	for {
		rs, err := s.store.ExpireDueReservations(ctx, s.cfg.Now(), 500)
		if err != nil {
			return total, err
		}
		for _, r := range rs {
			s.give(ctx, r.TenantID, r.Day, r.Metric, r.Amount)
		}
		total += len(rs)
		if len(rs) < 500 {
			return total, nil
		}
	}
}

// Expirer releases expired reservations by itself: a tally.Runner that
// calls Service.ExpireDue every Interval on every instance (each
// reservation expires once, whichever instance sweeps it).
type Expirer struct {
	s        *Service
	interval time.Duration
	stop     context.CancelFunc
	done     chan struct{}
}

var _ tally.Runner = (*Expirer)(nil)

// NewExpirer returns an Expirer of s's reservations sweeping every
// interval (default 1s).
func NewExpirer(s *Service, interval time.Duration) *Expirer {
	if interval <= 0 {
		interval = time.Second
	}
	return &Expirer{s: s, interval: interval}
}

// Start implements tally.Runner.
func (e *Expirer) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		tick := time.NewTicker(e.interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			sweep, cancel := context.WithTimeout(ctx, 10*time.Second)
			if _, err := e.s.ExpireDue(sweep); err != nil && ctx.Err() == nil {
				e.s.cfg.Logger.Warn("usage: expire reservations", "err", err.Error())
			}
			cancel()
		}
	}()
}

// Stop implements tally.Runner.
func (e *Expirer) Stop(ctx context.Context) error {
	if e.stop == nil {
		return nil
	}
	e.stop()
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// EventStored reports whether the tenant's log holds an event with id
// eventID.
func (s *Service) EventStored(ctx context.Context, tenantID int64, eventID string) (bool, error) {
	got, err := s.store.StoredEventIDs(ctx, tenantID, []string{eventID})
	if err != nil {
		return false, err
	}
	_, ok := got[eventID]
	return ok, nil
}
