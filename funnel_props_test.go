package tally

import "testing"

// TestFunnelNeedsProps: a funnel decodes props only when a breakdown or a
// step filter reads a props path; source and user_id filters do not.
func TestFunnelNeedsProps(t *testing.T) {
	for _, c := range []struct {
		q    FunnelQuery
		want bool
	}{
		{FunnelQuery{Steps: []FunnelStep{{Event: "a"}, {Event: "b"}}}, false},
		{FunnelQuery{Steps: []FunnelStep{{Event: "a", Filter: map[string]string{"source": "web", "user_id": "u"}}, {Event: "b"}}}, false},
		{FunnelQuery{Steps: []FunnelStep{{Event: "a"}, {Event: "b", Filter: map[string]string{"props.plan": "pro"}}}}, true},
		{FunnelQuery{Steps: []FunnelStep{{Event: "a"}, {Event: "b"}}, Breakdown: "props.plan"}, true},
	} {
		if got := c.q.NeedsProps(); got != c.want {
			t.Errorf("%+v: NeedsProps %v, want %v", c.q, got, c.want)
		}
	}
}
