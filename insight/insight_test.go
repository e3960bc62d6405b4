package insight_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/insight"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// TestScanBound: a query whose range holds more events than MaxEvents is
// ETooMany (422), never a partial answer; under the bound it answers.
func TestScanBound(t *testing.T) {
	t.Parallel()
	db, tenant := sqlitetest.WithTenant(t)
	now := time.Now().UTC().Truncate(time.Second)
	var events []tally.Event
	for i := range 10 {
		name := "signup"
		if i%2 == 1 {
			name = "activate"
		}
		events = append(events, tally.Event{TenantID: tenant.ID, EventID: "e" + strconv.Itoa(i), Name: name,
			UserID: "u" + strconv.Itoa(i/2), Timestamp: now.Add(time.Duration(i) * time.Minute), ReceivedAt: now, Props: []byte("{}")})
	}
	if _, err := db.InsertEvents(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	q := tally.FunnelQuery{Steps: []tally.FunnelStep{{Event: "signup"}, {Event: "activate"}}, WindowSeconds: 3600,
		From: now.Add(-time.Hour), To: now.Add(time.Hour)}
	_, err := insight.New(insight.Config{MaxEvents: 9}, db).Funnel(t.Context(), tenant.ID, q)
	if tally.ErrorCodeOf(err) != tally.ETooMany {
		t.Fatalf("a scan past the bound: %v, want %s", err, tally.ETooMany)
	}
	res, err := insight.New(insight.Config{MaxEvents: 10}, db).Funnel(t.Context(), tenant.ID, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Entered != 5 || res.Steps[0].Converted != 5 || res.Scanned != 10 {
		t.Fatalf("funnel %+v", res)
	}
	r := tally.RetentionQuery{StartEvent: "signup", ReturnEvent: "activate", Period: "day", From: now.Add(-time.Hour), To: now.Add(time.Hour)}
	if _, err := insight.New(insight.Config{MaxEvents: 9}, db).Retention(t.Context(), tenant.ID, r); tally.ErrorCodeOf(err) != tally.ETooMany {
		t.Fatalf("retention past the bound: %v", err)
	}
}
