package tally_test

import (
	"encoding/json"
	"errors"
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
	st := tally.NewQuotaStatus(tally.Quota{Metric: "m", Limit: 10, Enforced: true}, 12, 0, now, nil)
	if st.Remaining != 0 || !st.Exceeded || st.Period != "day" || !st.ResetsAt.Equal(time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("status %+v", st)
	}
	if st := tally.NewQuotaStatus(tally.Quota{Metric: "m", Limit: 10}, 3, 0, now, nil); st.Remaining != 7 || st.Exceeded {
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

func TestQuotaPeriodAt(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	at := func(loc *time.Location, y int, m time.Month, d, h int) time.Time {
		return time.Date(y, m, d, h, 0, 0, 0, loc)
	}
	for _, tt := range []struct {
		name        string
		q           tally.Quota
		now         time.Time
		loc         *time.Location
		start, end  time.Time
		wantSeconds int64
	}{
		// Berlin springs forward on 2026-03-29: a 23-hour day, and the
		// week and the month around it lose that hour too.
		{"day across spring-forward", tally.Quota{Period: "day"}, at(berlin, 2026, 3, 29, 12), berlin,
			at(berlin, 2026, 3, 29, 0), at(berlin, 2026, 3, 30, 0), 23 * 3600},
		{"unset period is a day", tally.Quota{}, at(berlin, 2026, 3, 29, 1), berlin,
			at(berlin, 2026, 3, 29, 0), at(berlin, 2026, 3, 30, 0), 23 * 3600},
		{"day across fall-back", tally.Quota{Period: "day"}, at(berlin, 2026, 10, 25, 23), berlin,
			at(berlin, 2026, 10, 25, 0), at(berlin, 2026, 10, 26, 0), 25 * 3600},
		{"week from Monday across DST", tally.Quota{Period: "week"}, at(berlin, 2026, 3, 29, 23), berlin,
			at(berlin, 2026, 3, 23, 0), at(berlin, 2026, 3, 30, 0), 7*86400 - 3600},
		{"week on its Monday", tally.Quota{Period: "week"}, at(ny, 2026, 3, 9, 0), ny,
			at(ny, 2026, 3, 9, 0), at(ny, 2026, 3, 16, 0), 7 * 86400},
		{"month across DST", tally.Quota{Period: "month"}, at(ny, 2026, 3, 31, 23), ny,
			at(ny, 2026, 3, 1, 0), at(ny, 2026, 4, 1, 0), 31*86400 - 3600},
		{"month in UTC", tally.Quota{Period: "month"}, time.Date(2026, 12, 31, 23, 59, 59, 0, time.UTC), nil,
			time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), 31 * 86400},
		// Anchor 31: January 31, then February's last day, then March 31.
		{"billing 31 before February's end", tally.Quota{Period: "billing", AnchorDay: 31}, at(ny, 2027, 2, 27, 12), ny,
			at(ny, 2027, 1, 31, 0), at(ny, 2027, 2, 28, 0), 28 * 86400},
		{"billing 31 on February 28", tally.Quota{Period: "billing", AnchorDay: 31}, at(ny, 2027, 2, 28, 0), ny,
			at(ny, 2027, 2, 28, 0), at(ny, 2027, 3, 31, 0), 31*86400 - 3600},
		{"billing 31 in a leap February", tally.Quota{Period: "billing", AnchorDay: 31}, at(berlin, 2028, 2, 29, 8), berlin,
			at(berlin, 2028, 2, 29, 0), at(berlin, 2028, 3, 31, 0), 31*86400 - 3600},
		{"billing 30 in April", tally.Quota{Period: "billing", AnchorDay: 30}, at(berlin, 2026, 4, 29, 23), berlin,
			at(berlin, 2026, 3, 30, 0), at(berlin, 2026, 4, 30, 0), 31 * 86400},
		{"billing 15 across the year", tally.Quota{Period: "billing", AnchorDay: 15}, time.Date(2027, 1, 3, 0, 0, 0, 0, time.UTC), nil,
			time.Date(2026, 12, 15, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC), 31 * 86400},
	} {
		start, end := tt.q.PeriodAt(tt.now, tt.loc)
		if !start.Equal(tt.start) || !end.Equal(tt.end) {
			t.Errorf("%s: PeriodAt(%s) = [%s, %s), want [%s, %s)", tt.name, tt.now, start, end, tt.start, tt.end)
		}
		if got := int64(end.Sub(start) / time.Second); got != tt.wantSeconds {
			t.Errorf("%s: period of %d s, want %d", tt.name, got, tt.wantSeconds)
		}
		if tt.now.Before(start) || !tt.now.Before(end) {
			t.Errorf("%s: %s is outside its period", tt.name, tt.now)
		}
	}
}

func TestQuotaValidatePeriod(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		q     tally.Quota
		field string // "" valid
	}{
		{tally.Quota{Metric: "m", Limit: 1}, ""},
		{tally.Quota{Metric: "m", Limit: 1, Period: "week"}, ""},
		{tally.Quota{Metric: "m", Limit: 1, Period: "billing", AnchorDay: 31}, ""},
		{tally.Quota{Metric: "m", Limit: 1, Period: "billing"}, "anchor_day"},
		{tally.Quota{Metric: "m", Limit: 1, Period: "billing", AnchorDay: 32}, "anchor_day"},
		{tally.Quota{Metric: "m", Limit: 1, Period: "month", AnchorDay: 1}, "anchor_day"},
		{tally.Quota{Metric: "m", Limit: 1, Period: "hour"}, "period"},
	} {
		err := tt.q.Validate()
		if tt.field == "" {
			if err != nil {
				t.Errorf("%+v: %v", tt.q, err)
			}
			continue
		}
		var e *tally.Error
		if !errors.As(err, &e) || len(e.Fields) != 1 || e.Fields[0].Field != tt.field {
			t.Errorf("%+v: %v, want an error on %s", tt.q, err, tt.field)
		}
	}
}
