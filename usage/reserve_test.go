package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/usage"
)

// TestReservationsSurviveRebuild: counters rebuilt from the log hold what
// open reservations hold, a drift repair keeps them, and once expired
// their amount is back in the quota.
func TestReservationsSurviveRebuild(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	clk := &clock{}
	clk.Set(time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC))
	counters := usage.NewMemoryCounters()
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: clk.Now}, db, counters, nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "gen", Limit: 10, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := consume(t, svc, db, tn, "gen", 2); !ok {
		t.Fatal("consume refused")
	}
	r, st, created, err := svc.Reserve(ctx, tn, tally.ReserveInput{Metric: "gen", Amount: 5, TTL: time.Minute, IdempotencyKey: "job-1"})
	if err != nil || !created || st.Current != 7 || st.Remaining != 3 {
		t.Fatalf("reserve: %+v %+v %v %v", r, st, created, err)
	}
	if again, _, created, err := svc.Reserve(ctx, tn, tally.ReserveInput{Metric: "gen", Amount: 5, IdempotencyKey: "job-1"}); err != nil || created || again.ID != r.ID {
		t.Fatalf("same key: %+v %v %v", again, created, err)
	}
	// Lose the counters: a rebuild from the log gives back 2 + 5.
	if err := counters.Reset(ctx, tn, clk.Now(), nil); err != nil {
		t.Fatal(err)
	}
	if err := svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := svc.Status(ctx, tn, "gen"); st.Current != 7 {
		t.Fatalf("after a rebuild: current %d, want 7 (2 consumed + 5 reserved)", st.Current)
	}
	if _, st, _, _ := svc.Reserve(ctx, tn, tally.ReserveInput{Metric: "gen", Amount: 4}); st.Current != 7 || st.Remaining != 3 {
		t.Fatalf("a reservation past the allowance after the rebuild: %+v", st)
	}
	// Expiry returns the 5: the reservation is no longer held.
	clk.Set(clk.Now().Add(time.Minute))
	if n, err := svc.ExpireDue(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v", n, err)
	}
	if st, _ := svc.Status(ctx, tn, "gen"); st.Current != 2 {
		t.Fatalf("after expiry: current %d, want 2", st.Current)
	}
	if _, _, err := svc.BeginCommit(ctx, tn, "gen", r.ID, nil); tally.ErrorCodeOf(err) != tally.EConflict {
		t.Errorf("commit of an expired reservation: %v", err)
	}
	if got, err := svc.Release(ctx, tn, "gen", r.ID); err != nil || got.State != tally.ReservationExpired {
		t.Errorf("release of an expired reservation: %+v, %v", got, err)
	}
	if err := svc.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := svc.Status(ctx, tn, "gen"); st.Current != 2 {
		t.Fatalf("rebuild after expiry: current %d, want 2", st.Current)
	}
}

// TestReservationAcrossMidnight: a reservation made before UTC midnight is
// held in yesterday's counter; a week's quota keeps counting it after
// midnight, until it is released, so a consume cannot take its units.
func TestReservationAcrossMidnight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	clk := &clock{}
	clk.Set(time.Date(2026, 3, 10, 23, 50, 0, 0, time.UTC)) // a Tuesday
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: clk.Now}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "gen", Limit: 10, Enforced: true, Period: "week"}); err != nil {
		t.Fatal(err)
	}
	r, st, _, err := svc.Reserve(ctx, tn, tally.ReserveInput{Metric: "gen", Amount: 8, TTL: time.Hour})
	if err != nil || st.Current != 8 {
		t.Fatalf("reserve: %+v %v", st, err)
	}
	clk.Set(time.Date(2026, 3, 11, 0, 10, 0, 0, time.UTC))
	if st, _ := svc.Status(ctx, tn, "gen"); st.Current != 8 || st.Remaining != 2 {
		t.Fatalf("after midnight the week shows current %d, remaining %d; want the 8 reserved held", st.Current, st.Remaining)
	}
	if ok, st, _ := consume(t, svc, db, tn, "gen", 3); ok {
		t.Fatalf("a consume of 3 with 8 of 10 reserved was admitted: %+v", st)
	}
	if _, err := svc.Release(ctx, tn, "gen", r.ID); err != nil {
		t.Fatal(err)
	}
	if ok, st, _ := consume(t, svc, db, tn, "gen", 3); !ok || st.Current != 3 {
		t.Fatalf("after the release: %v %+v", ok, st)
	}
}
