// Package ordinal hands out per-tenant user ordinals within one rollup
// transaction, the part of tally.RollupTx.UserOrdinals that both store
// backends share: the ids handed out earlier in the transaction are
// remembered here (a snapshot run does not see its own queued writes), the
// others are looked up in the store, and the ones still without an
// ordinal get the tenant's next ones.
package ordinal

import (
	"errors"
	"math"
)

// Store is what Tx needs from a backend, all within one transaction of
// one tenant.
type Store interface {
	// Lookup calls fn with (index in users, ordinal) of each id of users
	// that has a stored ordinal.
	Lookup(users [][]byte, fn func(i int, ordinal uint32)) error
	// Next reads the tenant's next ordinal (0 when none was handed out).
	Next() (uint32, error)
	// Store writes (or queues) the new ids, with ordinals first, first+1,
	// …, and the tenant's next ordinal after them.
	Store(users [][]byte, first uint32) error
}

// ErrExhausted is returned when a tenant has handed out every ordinal.
var ErrExhausted = errors.New("ordinal: the tenant's user ordinals are exhausted")

// Tx is the ordinals of one rollup transaction. The zero value is ready.
type Tx struct {
	read bool
	next uint32
	mine map[string]uint32 // handed out by this transaction
}

// Ordinals returns the ordinals of users (distinct ids), in their order,
// handing out new ones through s.
func (t *Tx) Ordinals(s Store, users [][]byte) ([]uint32, error) {
	out := make([]uint32, len(users))
	found := make([]bool, len(users))
	var ask [][]byte
	var askAt []int
	for i, u := range users {
		if o, ok := t.mine[string(u)]; ok {
			out[i], found[i] = o, true
			continue
		}
		ask, askAt = append(ask, u), append(askAt, i)
	}
	if len(ask) > 0 {
		if err := s.Lookup(ask, func(j int, o uint32) { out[askAt[j]], found[askAt[j]] = o, true }); err != nil {
			return nil, err
		}
	}
	var fresh [][]byte
	for i, ok := range found {
		if !ok {
			fresh = append(fresh, users[i])
		}
	}
	if len(fresh) == 0 {
		return out, nil
	}
	if !t.read {
		n, err := s.Next()
		if err != nil {
			return nil, err
		}
		t.next, t.read = n, true
	}
	if uint64(t.next)+uint64(len(fresh)) > math.MaxUint32/2 {
		// The upper half is left to readers for ids without an ordinal.
		return nil, ErrExhausted
	}
	first := t.next
	if t.mine == nil {
		t.mine = map[string]uint32{}
	}
	for i, ok := range found {
		if !ok {
			out[i] = t.next
			t.mine[string(users[i])] = t.next
			t.next++
		}
	}
	return out, s.Store(fresh, first)
}

// Unknown is the first ordinal a reader may give ids that have none
// (rollup.Reports does, for users of the raw log no rollup met yet): no
// stored ordinal reaches it.
const Unknown = math.MaxUint32/2 + 1
