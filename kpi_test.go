package tally_test

import (
	"testing"

	"github.com/tallyhq/tally"
)

// TestKPIDefinitions checks that every KPI has a unique name, a label and
// exactly what its kind needs, and that the ranges are found by name.
func TestKPIDefinitions(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, k := range tally.KPIs {
		if k.Name == "" || k.Label == "" || seen[k.Name] {
			t.Errorf("KPI %+v: needs a unique name and a label", k)
		}
		seen[k.Name] = true
		if (k.Kind == tally.KPIEvent) != (k.Event != "") || (k.Kind == tally.KPIMetric) != (k.Metric != "") ||
			k.Kind < tally.KPIEvent || k.Kind > tally.KPIAllEvents {
			t.Errorf("KPI %q: kind %d with event %q and metric %q", k.Name, k.Kind, k.Event, k.Metric)
		}
		if k.Kind == tally.KPIMetric && !tally.ValidMetric(k.Metric) {
			t.Errorf("KPI %q: invalid metric %q", k.Name, k.Metric)
		}
	}
	for _, r := range tally.KPIRanges {
		if got, ok := tally.KPIRangeByName(r.Name); !ok || got != r || r.Days < 1 {
			t.Errorf("KPIRangeByName(%q) = %+v, %v", r.Name, got, ok)
		}
	}
	if _, ok := tally.KPIRangeByName("1y"); ok {
		t.Error(`KPIRangeByName("1y") found a range`)
	}
	if got := tally.KPIRangeNames(); got != "today, 7d, 30d, 90d" {
		t.Errorf("KPIRangeNames() = %q", got)
	}
}
