package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
	"github.com/tallyhq/tally/usage"
)

// zonedStore opens a fresh SQLite file with one tenant in zone.
func zonedStore(t *testing.T, zone string) (tally.Store, int64, *time.Location) {
	t.Helper()
	db, tn := sqlitetest.WithTenant(t)
	tn.Timezone = zone
	if err := db.UpdateTenant(t.Context(), tn); err != nil {
		t.Fatal(err)
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	return db, tn.ID, loc
}

// TestDayQuotaInTenantZone: a daily quota of a Berlin tenant starts at
// the local midnight, inside the UTC day its counters count in, and on the
// 23-hour day of the spring-forward.
func TestDayQuotaInTenantZone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn, berlin := zonedStore(t, "Europe/Berlin")
	clk := &clock{}
	// 23:30 UTC on March 28 is 00:30 on March 29 in Berlin (still CET).
	clk.Set(time.Date(2026, 3, 28, 22, 0, 0, 0, time.UTC))
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: clk.Now}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "gen", Limit: 5, Enforced: true}); err != nil {
		t.Fatal(err)
	}
	// Three units on March 28 (local) at 22:00 UTC: same UTC day as below.
	for range 3 {
		if ok, _, _ := consume(t, svc, db, tn, "gen", 1); !ok {
			t.Fatal("consume refused on March 28")
		}
	}
	clk.Set(time.Date(2026, 3, 28, 23, 30, 0, 0, time.UTC))
	st, err := svc.Status(ctx, tn, "gen")
	if err != nil {
		t.Fatal(err)
	}
	wantStart := time.Date(2026, 3, 29, 0, 0, 0, 0, berlin)
	wantEnd := time.Date(2026, 3, 30, 0, 0, 0, 0, berlin)
	if st.Current != 0 || st.Remaining != 5 || !st.PeriodStart.Equal(wantStart) || !st.ResetsAt.Equal(wantEnd) {
		t.Fatalf("status after the local midnight %+v, want 0 of 5 in [%s, %s)", st, wantStart.UTC(), wantEnd.UTC())
	}
	if got := st.ResetsAt.Sub(st.PeriodStart); got != 23*time.Hour {
		t.Errorf("spring-forward day of %s, want 23h", got)
	}
	for i := range 5 {
		if ok, _, _ := consume(t, svc, db, tn, "gen", 1); !ok {
			t.Fatalf("consume %d of the new day refused", i+1)
		}
	}
	if ok, st, _ := consume(t, svc, db, tn, "gen", 1); ok || st.Current != 5 {
		t.Fatalf("sixth consume of the day: allowed %v, %+v", ok, st)
	}
	// Ingestion is gated by the same period: a usage increment is refused.
	if errs := track(t, svc, db, increment(tn, "gen", 1, clk.Now())); tally.ErrorCodeOf(errs[0]) != tally.ERateLimited {
		t.Errorf("increment past the day's limit: %v", errs[0])
	}
	// The UTC day rolls over at 00:00 UTC, 01:00 in Berlin: still the same
	// local day, its usage now all in the log.
	clk.Set(time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC))
	if st, err := svc.Status(ctx, tn, "gen"); err != nil || st.Current != 5 || st.Remaining != 0 {
		t.Fatalf("after the UTC midnight: %+v, %v", st, err)
	}
	if ok, _, _ := consume(t, svc, db, tn, "gen", 1); ok {
		t.Fatal("consume after the UTC midnight passed the local day's limit")
	}
	// The next local midnight (22:00 UTC, CEST) resets it.
	clk.Set(time.Date(2026, 3, 29, 22, 0, 1, 0, time.UTC))
	if st, err := svc.Status(ctx, tn, "gen"); err != nil || st.Current != 0 {
		t.Fatalf("next local day: %+v, %v", st, err)
	}
}

