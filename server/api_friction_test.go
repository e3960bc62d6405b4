package server_test

import (
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestAPIRejectedFieldNames checks that a refused event is named by the
// field the body really has: batch[i].field in the batch form, the field
// itself for a single event.
func TestAPIRejectedFieldNames(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("fields")
	for _, tc := range []struct {
		body  string
		field string
	}{
		{`{"batch":[{"event":"ok.one"},{"event":"Bad Name!"}]}`, ""}, // one accepted: 202
		{`{"batch":[{"event":"Bad Name!"},{"event":"x.y","timestamp":"nope"}]}`, "batch[1].timestamp"},
		{`{"batch":[{"event":"Bad Name!"}]}`, "batch[0].event"},
		{`{"event":"Bad Name!"}`, "event"},
	} {
		r := h.do("POST", "/api/analytics/events", tc.body, o.h())
		if tc.field == "" {
			r.want(t, http.StatusAccepted)
			continue
		}
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tc.field) {
			t.Errorf("%s: does not name %s", r, tc.field)
		}
	}
}

// TestAPIDefaultRangeBuckets checks that the usage series' default range
// and the metrics report's 7d have the same 7 day buckets, in UTC and in
// a tenant-chosen zone.
func TestAPIDefaultRangeBuckets(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("ranges")
	h.do("POST", "/api/analytics/usage", map[string]any{"metric": "builds_daily", "amount": 2}, o.h()).want(t, http.StatusAccepted)
	for _, tz := range []string{"UTC", "Pacific/Kiritimati", "America/Los_Angeles"} {
		var usage struct {
			Series []struct {
				Metric string
				Points []struct {
					Start time.Time
					Value int64
				}
			}
		}
		h.do("GET", "/api/analytics/usage?metric=builds_daily&tz="+tz, nil, o.h()).want(t, http.StatusOK).decode(t, &usage)
		var report struct {
			Timeseries map[string][]struct {
				Start time.Time
				Value int64
			}
		}
		h.do("GET", "/api/analytics/metrics?range=7d&tz="+tz, nil, o.h()).want(t, http.StatusOK).decode(t, &report)
		if len(usage.Series) != 1 || len(usage.Series[0].Points) != 7 {
			t.Fatalf("%s: usage default range %+v, want 7 day buckets", tz, usage.Series)
		}
		kpi := report.Timeseries["builds"]
		if len(kpi) != 7 {
			t.Fatalf("%s: metrics 7d has %d buckets", tz, len(kpi))
		}
		for i, p := range usage.Series[0].Points {
			if !p.Start.Equal(kpi[i].Start) || p.Value != kpi[i].Value {
				t.Errorf("%s: bucket %d usage %v=%d, metrics %v=%d", tz, i, p.Start, p.Value, kpi[i].Start, kpi[i].Value)
			}
		}
		if last := usage.Series[0].Points[6]; last.Value != 2 {
			t.Errorf("%s: today's bucket %v=%d, want 2", tz, last.Start, last.Value)
		}
	}
}

// TestAPITimePrecision checks that every time in answers has the one
// precision of the encoder, six fractional digits, whether it was just
// made (nanoseconds) or read back from the store (microseconds).
func TestAPITimePrecision(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("times")
		key := h.createKey(o, "analytics:write")
		h.send(hdr(key.Key, ""), map[string]any{"event": "app.opened", "timestamp": "2026-01-15T09:30:00.5Z"})
		anyTime := regexp.MustCompile(`"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[^"]*"`)
		good := regexp.MustCompile(`^"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)"$`)
		seen := 0
		for _, path := range []string{"/api/auth/me", "/api/keys", "/api/analytics/events?from=2026-01-01",
			"/api/analytics/metrics?range=7d&tz=Europe/Berlin", "/api/analytics/audit", "/api/analytics/usage"} {
			r := h.do("GET", path, nil, o.h()).want(t, http.StatusOK)
			for _, ts := range anyTime.FindAllString(string(r.Body), -1) {
				seen++
				if !good.MatchString(ts) {
					t.Errorf("%s: time %s is not RFC 3339 with 6 fractional digits", path, ts)
				}
			}
		}
		r := h.do("POST", "/api/keys", map[string]any{"name": "fresh", "scopes": []string{"analytics:read"}}, o.h()).want(t, http.StatusCreated)
		for _, ts := range anyTime.FindAllString(string(r.Body), -1) {
			seen++
			if !good.MatchString(ts) {
				t.Errorf("POST /api/keys: time %s", ts)
			}
		}
		if seen < 10 {
			t.Fatalf("only %d times in the answers", seen)
		}
		var ev eventsPage
		h.do("GET", "/api/analytics/events?from=2026-01-01&event=app.opened", nil, o.h()).decode(t, &ev)
		if len(ev.Events) != 1 || !ev.Events[0].Timestamp.Equal(time.Date(2026, 1, 15, 9, 30, 0, 5e8, time.UTC)) {
			t.Errorf("events %+v", ev.Events)
		}
	})
}

// TestAPITodayComparesWithYesterdaySoFar checks that "today" is compared
// with yesterday up to the same time of day, not with all of yesterday,
// and that the report says which period that is.
func TestAPITodayComparesWithYesterdaySoFar(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("today")
		now := time.Now().UTC()
		from := now.Truncate(24 * time.Hour)
		prevFrom, elapsed := from.Add(-24*time.Hour), now.Sub(from)
		before := prevFrom.Add(elapsed / 2)                       // yesterday, earlier in the day than now
		after := prevFrom.Add(elapsed + (24*time.Hour-elapsed)/2) // yesterday, later in the day than now
		h.send(o.h(), map[string]any{"batch": []map[string]any{
			{"event": "yday.before", "user_id": "u1", "timestamp": before.Format(time.RFC3339Nano)},
			{"event": "yday.after", "user_id": "u2", "timestamp": after.Format(time.RFC3339Nano)},
		}})
		var rep struct {
			From, To, PreviousFrom, PreviousTo time.Time
			KPIs                               map[string]struct{ Value, Previous int64 }
		}
		r := h.do("GET", "/api/analytics/metrics?range=today&tz=UTC", nil, o.h()).want(t, http.StatusOK)
		r.decode(t, &rep)
		var raw map[string]any
		r.decode(t, &raw)
		rep.PreviousFrom, _ = time.Parse(time.RFC3339Nano, raw["previous_from"].(string))
		rep.PreviousTo, _ = time.Parse(time.RFC3339Nano, raw["previous_to"].(string))
		if !rep.PreviousFrom.Equal(prevFrom) || rep.PreviousTo.Sub(rep.PreviousFrom) != rep.To.Sub(rep.From) {
			t.Errorf("previous period %v–%v for today %v–%v", rep.PreviousFrom, rep.PreviousTo, rep.From, rep.To)
		}
		if ev, users := rep.KPIs["events"], rep.KPIs["active_users"]; ev.Previous != 1 || users.Previous != 1 {
			t.Errorf("yesterday so far: %d events, %d users; want 1 and 1 (only the earlier one)", ev.Previous, users.Previous)
		}
		// 7d compares full days: the later event counts in its own period.
		var week struct {
			KPIs map[string]struct{ Value, Previous int64 }
		}
		h.do("GET", "/api/analytics/metrics?range=7d&tz=UTC", nil, o.h()).want(t, http.StatusOK).decode(t, &week)
		if week.KPIs["active_users"].Value < 2 {
			t.Errorf("7d active users %d, want both of yesterday's", week.KPIs["active_users"].Value)
		}
	})
}
