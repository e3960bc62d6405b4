package tally_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
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

// specifiedPublic is EventIDs.Public as its comment specifies it, with a
// new HMAC for every round: the oracle of TestEventIDsAsSpecified and the
// baseline of BenchmarkEventIDs.
func specifiedPublic(key []byte, tenant, id int64) int64 {
	round := func(r int, half uint64) uint64 {
		var b [17]byte
		binary.BigEndian.PutUint64(b[:8], uint64(tenant))
		b[8] = byte(r)
		binary.BigEndian.PutUint64(b[9:], half)
		m := hmac.New(sha256.New, key)
		m.Write(b[:])
		return binary.BigEndian.Uint64(m.Sum(nil)[:8]) & (1<<26 - 1)
	}
	l, r := uint64(id)>>26, uint64(id)&(1<<26-1)
	for i := range 8 {
		l, r = r, l^round(i, r)
	}
	return int64(l<<26 | r)
}

// TestEventIDsAsSpecified holds Public to the mapping as specified: ids
// already handed out (cursors, links) must keep their meaning.
func TestEventIDsAsSpecified(t *testing.T) {
	t.Parallel()
	key := []byte("0123456789abcdef0123456789abcdef")
	ids := tally.NewEventIDs(key)
	dm := hmac.New(sha256.New, key)
	dm.Write([]byte("audit"))
	for _, c := range []struct {
		ids    *tally.EventIDs
		key    []byte
		tenant int64
	}{{ids, key, 7}, {ids, key, 1 << 40}, {ids.Derive("audit"), dm.Sum(nil), 7}} {
		for id := int64(0); id < 3000; id += 7 {
			if want, got := specifiedPublic(c.key, c.tenant, id), c.ids.Public(c.tenant, id); got != want {
				t.Fatalf("Public(%d, %d) = %d, want %d as specified", c.tenant, id, got, want)
			}
		}
	}
}

// BenchmarkEventIDs compares Public with the specified computation (a new
// HMAC per round) in the same run.
func BenchmarkEventIDs(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef")
	ids := tally.NewEventIDs(key)
	b.Run("specified", func(b *testing.B) {
		for i := range b.N {
			specifiedPublic(key, 7, int64(i))
		}
	})
	b.Run("Public", func(b *testing.B) {
		for i := range b.N {
			ids.Public(7, int64(i))
		}
	})
}
