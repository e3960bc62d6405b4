package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// TestUsageIncrementRules checks that a usage.increment event, sent as an
// ordinary event, is held to the rules of POST /api/analytics/usage: it
// cannot lower or overflow a counter.
func TestUsageIncrementRules(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{})
	tenant := &tally.Tenant{ID: 1, RetentionDays: 400}
	now := time.Now().UTC()
	for _, tc := range []struct {
		body, field string // field "" means accepted
	}{
		{`{"event":"usage.increment","value":3,"props":{"metric":"builds_daily"}}`, ""},
		{`{"event":"usage.increment","value":1099511627776,"props":{"metric":"builds_daily"}}`, ""},
		{`{"event":"usage.increment","value":-1000,"props":{"metric":"builds_daily"}}`, "value"},
		{`{"event":"usage.increment","value":0,"props":{"metric":"builds_daily"}}`, "value"},
		{`{"event":"usage.increment","value":1.5,"props":{"metric":"builds_daily"}}`, "value"},
		{`{"event":"usage.increment","value":1e19,"props":{"metric":"builds_daily"}}`, "value"},
		{`{"event":"usage.increment","props":{"metric":"Bad Metric"}}`, "props.metric"},
		{`{"event":"usage.increment"}`, "props.metric"},
	} {
		d, err := v.Decode([]byte(tc.body), tenant, now)
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		switch {
		case tc.field == "" && (len(d.Events) != 1 || len(d.Rejected) != 0):
			t.Errorf("%s: rejected %+v, want accepted", tc.body, d.Rejected)
		case tc.field != "" && (len(d.Rejected) != 1 || !strings.HasPrefix(d.Rejected[0].Error, tc.field)):
			t.Errorf("%s: got %+v, want a rejection naming %s", tc.body, d.Rejected, tc.field)
		}
	}
}
