package storetest

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// authVersionCases check that AuthVersion moves with every change a cache
// of keys and tenants must see, and not with a key's use.
func authVersionCases() []testCase {
	return []testCase{{"AuthVersionMovesWithRevocationAndTenantChanges", func(t *testing.T, s tally.Store) {
		ctx := t.Context()
		tn := newTenant(t, s, "auth-version")
		k := &tally.APIKey{TenantID: tn.ID, Name: "k", Prefix: "tly_authv", Hash: []byte("h"), Scopes: []tally.Scope{tally.ScopeRead}}
		check(t, s.CreateKey(ctx, k))
		version := func() int64 {
			t.Helper()
			v, err := s.AuthVersion(ctx)
			check(t, err)
			return v
		}
		v0 := version()
		check(t, s.TouchKey(ctx, tn.ID, k.ID, time.Now()))
		if v := version(); v != v0 {
			t.Errorf("TouchKey moved AuthVersion from %d to %d: every use would empty the caches", v0, v)
		}
		check(t, s.RevokeKey(ctx, tn.ID, k.ID, time.Now()))
		v1 := version()
		if v1 == v0 {
			t.Errorf("RevokeKey left AuthVersion at %d", v0)
		}
		tn.Name = "Renamed"
		check(t, s.UpdateTenant(ctx, tn))
		if v := version(); v == v1 {
			t.Errorf("UpdateTenant left AuthVersion at %d", v1)
		}
	}}}
}
