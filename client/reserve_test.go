package client_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
)

// TestReserveCommitRelease drives the quota calls of the SDK against a
// real tally: reserve, commit part, release, a refused reserve, grants,
// a consume settling an event, and removing an override.
func TestReserveCommitRelease(t *testing.T) {
	t.Parallel()
	_, srv := apptest.Start(t, func(c *app.Config) { c.QuotaDefaults = map[string]int64{"builds_daily": 5} })
	key := apptest.Key(t, srv, "acme", "analytics:write", "analytics:read", "analytics:admin")
	c, err := client.New(srv.URL, key, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := ctxT(t)

	r, err := c.Reserve(ctx, "builds_daily", 4, client.ReserveOptions{TTL: time.Minute, IdempotencyKey: "job-1"})
	if err != nil || r.ID == "" || r.Amount != 4 || r.State != "open" || r.Remaining != 1 || time.Until(r.ExpiresAt) > time.Minute {
		t.Fatalf("Reserve = %+v, %v", r, err)
	}
	if again, err := c.Reserve(ctx, "builds_daily", 4, client.ReserveOptions{IdempotencyKey: "job-1"}); err != nil || again.ID != r.ID {
		t.Fatalf("Reserve with the same key = %+v, %v", again, err)
	}
	_, err = c.Reserve(ctx, "builds_daily", 2, client.ReserveOptions{})
	var qe *client.QuotaExceededError
	if !errors.As(err, &qe) || qe.RetryAfter <= 0 || qe.Quota.Remaining != 1 {
		t.Fatalf("Reserve past the limit: %v (%+v)", err, qe)
	}
	id := client.NewEventID()
	done, err := c.Commit(ctx, r, 3, id)
	if err != nil || done.State != "committed" || done.Committed != 3 || done.Remaining != 2 {
		t.Fatalf("Commit = %+v, %v", done, err)
	}
	// The event the commit settled is not counted again.
	if err := c.Track(client.Event{Name: "builder.generate.completed", EventID: id}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if q, err := c.Quota(ctx, "builds_daily"); err != nil || q.Current != 3 || q.PeriodStart.IsZero() {
		t.Fatalf("Quota after commit and its event = %+v, %v", q, err)
	}
	r2, err := c.Reserve(ctx, "builds_daily", 2, client.ReserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := c.Release(ctx, r2); err != nil || rel.State != "released" || rel.Remaining != 2 {
		t.Fatalf("Release = %+v, %v", rel, err)
	}
	var apiErr *client.APIError
	if _, err := c.Commit(ctx, r2, -1, ""); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Fatalf("Commit of a released reservation: %v, want 409", err)
	}
	// ConsumeFor settles an event tracked before it, too.
	id2 := client.NewEventID()
	if err := c.Track(client.Event{Name: "builder.generate.completed", EventID: id2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if q, err := c.ConsumeFor(ctx, "builds_daily", 1, id2); err != nil || q.Current != 4 {
		t.Fatalf("ConsumeFor an event stored before = %+v, %v", q, err)
	}

	g, q, err := c.GrantQuota(ctx, "builds_daily", 10, "support", time.Time{})
	if err != nil || g.ID == 0 || g.Amount != 10 || q.Granted != 10 || q.Remaining != 11 {
		t.Fatalf("GrantQuota = %+v %+v, %v", g, q, err)
	}
	if gs, err := c.Grants(ctx, "builds_daily"); err != nil || len(gs) != 1 || gs[0].Reason != "support" {
		t.Fatalf("Grants = %+v, %v", gs, err)
	}
	if err := c.DeleteQuota(ctx, "builds_daily"); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("DeleteQuota without an override: %v, want 404", err)
	}
}
