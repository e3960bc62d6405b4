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
	follower := &fakeLeader{}
	r := New(Config{Now: func() time.Time { return at }, Leader: follower}, db, nil)
	r.runDue(ctx, at, jobHourly)
	if dirty, _ := db.DirtyHours(ctx, at); follower.tries != 1 || len(dirty) != 1 {
		t.Fatalf("a follower ran the hourly rollup (tries %d, dirty hours left %d)", follower.tries, len(dirty))
	}
	leader := &fakeLeader{lead: true}
	r = New(Config{Now: func() time.Time { return at }, Leader: leader}, db, nil)
	r.runDue(ctx, at, jobHourly)
	if dirty, _ := db.DirtyHours(ctx, at); len(dirty) != 0 || leader.released != 1 {
		t.Fatalf("the leader did not run (dirty hours left %d) or kept the lead (released %d)", len(dirty), leader.released)
	}
}
