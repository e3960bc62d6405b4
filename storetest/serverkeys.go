package storetest

import (
	"bytes"
	"sync"
	"testing"

	"github.com/tallyhq/tally"
)

func serverKeyCases() []testCase {
	return []testCase{{"OneKeyPerName", testServerKey}}
}

// testServerKey asks for keys concurrently: every caller of a name gets
// the one stored key, 32 bytes, the same on later calls; names differ.
func testServerKey(t *testing.T, s tally.Store) {
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := s.ServerKey(t.Context(), tally.EventIDKeyName)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys {
		if len(k) != 32 || !bytes.Equal(k, keys[0]) {
			t.Fatalf("concurrent first calls got keys %x and %x", keys[0], k)
		}
	}
	again, err := s.ServerKey(t.Context(), tally.EventIDKeyName)
	check(t, err)
	other, err := s.ServerKey(t.Context(), "another")
	check(t, err)
	if !bytes.Equal(again, keys[0]) || bytes.Equal(other, keys[0]) || len(other) != 32 {
		t.Errorf("later call %x, other name %x, first %x", again, other, keys[0])
	}
}
