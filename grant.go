package tally

import (
	"context"
	"time"
)

// MaxGrantReason is the longest reason of a quota grant.
const MaxGrantReason = 200

// QuotaGrant is a one-off extra allowance (a top-up) of one quota period:
// the period of Metric's quota that started at PeriodStart allows Limit +
// the amounts of its grants, each until its ExpiresAt (nil: the period's
// end). A grant never carries over to the next period.
type QuotaGrant struct {
	ID          int64      `json:"id"`
	TenantID    int64      `json:"-"`
	Metric      string     `json:"metric"`
	Amount      int64      `json:"amount"`
	Reason      string     `json:"reason"`
	PeriodStart time.Time  `json:"period_start"`
	ExpiresAt   *time.Time `json:"expires_at"`
	CreatedBy   string     `json:"created_by"`
	CreatedAt   time.Time  `json:"created_at"`
}

// ActiveAt reports whether g adds to the allowance of the period that
// started at start, at time now.
func (g *QuotaGrant) ActiveAt(start, now time.Time) bool {
	return g.PeriodStart.Equal(start) && (g.ExpiresAt == nil || now.Before(*g.ExpiresAt))
}

// GrantInput is a request to grant Amount more of Metric's current
// period.
type GrantInput struct {
	Metric    string
	Amount    int64
	Reason    string
	ExpiresAt *time.Time
}

// Validate checks the input at now: a valid metric, an amount from 1 to
// MaxAmount, a reason of 1 to MaxGrantReason printable characters, and an
// expiry after now. EInvalid naming the fields.
func (in GrantInput) Validate(now time.Time) error {
	if !ValidMetric(in.Metric) {
		return InvalidMetric()
	}
	if err := ValidateAmount(in.Amount); err != nil {
		return err
	}
	var bad []FieldError
	if in.Reason == "" || CheckText(in.Reason, MaxGrantReason, "x") != "" {
		bad = append(bad, FieldError{Field: "reason", Message: "must be 1 to 200 printable characters"})
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		bad = append(bad, FieldError{Field: "expires_at", Message: "must be in the future"})
	}
	if bad != nil {
		return Invalid("invalid grant", bad...)
	}
	return nil
}

// GrantStore keeps quota grants, per tenant.
type GrantStore interface {
	// CreateGrant stores g (all but ID, which it sets).
	CreateGrant(ctx context.Context, g *QuotaGrant) error
	// Grants lists the tenant's grants of metric, newest first, at most
	// limit.
	Grants(ctx context.Context, tenantID int64, metric string, limit int) ([]QuotaGrant, error)
	// ActiveGrants lists the tenant's grants of every metric whose expiry
	// (if any) is after now and whose period started within the two
	// months before now (no period is longer).
	ActiveGrants(ctx context.Context, tenantID int64, now time.Time) ([]QuotaGrant, error)
}
