package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
)

// ordinalCases check the user ordinals that rollups hand out and the day
// user sets built on them.
func ordinalCases() []testCase {
	return []testCase{
		{"StableDensePerTenant", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			rollupFixture(t, s, a.ID, b.ID, d)
			rollupDay(t, s, a.ID, d, defaultRules())
			rollupDay(t, s, a.ID, d.Add(24*time.Hour), defaultRules())
			rollupDay(t, s, b.ID, d, defaultRules())
			users := []string{"u1", "u2", "u3", "u4", "u5", "u9"}
			got := ordinalsOf(t, s, a.ID, users)
			if want := []string{"u1", "u2", "u3", "u4", "u5"}; !reflect.DeepEqual(sortedKeys(got), want) {
				t.Fatalf("a's users with an ordinal = %q, want %q", sortedKeys(got), want)
			}
			wantDense(t, "a's ordinals", got)
			if gotB := ordinalsOf(t, s, b.ID, users); !reflect.DeepEqual(gotB, map[string]uint32{"u9": 0}) {
				t.Fatalf("b's ordinals = %v, want u9 alone at 0: b counts its own", gotB)
			}
			// Re-rolls keep every ordinal.
			rollupDay(t, s, a.ID, d, defaultRules())
			rollupDay(t, s, a.ID, d.Add(24*time.Hour), defaultRules())
			if again := ordinalsOf(t, s, a.ID, users); !reflect.DeepEqual(again, got) {
				t.Fatalf("a's ordinals after re-rolls = %v, want %v", again, got)
			}
			// Day sets hold the users of their UTC day.
			wantDays := []hourUsers{{d, []string{"u1", "u2", "u3", "u4", "u5"}}, {d.Add(24 * time.Hour), []string{"u1"}}}
			if days := readUserSets(t, s, a.ID, 24*time.Hour, d.Add(-24*time.Hour), d.Add(72*time.Hour)); !reflect.DeepEqual(days, wantDays) {
				t.Fatalf("a's day sets = %q, want %q", days, wantDays)
			}
			if days := readUserSets(t, s, b.ID, 24*time.Hour, d, d.Add(48*time.Hour)); !reflect.DeepEqual(days, []hourUsers{{d, []string{"u9"}}}) {
				t.Fatalf("b's day sets = %q, want u9 on day %v", days, d)
			}
		}},
		{"DeletionForgetsTheUser", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			rollupFixture(t, s, a.ID, b.ID, d)
			insertNew(t, s, ev(b.ID, "b2", tally.EventAPIRequest, "u2", d.Add(3*time.Hour)))
			rollupDay(t, s, a.ID, d, defaultRules())
			rollupDay(t, s, b.ID, d, defaultRules())
			before := ordinalsOf(t, s, a.ID, []string{"u2"})
			_, err := s.DeleteUserEvents(t.Context(), a.ID, "u2")
			check(t, err)
			if got := ordinalsOf(t, s, a.ID, []string{"u2"}); len(got) != 0 {
				t.Fatalf("ordinal of a deleted user = %v, want none", got)
			}
			if got := ordinalsOf(t, s, b.ID, []string{"u2"}); len(got) != 1 {
				t.Fatalf("b's u2 lost its ordinal with a's: %v", got)
			}
			if days := readUserSets(t, s, a.ID, 24*time.Hour, d, d.Add(24*time.Hour)); len(days) != 0 {
				t.Fatalf("day set of the deleted user's day = %q, want it dropped", days)
			}
			rollupDay(t, s, a.ID, d, defaultRules())
			wantDays := []hourUsers{{d, []string{"u1", "u3", "u4", "u5"}}}
			if days := readUserSets(t, s, a.ID, 24*time.Hour, d, d.Add(24*time.Hour)); !reflect.DeepEqual(days, wantDays) {
				t.Fatalf("day set rolled up again = %q, want %q", days, wantDays)
			}
			wantRollupMatchesRaw(t, s, a.ID, d, defaultRules())
			// The id met again is a new user with a new ordinal.
			insertNew(t, s, ev(a.ID, "again", tally.EventAPIRequest, "u2", d.Add(10*time.Hour)))
			rollupDay(t, s, a.ID, d, defaultRules())
			if got := ordinalsOf(t, s, a.ID, []string{"u2"}); len(got) != 1 || got["u2"] == before["u2"] {
				t.Fatalf("ordinal of the id met again = %v, want a new one (it had %v)", got, before)
			}
		}},
		{"ConcurrentRollupsOfOneTenant", func(t *testing.T, s tally.Store) {
			a := newTenant(t, s, "tenant-a")
			d := pastDay().AddDate(0, 0, -4)
			var evs []tally.Event
			for day := range 4 {
				for u := range 20 {
					at := d.AddDate(0, 0, day).Add(time.Duration(u) * time.Minute)
					evs = append(evs, ev(a.ID, fmt.Sprintf("e%d-%d", day, u), tally.EventAPIRequest, fmt.Sprintf("d%d-u%d", day, u), at))
				}
			}
			insertNew(t, s, evs...)
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 2 {
				for day := range 4 {
					wg.Go(func() {
						_, err := rollup.RecomputeDay(t.Context(), s, a.ID, d.AddDate(0, 0, day), defaultRules())
						errs <- err
					})
				}
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				check(t, err)
			}
			var users []string
			for _, e := range evs {
				users = append(users, e.UserID)
			}
			got := ordinalsOf(t, s, a.ID, users)
			if len(got) != len(users) {
				t.Fatalf("%d of %d users have an ordinal", len(got), len(users))
			}
			wantDense(t, "ordinals of concurrent rollups", got)
			for day := range 4 {
				wantRollupMatchesRaw(t, s, a.ID, d.AddDate(0, 0, day), defaultRules())
			}
		}},
	}
}

// ordinalsOf returns the ordinals of those of users that have one.
func ordinalsOf(t *testing.T, s tally.Store, tenantID int64, users []string) map[string]uint32 {
	t.Helper()
	out := map[string]uint32{}
	check(t, s.UserOrdinals(t.Context(), tenantID, users, func(i int, o uint32) error {
		out[users[i]] = o
		return nil
	}))
	return out
}

// wantDense fails unless ords are 0, 1, … len(ords)-1, each once.
func wantDense(t *testing.T, what string, ords map[string]uint32) {
	t.Helper()
	var got []uint32
	for _, o := range ords {
		got = append(got, o)
	}
	slices.Sort(got)
	for i, o := range got {
		if o != uint32(i) {
			t.Fatalf("%s = %v, want 0 to %d each once", what, got, len(got)-1)
		}
	}
}

func sortedKeys(m map[string]uint32) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
