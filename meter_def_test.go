package tally_test

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func TestMeterDefValidate(t *testing.T) {
	t.Parallel()
	ok := tally.MeterDef{Slug: "tokens", Event: "llm.*", Aggregation: tally.AggSum, ValueProperty: "props.usage.input",
		GroupBy: []string{"props.model"}, Filter: map[string]string{"props.plan": "pro", "source": "api"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid meter refused: %v", err)
	}
	count := tally.MeterDef{Slug: "calls", Event: "api.request", Aggregation: tally.AggCount}
	if err := count.Validate(); err != nil {
		t.Fatalf("count without value_property refused: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(m *tally.MeterDef)
		field string
	}{
		{"slug", func(m *tally.MeterDef) { m.Slug = "Bad Slug" }, "slug"},
		{"event empty", func(m *tally.MeterDef) { m.Event = "" }, "event"},
		{"event pattern", func(m *tally.MeterDef) { m.Event = "a b" }, "event"},
		{"aggregation", func(m *tally.MeterDef) { m.Aggregation = "median" }, "aggregation"},
		{"value required", func(m *tally.MeterDef) { m.ValueProperty = "" }, "value_property"},
		{"value not a path", func(m *tally.MeterDef) { m.ValueProperty = "props..x" }, "value_property"},
		{"value other column", func(m *tally.MeterDef) { m.ValueProperty = "tokens" }, "value_property"},
		{"group_by path", func(m *tally.MeterDef) { m.GroupBy = []string{"model"} }, "group_by[0]"},
		{"group_by twice", func(m *tally.MeterDef) { m.GroupBy = []string{"props.a", "props.a"} }, "group_by[1]"},
		{"group_by many", func(m *tally.MeterDef) {
			m.GroupBy = []string{"props.a", "props.b", "props.c", "props.d", "props.e", "props.f"}
		}, "group_by"},
		{"filter key", func(m *tally.MeterDef) { m.Filter = map[string]string{"plan": "pro"} }, "filter[plan]"},
		{"description", func(m *tally.MeterDef) { m.Description = string(make([]byte, 501)) }, "description"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			tc.edit(&m)
			err := m.Validate()
			e, isErr := err.(*tally.Error)
			if !isErr || e.Code != tally.EInvalid {
				t.Fatalf("err = %v, want EInvalid", err)
			}
			found := false
			for _, f := range e.Fields {
				found = found || f.Field == tc.field
			}
			if !found {
				t.Fatalf("fields %v do not name %s", e.Fields, tc.field)
			}
		})
	}
}

func TestMeterWindowsDST(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip("no tzdata: ", err)
	}
	// 2026-03-08 is 23 hours long in New York, 2026-11-01 25 hours.
	from := time.Date(2026, 3, 7, 0, 0, 0, 0, ny)
	to := time.Date(2026, 3, 10, 0, 0, 0, 0, ny)
	b, err := tally.MeterWindows(tally.WindowDay, from, to, ny)
	if err != nil {
		t.Fatal(err)
	}
	var lens []time.Duration
	for i := 1; i < len(b); i++ {
		lens = append(lens, b[i].Sub(b[i-1]))
	}
	if want := []time.Duration{24 * time.Hour, 23 * time.Hour, 24 * time.Hour}; len(lens) != 3 || lens[0] != want[0] || lens[1] != want[1] || lens[2] != want[2] {
		t.Fatalf("day windows %v, want %v", lens, want)
	}
	b, _ = tally.MeterWindows(tally.WindowHour, from.Add(90*time.Minute), from.Add(3*time.Hour), ny)
	if len(b) != 3 || !b[0].Equal(from.Add(time.Hour)) {
		t.Fatalf("hour windows %v", b)
	}
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	b, _ = tally.MeterWindows(tally.WindowHour, time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC), time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC), kolkata)
	if b[0].Minute() != 30 {
		t.Fatalf("Kolkata hours start at :30 UTC, got %v", b[0])
	}
	b, _ = tally.MeterWindows(tally.WindowMonth, time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), time.UTC)
	if len(b) != 4 {
		t.Fatalf("month windows %v", b)
	}
	if _, err := tally.MeterWindows(tally.WindowMinute, from, from.Add(30*24*time.Hour), ny); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Fatalf("43200 minute windows: err %v", err)
	}
}
