package storetest

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func absenceStore(t *testing.T, s tally.Store) tally.AbsenceStore {
	t.Helper()
	as, ok := s.(tally.AbsenceStore)
	if !ok {
		t.Fatal("the store does not implement tally.AbsenceStore")
	}
	return as
}

func absenceCases() []testCase {
	return []testCase{
		{"CRUDPerTenant", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			as := absenceStore(t, s)
			a, b := newTenant(t, s, "absence-a"), newTenant(t, s, "absence-b")
			x := &tally.AbsenceAlert{TenantID: a.ID, Event: "builder.generate.completed", Silence: 6 * time.Hour, Description: "builds"}
			check(t, as.CreateAbsenceAlert(ctx, x))
			if x.ID == 0 || x.State != tally.AbsenceOK || x.StateSince.IsZero() || x.LastSeenAt != nil {
				t.Fatalf("created %+v", x)
			}
			wantCode(t, as.CreateAbsenceAlert(ctx, &tally.AbsenceAlert{TenantID: a.ID, Event: x.Event, Silence: time.Hour}),
				tally.EConflict, "same event twice")
			check(t, as.CreateAbsenceAlert(ctx, &tally.AbsenceAlert{TenantID: b.ID, Event: x.Event, Silence: time.Hour}))
			got, err := as.AbsenceAlert(ctx, a.ID, x.ID)
			check(t, err)
			if got.Event != x.Event || got.Silence != 6*time.Hour || got.Description != "builds" || !got.CreatedAt.Equal(x.CreatedAt) {
				t.Fatalf("read %+v, want %+v", got, x)
			}
			_, err = as.AbsenceAlert(ctx, b.ID, x.ID)
			wantCode(t, err, tally.ENotFound, "another tenant's alert")
			list, err := as.AbsenceAlerts(ctx, a.ID)
			check(t, err)
			if len(list) != 1 || list[0].ID != x.ID {
				t.Fatalf("list of a = %+v", list)
			}
			all, err := as.AllAbsenceAlerts(ctx)
			check(t, err)
			if len(all) != 2 {
				t.Fatalf("all = %d alerts, want 2", len(all))
			}

			// A transition moves the state once; an update starts afresh.
			seen := now().Add(-7 * time.Hour)
			ok, err := as.TransitionAbsenceAlert(ctx, got, tally.AbsenceTransition{State: tally.AbsenceSilent, Since: seen}, seen)
			check(t, err)
			stale := *x
			if ok2, err := as.TransitionAbsenceAlert(ctx, &stale, tally.AbsenceTransition{State: tally.AbsenceSilent, Since: seen}, seen); !ok || ok2 || err != nil {
				t.Fatalf("transitions: first %v, stale %v (%v)", ok, ok2, err)
			}
			got, err = as.AbsenceAlert(ctx, a.ID, x.ID)
			check(t, err)
			if got.State != tally.AbsenceSilent || !got.StateSince.Equal(seen) || got.LastSeenAt == nil || !got.LastSeenAt.Equal(seen) {
				t.Fatalf("after transition %+v", got)
			}
			up := &tally.AbsenceAlert{TenantID: a.ID, ID: x.ID, Event: "files.*", Silence: time.Hour}
			check(t, as.UpdateAbsenceAlert(ctx, up))
			if up.State != tally.AbsenceOK || up.Event != "files.*" || up.Seq <= got.Seq || up.LastSeenAt != nil || up.Description != "" {
				t.Fatalf("updated %+v", up)
			}
			wantCode(t, as.UpdateAbsenceAlert(ctx, &tally.AbsenceAlert{TenantID: b.ID, ID: x.ID, Event: "y", Silence: time.Hour}),
				tally.ENotFound, "update of another tenant's alert")
			wantCode(t, as.DeleteAbsenceAlert(ctx, b.ID, x.ID), tally.ENotFound, "delete of another tenant's alert")
			check(t, as.DeleteAbsenceAlert(ctx, a.ID, x.ID))
			wantCode(t, as.DeleteAbsenceAlert(ctx, a.ID, x.ID), tally.ENotFound, "delete twice")
		}},
		{"CapPerTenant", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			as := absenceStore(t, s)
			tn := newTenant(t, s, "absence-cap")
			var wg sync.WaitGroup
			var created atomic.Int64
			for i := range tally.MaxAbsenceAlerts + 10 {
				wg.Go(func() {
					if as.CreateAbsenceAlert(ctx, &tally.AbsenceAlert{TenantID: tn.ID, Event: "e" + itoa(i), Silence: time.Hour}) == nil {
						created.Add(1)
					}
				})
			}
			wg.Wait()
			if created.Load() != tally.MaxAbsenceAlerts {
				t.Fatalf("created %d alerts concurrently, want the cap %d", created.Load(), tally.MaxAbsenceAlerts)
			}
			wantCode(t, as.CreateAbsenceAlert(ctx, &tally.AbsenceAlert{TenantID: tn.ID, Event: "one.more", Silence: time.Hour}),
				tally.EInvalid, "past the cap")
		}},
		{"ConcurrentTransitionsOneWins", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			as := absenceStore(t, s)
			tn := newTenant(t, s, "absence-race")
			x := &tally.AbsenceAlert{TenantID: tn.ID, Event: "a.b", Silence: time.Hour}
			check(t, as.CreateAbsenceAlert(ctx, x))
			var wg sync.WaitGroup
			var won atomic.Int64
			for range 8 {
				wg.Go(func() {
					c := *x
					ok, err := as.TransitionAbsenceAlert(ctx, &c, tally.AbsenceTransition{State: tally.AbsenceSilent, Since: x.CreatedAt}, time.Time{})
					if err != nil {
						t.Error(err)
					}
					if ok {
						won.Add(1)
					}
				})
			}
			wg.Wait()
			if won.Load() != 1 {
				t.Fatalf("%d of 8 concurrent transitions won, want 1", won.Load())
			}
		}},
		{"LastEventAt", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			as := absenceStore(t, s)
			a, b := newTenant(t, s, "absence-last-a"), newTenant(t, s, "absence-last-b")
			d := pastDay()
			insertNew(t, s,
				ev(a.ID, "1", "builder.generate.completed", "u", d.Add(time.Hour)),
				ev(a.ID, "2", "builder.generate.completed", "u", d.Add(3*time.Hour)),
				ev(a.ID, "3", "builder.generate.started", "u", d.Add(5*time.Hour)),
				ev(a.ID, "4", "builder_x", "u", d.Add(9*time.Hour)), // not under "builder."
				ev(b.ID, "5", "builder.generate.completed", "u", d.Add(8*time.Hour)),
			)
			for _, tt := range []struct {
				pattern string
				from    time.Time
				want    time.Time // zero: none
			}{
				{"builder.generate.completed", time.Time{}, d.Add(3 * time.Hour)},
				{"builder.*", time.Time{}, d.Add(5 * time.Hour)},
				{"builder.generate.completed", d.Add(3 * time.Hour), d.Add(3 * time.Hour)}, // from is inclusive
				{"builder.generate.completed", d.Add(4 * time.Hour), time.Time{}},
				{"files.uploaded", time.Time{}, time.Time{}},
			} {
				at, ok, err := as.LastEventAt(ctx, a.ID, tt.pattern, tt.from)
				check(t, err)
				if ok != !tt.want.IsZero() || (ok && !at.Equal(tt.want)) {
					t.Errorf("LastEventAt(%q, from %v) = %v, %v; want %v", tt.pattern, tt.from, at, ok, tt.want)
				}
			}
		}},
	}
}

func itoa(i int) string { return string(rune('a'+i/26)) + string(rune('a'+i%26)) }
