package tally

import (
	"bytes"
	"encoding/json"

	"github.com/go-json-experiment/json/jsontext"
)

// PropsPicker reads from props only what a set of props paths reach: Pick
// is ParseProps as PropAt and PropScalar see it at those paths (numbers as
// json.Number, strings unescaped, the last of duplicate names), without
// decoding the rest into maps. A store that evaluates props paths in Go
// over many events (ClickHouse's meters) picks with one. A PropsPicker is
// not safe for concurrent use.
type PropsPicker struct {
	root propNode
	dec  *jsontext.Decoder
	r    bytes.Reader
}

// pickOptions read props as encoding/json does: the last of duplicate
// names, invalid UTF-8 replaced.
var pickOptions = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// propNode is a level of the paths: which names are wanted, and whether a
// path ends here.
type propNode struct {
	name string // its key in the level above
	end  bool
	kids map[string]*propNode
}

// pickedOther stands for a value at a path's end that is an object or an
// array no longer path reads into: PropAt gives something that is no
// scalar and no number, as ParseProps' map or slice would.
type pickedOther struct{}

// NewPropsPicker returns a picker of the props paths ("props.a.b");
// paths that are not props paths are ignored.
func NewPropsPicker(paths ...string) *PropsPicker {
	p := &PropsPicker{}
	p.dec = jsontext.NewDecoder(&p.r)
	for _, path := range paths {
		keys := ParsePropPath(path)
		if keys == nil {
			continue
		}
		n := &p.root
		for _, k := range keys {
			if n.kids == nil {
				n.kids = map[string]*propNode{}
			}
			if n.kids[k] == nil {
				n.kids[k] = &propNode{name: k}
			}
			n = n.kids[k]
		}
		n.end = true
	}
	return p
}

// Pick returns what PropAt reads at the picker's paths of props: nil when
// props are not JSON, else a map holding the paths' values.
func (p *PropsPicker) Pick(props []byte) any {
	if p.root.kids == nil {
		return nil
	}
	p.r.Reset(props)
	p.dec.Reset(&p.r, pickOptions...)
	v, err := p.value(&p.root)
	if err != nil {
		return nil
	}
	return v
}

// value reads the next value for node n: an object's wanted names, a
// scalar where a path ends, pickedOther for the rest at a path's end, nil
// where no path reads it.
func (p *PropsPicker) value(n *propNode) (any, error) {
	switch k := p.dec.PeekKind(); {
	case k == '{' && n.kids != nil:
		if _, err := p.dec.ReadToken(); err != nil {
			return nil, err
		}
		obj := map[string]any{}
		for p.dec.PeekKind() != '}' {
			raw, err := p.dec.ReadValue() // the name, quoted; valid until the next read
			if err != nil {
				return nil, err
			}
			// Wanted names are of [A-Za-z0-9_-] (ParsePropPath): only an
			// escape can make another spelling of one.
			name := raw[1 : len(raw)-1]
			if bytes.IndexByte(name, '\\') >= 0 {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil { // as ParseProps decodes it
					return nil, err
				}
				name = []byte(s)
			}
			kid := n.kids[string(name)] // (a lookup that does not copy)
			if kid == nil {
				if err := p.dec.SkipValue(); err != nil {
					return nil, err
				}
				continue
			}
			v, err := p.value(kid)
			if err != nil {
				return nil, err
			}
			obj[kid.name] = v
		}
		_, err := p.dec.ReadToken()
		return obj, err
	case k == '{' || k == '[':
		if err := p.dec.SkipValue(); err != nil {
			return nil, err
		}
		if n.end {
			return pickedOther{}, nil
		}
		return nil, nil
	}
	t, err := p.dec.ReadToken()
	if err != nil || !n.end {
		return nil, err
	}
	switch t.Kind() {
	case '"':
		return t.String(), nil
	case '0':
		return json.Number(t.String()), nil
	case 't', 'f':
		return t.Bool(), nil
	}
	return nil, nil // null
}
