package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
)

// privacyCases check that a privacy deletion (DeleteUserEvents) is final
// in every view, whatever job runs after it.
func privacyCases() []testCase {
	return []testCase{{"DeletionIsFinalInEveryOrder", testDeletionIsFinal}}
}

// oneTenant is a store whose AllTenants sees a single tenant, so that the
// jobs of one sequence (which work on every tenant) leave the tenants of
// the other sequences alone and stay cheap.
type oneTenant struct {
	tally.Store
	mu sync.Mutex
	t  tally.Tenant
}

func (s *oneTenant) AllTenants(context.Context) ([]tally.Tenant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []tally.Tenant{s.t}, nil
}

// testDeletionIsFinal interleaves a privacy deletion with the retention
// purge and the rollups (RunDays, RunDirty, RecomputeDay) in every order
// of the four jobs, with the deletion at every place among them, and
// checks after each sequence that no view counts the deleted user: the
// events list, the daily and hourly rollups of clean days, the hours' user
// sets, usage (daily and hourly), the hourly rows and the KPIs.
//
// Each sequence has its own tenant, with events of the user "gone" in a
// day the purge expires (old) and in a retained one (recent), all rolled up
// before the sequence starts. The views are compared with those of a
// reference tenant that never had the user's events (or, when the purge
// came first, had them only in the old day: the purge leaves aggregates
// without user ids, which no later deletion can take a user out of), rolled
// up once and purged.
func testDeletionIsFinal(t *testing.T, s tally.Store) {
	ctx := t.Context()
	old := time.Date(2030, 3, 6, 0, 0, 0, 0, time.UTC)
	recent := old.AddDate(0, 0, 3)
	t0 := old.AddDate(0, 0, 1).Add(12 * time.Hour) // both days retained
	t1 := recent.AddDate(0, 0, 1).Add(12 * time.Hour)
	const retention = 3 // at t1 the retention starts the day after old
	var clockMu sync.Mutex
	clock := t0
	setClock := func(at time.Time) { clockMu.Lock(); clock = at; clockMu.Unlock() }
	rules := defaultRules()
	reports := rollup.NewReports(rollup.ReportsConfig{Rules: rules}, s)

	// fixture returns the events of tenant: the user "gone" in both days
	// unless without names a day it must be left out of.
	fixture := func(tenant int64, without ...time.Time) []tally.Event {
		var out []tally.Event
		add := func(e tally.Event) {
			if e.UserID == "gone" && slices.Contains(without, tally.DayStart(e.Timestamp)) {
				return
			}
			out = append(out, e)
		}
		for _, d := range []time.Time{old, recent} {
			p := d.Format("0102") + "-"
			h := func(n int, m int) time.Time { return d.Add(time.Duration(n)*time.Hour + time.Duration(m)*time.Minute) }
			add(ev(tenant, p+"1", "page.view", "gone", h(2, 1)))
			add(ev(tenant, p+"2", "page.view", "u1", h(2, 2)))
			add(ev(tenant, p+"3", tally.EventAPIRequest, "gone", h(2, 3)))
			add(ev(tenant, p+"4", tally.EventLogin, "gone", h(3, 0)))
			add(ev(tenant, p+"5", tally.EventLogin, "u1", h(3, 1)))
			add(increment(tenant, p+"6", "api_calls", "gone", h(14, 0), 5))
			add(increment(tenant, p+"7", "api_calls", "u2", h(14, 1), 2))
			add(ev(tenant, p+"8", tally.EventRegister, "gone", h(14, 2)))
			add(ev(tenant, p+"9", "page.view", "", h(20, 0)))
			add(withValue(ev(tenant, p+"10", "files.uploaded", "u2", h(23, 59)), 3))
		}
		return out
	}
	newRetained := func(slug string) *tally.Tenant {
		tn := newTenant(t, s, slug)
		tn.RetentionDays = retention
		check(t, s.UpdateTenant(ctx, tn))
		return tn
	}

	type job struct {
		name string
		run  func(r *rollup.Rollup, tenant int64) error
	}
	deletion := job{"delete", func(_ *rollup.Rollup, tenant int64) error {
		_, err := s.DeleteUserEvents(ctx, tenant, "gone")
		return err
	}}
	jobs := []job{
		{"purge", func(r *rollup.Rollup, _ int64) error { _, err := r.PurgeExpired(ctx); return err }},
		{"run-days", func(r *rollup.Rollup, tenant int64) error {
			_, err := r.RunDays(ctx, tenant, old, recent, rollup.KindManual, "")
			return err
		}},
		{"run-dirty", func(r *rollup.Rollup, _ int64) error { _, err := r.RunDirty(ctx); return err }},
		{"recompute-day", func(_ *rollup.Rollup, tenant int64) error {
			_, err := rollup.RecomputeDay(ctx, s, tenant, recent, rules)
			return err
		}},
	}

	var failed []string
	n := 0
	for _, order := range permutations(jobs) {
		for at := 0; at <= len(order); at++ {
			seq := slices.Insert(slices.Clone(order), at, deletion)
			var names []string
			for _, j := range seq {
				names = append(names, j.name)
			}
			name := strings.Join(names, ",")
			n++
			ok := t.Run(name, func(t *testing.T) {
				setClock(t0)
				tn := newRetained(fmt.Sprintf("seq-%d", n))
				ref := newRetained(fmt.Sprintf("ref-%d", n))
				store := &oneTenant{Store: s, t: *tn}
				r := rollup.New(rollup.Config{Rules: rules, Now: func() time.Time {
					clockMu.Lock()
					defer clockMu.Unlock()
					return clock
				}}, store, nil)

				// The reference: the purge leaves the old day's aggregates as
				// they were when it ran.
				without := []time.Time{recent}
				if slices.IndexFunc(seq, func(j job) bool { return j.name == "purge" }) > at {
					without = append(without, old)
				}
				insertNew(t, s, fixture(ref.ID, without...)...)
				insertNew(t, s, fixture(tn.ID)...)
				for d := old; !d.After(recent); d = d.AddDate(0, 0, 1) {
					rollupDay(t, s, ref.ID, d, rules)
				}
				if _, err := r.RunDays(ctx, tn.ID, old, recent, rollup.KindManual, ""); err != nil {
					t.Fatal(err)
				}
				for _, h := range dirtyHours(t, s, t1) {
					if h.TenantID == tn.ID || h.TenantID == ref.ID {
						t.Fatalf("before the sequence: %v is dirty", h)
					}
				}

				setClock(t1)
				cut := tn.RetentionStart(t1)
				_, err := s.PurgeEvents(ctx, ref.ID, cut)
				check(t, err)
				for _, j := range seq {
					if err := j.run(r, tn.ID); err != nil {
						t.Fatalf("%s: %v", j.name, err)
					}
				}
				wantNoTrace(t, s, reports, tn.ID, ref.ID, old, recent.AddDate(0, 0, 1), t1)
			})
			if !ok {
				failed = append(failed, name)
			}
		}
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d orders brought the deleted user back in some view", len(failed), n)
	}
}

