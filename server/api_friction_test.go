package server_test

import (
	"net/http"
	"testing"
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
