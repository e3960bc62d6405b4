package client_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/app/apptest"
)

// TestAbsenceAlerts manages an absence alert through the SDK against a
// real tally: a bad one fails locally, the rest round-trips.
func TestAbsenceAlerts(t *testing.T) {
	t.Parallel()
	_, srv := apptest.Start(t, nil)
	key := apptest.Key(t, srv, "acme", "analytics:read", "analytics:admin")
	ctx := ctxT(t)
	c, err := client.New(srv.URL, key, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.CreateAbsenceAlert(ctx, client.AbsenceAlertInput{Event: "builds", SilenceSeconds: 5}); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Fatalf("a 5 s silence: %v, want a local EInvalid", err)
	}
	a, err := c.CreateAbsenceAlert(ctx, client.AbsenceAlertInput{Event: "builder.generate.completed", SilenceSeconds: 6 * 3600, Description: "builds"})
	if err != nil || a.ID == 0 || a.Silence != 6*time.Hour || a.State != tally.AbsenceOK || a.Description != "builds" {
		t.Fatalf("CreateAbsenceAlert = %+v, %v", a, err)
	}
	var apiErr *client.APIError
	if _, err := c.CreateAbsenceAlert(ctx, client.AbsenceAlertInput{Event: "builder.generate.completed", SilenceSeconds: 60}); !errors.As(err, &apiErr) || apiErr.Status != http.StatusConflict {
		t.Fatalf("the same event twice: %v, want a 409", err)
	}
	if got, err := c.GetAbsenceAlert(ctx, a.ID); err != nil || got.Event != a.Event || got.Silence != a.Silence {
		t.Fatalf("GetAbsenceAlert = %+v, %v", got, err)
	}
	up, err := c.ReplaceAbsenceAlert(ctx, a.ID, client.AbsenceAlertInput{Event: "builder.*", SilenceSeconds: 3600})
	if err != nil || up.Event != "builder.*" || up.Silence != time.Hour || up.Description != "" {
		t.Fatalf("ReplaceAbsenceAlert = %+v, %v", up, err)
	}
	if list, err := c.AbsenceAlerts(ctx); err != nil || len(list) != 1 || list[0].ID != a.ID || list[0].Event != "builder.*" {
		t.Fatalf("AbsenceAlerts = %+v, %v", list, err)
	}
	if err := c.DeleteAbsenceAlert(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetAbsenceAlert(ctx, a.ID); !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("after the delete: %v, want a 404", err)
	}
}
