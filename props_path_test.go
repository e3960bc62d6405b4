package tally

import (
	"encoding/json"
	"testing"
)

// TestPropRawAgreesWithDecoding: the raw props reader ingest evaluates
// meters with gives what decoding the props (ParseProps) gives, for the
// scalars of filters and the numbers of sums.
func TestPropRawAgreesWithDecoding(t *testing.T) {
	t.Parallel()
	docs := []string{
		`{}`, ``, `[]`, `null`, `{"a":1}`,
		`{"a": {"b" : 12.50 , "c":[1,{"b":2}]}, "s":"x\"y", "t":true,"f":false,"n":null}`,
		`{"a":{"b":"in \\ string } ] ,"},"b":-3e2}`,
		`{"\u0061":{"b":7}}`,
		`{"a":1,"a":{"b":"last"}}`,
		`{"x":{"a":{"b":"deep"}},"a":{"b":[1,2]}}`,
		`{"a":{"b":{"c":1}},"s":"\u00e9t\u00e9"}`,
		` { "a" : { "b" : 5 } } `,
	}
	paths := []string{"props.a", "props.a.b", "props.a.b.c", "props.s", "props.t", "props.f", "props.n", "props.b", "props.x.a.b", "props.zz"}
	for _, d := range docs {
		if d != "" && !json.Valid([]byte(d)) {
			t.Fatalf("%s is not JSON", d)
		}
		p := ParseProps([]byte(d))
		for _, path := range paths {
			want, wok := PropScalar(p, path)
			got, gok := propScalarRaw([]byte(d), path)
			if got != want || gok != wok {
				t.Errorf("%s at %s: raw %q %v, decoded %q %v", d, path, got, gok, want, wok)
			}
			wn, wnok := PropAt(p, path).(json.Number)
			gn, gnok := propNumberRaw([]byte(d), path)
			if gn != wn || gnok != wnok {
				t.Errorf("%s at %s: raw number %q %v, decoded %q %v", d, path, gn, gnok, wn, wnok)
			}
		}
	}
}
