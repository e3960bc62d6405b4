package tally

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
)

// Event ids in answers are per tenant and opaque. The store numbers events
// with one sequence across tenants; shown as is, a tenant could count
// everyone's writes between two of its own. So the server shows each id
// through EventIDs: a keyed pseudo-random permutation of [0, 2^52) per
// tenant (a balanced Feistel network, HMAC-SHA256 under a key kept in the
// database as its round function). Without the key the numbers a tenant
// sees say nothing of the others' writes, nor of its own order; the server
// maps them back for cursors and lookups. They stay integers below 2^53,
// exact as JSON numbers in every client.

// EventIDKeyName names the key of EventIDs in the store (ServerKey).
const EventIDKeyName = "event_ids"

const (
	eventIDHalf   = 26 // bits of each Feistel half
	eventIDMask   = 1<<eventIDHalf - 1
	eventIDRounds = 8
	// MaxEventID is the largest id EventIDs maps: 2^52 - 1.
	MaxEventID = 1<<(2*eventIDHalf) - 1
)

// EventIDs maps stored event ids to the ids answers show, per tenant. It
// is safe for concurrent use.
type EventIDs struct {
	key  []byte
	macs sync.Pool // of *eventIDMAC under key
}

// eventIDMAC is one HMAC under the key, reset between rounds (which
// restores its keyed state rather than hashing the key again), and the
// buffers of a round.
type eventIDMAC struct {
	h   hash.Hash
	in  [17]byte
	sum []byte
}

// NewEventIDs returns the mapping under key (at least 16 bytes).
func NewEventIDs(key []byte) *EventIDs {
	e := &EventIDs{key: append([]byte(nil), key...)}
	e.macs.New = func() any { return &eventIDMAC{h: hmac.New(sha256.New, e.key), sum: make([]byte, 0, sha256.Size)} }
	return e
}

// round is the Feistel round function: the first 26 bits of
// HMAC-SHA256(key, tenant id ‖ round ‖ half).
func (m *eventIDMAC) round(tenantID int64, r int, half uint64) uint64 {
	binary.BigEndian.PutUint64(m.in[:8], uint64(tenantID))
	m.in[8] = byte(r)
	binary.BigEndian.PutUint64(m.in[9:], half)
	m.h.Reset()
	m.h.Write(m.in[:])
	m.sum = m.h.Sum(m.sum[:0])
	return binary.BigEndian.Uint64(m.sum[:8]) & eventIDMask
}

// Derive returns an independent mapping for another kind of row (audit
// entries, webhook deliveries), keyed by HMAC-SHA256 of label under the
// key: the same stored number maps differently per kind.
func (e *EventIDs) Derive(label string) *EventIDs {
	m := hmac.New(sha256.New, e.key)
	m.Write([]byte(label))
	return NewEventIDs(m.Sum(nil))
}

// Public returns the id a tenant's answers show for its stored event id
// (0 <= id <= MaxEventID; others are returned unchanged).
func (e *EventIDs) Public(tenantID, id int64) int64 {
	if id < 0 || id > MaxEventID {
		return id
	}
	m := e.macs.Get().(*eventIDMAC)
	defer e.macs.Put(m)
	l, r := uint64(id)>>eventIDHalf, uint64(id)&eventIDMask
	for i := range eventIDRounds {
		l, r = r, l^m.round(tenantID, i, r)
	}
	return int64(l<<eventIDHalf | r)
}

// Stored returns the stored id of a tenant's public id; false when pub is
// not one Public can give.
func (e *EventIDs) Stored(tenantID, pub int64) (int64, bool) {
	if pub < 0 || pub > MaxEventID {
		return 0, false
	}
	m := e.macs.Get().(*eventIDMAC)
	defer e.macs.Put(m)
	l, r := uint64(pub)>>eventIDHalf, uint64(pub)&eventIDMask
	for i := eventIDRounds - 1; i >= 0; i-- {
		l, r = r^m.round(tenantID, i, l), l
	}
	return int64(l<<eventIDHalf | r), true
}
