package storetest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// bucketUsers collects what BucketUsers streams, per bucket and sorted,
// failing unless the buckets come in order and no pair comes twice.
func bucketUsers(t *testing.T, s tally.Store, tenantID int64, bounds []time.Time) [][]string {
	t.Helper()
	var out [][]string
	if len(bounds) > 1 {
		out = make([][]string, len(bounds)-1)
	}
	last := 0
	check(t, s.BucketUsers(t.Context(), tenantID, bounds, func(i int, user string) error {
		switch {
		case i < last || i >= len(out):
			return fmt.Errorf("bucket %d after bucket %d, of %d", i, last, len(out))
		case slices.Contains(out[i], user):
			return fmt.Errorf("user %q twice in bucket %d", user, i)
		}
		last = i
		out[i] = append(out[i], user)
		return nil
	}))
	for _, users := range out {
		slices.Sort(users)
	}
	return out
}

// bruteBucketUsers is what BucketUsers must give for events of tenantID.
func bruteBucketUsers(events []tally.Event, tenantID int64, bounds []time.Time) [][]string {
	var out [][]string
	for i := 0; i+1 < len(bounds); i++ {
		var users []string
		for _, e := range events {
			if e.TenantID == tenantID && e.UserID != "" && !e.Timestamp.Before(bounds[i]) && e.Timestamp.Before(bounds[i+1]) &&
				!slices.Contains(users, e.UserID) {
				users = append(users, e.UserID)
			}
		}
		slices.Sort(users)
		out = append(out, users)
	}
	return out
}

// steps returns the bounds from, from+d, ... up to and including to.
func steps(from, to time.Time, d time.Duration) []time.Time {
	var out []time.Time
	for t := from; t.Before(to); t = t.Add(d) {
		out = append(out, t)
	}
	return append(out, to)
}

func bucketUserCases() []testCase {
	return []testCase{
		{"BucketUsers", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			d := pastDay()
			// Random events over three days in both tenants (b shares some
			// user ids with a and has its own), and events on the edges of
			// the buckets asked below. User ids with separators in them
			// come back whole ("a\x00b" is not "a" and "b"): ingestion
			// rejects NUL, the store must not care.
			rng := rand.New(rand.NewPCG(7, 11))
			users := []string{"", "u1", "u2", "u3", "u4", "u5", "uno", "ü-6", "a", "b", "a\x00b", "\x01", "7\x012", "a,b", `"q"`}
			var events []tally.Event
			for i := range 600 {
				tn, u := a.ID, users[rng.IntN(len(users))]
				if i%4 == 0 {
					tn, u = b.ID, []string{"", "u1", "b-only", "u2"}[rng.IntN(4)]
				}
				at := d.Add(time.Duration(rng.Int64N(int64(72*time.Hour/time.Microsecond))) * time.Microsecond)
				events = append(events, ev(tn, fmt.Sprintf("r%d", i), tally.EventAPIRequest, u, at))
			}
			h5 := d.Add(5 * time.Hour)
			for i, at := range []time.Time{d, h5, h5.Add(-time.Microsecond), h5.Add(30 * time.Minute),
				h5.Add(30*time.Minute - time.Microsecond), d.Add(24 * time.Hour), d.Add(24*time.Hour - time.Microsecond)} {
				events = append(events, ev(a.ID, fmt.Sprintf("edge%d", i), tally.EventLogin, fmt.Sprintf("edge%d", i), at))
			}
			insertNew(t, s, events...)

			for _, c := range []struct {
				name   string
				bounds []time.Time
			}{
				{"hours of three days", steps(d, d.Add(72*time.Hour), time.Hour)},
				{"days, one either side", steps(d.Add(-24*time.Hour), d.Add(96*time.Hour), 24*time.Hour)},
				{"days of 23 and 25 hours", []time.Time{d, d.Add(23 * time.Hour), d.Add(48 * time.Hour), d.Add(72 * time.Hour)}},
				{"half hours from 05:00", steps(h5, h5.Add(3*time.Hour), 30*time.Minute)},
				{"quarter hours off the hour", steps(d.Add(45*time.Minute), d.Add(30*time.Hour), 15*time.Minute)},
				{"one bucket of three days", []time.Time{d, d.Add(72 * time.Hour)}},
				{"odd sizes", []time.Time{d.Add(time.Second), h5.Add(-time.Microsecond), h5, h5.Add(29 * time.Minute), d.Add(50 * time.Hour)}},
				{"one microsecond", []time.Time{h5, h5.Add(time.Microsecond)}},
				{"no events", []time.Time{d.Add(80 * time.Hour), d.Add(90 * time.Hour)}},
			} {
				for _, tn := range []int64{a.ID, b.ID} {
					got := bucketUsers(t, s, tn, c.bounds)
					if want := bruteBucketUsers(events, tn, c.bounds); !reflect.DeepEqual(got, want) {
						t.Fatalf("BucketUsers %s, tenant %d:\ngot  %q\nwant %q", c.name, tn, got, want)
					}
				}
			}
			// The edges: a bucket holds its start, not its end.
			got := bucketUsers(t, s, a.ID, []time.Time{h5.Add(-time.Microsecond), h5, h5.Add(30*time.Minute - time.Microsecond), h5.Add(30 * time.Minute)})
			var edges [][]string
			for _, users := range got {
				edges = append(edges, slices.DeleteFunc(users, func(u string) bool { return len(u) < 4 || u[:4] != "edge" }))
			}
			if want := [][]string{{"edge2"}, {"edge1"}, {"edge4"}}; !reflect.DeepEqual(edges, want) {
				t.Errorf("edges around 05:00 and 05:30: %q, want %q", edges, want)
			}
		}},
		{"BucketUsersStopsAndRejects", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a := newTenant(t, s, "tenant-a")
			d := pastDay()
			insertNew(t, s,
				ev(a.ID, "x1", tally.EventAPIRequest, "u1", d.Add(time.Hour)),
				ev(a.ID, "x2", tally.EventAPIRequest, "u2", d.Add(2*time.Hour)),
				ev(a.ID, "x3", tally.EventAPIRequest, "u3", d.Add(3*time.Hour)),
			)
			stop := errors.New("stop")
			calls := 0
			err := s.BucketUsers(ctx, a.ID, steps(d, d.Add(24*time.Hour), time.Hour), func(int, string) error {
				calls++
				return stop
			})
			if err != stop || calls != 1 {
				t.Errorf("BucketUsers with fn failing: err %v after %d calls, want the error of fn after 1", err, calls)
			}
			never := func(int, string) error {
				t.Errorf("fn called")
				return nil
			}
			for _, bounds := range [][]time.Time{nil, {d}} {
				check(t, s.BucketUsers(ctx, a.ID, bounds, never))
			}
			for _, bounds := range [][]time.Time{{d, d}, {d, d.Add(time.Hour), d.Add(30 * time.Minute)}, {d.Add(time.Hour), d}} {
				wantCode(t, s.BucketUsers(ctx, a.ID, bounds, never), tally.EInvalid, fmt.Sprintf("BucketUsers with bounds %v", bounds))
			}
		}},
	}
}
