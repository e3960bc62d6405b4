// Package sqlitetest gives tests a fresh tally database in a real SQLite
// file, with one tenant in it.
package sqlitetest

import (
	"path/filepath"
	"testing"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite"
)

// Open opens a fresh SQLite file in t's temporary directory, closed when
// the test ends.
func Open(t testing.TB) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "tally.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// WithTenant opens a fresh database holding an owner and the tenant
// "acme".
func WithTenant(t testing.TB) (*sqlite.DB, *tally.Tenant) {
	t.Helper()
	db := Open(t)
	ctx := t.Context()
	u := &tally.User{Email: "owner@example.com", Name: "Owner"}
	if err := db.CreateUser(ctx, u, "hash"); err != nil {
		t.Fatal(err)
	}
	tn := &tally.Tenant{Slug: "acme", Name: "Acme"}
	if err := db.CreateTenant(ctx, tn, u.ID); err != nil {
		t.Fatal(err)
	}
	return db, tn
}
