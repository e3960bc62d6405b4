package main

import (
	"reflect"
	"testing"

	"github.com/tallyhq/tally"
)

// TestConfigDoesNotMutateDefaults loads rules and quota defaults from the
// environment and checks that they replace the defaults whole: no field of
// a default rule leaks into a configured one, and the package's defaults
// stay as they were for the next load.
func TestConfigDoesNotMutateDefaults(t *testing.T) {
	before := tally.DefaultUsageRules()
	c, err := loadConfig(envOf(map[string]string{
		"USAGE_RULES":    `[{"event":"files.*","metric":"bytes_daily","sum":true},{"event":"builds.*"   ,"metric":"builds_daily"}]`,
		"QUOTA_DEFAULTS": `{"bytes_daily":10}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := tally.UsageRules{{Event: "files.*", Metric: "bytes_daily", Sum: true}, {Event: "builds.*", Metric: "builds_daily"}}
	if !reflect.DeepEqual(c.UsageRules, want) {
		t.Errorf("configured rules %+v, want %+v", c.UsageRules, want)
	}
	if got := tally.DefaultUsageRules(); !reflect.DeepEqual(got, before) {
		t.Errorf("USAGE_RULES changed the default rules: %+v, was %+v", got, before)
	}
	if d := defaultConfig(); len(d.QuotaDefaults) != 0 || !reflect.DeepEqual(d.UsageRules, before) {
		t.Errorf("a later default config is %+v / %+v", d.QuotaDefaults, d.UsageRules)
	}
	if !reflect.DeepEqual(c.QuotaDefaults, map[string]int64{"bytes_daily": 10}) {
		t.Errorf("quota defaults %v", c.QuotaDefaults)
	}

	// A second load, after the first, gets exactly what it configures.
	c, err = loadConfig(envOf(map[string]string{"USAGE_RULES": `[{"event":"x","metric":"x_daily"}]`}))
	if err != nil {
		t.Fatal(err)
	}
	if want := (tally.UsageRules{{Event: "x", Metric: "x_daily"}}); !reflect.DeepEqual(c.UsageRules, want) {
		t.Errorf("rules %+v, want %+v", c.UsageRules, want)
	}
}

// TestDefaultUsageRulesAreCopies checks that a caller changing the rules
// it got cannot change anyone else's.
func TestDefaultUsageRulesAreCopies(t *testing.T) {
	a := tally.DefaultUsageRules()
	a[0].Metric, a[0].Sum = "changed", true
	if b := tally.DefaultUsageRules(); b[0].Metric == "changed" || b[0].Sum {
		t.Errorf("DefaultUsageRules shares its backing array: %+v", b[0])
	}
}
