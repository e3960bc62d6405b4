package tally_test

import (
	"encoding/json"
	"testing"

	"github.com/tallyhq/tally"
)

// TestMeterQuotaAmount: what one event adds to a quota on a count or sum
// meter, as the stores select the meter's events.
func TestMeterQuotaAmount(t *testing.T) {
	t.Parallel()
	count := tally.MeterDef{Slug: "pro_calls", Event: "api.*", Aggregation: tally.AggCount,
		Filter: map[string]string{"props.plan": "pro", "source": "web"}}
	sum := tally.MeterDef{Slug: "tokens", Event: "llm.completion", Aggregation: tally.AggSum, ValueProperty: "props.usage.tokens"}
	value := tally.MeterDef{Slug: "bytes", Event: "*", Aggregation: tally.AggSum, ValueProperty: "value"}
	ev := func(name, source, props string, v float64) *tally.Event {
		return &tally.Event{Name: name, Source: source, Props: json.RawMessage(props), Value: v}
	}
	settled := ev("llm.completion", "api", `{"usage":{"tokens":5}}`, 0)
	settled.Settled = "tokens"
	for _, c := range []struct {
		name string
		m    tally.MeterDef
		e    *tally.Event
		want int64
	}{
		{"count matches", count, ev("api.call", "web", `{"plan":"pro"}`, 0), 1},
		{"another source", count, ev("api.call", "api", `{"plan":"pro"}`, 0), 0},
		{"another plan", count, ev("api.call", "web", `{"plan":"free"}`, 0), 0},
		{"another event", count, ev("app.call", "web", `{"plan":"pro"}`, 0), 0},
		{"sum of a props path", sum, ev("llm.completion", "api", `{"usage":{"tokens":12.5}}`, 0), 13},
		{"a string is no number", sum, ev("llm.completion", "api", `{"usage":{"tokens":"12"}}`, 0), 0},
		{"missing", sum, ev("llm.completion", "api", `{}`, 0), 0},
		{"negative", sum, ev("llm.completion", "api", `{"usage":{"tokens":-3}}`, 0), 0},
		{"huge", sum, ev("llm.completion", "api", `{"usage":{"tokens":1e300}}`, 0), tally.MaxAmount},
		{"settled for the meter", sum, settled, 0},
		{"an increment of the metric", value, ev(tally.EventUsageIncrement, "usage", `{"metric":"bytes"}`, 9), 0},
		{"an increment of another metric", value, ev(tally.EventUsageIncrement, "usage", `{"metric":"calls"}`, 9), 9},
		{"the event's value", value, ev("files.uploaded", "api", `{}`, 2.4), 2},
		{"not tally's own", value, ev("tally.login", "tally", `{}`, 1), 0},
	} {
		if got := c.m.QuotaAmount(c.e); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	for _, agg := range []tally.MeterAggregation{tally.AggUniqueCount, tally.AggMin, tally.AggMax, tally.AggAvg, tally.AggLatest} {
		m := tally.MeterDef{Slug: "m", Aggregation: agg}
		if err := m.CheckQuota("metric"); tally.ErrorCodeOf(err) != tally.EInvalid {
			t.Errorf("%s: %v", agg, err)
		}
	}
	if err := sum.CheckQuota("metric"); err != nil {
		t.Error(err)
	}
}
