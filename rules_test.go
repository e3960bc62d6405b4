package tally_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tallyhq/tally"
)

func TestValidEventPattern(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]bool{
		"":                             true, // no filter
		"*":                            true,
		"auth.*":                       true,
		"auth.user.login":              true,
		"auth.":                        true,
		"a*b":                          false,
		"**":                           false,
		"a b":                          false,
		strings.Repeat("a", 128) + "*": true,
		strings.Repeat("a", 129) + "*": false,
		"é":                            false,
	} {
		if got := tally.ValidEventPattern(p); got != want {
			t.Errorf("ValidEventPattern(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestJSONDepth(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]int{
		`1`:                    0,
		`"{[{["`:               0,
		`{}`:                   1,
		`{"a":[1,{"b":"]}"}]}`: 3,
		`[[],[[]]]`:            3,
		`{"a\"{":{"b":{}}}`:    3,
	} {
		if got := tally.JSONDepth([]byte(s)); got != want {
			t.Errorf("JSONDepth(%s) = %d, want %d", s, got, want)
		}
	}
}

func TestUsageIncrementValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in    tally.UsageIncrement
		field string
	}{
		{tally.UsageIncrement{Metric: "builds", Amount: 1}, ""},
		{tally.UsageIncrement{Metric: "builds", Amount: tally.MaxAmount, EventID: strings.Repeat("é", tally.MaxEventIDLen)}, ""},
		{tally.UsageIncrement{Metric: "Builds", Amount: 1}, "metric"},
		{tally.UsageIncrement{Metric: "builds", Amount: 0}, "amount"},
		{tally.UsageIncrement{Metric: "builds", Amount: tally.MaxAmount + 1}, "amount"},
		{tally.UsageIncrement{Metric: "builds", Amount: 1, EventID: strings.Repeat("e", tally.MaxEventIDLen+1)}, "event_id"},
	} {
		err := tc.in.Validate()
		field := ""
		if err != nil {
			var te *tally.Error
			if !errors.As(err, &te) || te.Code != tally.EInvalid || len(te.Fields) != 1 {
				t.Fatalf("%+v: %v, want one EInvalid field error", tc.in, err)
			}
			field = te.Fields[0].Field
		}
		if field != tc.field {
			t.Errorf("%+v: field %q, want %q", tc.in, field, tc.field)
		}
	}
}
