package meter_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/meter"
)

// stuckStore is a meter store whose queries run until their context ends,
// as a query over too much data would: no real database makes that
// happen on cue.
type stuckStore struct{ tally.MeterStore }

func (stuckStore) MeterBySlug(context.Context, int64, string) (*tally.MeterDef, error) {
	return &tally.MeterDef{Slug: "slow", Event: "*", Aggregation: tally.AggCount}, nil
}

func (stuckStore) QueryMeter(ctx context.Context, _ int64, _ tally.MeterQuery, _ func(tally.MeterRow) error) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestQueryTimeout checks that a query past the timeout ends as a
// retryable unavailability with a message saying what to change.
func TestQueryTimeout(t *testing.T) {
	t.Parallel()
	svc := meter.New(meter.Config{QueryTimeout: 10 * time.Millisecond}, stuckStore{})
	now := time.Now()
	_, err := svc.Query(t.Context(), 1, "slow", tally.MeterQueryInput{From: now.Add(-time.Hour), To: now})
	var e *tally.Error
	if !errors.As(err, &e) || e.Code != tally.EUnavailable || e.Message == "" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want EUnavailable wrapping the deadline", err)
	}
}

// TestBuiltinsReadOnly checks that the usage rules' meters are listed and
// cannot be changed, deleted or shadowed.
func TestBuiltinsReadOnly(t *testing.T) {
	t.Parallel()
	svc := meter.New(meter.Config{Rules: tally.DefaultUsageRules()}, stuckStore{})
	m, err := svc.Get(t.Context(), 1, "events_daily")
	if err != nil || !m.BuiltIn || m.Event != "*" || m.Aggregation != tally.AggCount {
		t.Fatalf("Get(events_daily) = %+v, %v", m, err)
	}
	if err := svc.Delete(t.Context(), 1, "events_daily"); tally.ErrorCodeOf(err) != tally.EConflict {
		t.Errorf("Delete of a built-in: %v", err)
	}
	if _, _, err := svc.Update(t.Context(), 1, "events_daily", tally.MeterPatch{}); tally.ErrorCodeOf(err) != tally.EConflict {
		t.Errorf("Update of a built-in: %v", err)
	}
	if _, err := svc.Create(t.Context(), 1, tally.MeterDef{Slug: "events_daily", Event: "x", Aggregation: tally.AggCount}); tally.ErrorCodeOf(err) != tally.EConflict {
		t.Errorf("Create over a built-in: %v", err)
	}
}
