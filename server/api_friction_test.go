package server_test

import (
	"net/http"
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
