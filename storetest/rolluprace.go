package storetest

import (
	"context"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
)

// rollupRaceCases check that a change to the log while a day is being
// rolled up (between the rollup's reads and its commit) is never lost: a
// store may read from a snapshot and write afterwards (SQLite does, so
// that the rollup does not hold the single writer), but then an hour the
// change touched must stay dirty.
func rollupRaceCases() []testCase {
	return []testCase{{"ChangeDuringRecomputeStaysDirty", testChangeDuringRecompute}}
}

// racingStore runs during once, in the middle of the first InRollupTx:
// after fn's first read of users (BucketUsers).
type racingStore struct {
	tally.Store
	once   sync.Once
	during func()
}

func (s *racingStore) InRollupTx(ctx context.Context, tenantID int64, fn func(tally.RollupTx) error) error {
	return s.Store.InRollupTx(ctx, tenantID, func(tx tally.RollupTx) error {
		return fn(&racingTx{RollupTx: tx, s: s})
	})
}

type racingTx struct {
	tally.RollupTx
	s *racingStore
}

func (t *racingTx) BucketUsers(ctx context.Context, bounds []time.Time, fn func(int, []byte) error) error {
	err := t.RollupTx.BucketUsers(ctx, bounds, fn)
	t.s.once.Do(t.s.during)
	return err
}

func testChangeDuringRecompute(t *testing.T, s tally.Store) {
	ctx := t.Context()
	rules := defaultRules()
	d := pastDay()
	for _, c := range []struct {
		name string
		op   func(tenant int64) error
		gone string // a user no user set may name afterwards
	}{
		{"insert into a rolled-up hour", func(tenant int64) error {
			_, err := s.InsertEvents(ctx, []tally.Event{ev(tenant, "late-1", "page.view", "late", d.Add(time.Hour+30*time.Minute))})
			return err
		}, ""},
		{"insert into a new hour", func(tenant int64) error {
			_, err := s.InsertEvents(ctx, []tally.Event{ev(tenant, "late-2", "page.view", "late", d.Add(11*time.Hour))})
			return err
		}, ""},
		{"privacy deletion", func(tenant int64) error {
			_, err := s.DeleteUserEvents(ctx, tenant, "u1")
			return err
		}, "u1"},
		{"purge of the day", func(tenant int64) error {
			_, err := s.PurgeEvents(ctx, tenant, d.Add(6*time.Hour))
			return err
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := newTenant(t, s, "race-a-"+slug(c.name)), newTenant(t, s, "race-b-"+slug(c.name))
			rollupFixture(t, s, a.ID, b.ID, d)
			rollupDay(t, s, a.ID, d, rules)

			done := make(chan error, 1)
			rs := &racingStore{Store: s, during: func() {
				go func() { done <- c.op(a.ID) }()
				// A store that reads from a snapshot lets the change commit
				// before the rollup writes; one that locks the tenant makes
				// it wait for the commit. Either way the rollup goes on.
				select {
				case err := <-done:
					done <- err
				case <-time.After(200 * time.Millisecond):
				}
			}}
			if _, err := rollup.RecomputeDay(ctx, rs, a.ID, d, rules); err != nil {
				t.Fatal(err)
			}
			check(t, <-done)
			wantCleanHoursExact(t, s, a.ID, d, c.gone)

			// The next rollup catches up with the change.
			rollupDay(t, s, a.ID, d, rules)
			if c.name != "purge of the day" { // a purge leaves aggregates without raw events
				wantRollupMatchesRaw(t, s, a.ID, d, rules)
			}
		})
	}
}

// slug turns a case name into a tenant slug.
func slug(name string) string {
	b := []byte(name)
	for i, c := range b {
		if c == ' ' {
			b[i] = '-'
		}
	}
	return string(b)
}

// wantCleanHoursExact fails unless every hour of tenantID's day d without a
// dirty mark has exactly the rollup rows and user set of the raw log, the
// day rows match it when no hour is dirty, and no user set names gone.
func wantCleanHoursExact(t *testing.T, s tally.Store, tenantID int64, d time.Time, gone string) {
	t.Helper()
	ctx := t.Context()
	dirty := map[time.Time]bool{}
	for _, h := range dirtyHours(t, s, d.Add(24*time.Hour)) {
		if h.TenantID == tenantID {
			dirty[h.Hour] = true
		}
	}
	purged, err := s.CountEvents(ctx, tenantID, d, d.Add(6*time.Hour))
	check(t, err)
	sets := readHourUsers(t, s, tenantID, d, d.Add(24*time.Hour))
	for _, h := range sets {
		if gone != "" && slices.Contains(h.Users, gone) {
			t.Errorf("the user set of %v holds the deleted user %q", h.Hour, gone)
		}
	}
	for h := d; h.Before(d.Add(24 * time.Hour)); h = h.Add(time.Hour) {
		if dirty[h] {
			continue
		}
		if purged == 0 && h.Before(d.Add(6*time.Hour)) {
			// No user id outlives the purge of its events.
			for _, set := range sets {
				if set.Hour.Equal(h) && len(set.Users) > 0 {
					t.Errorf("purged hour %v has the user set %q", h, set.Users)
				}
			}
			continue
		}
		got, err := s.RollupHours(ctx, tenantID, h, h.Add(time.Hour))
		check(t, err)
		want, err := s.AggregateEvents(ctx, tenantID, h, h.Add(time.Hour), time.Hour)
		check(t, err)
		wantRows(t, "rollup of clean hour "+h.Format(time.TimeOnly), got, want)
		raw := rawHourUsers(t, s, tenantID, h, h.Add(time.Hour))
		for _, set := range sets {
			if set.Hour.Equal(h) && !reflect.DeepEqual([]hourUsers{set}, raw) {
				t.Errorf("user set of clean hour %v = %q, want %q", h, set.Users, raw)
			}
		}
	}
	if len(dirty) == 0 && purged != 0 {
		got, err := s.RollupDays(ctx, tenantID, d, d.Add(24*time.Hour))
		check(t, err)
		want, err := s.AggregateEvents(ctx, tenantID, d, d.Add(24*time.Hour), 24*time.Hour)
		check(t, err)
		wantRows(t, "daily rollup of a clean day", got, want)
	}
}
