// Package userset is the stored form of a set of strings, as both store
// backends keep the distinct values of a meter's hour: each value as its
// length in bytes (a uvarint) followed by its bytes. One encoding, so a
// database can move between backends. (The user sets of rollups are
// bitmaps of user ordinals instead; see tally.RollupTx.WriteHourUsers.)
package userset

import (
	"encoding/binary"
	"errors"
)

// ErrMalformed is returned for bytes that are not a user set.
var ErrMalformed = errors.New("malformed user set")

// Append appends one user id to an encoded set.
func Append(set, user []byte) []byte {
	return append(binary.AppendUvarint(set, uint64(len(user))), user...)
}

// Split appends the ids of an encoded set to users (reusing its storage)
// and returns it. The ids point into set.
func Split(set []byte, users [][]byte) ([][]byte, error) {
	for rest := set; len(rest) > 0; {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return users, ErrMalformed
		}
		users = append(users, rest[k:k+int(n)])
		rest = rest[k+int(n):]
	}
	return users, nil
}
