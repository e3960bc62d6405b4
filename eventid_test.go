package tally_test

import (
	"testing"

	"github.com/tallyhq/tally"
)

// TestEventIDs checks the per-tenant mapping of event ids: a bijection
// (Stored inverts Public), different per tenant and per key, and with no
// visible order: consecutive stored ids land far apart.
func TestEventIDs(t *testing.T) {
	t.Parallel()
	ids := tally.NewEventIDs([]byte("0123456789abcdef0123456789abcdef"))
	other := tally.NewEventIDs([]byte("another key, another mapping....."))
	seen := map[int64]bool{}
	increasing, sameAcross := 0, 0
	prev := int64(-1)
	for id := int64(1); id <= 5000; id++ {
		pub := ids.Public(7, id)
		if pub < 0 || pub > tally.MaxEventID {
			t.Fatalf("Public(7, %d) = %d, outside [0, 2^52)", id, pub)
		}
		if back, ok := ids.Stored(7, pub); !ok || back != id {
			t.Fatalf("Stored(Public(%d)) = %d, %v", id, back, ok)
		}
		if seen[pub] {
			t.Fatalf("Public(7, %d) = %d repeats", id, pub)
		}
		seen[pub] = true
		if pub > prev {
			increasing++
		}
		prev = pub
		if ids.Public(8, id) == pub || other.Public(7, id) == pub {
			sameAcross++
		}
	}
	// A monotonic mapping would make every step increase; a random one
	// about half of them.
	if increasing < 2000 || increasing > 3000 {
		t.Errorf("%d of 5000 consecutive ids map to increasing public ids: not order-hiding", increasing)
	}
	if sameAcross > 0 {
		t.Errorf("%d ids map alike across tenants or keys", sameAcross)
	}
	if _, ok := ids.Stored(7, tally.MaxEventID+1); ok {
		t.Error("an id past 2^52 maps back")
	}
	if _, ok := ids.Stored(7, -1); ok {
		t.Error("a negative id maps back")
	}
}
