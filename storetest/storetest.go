// Package storetest is the conformance suite of tally.Store. Every storage
// backend's tests call Run with a function that opens a fresh, empty store;
// the suite holds the backend to the contract written in the doc comments of
// store.go and of the types it uses, and knows nothing about any backend.
//
// Each case opens its own store and runs in parallel with the others, so a
// backend's open function must give every call an independent database.
package storetest

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// testCase is one check of the suite against a fresh store.
type testCase struct {
	name string
	fn   func(t *testing.T, s tally.Store)
}

// Open returns a fresh, empty store for t, released in t.Cleanup, that
// tells the time with now (time.Now when nil).
type Open func(t *testing.T, now func() time.Time) tally.Store

// Run runs the conformance suite against stores from open.
func Run(t *testing.T, open Open) {
	groups := []struct {
		name  string
		cases []testCase
	}{
		{"Ping", []testCase{{"Answers", testPing}}},
		{"Users", userCases()},
		{"Sessions", sessionCases()},
		{"Tenants", tenantCases()},
		{"Owners", ownerCases()},
		{"Invitations", invitationCases()},
		{"Keys", append(keyCases(), authVersionCases()...)},
		{"Audit", auditCases()},
		{"Quotas", quotaCases()},
		{"Reservations", reservationCases()},
		{"Events", eventCases()},
		{"Export", exportCases()},
		{"Aggregate", append(aggregateCases(), bucketUserCases()...)},
		{"Rollup", rollupCases()},
		{"RollupTx", rollupTxCases()},
		{"RollupRace", rollupRaceCases()},
		{"Ordinals", ordinalCases()},
		{"Privacy", privacyCases()},
		{"Webhooks", webhookCases()},
		{"Meters", meterCases()},
		{"ServerKeys", serverKeyCases()},
		{"Links", linkCases()},
		{"Embeds", embedCases()},
		{"Tail", tailCases()},
		{"Absence", absenceCases()},
		{"Own", ownCases()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range g.cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.fn(t, open(t, nil))
				})
			}
		})
	}
	t.Run("Clock", func(t *testing.T) {
		t.Parallel()
		testClock(t, open)
	})
}

func testPing(t *testing.T, s tally.Store) {
	check(t, s.Ping(t.Context()))
}
