package rollup

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// fakeLeader is a hand-written Leader: nothing real elects in-process.
type fakeLeader struct {
	lead     bool
	tries    int
	released int
}

func (l *fakeLeader) TryLead(context.Context) (func(), bool, error) {
	l.tries++
	if !l.lead {
		return nil, false, nil
	}
	return func() { l.released++ }, true, nil
}

// TestScheduledJobsRunOnlyOnTheLeader checks that a scheduled run happens
// only where the Leader says so, and that the lead is released after it.
func TestScheduledJobsRunOnlyOnTheLeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := sqlitetest.WithTenant(t)
	at := time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)
	if _, err := db.InsertEvents(ctx, []tally.Event{{TenantID: tn.ID, EventID: "e1", Name: tally.EventAPIRequest, Source: "api",
		Timestamp: at.Add(-time.Hour), ReceivedAt: at, Value: 1, Props: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	r := New(Config{Now: func() time.Time { return at }}, db, nil)
	hourly := r.Tasks(0)[2:]
	if hourly[0].Name != TaskHourlyRollup {
		t.Fatalf("task table: %v", taskNames(r.Tasks(0)))
	}
	follower := &fakeLeader{}
	s := NewScheduler(SchedulerConfig{Tasks: r.Tasks(0), Leader: follower}, nil)
	s.runDue(ctx, at, hourly)
	if dirty, _ := db.DirtyHours(ctx, at); follower.tries != 1 || len(dirty) != 1 {
		t.Fatalf("a follower ran the hourly rollup (tries %d, dirty hours left %d)", follower.tries, len(dirty))
	}
	leader := &fakeLeader{lead: true}
	s = NewScheduler(SchedulerConfig{Tasks: r.Tasks(0), Leader: leader}, nil)
	s.runDue(ctx, at, hourly)
	if dirty, _ := db.DirtyHours(ctx, at); len(dirty) != 0 || leader.released != 1 {
		t.Fatalf("the leader did not run (dirty hours left %d) or kept the lead (released %d)", len(dirty), leader.released)
	}
}
