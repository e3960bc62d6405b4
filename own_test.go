package tally_test

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// TestOwnEvents holds the one rule that keeps tally's own activity apart:
// a pattern selects tally.* names only when it names them (or the source
// is tally), the same in filters, usage rules and KPIs.
func TestOwnEvents(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p, source string
		excludes  bool
	}{
		{"", "", true}, {"*", "", true}, {"t*", "", true}, {"tally*", "", true},
		{"tally.*", "", false}, {"tally.api*", "", false}, {"tally.api.request", "", false},
		{"api.request", "", false}, {"a*", "", false}, {"", "tally", false}, {"*", "tally", false}, {"", "api", true},
	} {
		if got := tally.ExcludesOwn(tt.p, tt.source); got != tt.excludes {
			t.Errorf("ExcludesOwn(%q, %q) = %v, want %v", tt.p, tt.source, got, tt.excludes)
		}
	}
	for _, tt := range []struct {
		p, n string
		want bool
	}{
		{"*", "api.request", true}, {"*", tally.EventOwnAPIRequest, false}, {"tally.*", tally.EventOwnAPIRequest, true},
		{tally.EventOwnLogin, tally.EventOwnLogin, true}, {"t*", "tally.x", false}, {"t*", "tally_x", true},
		{"api.request", tally.EventOwnAPIRequest, false},
	} {
		if got := tally.SelectsEvent(tt.p, tt.n); got != tt.want {
			t.Errorf("SelectsEvent(%q, %q) = %v, want %v", tt.p, tt.n, got, tt.want)
		}
	}

	// Filters in Go: hidden by default, shown by source or name.
	own := tally.Event{Name: tally.EventOwnAPIRequest, Source: tally.OwnSource, Timestamp: time.Now()}
	mine := tally.Event{Name: "api.request", Source: "api", Timestamp: time.Now()}
	for _, tt := range []struct {
		f         tally.EventFilter
		own, mine bool
	}{
		{tally.EventFilter{}, false, true},
		{tally.EventFilter{Name: "*"}, false, true},
		{tally.EventFilter{Source: tally.OwnSource}, true, false},
		{tally.EventFilter{Name: "tally.*"}, true, false},
		{tally.EventFilter{Name: tally.EventOwnAPIRequest}, true, false},
	} {
		if got := tt.f.Match(&own); got != tt.own {
			t.Errorf("%+v matches own = %v", tt.f, got)
		}
		if got := tt.f.Match(&mine); got != tt.mine {
			t.Errorf("%+v matches the host app's = %v", tt.f, got)
		}
	}

	// Usage rules: the defaults never count tally's own events, in both
	// shapes; a rule that names them does.
	rules := append(tally.DefaultUsageRules(), tally.UsageRule{Event: "tally.api.*", Metric: "tally_calls"})
	got := map[string]int64{}
	for _, e := range []tally.Event{own, own, mine} {
		for _, a := range rules.Apply(&e) {
			got[a.Metric] += a.N
		}
	}
	rows := rules.ApplyRows([]tally.HourRow{{Event: own.Name, Count: 2}, {Event: mine.Name, Count: 1}})
	for _, m := range []map[string]int64{got, rows} {
		if m["api_requests_daily"] != 1 || m["events_daily"] != 1 || m["tally_calls"] != 2 {
			t.Errorf("usage of two own events and one api.request: %v", m)
		}
	}
}
