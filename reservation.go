package tally

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"
)

// Reservation states. A reservation is open until it is committed,
// released or expires; each move out of open happens once, whichever
// instance makes it (the store's ClaimReservation).
const (
	ReservationOpen       = "open"
	ReservationCommitting = "committing" // claimed for commit; its usage event is being written
	ReservationCommitted  = "committed"
	ReservationReleased   = "released"
	ReservationExpired    = "expired"
)

// Reservation bounds: the default and the largest lifetime of an open
// reservation, and the longest idempotency key.
const (
	DefaultReservationTTL = 5 * time.Minute
	MaxReservationTTL     = 24 * time.Hour
	MaxIdempotencyKeyLen  = 128
)

// QuotaReservation holds part of a quota's allowance for a while: it is
// in the quota's counter (so concurrent consumers see it taken) but not in
// the event log until it is committed, when the committed amount becomes
// a durable usage.increment event and the rest returns to the quota.
//
// Day is the UTC day whose counter holds it; the committed event is
// written within that day and before ResetsAt (the end of the quota period
// it was taken in), so that the counters and the log agree.
type QuotaReservation struct {
	ID             string    `json:"id"`
	TenantID       int64     `json:"-"`
	Metric         string    `json:"metric"`
	Amount         int64     `json:"amount"`
	State          string    `json:"state"`
	Committed      int64     `json:"committed"`
	IdempotencyKey string    `json:"idempotency_key,omitempty"`
	Day            time.Time `json:"-"`
	ResetsAt       time.Time `json:"-"`
	CreatedAt      time.Time `json:"created_at"`
	ExpiresAt      time.Time `json:"expires_at"`
}

// EventID is the id of the usage.increment event a commit writes: one per
// reservation, so a retried commit is a duplicate, never a second count.
func (r *QuotaReservation) EventID() string { return "reservation:" + r.ID }

// NewReservationID returns a random reservation id.
func NewReservationID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "rsv_" + hex.EncodeToString(b)
}

// ValidReservationID reports whether s has the shape of NewReservationID.
func ValidReservationID(s string) bool {
	if len(s) != 36 || s[:4] != "rsv_" {
		return false
	}
	_, err := hex.DecodeString(s[4:])
	return err == nil
}

// ReserveInput is a request to reserve Amount of Metric's quota.
type ReserveInput struct {
	Metric string
	Amount int64
	// TTL is how long the reservation stays open (0: DefaultReservationTTL).
	TTL time.Duration
	// IdempotencyKey, when set, makes a retry return the reservation the
	// first call made (per tenant and metric), never a second one.
	IdempotencyKey string
}

// Validate checks the input: a valid metric, an amount from 1 to
// MaxAmount, a TTL of 1 s to MaxReservationTTL (or 0), and a key of at
// most MaxIdempotencyKeyLen printable ASCII characters. EInvalid naming
// the field.
func (in ReserveInput) Validate() error {
	if !ValidMetric(in.Metric) {
		return InvalidMetric()
	}
	if err := ValidateAmount(in.Amount); err != nil {
		return err
	}
	if in.TTL != 0 && (in.TTL < time.Second || in.TTL > MaxReservationTTL) {
		return Invalid("invalid ttl_seconds", FieldError{Field: "ttl_seconds", Message: "must be from 1 to 86400"})
	}
	if !validKey(in.IdempotencyKey) {
		return Invalid("invalid idempotency_key", FieldError{Field: "idempotency_key", Message: "must be at most 128 printable ASCII characters"})
	}
	return nil
}

// validKey reports whether k is "" or at most MaxIdempotencyKeyLen
// printable ASCII characters.
func validKey(k string) bool {
	if len(k) > MaxIdempotencyKeyLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// ReservationStore keeps quota reservations. Every method is scoped by
// tenant except ExpireDueReservations, which is the one sweep across
// tenants.
type ReservationStore interface {
	// CreateReservation stores r (ID, TenantID, Metric, Amount, Day,
	// ResetsAt, CreatedAt, ExpiresAt, IdempotencyKey), open. When the
	// tenant already has a reservation of the metric with the same
	// non-empty idempotency key it stores nothing and returns that one
	// with created false.
	CreateReservation(ctx context.Context, r *QuotaReservation) (existing *QuotaReservation, created bool, err error)
	// Reservation returns one reservation of the tenant; ENotFound when
	// it has none with that id and metric.
	Reservation(ctx context.Context, tenantID int64, metric, id string) (*QuotaReservation, error)
	// ReservationByKey returns the tenant's reservation of metric made
	// with idempotency key key; ENotFound when there is none.
	ReservationByKey(ctx context.Context, tenantID int64, metric, key string) (*QuotaReservation, error)
	// ClaimReservation moves the reservation from one of the states from
	// to state to, atomically: of concurrent claims on any instance,
	// one wins. An open reservation is claimed only while now is before
	// its ExpiresAt. committed is stored with the move (for a commit). It
	// returns the reservation after the call and whether this call moved
	// it; ENotFound when there is none.
	ClaimReservation(ctx context.Context, tenantID int64, metric, id string, from []string, to string, committed int64, now time.Time) (*QuotaReservation, bool, error)
	// ExpireDueReservations moves up to limit open reservations of every
	// tenant whose ExpiresAt is at or before now to expired and returns
	// them; each is returned by one call only.
	ExpireDueReservations(ctx context.Context, now time.Time, limit int) ([]QuotaReservation, error)
	// HeldReservations sums, per metric, what the tenant's reservations
	// of the UTC day containing day hold in its counters: the amount of
	// open ones and the committed amount of those being committed.
	HeldReservations(ctx context.Context, tenantID int64, day time.Time) (map[string]int64, error)
}
