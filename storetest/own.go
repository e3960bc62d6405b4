package storetest

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func ownCases() []testCase {
	return []testCase{
		{"HiddenUnlessAskedFor", testOwnHidden},
	}
}

// testOwnHidden: tally's own events (names under tally.) are left out of
// the list, the export, the tail and the meters unless a filter names
// them or asks for source tally — in SQL, as EventFilter.Match says in Go.
func testOwnHidden(t *testing.T, s tally.Store) {
	ctx := t.Context()
	tn := newTenant(t, s, "own")
	d := pastDay()
	own := func(id, name string, at time.Time) tally.Event {
		e := ev(tn.ID, id, name, "", at)
		e.Source = tally.OwnSource
		return e
	}
	events := insertNew(t, s,
		ev(tn.ID, "p1", "api.request", "alice", d.Add(time.Hour)),
		ev(tn.ID, "p2", "tally_like", "alice", d.Add(2*time.Hour)), // "tally_" is not "tally."
		ev(tn.ID, "p3", "t.x", "bob", d.Add(3*time.Hour)),
		own("o1", tally.EventOwnAPIRequest, d.Add(4*time.Hour)),
		own("o2", tally.EventOwnLogin, d.Add(5*time.Hour)),
	)
	for _, f := range []tally.EventFilter{
		{}, {Name: "*"}, {Name: "t*"}, {Name: "tally*"}, {Name: "tally.*"}, {Name: "tally.api*"},
		{Name: tally.EventOwnLogin}, {Source: tally.OwnSource}, {Source: "api"}, {Source: tally.OwnSource, Name: "*"},
		{Name: "api.request"}, {From: d.Add(90 * time.Minute)},
	} {
		var want []tally.Event
		for _, e := range events {
			if f.Match(&e) {
				want = append(want, e)
			}
		}
		lf := f
		lf.Limit = 2
		wantEvents(t, "list", listAll(t, s, tn.ID, lf), newestFirst(want))
		rows, _ := exportAll(t, s, tn.ID, f, 100)
		wantEvents(t, "export", rows, oldestFirst(want))
		tail, err := s.TailEvents(ctx, tn.ID, f, 0, 100)
		check(t, err)
		wantEvents(t, "tail", tail, oldestFirst(want))
		ownSeen := false
		for _, e := range want {
			ownSeen = ownSeen || tally.IsOwnEvent(e.Name)
		}
		if hidden := tally.ExcludesOwn(f.Name, f.Source); hidden == ownSeen && f.Name != "api.request" {
			t.Errorf("filter %+v: ExcludesOwn %v, own events selected %v", f, hidden, ownSeen)
		}
	}
	// A meter over every event counts the host app's only; one that
	// names tally's events counts them.
	for _, tt := range []struct {
		pattern string
		source  string
		want    float64
	}{{"*", "", 3}, {"t*", "", 2}, {"tally.*", "", 2}, {"*", tally.OwnSource, 2}} {
		q := tally.MeterQuery{Meter: tally.MeterDef{Slug: "m", Event: tt.pattern, Aggregation: tally.AggCount},
			Bounds: []time.Time{d, d.Add(24 * time.Hour)}}
		if tt.source != "" {
			q.Filter = map[string]string{"source": tt.source}
		}
		var got float64
		check(t, s.QueryMeter(ctx, tn.ID, q, func(r tally.MeterRow) error {
			if r.Value != nil {
				got += *r.Value
			}
			return nil
		}))
		if got != tt.want {
			t.Errorf("meter on %q (source %q) = %v, want %v", tt.pattern, tt.source, got, tt.want)
		}
	}
}
