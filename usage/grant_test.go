package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/usage"
)

// TestGrantsTopUpThePeriod: a grant raises the current period's allowance
// for consumes, reservations and ingestion, ends at its expiry, and does
// not carry over to the next period.
func TestGrantsTopUpThePeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn, berlin := zonedStore(t, "Europe/Berlin")
	clk := &clock{}
	clk.Set(time.Date(2026, 3, 10, 9, 0, 0, 0, berlin))
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: clk.Now}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "builds_daily", Limit: 2, Enforced: true, Period: "week"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ok, _, _ := consume(t, svc, db, tn, "builds_daily", 1); !ok {
			t.Fatal("consume within the limit refused")
		}
	}
	if ok, _, _ := consume(t, svc, db, tn, "builds_daily", 1); ok {
		t.Fatal("consume past the limit allowed")
	}
	soon := clk.Now().Add(time.Hour)
	g, st, err := svc.Grant(ctx, tn, tally.GrantInput{Metric: "builds_daily", Amount: 3, Reason: "support ticket 7"}, "user:a@x")
	if err != nil {
		t.Fatal(err)
	}
	if st.Granted != 3 || st.Remaining != 3 || st.Exceeded || !g.PeriodStart.Equal(time.Date(2026, 3, 9, 0, 0, 0, 0, berlin)) {
		t.Fatalf("after a grant of 3: %+v, grant %+v", st, g)
	}
	if _, _, err := svc.Grant(ctx, tn, tally.GrantInput{Metric: "builds_daily", Amount: 1, Reason: "an hour", ExpiresAt: &soon}, "user:a@x"); err != nil {
		t.Fatal(err)
	}
	if ok, st, _ := consume(t, svc, db, tn, "builds_daily", 2); !ok || st.Remaining != 2 {
		t.Fatalf("consume 2 of the grants: %v %+v", ok, st)
	}
	// Ingestion is gated by the same allowance: 2 fit, a third is refused.
	if errs := track(t, svc, db, event(tn, "builder.generate.completed", clk.Now()), event(tn, "builder.generate.completed", clk.Now())); errs[0] != nil || errs[1] != nil {
		t.Fatalf("builds within the grants: %v", errs)
	}
	if errs := track(t, svc, db, event(tn, "builder.generate.completed", clk.Now())); tally.ErrorCodeOf(errs[0]) != tally.ERateLimited {
		t.Fatalf("build past the grants: %v", errs[0])
	}
	// The one-hour grant ends: 6 used of 5.
	clk.Set(soon)
	if st, _ := svc.Status(ctx, tn, "builds_daily"); st.Granted != 3 || st.Current != 6 || !st.Exceeded || st.Remaining != 0 {
		t.Fatalf("after the short grant expired: %+v", st)
	}
	// Next week: the limit alone, from zero.
	clk.Set(time.Date(2026, 3, 16, 0, 0, 1, 0, berlin))
	if st, _ := svc.Status(ctx, tn, "builds_daily"); st.Granted != 0 || st.Current != 0 || st.Remaining != 2 {
		t.Fatalf("next week: %+v", st)
	}
	gs, err := svc.Grants(ctx, tn, "builds_daily")
	if err != nil || len(gs) != 2 || gs[0].Reason != "an hour" || gs[1].CreatedBy != "user:a@x" {
		t.Fatalf("grants %+v, %v", gs, err)
	}
	for _, in := range []tally.GrantInput{
		{Metric: "builds_daily", Amount: 0, Reason: "x"},
		{Metric: "builds_daily", Amount: 1},
		{Metric: "builds_daily", Amount: 1, Reason: "past", ExpiresAt: &soon},
	} {
		if _, _, err := svc.Grant(ctx, tn, in, "cli"); tally.ErrorCodeOf(err) != tally.EInvalid {
			t.Errorf("grant %+v: %v, want invalid", in, err)
		}
	}
	if _, _, err := svc.Grant(ctx, tn, tally.GrantInput{Metric: "no_quota", Amount: 1, Reason: "x"}, "cli"); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("grant without a quota: %v", err)
	}
}
