package postgres_test

import (
	"testing"

	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// TestTryLead checks that of two instances on one database only one leads
// at a time, and that releasing hands the lead over.
func TestTryLead(t *testing.T) {
	url := pgtest.FreshSchema(t)
	a, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	release, ok, err := a.TryLead(t.Context())
	if err != nil || !ok {
		t.Fatalf("first TryLead = %v, %v", ok, err)
	}
	if _, ok, err := b.TryLead(t.Context()); err != nil || ok {
		t.Fatalf("second instance led while the first did: %v, %v", ok, err)
	}
	release()
	release2, ok, err := b.TryLead(t.Context())
	if err != nil || !ok {
		t.Fatalf("TryLead after release = %v, %v", ok, err)
	}
	release2()
}
