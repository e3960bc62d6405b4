package tally_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func TestRoles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		r, min tally.Role
		want   bool
	}{
		{tally.RoleOwner, tally.RoleAdmin, true},
		{tally.RoleAdmin, tally.RoleAdmin, true},
		{tally.RoleMember, tally.RoleAdmin, false},
		{tally.RoleMember, tally.RoleMember, true},
		{"", tally.RoleMember, false},
		{"root", tally.RoleMember, false},
	} {
		if got := tc.r.AtLeast(tc.min); got != tc.want {
			t.Errorf("%q.AtLeast(%q) = %v", tc.r, tc.min, got)
		}
	}
}

func TestValidSlugAndMetric(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{"acme": true, "a1": true, "a": false, "-acme": false, "Acme": false, "ac_me": false,
		"a" + string(make([]byte, 63)): false} {
		if tally.ValidSlug(s) != want {
			t.Errorf("ValidSlug(%q) != %v", s, want)
		}
	}
	for s, want := range map[string]bool{"builds_daily": true, "x": true, "Builds": false, "a-b": false, "": false} {
		if tally.ValidMetric(s) != want {
			t.Errorf("ValidMetric(%q) != %v", s, want)
		}
	}
}

func TestMatchName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		p, n string
		want bool
	}{
		{"*", "anything.at.all", true},
		{"auth.*", "auth.user.login", true},
		{"auth.*", "authx.login", false},
		{"auth*", "authx.login", true},
		{"api.request", "api.request", true},
		{"api.request", "api.requests", false},
	} {
		if got := tally.MatchName(tc.p, tc.n); got != tc.want {
			t.Errorf("MatchName(%q, %q) = %v", tc.p, tc.n, got)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	c := tally.Cursor{At: time.Date(2026, 1, 15, 10, 0, 0, 123456000, time.UTC), ID: 987654321}
	got, err := tally.ParseCursor(c.Encode())
	if err != nil || !got.At.Equal(c.At) || got.ID != c.ID {
		t.Fatalf("round trip of %+v = %+v, %v", c, got, err)
	}
	for _, bad := range []string{"", "!!!", "bm90LWEtY3Vyc29y", "YWJjLi01"} { // "not-a-cursor", "abc.-5"
		if _, err := tally.ParseCursor(bad); tally.ErrorCodeOf(err) != tally.EInvalid {
			t.Errorf("ParseCursor(%q) = %v, want EInvalid", bad, err)
		}
	}
}

func TestUsageRules(t *testing.T) {
	t.Parallel()
	rules := tally.UsageRules{
		{Event: "api.request", Metric: "api_requests_daily"},
		{Event: "files.uploaded", Metric: "upload_bytes", Sum: true},
		{Event: "*", Metric: "events_daily"},
	}
	ev := func(name string, value float64, props string) tally.Event {
		return tally.Event{Name: name, Value: value, Props: json.RawMessage(props)}
	}
	events := []tally.Event{
		ev("api.request", 1, `{}`),
		ev("files.uploaded", 2048.4, `{}`),
		ev("files.uploaded", -10, `{}`),  // usage never shrinks
		ev("files.uploaded", 1e30, `{}`), // clamped to MaxAmount
		ev(tally.EventUsageIncrement, 5, `{"metric":"seats"}`),
		ev(tally.EventUsageIncrement, 5, `{"metric":"Not Valid"}`),
	}
	want := map[string]int64{"api_requests_daily": 1, "upload_bytes": 2048 + tally.MaxAmount, "seats": 5, "events_daily": 6}
	got := map[string]int64{}
	for i := range events {
		for _, a := range rules.Apply(&events[i]) {
			got[a.Metric] += a.N
		}
	}
	for m, n := range want {
		if got[m] != n {
			t.Errorf("Apply: %s = %d, want %d", m, got[m], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Apply produced %v, want only %v", got, want)
	}
	// ApplyRows over the same events aggregated agrees with Apply.
	rows := []tally.HourRow{
		{Event: "api.request", Count: 1, SumRounded: 1},
		{Event: "files.uploaded", Count: 3, SumRounded: 2048 + tally.MaxAmount},
		{Event: tally.EventUsageIncrement, Metric: "seats", Count: 1, SumRounded: 5},
		{Event: tally.EventUsageIncrement, Count: 1, SumRounded: 5},
	}
	if agg := rules.ApplyRows(rows); len(agg) != len(want) || agg["upload_bytes"] != want["upload_bytes"] || agg["seats"] != 5 || agg["events_daily"] != 6 {
		t.Errorf("ApplyRows = %v, want %v", agg, want)
	}
	if err := (tally.UsageRules{{Event: "x", Metric: "Bad"}}).Validate(); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("Validate accepted a bad metric: %v", err)
	}
}

func TestQuotaStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 8, 23, 59, 0, 0, time.UTC)
	st := tally.NewQuotaStatus(tally.Quota{Metric: "m", Limit: 10, Enforced: true}, 12, now)
	if st.Remaining != 0 || !st.Exceeded || st.Period != "day" || !st.ResetsAt.Equal(time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("status %+v", st)
	}
	if st := tally.NewQuotaStatus(tally.Quota{Metric: "m", Limit: 10}, 3, now); st.Remaining != 7 || st.Exceeded {
		t.Fatalf("status %+v", st)
	}
}

func TestRetentionStart(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 20, 15, 4, 5, 0, time.UTC)
	if got := (&tally.Tenant{RetentionDays: 30}).RetentionStart(now); !got.Equal(time.Date(2026, 2, 18, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("30 days: %s", got)
	}
	if got := (&tally.Tenant{}).RetentionStart(now); !got.Equal(time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -tally.DefaultRetentionDays)) {
		t.Errorf("default: %s", got)
	}
}

func TestTenantChanges(t *testing.T) {
	t.Parallel()
	before := &tally.Tenant{Name: "A", Timezone: "UTC", RetentionDays: 30, WebhookURL: "https://h.example/x?token=s3cret", WebhookSecret: "whsec_1"}
	after := *before
	if got := after.Changes(before); len(got) != 0 {
		t.Errorf("no change: %v", got)
	}
	after.Name, after.RetentionDays, after.AllowSignup = "B", 7, true
	after.WebhookURL, after.WebhookSecret = "https://h.example/y?token=other#f", "whsec_2"
	got := after.Changes(before)
	want := map[string]any{
		"name":           map[string]any{"from": "A", "to": "B"},
		"retention_days": map[string]any{"from": 30, "to": 7},
		"allow_signup":   map[string]any{"from": false, "to": true},
		"webhook_url":    map[string]any{"from": "https://h.example/x", "to": "https://h.example/y"},
		"webhook_secret": "rotated",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Changes = %v, want %v", got, want)
	}
}
