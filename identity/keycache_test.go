package identity_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/sqlite"
)

// TestKeyRevocationReachesEveryInstance has two instances (two services,
// each with its own connection to one database) authenticate a key, so
// that both cache it; the key is revoked on one, and the other refuses it
// at its next request. A tenant change made on one is seen by the other
// at its next request too.
func TestKeyRevocationReachesEveryInstance(t *testing.T) {
	t.Parallel()
	for _, b := range []struct {
		name string
		open func(t *testing.T) (tally.Store, tally.Store)
	}{
		{"sqlite", func(t *testing.T) (tally.Store, tally.Store) {
			path := filepath.Join(t.TempDir(), "tally.db")
			return openSQLite(t, path), openSQLite(t, path)
		}},
		{"postgres", func(t *testing.T) (tally.Store, tally.Store) {
			url := pgtest.FreshSchema(t)
			return openPostgres(t, url), openPostgres(t, url)
		}},
	} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			sa, sb := b.open(t)
			clock := func() time.Time { return clockAt }
			a, other := identity.New(sa, clock, nil), identity.New(sb, clock, nil)
			e := &env{t: t, store: sa, svc: a}
			tn, _ := e.tenant("acme", false)
			k, key, err := a.CreateKey(ctx, tn.ID, tally.CreateKeyInput{Name: "ci", Scopes: []tally.Scope{tally.ScopeWrite}})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 { // the first reads the store, the others the cache
				for _, svc := range []*identity.Service{a, other} {
					if _, got, err := svc.KeyAuth(ctx, key, "192.0.2.1"); err != nil || got.Name != "Tenant acme" {
						t.Fatalf("KeyAuth before the changes = %+v, %v", got, err)
					}
				}
			}

			renamed := *tn
			renamed.Name = "Acme renamed"
			if err := sa.UpdateTenant(ctx, &renamed); err != nil {
				t.Fatal(err)
			}
			if _, got, err := other.KeyAuth(ctx, key, "192.0.2.1"); err != nil || got.Name != "Acme renamed" {
				t.Fatalf("KeyAuth on the other instance after a tenant change = %+v, %v; want the new name", got, err)
			}

			if err := a.RevokeKey(ctx, tn.ID, k.ID); err != nil {
				t.Fatal(err)
			}
			_, _, err = other.KeyAuth(ctx, key, "192.0.2.1")
			wantCode(t, err, tally.EUnauthorized, "KeyAuth on the other instance right after the revocation")
			_, _, err = a.KeyAuth(ctx, key, "192.0.2.1")
			wantCode(t, err, tally.EUnauthorized, "KeyAuth on the revoking instance")
		})
	}
}

func openSQLite(t *testing.T, path string) tally.Store {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openPostgres(t *testing.T, url string) tally.Store {
	t.Helper()
	db, err := postgres.Open(context.Background(), pgtest.WithParams(url, map[string]string{"pool_max_conns": "2"}), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
