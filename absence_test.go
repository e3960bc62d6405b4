package tally_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// TestAbsenceEvaluate holds the state machine of an absence alert: a
// silence counted from the last event or the alert's last change, fired
// once; a resumption on the first event after the silence began.
func TestAbsenceEvaluate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	ok := tally.AbsenceAlert{State: tally.AbsenceOK, Silence: 6 * time.Hour, UpdatedAt: t0, StateSince: t0}
	silent := tally.AbsenceAlert{State: tally.AbsenceSilent, Silence: 6 * time.Hour, UpdatedAt: t0, StateSince: t0.Add(time.Hour)}
	for _, tt := range []struct {
		name      string
		a         tally.AbsenceAlert
		last, now time.Time
		change    bool
		to        tally.AbsenceTransition
	}{
		{"no event, silence not over", ok, time.Time{}, t0.Add(6*time.Hour - time.Second), false, tally.AbsenceTransition{}},
		{"no event since the creation", ok, time.Time{}, t0.Add(6 * time.Hour), true, tally.AbsenceTransition{State: tally.AbsenceSilent, Since: t0}},
		{"an event before the creation", ok, t0.Add(-time.Hour), t0.Add(6 * time.Hour), true, tally.AbsenceTransition{State: tally.AbsenceSilent, Since: t0}},
		{"a recent event", ok, t0.Add(5 * time.Hour), t0.Add(10 * time.Hour), false, tally.AbsenceTransition{}},
		{"the last event six hours ago", ok, t0.Add(time.Hour), t0.Add(7 * time.Hour), true, tally.AbsenceTransition{State: tally.AbsenceSilent, Since: t0.Add(time.Hour)}},
		{"silent, nothing new", silent, t0.Add(time.Hour), t0.Add(20 * time.Hour), false, tally.AbsenceTransition{}},
		{"silent, no event at all", silent, time.Time{}, t0.Add(20 * time.Hour), false, tally.AbsenceTransition{}},
		{"silent, an event", silent, t0.Add(9 * time.Hour), t0.Add(10 * time.Hour), true, tally.AbsenceTransition{State: tally.AbsenceOK, Since: t0.Add(9 * time.Hour)}},
		{"silent, an event dated ahead", silent, t0.Add(11 * time.Hour), t0.Add(10 * time.Hour), true, tally.AbsenceTransition{State: tally.AbsenceOK, Since: t0.Add(10 * time.Hour)}},
	} {
		got, change := tt.a.Evaluate(tt.last, tt.now)
		if change != tt.change || got.State != tt.to.State || !got.Since.Equal(tt.to.Since) {
			t.Errorf("%s: Evaluate = %+v, %v; want %+v, %v", tt.name, got, change, tt.to, tt.change)
		}
	}
	// The API's JSON carries the silence in seconds both ways.
	b, err := json.Marshal(ok)
	if err != nil {
		t.Fatal(err)
	}
	var back tally.AbsenceAlert
	if err := json.Unmarshal(b, &back); err != nil || back.Silence != ok.Silence || back.State != ok.State {
		t.Fatalf("round trip of %s: %+v, %v", b, back, err)
	}
}