// TestMonthQuotaCountsThePeriod: a monthly quota counts the month's
// usage from the log of past days plus today's counter, enforces it, and
// starts again with the next month.
func TestMonthQuotaCountsThePeriod(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn, ny := zonedStore(t, "America/New_York")
	clk := &clock{}
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: clk.Now}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "builds_daily", Limit: 10, Enforced: true, Period: "month"}); err != nil {
		t.Fatal(err)
	}
	build := func(at time.Time) error {
		clk.Set(at)
		return track(t, svc, db, event(tn, "builder.generate.completed", at))[0]
	}
	// February 28 at 23:00 New York is March 1 in UTC: not this month.
	for _, at := range []time.Time{
		time.Date(2026, 2, 28, 23, 0, 0, 0, ny),
		time.Date(2026, 3, 1, 0, 30, 0, 0, ny), time.Date(2026, 3, 1, 20, 0, 0, 0, ny),
		time.Date(2026, 3, 8, 1, 0, 0, 0, ny), time.Date(2026, 3, 8, 4, 0, 0, 0, ny), // the DST change
		time.Date(2026, 3, 20, 12, 0, 0, 0, ny),
	} {
		if err := build(at); err != nil {
			t.Fatalf("build at %s: %v", at, err)
		}
	}
	clk.Set(time.Date(2026, 3, 31, 10, 0, 0, 0, ny))
	st, err := svc.Status(ctx, tn, "builds_daily")
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 5 || st.Remaining != 5 || st.Period != "month" ||
		!st.PeriodStart.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, ny)) || !st.ResetsAt.Equal(time.Date(2026, 4, 1, 0, 0, 0, 0, ny)) {
		t.Fatalf("March status %+v", st)
	}
	for i := range 5 {
		if err := build(clk.Now().Add(time.Duration(i) * time.Minute)); err != nil {
			t.Fatalf("build %d of the month's rest: %v", i+6, err)
		}
	}
	if err := build(clk.Now().Add(time.Minute)); tally.ErrorCodeOf(err) != tally.ERateLimited {
		t.Fatalf("eleventh build of March: %v, want rate_limited", err)
	}
	if ok, st, _ := consume(t, svc, db, tn, "builds_daily", 1); ok || st.Current != 10 {
		t.Fatalf("consume in a full month: %v %+v", ok, st)
	}
	// A build late on March 31 in New York is April 1 in UTC, still March:
	// refused; an hour later April has room.
	if err := build(time.Date(2026, 3, 31, 22, 0, 0, 0, ny)); tally.ErrorCodeOf(err) != tally.ERateLimited {
		t.Fatalf("build at 22:00 on March 31: %v, want rate_limited", err)
	}
	if err := build(time.Date(2026, 4, 1, 0, 0, 1, 0, ny)); err != nil {
		t.Fatalf("first build of April: %v", err)
	}
	if st, err := svc.Status(ctx, tn, "builds_daily"); err != nil || st.Current != 1 {
		t.Fatalf("April status %+v, %v", st, err)
	}
}

// TestBillingQuotaAnchor31: a billing period anchored on the 31st runs
// from January 31 to February 28, then to March 31.
func TestBillingQuotaAnchor31(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn, berlin := zonedStore(t, "Europe/Berlin")
	clk := &clock{}
	svc := usage.NewService(usage.Config{QuotasEnabled: true, Now: clk.Now}, db, usage.NewMemoryCounters(), nil, 0)
	if _, err := svc.SetQuota(ctx, tn, tally.Quota{Metric: "gen", Limit: 3, Enforced: true, Period: "billing", AnchorDay: 31}); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Date(2027, 1, 31, 9, 0, 0, 0, berlin))
	for range 2 {
		if ok, _, _ := consume(t, svc, db, tn, "gen", 1); !ok {
			t.Fatal("consume on January 31 refused")
		}
	}
	clk.Set(time.Date(2027, 2, 27, 23, 59, 0, 0, berlin))
	if ok, st, _ := consume(t, svc, db, tn, "gen", 2); ok || st.Current != 2 || !st.ResetsAt.Equal(time.Date(2027, 2, 28, 0, 0, 0, 0, berlin)) {
		t.Fatalf("consume 2 on February 27: %v %+v", ok, st)
	}
	clk.Set(time.Date(2027, 2, 28, 0, 0, 0, 0, berlin))
	ok, st, _ := consume(t, svc, db, tn, "gen", 3)
	if !ok || st.Current != 3 || st.AnchorDay != 31 ||
		!st.PeriodStart.Equal(time.Date(2027, 2, 28, 0, 0, 0, 0, berlin)) || !st.ResetsAt.Equal(time.Date(2027, 3, 31, 0, 0, 0, 0, berlin)) {
		t.Fatalf("consume 3 at the February 28 reset: %v %+v", ok, st)
	}
	policy, _ := usage.RateLimitHeaders(st, clk.Now())
	if want := `"gen";q=3;w=2674800`; policy != want { // 31 days less the DST hour
		t.Errorf("RateLimit-Policy %s, want %s", policy, want)
	}
}

// consume is a quota consume made durable, as the Recorder makes it.
func consume(t *testing.T, svc *usage.Service, db tally.Store, tn int64, metric string, n int64) (bool, tally.QuotaStatus, error) {
	t.Helper()
	ctx := context.Background()
	ok, st, res, err := svc.Consume(ctx, tn, metric, n)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		return false, st, nil
	}
	e := increment(tn, metric, float64(n), res.At)
	inserted, err := db.InsertEvents(ctx, []tally.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	svc.Settle(ctx, []tally.Event{e}, inserted, res)
	return true, st, nil
}
