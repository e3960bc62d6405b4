package client_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
)

// TestMeters manages a meter and queries it through the SDK against a real
// tally: the meter is defined after its events and answers for them.
func TestMeters(t *testing.T) {
	t.Parallel()
	_, srv := apptest.Start(t, nil)
	key := apptest.Key(t, srv, "acme", "analytics:write", "analytics:read", "analytics:admin")
	ctx := ctxT(t)
	c, err := client.New(srv.URL, key, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -2)
	for i, model := range []string{"small", "large", "small"} {
		ts := day.Add(time.Duration(i) * time.Hour)
		if err := c.Track(client.Event{Name: "llm.call", UserID: "u1", Timestamp: ts,
			Props: map[string]any{"model": model, "usage": map[string]any{"input": 10 * (i + 1)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMeter(ctx, client.Meter{Slug: "in", Event: "llm.*", Aggregation: tally.AggSum}); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Fatalf("meter without value_property: %v, want a local EInvalid", err)
	}
	m, err := c.CreateMeter(ctx, client.Meter{Slug: "llm_input", Event: "llm.*", Aggregation: tally.AggSum,
		ValueProperty: "props.usage.input", GroupBy: []string{"props.model"}})
	if err != nil || m.Slug != "llm_input" || m.CreatedAt.IsZero() {
		t.Fatalf("CreateMeter = %+v, %v", m, err)
	}
	res, err := c.QueryMeter(ctx, "llm_input", client.MeterQuery{From: day, To: day.Add(24 * time.Hour), Window: "day",
		TZ: "UTC", GroupBy: []string{"props.model"}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, p := range res.Data {
		got[*p.GroupBy["props.model"]] = *p.Value
	}
	if len(res.Data) != 2 || got["small"] != 40 || got["large"] != 20 {
		t.Fatalf("QueryMeter data %+v, want small 40 and large 20", res.Data)
	}
	desc := "input tokens"
	if m, err := c.UpdateMeter(ctx, "llm_input", client.MeterPatch{Description: &desc}); err != nil || m.Description != desc {
		t.Fatalf("UpdateMeter = %+v, %v", m, err)
	}
	list, err := c.Meters(ctx)
	if err != nil || len(list) == 0 || list[len(list)-1].Slug != "llm_input" {
		t.Fatalf("Meters = %+v, %v", list, err)
	}
	if err := c.DeleteMeter(ctx, "llm_input"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetMeter(ctx, "llm_input")
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound {
		t.Fatalf("GetMeter after delete: %v, want a 404", err)
	}
}

// TestMeterQuota: the quota calls take a meter's slug where they take a
// metric (here a QUOTA_DEFAULTS quota naming a sum meter).
func TestMeterQuota(t *testing.T) {
	t.Parallel()
	_, srv := apptest.Start(t, func(c *app.Config) { c.QuotaDefaults = map[string]int64{"llm_input": 100} })
	key := apptest.Key(t, srv, "acme", "analytics:write", "analytics:read", "analytics:admin")
	ctx := ctxT(t)
	c, err := client.New(srv.URL, key, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.Track(client.Event{Name: "llm.call", Props: map[string]any{"usage": map[string]any{"input": 30}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMeter(ctx, client.Meter{Slug: "llm_input", Event: "llm.*", Aggregation: tally.AggSum,
		ValueProperty: "props.usage.input"}); err != nil {
		t.Fatal(err)
	}
	if q, err := c.Quota(ctx, "llm_input"); err != nil || q.Current != 30 {
		t.Fatalf("Quota = %+v, %v; want the meter's 30", q, err)
	}
	if q, err := c.Consume(ctx, "llm_input", 70); err != nil || !q.Allowed || q.Current != 100 {
		t.Fatalf("Consume = %+v, %v", q, err)
	}
	var qe *client.QuotaExceededError
	if _, err := c.Consume(ctx, "llm_input", 1); !errors.As(err, &qe) {
		t.Fatalf("consume past the limit: %v", err)
	}
}
