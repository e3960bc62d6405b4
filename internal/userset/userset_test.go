package userset

import (
	"bytes"
	"testing"
)

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("a"), []byte(""), []byte("a\x00b"))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		in := [][]byte{a, b, c}
		var set []byte
		for _, u := range in {
			set = Append(set, u)
		}
		out, err := Split(set, nil)
		if err != nil || len(out) != len(in) {
			t.Fatalf("Split(Append(%q)) = %q, %v", in, out, err)
		}
		for i := range in {
			if !bytes.Equal(in[i], out[i]) {
				t.Fatalf("id %d: %q became %q", i, in[i], out[i])
			}
		}
	})
}

func TestSplitMalformed(t *testing.T) {
	for _, bad := range [][]byte{{0x05, 'a'}, {0x80}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}} {
		if _, err := Split(bad, nil); err != ErrMalformed {
			t.Errorf("Split(%x) = %v, want ErrMalformed", bad, err)
		}
	}
}
