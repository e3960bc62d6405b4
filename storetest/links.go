package storetest

import (
	"maps"
	"testing"

	"github.com/tallyhq/tally"
)

func linkCases() []testCase {
	return []testCase{
		{"FirstLinkWinsPerTenant", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			ls, ok := s.(tally.LinkStore)
			if !ok {
				t.Fatal("the store does not implement tally.LinkStore")
			}
			a, b := newTenant(t, s, "links-a"), newTenant(t, s, "links-b")
			check(t, ls.LinkIdentities(ctx, a.ID, []tally.IdentityLink{
				{AnonymousID: "anon-1", UserID: "u1"},
				{AnonymousID: "anon-1", UserID: "u2"}, // later in the same call: ignored
				{AnonymousID: "u3", UserID: "u3"},     // itself: ignored
				{AnonymousID: "", UserID: "u4"},       // empty: ignored
				{AnonymousID: "anon-\x00bytes", UserID: "u5"},
			}, now()))
			check(t, ls.LinkIdentities(ctx, a.ID, []tally.IdentityLink{{AnonymousID: "anon-1", UserID: "u9"}}, now()))
			check(t, ls.LinkIdentities(ctx, b.ID, []tally.IdentityLink{{AnonymousID: "anon-1", UserID: "b-user"}}, now()))
			check(t, ls.LinkIdentities(ctx, a.ID, nil, now()))

			got, err := ls.ResolveIdentities(ctx, a.ID, []string{"anon-1", "u3", "anon-\x00bytes", "unknown"})
			check(t, err)
			if want := map[string]string{"anon-1": "u1", "anon-\x00bytes": "u5"}; !maps.Equal(got, want) {
				t.Fatalf("ResolveIdentities(a) = %v, want %v", got, want)
			}
			got, err = ls.ResolveIdentities(ctx, b.ID, []string{"anon-1"})
			check(t, err)
			if got["anon-1"] != "b-user" || len(got) != 1 {
				t.Fatalf("ResolveIdentities(b) = %v, want b's own link", got)
			}
			if got, err := ls.ResolveIdentities(ctx, a.ID, nil); err != nil || len(got) != 0 {
				t.Fatalf("ResolveIdentities(none) = %v, %v", got, err)
			}
		}},
		{"DeleteUserEventsDropsLinks", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			ls := s.(tally.LinkStore)
			tn := newTenant(t, s, "links-del")
			check(t, ls.LinkIdentities(ctx, tn.ID, []tally.IdentityLink{
				{AnonymousID: "anon-1", UserID: "gone"}, {AnonymousID: "gone", UserID: "u2"}, {AnonymousID: "anon-3", UserID: "kept"},
			}, now()))
			_, err := s.DeleteUserEvents(ctx, tn.ID, "gone")
			check(t, err)
			got, err := ls.ResolveIdentities(ctx, tn.ID, []string{"anon-1", "gone", "anon-3"})
			check(t, err)
			if want := map[string]string{"anon-3": "kept"}; !maps.Equal(got, want) {
				t.Fatalf("after deleting gone's events: %v, want %v", got, want)
			}
		}},
	}
}