// wantNoTrace fails unless every view of tenant over [from, to) is that of
// ref, and no event or user set names the user "gone".
func wantNoTrace(t *testing.T, s tally.Store, reports *rollup.Reports, tenant, ref int64, from, to, now time.Time) {
	t.Helper()
	ctx := t.Context()
	ids := func(id int64) []string {
		evs := listAll(t, s, id, tally.EventFilter{Limit: 100})
		for _, e := range evs {
			if e.UserID == "gone" {
				t.Errorf("events list: event %q of the deleted user", e.EventID)
			}
		}
		return eventIDs(evs)
	}
	if got, want := ids(tenant), ids(ref); !reflect.DeepEqual(got, want) {
		t.Errorf("events list: %q, want %q", got, want)
	}

	sets := func(id int64) []hourUsers {
		hs := readHourUsers(t, s, id, from, to)
		for _, h := range hs {
			if slices.Contains(h.Users, "gone") {
				t.Errorf("user set of %v holds the deleted user", h.Hour)
			}
		}
		return hs
	}
	sets(tenant)

	// The rollups of the days without dirty hours are exact, so they are
	// the reference's.
	dirty := map[time.Time]bool{}
	for _, h := range dirtyHours(t, s, to) {
		if h.TenantID == tenant {
			dirty[tally.DayStart(h.Hour)] = true
		}
	}
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		if dirty[d] {
			continue
		}
		next := d.AddDate(0, 0, 1)
		for _, read := range []struct {
			what string
			fn   func(context.Context, int64, time.Time, time.Time) ([]tally.HourRow, error)
		}{{"hourly rollups", s.RollupHours}, {"daily rollups", s.RollupDays}} {
			got, err := read.fn(ctx, tenant, d, next)
			check(t, err)
			want, err := read.fn(ctx, ref, d, next)
			check(t, err)
			if g, w := canonRows(got), canonRows(want); !reflect.DeepEqual(g, w) {
				t.Errorf("%s of clean day %s:\ngot  %s\nwant %s", read.what, d.Format(time.DateOnly), fmtRows(g), fmtRows(w))
			}
		}
		if got, want := readHourUsers(t, s, tenant, d, next), readHourUsers(t, s, ref, d, next); !reflect.DeepEqual(got, want) {
			t.Errorf("user sets of clean day %s:\ngot  %v\nwant %v", d.Format(time.DateOnly), got, want)
		}
	}

	same := func(what string, read func(id int64) (any, error)) {
		t.Helper()
		got, err := read(tenant)
		check(t, err)
		want, err := read(ref)
		check(t, err)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", what, got, want)
		}
	}
	same("hourly rows", func(id int64) (any, error) {
		rows, err := reports.HourlyRows(ctx, id, from, to)
		return canonRows(rows), err
	})
	for _, hourly := range []bool{false, true} {
		same(fmt.Sprintf("usage (hourly %v)", hourly), func(id int64) (any, error) {
			return reports.Usage(ctx, id, nil, from, to, hourly, time.UTC)
		})
	}
	for _, rng := range []string{"7d", "30d"} {
		same("KPIs "+rng, func(id int64) (any, error) {
			rep, err := reports.KPIs(ctx, id, rng, time.UTC, now)
			if err != nil {
				return nil, err
			}
			return []any{rep.KPIs, rep.Timeseries}, nil
		})
	}
}

// permutations returns every order of xs.
func permutations[T any](xs []T) [][]T {
	if len(xs) <= 1 {
		return [][]T{slices.Clone(xs)}
	}
	var out [][]T
	for i := range xs {
		rest := slices.Concat(xs[:i:i], xs[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]T{xs[i]}, p...))
		}
	}
	return out
}
