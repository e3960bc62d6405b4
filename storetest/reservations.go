package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func reservationCases() []testCase {
	return []testCase{
		{"CreateAndKey", testReservationCreate},
		{"ClaimRace", testReservationClaimRace},
		{"ExpireOnce", testReservationExpire},
		{"SettledEvents", testSettledEvents},
		{"Grants", testGrants},
	}
}

func newReservation(tenant int64, metric, key string, amount int64, now time.Time, ttl time.Duration) *tally.QuotaReservation {
	now = now.UTC().Truncate(time.Microsecond)
	return &tally.QuotaReservation{ID: tally.NewReservationID(), TenantID: tenant, Metric: metric, Amount: amount, IdempotencyKey: key,
		Day: tally.DayStart(now), ResetsAt: tally.DayStart(now).Add(24 * time.Hour), CreatedAt: now, ExpiresAt: now.Add(ttl)}
}

func testReservationCreate(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme, other := newTenant(t, s, "acme"), newTenant(t, s, "other")
	now := time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC)
	a := newReservation(acme.ID, "gen", "k1", 5, now, time.Minute)
	got, created, err := s.CreateReservation(ctx, a)
	check(t, err)
	if !created || got.ID != a.ID || got.State != tally.ReservationOpen || got.Amount != 5 || got.IdempotencyKey != "k1" ||
		!got.Day.Equal(tally.DayStart(now)) || !got.ExpiresAt.Equal(a.ExpiresAt) || !got.CreatedAt.Equal(a.CreatedAt) || !got.ResetsAt.Equal(a.ResetsAt) {
		t.Fatalf("created %+v, %v", got, created)
	}
	// The same key (tenant, metric) returns the first; another metric,
	// tenant or no key makes a new one.
	again, created, err := s.CreateReservation(ctx, newReservation(acme.ID, "gen", "k1", 9, now, time.Minute))
	check(t, err)
	if created || again.ID != a.ID || again.Amount != 5 {
		t.Fatalf("same key: %+v, created %v", again, created)
	}
	for _, r := range []*tally.QuotaReservation{
		newReservation(acme.ID, "other_metric", "k1", 1, now, time.Minute),
		newReservation(other.ID, "gen", "k1", 1, now, time.Minute),
		newReservation(acme.ID, "gen", "", 2, now, time.Minute),
		newReservation(acme.ID, "gen", "", 3, now, time.Minute),
	} {
		if _, created, err := s.CreateReservation(ctx, r); err != nil || !created {
			t.Fatalf("%+v: created %v, %v", r, created, err)
		}
	}
	byKey, err := s.ReservationByKey(ctx, acme.ID, "gen", "k1")
	check(t, err)
	if byKey.ID != a.ID {
		t.Errorf("by key %+v", byKey)
	}
	if _, err := s.ReservationByKey(ctx, acme.ID, "gen", "nope"); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := s.Reservation(ctx, other.ID, "gen", a.ID); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("another tenant's reservation: %v", err)
	}
	held, err := s.HeldReservations(ctx, acme.ID, now)
	check(t, err)
	if held["gen"] != 10 || held["other_metric"] != 1 || len(held) != 2 {
		t.Errorf("held %v, want gen 10, other_metric 1", held)
	}
	// Claimed for commit with 2 of 5: holds 2; committed: holds nothing.
	r, moved, err := s.ClaimReservation(ctx, acme.ID, "gen", a.ID, []string{tally.ReservationOpen}, tally.ReservationCommitting, 2, now)
	check(t, err)
	if !moved || r.State != tally.ReservationCommitting || r.Committed != 2 {
		t.Fatalf("claim %+v, %v", r, moved)
	}
	held, _ = s.HeldReservations(ctx, acme.ID, now)
	if held["gen"] != 7 {
		t.Errorf("held while committing %v, want 7", held)
	}
	r, moved, err = s.ClaimReservation(ctx, acme.ID, "gen", a.ID, []string{tally.ReservationCommitting}, tally.ReservationCommitted, 2, now)
	check(t, err)
	if !moved || r.State != tally.ReservationCommitted {
		t.Fatalf("commit %+v, %v", r, moved)
	}
	if r, moved, err := s.ClaimReservation(ctx, acme.ID, "gen", a.ID, []string{tally.ReservationOpen}, tally.ReservationReleased, 0, now); err != nil || moved || r.State != tally.ReservationCommitted {
		t.Errorf("release of a committed one: %+v, %v, %v", r, moved, err)
	}
	held, _ = s.HeldReservations(ctx, acme.ID, now)
	if held["gen"] != 5 {
		t.Errorf("held after commit %v, want 5", held)
	}
	if held, _ := s.HeldReservations(ctx, acme.ID, now.Add(24*time.Hour)); len(held) != 0 {
		t.Errorf("held the next day %v", held)
	}
	if _, _, err := s.ClaimReservation(ctx, acme.ID, "gen", tally.NewReservationID(), []string{tally.ReservationOpen}, tally.ReservationReleased, 0, now); tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Errorf("claim of an unknown id: %v", err)
	}
	// An open reservation past its expiry cannot be claimed.
	late := newReservation(acme.ID, "gen", "", 1, now, time.Second)
	_, _, err = s.CreateReservation(ctx, late)
	check(t, err)
	if r, moved, err := s.ClaimReservation(ctx, acme.ID, "gen", late.ID, []string{tally.ReservationOpen}, tally.ReservationCommitting, 1, now.Add(time.Second)); err != nil || moved || r.State != tally.ReservationOpen {
		t.Errorf("claim at expiry: %+v, %v, %v", r, moved, err)
	}
}

