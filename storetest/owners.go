package storetest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/tallyhq/tally"
)

// ownerRounds is how many times the concurrent cases race two writers.
const ownerRounds = 20

// ownerCases hold the store to "a tenant always keeps an owner": the check
// and the write are one transaction, so two concurrent removals (or
// demotions) of a tenant's two owners never both succeed.
func ownerCases() []testCase {
	return []testCase{
		{"LastOwnerStays", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			tn := newTenant(t, s, "solo")
			owner, _, err := s.UserByEmail(ctx, "owner@solo.example")
			check(t, err)
			admin := newUser(t, s, "admin@solo.example")
			check(t, s.AddMember(ctx, tn.ID, admin.ID, tally.RoleAdmin))

			err = s.RemoveMember(ctx, tn.ID, owner.ID)
			wantLastOwner(t, err, "RemoveMember(last owner)")
			err = s.SetMemberRole(ctx, tn.ID, owner.ID, tally.RoleAdmin)
			wantLastOwner(t, err, "SetMemberRole(last owner, admin)")
			check(t, s.SetMemberRole(ctx, tn.ID, owner.ID, tally.RoleOwner)) // staying owner is no demotion
			wantCode(t, s.SetMemberRole(ctx, tn.ID, 1<<40, tally.RoleAdmin), tally.ENotFound, "SetMemberRole(not a member)")

			check(t, s.SetMemberRole(ctx, tn.ID, admin.ID, tally.RoleOwner))
			if role, err := s.MemberRole(ctx, tn.ID, admin.ID); err != nil || role != tally.RoleOwner {
				t.Fatalf("after SetMemberRole(owner), MemberRole = %q, %v", role, err)
			}
			check(t, s.SetMemberRole(ctx, tn.ID, owner.ID, tally.RoleMember))
			check(t, s.RemoveMember(ctx, tn.ID, owner.ID))
			wantOwners(t, s, tn.ID, 1)
		}},
		{"ConcurrentRemovals", func(t *testing.T, s tally.Store) {
			raceOwners(t, s, "remove", func(tenantID, userID int64) error {
				return s.RemoveMember(t.Context(), tenantID, userID)
			})
		}},
		{"ConcurrentDemotions", func(t *testing.T, s tally.Store) {
			raceOwners(t, s, "demote", func(tenantID, userID int64) error {
				return s.SetMemberRole(t.Context(), tenantID, userID, tally.RoleMember)
			})
		}},
	}
}

// raceOwners makes, ownerRounds times, a tenant with two owners and runs
// op on both at once: exactly one must succeed, the other must get the
// last-owner conflict, and the tenant must keep one owner.
func raceOwners(t *testing.T, s tally.Store, name string, op func(tenantID, userID int64) error) {
	ctx := t.Context()
	for round := range ownerRounds {
		slug := fmt.Sprintf("%s-%d", name, round)
		tn := newTenant(t, s, slug)
		first, _, err := s.UserByEmail(ctx, "owner@"+slug+".example")
		check(t, err)
		second := newUser(t, s, "second@"+slug+".example")
		check(t, s.AddMember(ctx, tn.ID, second.ID, tally.RoleOwner))

		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, 2)
		for i, id := range []int64{first.ID, second.ID} {
			wg.Go(func() {
				<-start
				errs[i] = op(tn.ID, id)
			})
		}
		close(start)
		wg.Wait()

		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case tally.ErrorCodeOf(err) != tally.EConflict:
				t.Fatalf("round %d: %s = %v, want success or the last-owner conflict", round, name, err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of two concurrent %s operations succeeded (%v), want exactly 1", round, ok, name, errs)
		}
		wantOwners(t, s, tn.ID, 1)
	}
}

func wantLastOwner(t *testing.T, err error, what string) {
	t.Helper()
	wantCode(t, err, tally.EConflict, what)
	if msg := tally.ErrorMessageOf(err); msg != tally.LastOwnerError().Message {
		t.Fatalf("%s: message %q, want %q", what, msg, tally.LastOwnerError().Message)
	}
}

func wantOwners(t *testing.T, s tally.Store, tenantID int64, want int) {
	t.Helper()
	ms, err := s.ListMembers(t.Context(), tenantID)
	check(t, err)
	owners := 0
	for _, m := range ms {
		if m.Role == tally.RoleOwner {
			owners++
		}
	}
	if owners != want {
		t.Fatalf("tenant %d has %d owners (%+v), want %d", tenantID, owners, ms, want)
	}
}
