package tally

import (
	"fmt"
	"reflect"
	"testing"
)

// TestPropsPickerMatchesParseProps: at every path, PropAt and PropScalar
// of a picked value agree with the same of ParseProps, for props of every
// shape: nested, duplicate names, escapes, invalid UTF-8, numbers as
// written, values that are objects or arrays, not an object, not JSON.
func TestPropsPickerMatchesParseProps(t *testing.T) {
	t.Parallel()
	props := []string{
		`{"plan":"pro","ms":1250,"path":"/app/x","session":"4b2e…","note":"xxxxxxxx"}`,
		`{"a":{"b":{"c":"deep"},"n":1.50e3},"plan":"free"}`,
		`{"plan":"one","plan":"two"}`,
		`{"a":{"b":1},"a":{"c":2}}`,
		`{"plan":"a\"b\\c\u00e9\n","ms":-0.5}`,
		"{\"plan\":\"bad\xffutf8\",\"ms\":3}",
		`{"plan":{"nested":"obj"},"ms":[1,2,3]}`,
		`{"plan":null,"ms":true,"ok":false}`,
		`{"ms":12345678901234567890123,"plan":""}`,
		`["plan","pro"]`,
		`"plan"`,
		`42`,
		`{}`,
		`{"plan":"pro",`,
		`not json`,
		``,
		`{"a":[{"b":1}],"a.b":"dotted"}`,
		` { "plan" : "spaced" , "ms" : 7 } `,
		`{"pl\u0061n":"escaped name","m\u0073":5,"ms\"":6}`,
	}
	paths := []string{"props.plan", "props.ms", "props.ok", "props.a", "props.a.b", "props.a.b.c", "props.a.n", "props.a.c", "props.missing", "props.plan.nested"}
	for _, set := range [][]string{paths, {"props.plan"}, {"props.a.b.c", "props.ms"}} {
		pk := NewPropsPicker(append(set, "value", "user_id")...)
		for _, raw := range props {
			full, picked := ParseProps([]byte(raw)), pk.Pick([]byte(raw))
			for _, path := range set {
				fs, fok := PropScalar(full, path)
				ps, pok := PropScalar(picked, path)
				fn, fnum := PropAt(full, path).(interface{ Float64() (float64, error) })
				pn, pnum := PropAt(picked, path).(interface{ Float64() (float64, error) })
				if fs != ps || fok != pok || fnum != pnum || fnum && fmt.Sprint(fn) != fmt.Sprint(pn) {
					t.Errorf("paths %q, props %q, at %s: picked (%q, %v, number %v), ParseProps (%q, %v, number %v)",
						set, raw, path, ps, pok, pnum, fs, fok, fnum)
				}
				if (PropAt(full, path) == nil) != (PropAt(picked, path) == nil) {
					t.Errorf("props %q at %s: picked %#v, ParseProps %#v", raw, path, PropAt(picked, path), PropAt(full, path))
				}
			}
		}
	}
	// No props path: nothing to pick.
	if v := NewPropsPicker("value").Pick([]byte(`{"a":1}`)); v != nil {
		t.Errorf("a picker of no props path picked %#v", v)
	}
	// Reused across calls, a picker keeps nothing of the one before.
	pk := NewPropsPicker("props.plan")
	pk.Pick([]byte(`{"plan":"first"}`))
	if got := pk.Pick([]byte(`{"other":1}`)); !reflect.DeepEqual(got, map[string]any{}) {
		t.Errorf("second pick %#v", got)
	}
}

func BenchmarkPropsPick(b *testing.B) {
	raw := []byte(`{"ms":1250,"note":"` + string(make([]byte, 0)) + `lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo","path":"/app/projects/1234/settings","plan":"pro","session":"4b2e0c1d-9a7f-4e3b-8c2d-1f0e9d8c7b6a"}`)
	b.Run("ParseProps", func(b *testing.B) {
		for b.Loop() {
			p := ParseProps(raw)
			PropScalar(p, "props.plan")
			PropAt(p, "props.ms")
		}
	})
	b.Run("PropsPicker", func(b *testing.B) {
		pk := NewPropsPicker("props.plan", "props.ms")
		for b.Loop() {
			p := pk.Pick(raw)
			PropScalar(p, "props.plan")
			PropAt(p, "props.ms")
		}
	})
}