// testReservationClaimRace: of concurrent commits and releases of one
// reservation, exactly one moves it.
func testReservationClaimRace(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme := newTenant(t, s, "acme")
	now := time.Now()
	for range 5 {
		r := newReservation(acme.ID, "gen", "", 3, now, time.Hour)
		_, _, err := s.CreateReservation(ctx, r)
		check(t, err)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				to := tally.ReservationCommitting
				if i%2 == 1 {
					to = tally.ReservationReleased
				}
				_, moved, err := s.ClaimReservation(ctx, acme.ID, "gen", r.ID, []string{tally.ReservationOpen}, to, 1, now)
				if err != nil {
					t.Error(err)
				}
				if moved {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d claims moved one reservation", wins.Load())
		}
	}
}

// testReservationExpire: each due reservation is expired by one sweep
// only, also when sweeps run at once; open ones not yet due stay.
func testReservationExpire(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme, other := newTenant(t, s, "acme"), newTenant(t, s, "other")
	now := time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC)
	due := map[string]bool{}
	for i := range 30 {
		tn := acme.ID
		if i%3 == 0 {
			tn = other.ID
		}
		r := newReservation(tn, "gen", "", 1, now, time.Duration(i+1)*time.Second)
		_, _, err := s.CreateReservation(ctx, r)
		check(t, err)
		if i < 20 {
			due[r.ID] = true
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := s.ExpireDueReservations(ctx, now.Add(20*time.Second), 7)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			for _, r := range rs {
				seen[r.ID]++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for {
		rs, err := s.ExpireDueReservations(ctx, now.Add(20*time.Second), 7)
		check(t, err)
		if len(rs) == 0 {
			break
		}
		for _, r := range rs {
			if r.State != tally.ReservationExpired {
				t.Errorf("swept %+v", r)
			}
			seen[r.ID]++
		}
	}
	if len(seen) != len(due) {
		t.Errorf("expired %d, want %d", len(seen), len(due))
	}
	for id, n := range seen {
		if n != 1 || !due[id] {
			t.Errorf("%s expired %d times (due %v)", id, n, due[id])
		}
	}
	held, err := s.HeldReservations(ctx, acme.ID, now)
	check(t, err)
	if held["gen"] != 7 { // of the 10 not due, 3 belong to other
		t.Errorf("held after the sweep %v, want 7", held)
	}
}

// testSettledEvents: an event's Settled metric is stored with it and
// aggregates as the row's metric; StoredEventIDs finds stored ids only,
// of the tenant only.
func testSettledEvents(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme, other := newTenant(t, s, "acme"), newTenant(t, s, "other")
	at := time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC)
	settled := ev(acme.ID, "b-1", "builder.generate.completed", "", at)
	settled.Settled = "builds_daily"
	insertNew(t, s, settled, ev(acme.ID, "b-2", "builder.generate.completed", "", at),
		increment(acme.ID, tally.SettlementID("builds_daily", "b-1"), "builds_daily", "", at, 1),
		ev(other.ID, "b-9", "builder.generate.completed", "", at))
	rows, err := s.AggregateEvents(ctx, acme.ID, at.Truncate(time.Hour), at.Add(time.Hour), time.Hour)
	check(t, err)
	byMetric := map[string]int64{}
	for _, r := range rows {
		if r.Event == "builder.generate.completed" {
			byMetric[r.Metric] += r.Count
		}
	}
	if byMetric[""] != 1 || byMetric["builds_daily"] != 1 {
		t.Errorf("build rows by metric %v, want one settled, one not", byMetric)
	}
	if got := tally.DefaultUsageRules().ApplyRows(rows)["builds_daily"]; got != 2 {
		t.Errorf("builds_daily over the rows %d, want 2 (one build, one increment)", got)
	}
	stored, err := s.StoredEventIDs(ctx, acme.ID, []string{"b-1", "b-2", "b-9", "nope", tally.SettlementID("builds_daily", "b-1")})
	check(t, err)
	if len(stored) != 3 || stored["b-1"] != "builds_daily" || stored["b-2"] != "" || stored[tally.SettlementID("builds_daily", "b-1")] != "builds_daily" {
		t.Errorf("stored %v", stored)
	}
	if got, err := s.StoredEventIDs(ctx, acme.ID, nil); err != nil || len(got) != 0 {
		t.Errorf("no ids: %v, %v", got, err)
	}
}

// testGrants: grants are listed newest first per tenant and metric; the
// active ones are those not expired, of recent periods.
func testGrants(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme, other := newTenant(t, s, "acme"), newTenant(t, s, "other")
	now := time.Date(2026, 3, 8, 10, 0, 0, 0, time.UTC)
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	soon, past := now.Add(time.Hour), now.Add(-time.Minute)
	for _, g := range []*tally.QuotaGrant{
		{TenantID: acme.ID, Metric: "gen", Amount: 5, Reason: "a", PeriodStart: start, CreatedBy: "cli", CreatedAt: now},
		{TenantID: acme.ID, Metric: "gen", Amount: 2, Reason: "b", PeriodStart: start, ExpiresAt: &soon, CreatedBy: "cli", CreatedAt: now},
		{TenantID: acme.ID, Metric: "gen", Amount: 7, Reason: "expired", PeriodStart: start, ExpiresAt: &past, CreatedBy: "cli", CreatedAt: now},
		{TenantID: acme.ID, Metric: "gen", Amount: 9, Reason: "old period", PeriodStart: start.AddDate(0, -3, 0), CreatedBy: "cli", CreatedAt: now},
		{TenantID: acme.ID, Metric: "other", Amount: 1, Reason: "c", PeriodStart: start, CreatedBy: "cli", CreatedAt: now},
		{TenantID: other.ID, Metric: "gen", Amount: 100, Reason: "d", PeriodStart: start, CreatedBy: "cli", CreatedAt: now},
	} {
		check(t, s.CreateGrant(ctx, g))
		if g.ID == 0 {
			t.Fatalf("no id for %+v", g)
		}
	}
	list, err := s.Grants(ctx, acme.ID, "gen", 10)
	check(t, err)
	if len(list) != 4 || list[0].Reason != "old period" || list[3].Reason != "a" || list[2].ExpiresAt == nil || !list[2].ExpiresAt.Equal(soon) || !list[3].PeriodStart.Equal(start) {
		t.Fatalf("grants %+v", list)
	}
	if list, _ := s.Grants(ctx, acme.ID, "gen", 2); len(list) != 2 {
		t.Errorf("limit 2: %d", len(list))
	}
	active, err := s.ActiveGrants(ctx, acme.ID, now)
	check(t, err)
	sum := map[string]int64{}
	for _, g := range active {
		if g.ActiveAt(start, now) {
			sum[g.Metric] += g.Amount
		}
	}
	if len(active) != 3 || sum["gen"] != 7 || sum["other"] != 1 {
		t.Errorf("active %+v (sums %v), want gen 5+2, other 1", active, sum)
	}
}
