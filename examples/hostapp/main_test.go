package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
)

// TestHostApp drives the example against a real tally whose builds_daily
// quota is 2.
func TestHostApp(t *testing.T) {
	t.Parallel()
	_, tallySrv := apptest.Start(t, func(c *app.Config) { c.QuotaDefaults = map[string]int64{"builds_daily": 2} })
	key := apptest.Key(t, tallySrv, "acme", "analytics:write", "analytics:read")

	tc, err := client.New(tallySrv.URL, key, client.WithSource("hostapp"), client.WithHTTPClient(tallySrv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close(context.Background())
	host := httptest.NewServer(newHandler(tc, slog.New(slog.DiscardHandler)))
	defer host.Close()
	post := func(path string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", host.URL+path, bytes.NewReader(body))
		req.Header.Set("X-User", "u1")
		res, err := host.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}

	if res := post("/upload", make([]byte, 1500)); res.StatusCode != http.StatusCreated {
		t.Errorf("upload: %d", res.StatusCode)
	}
	for i := range 2 {
		if res := post("/build", nil); res.StatusCode != http.StatusOK {
			t.Fatalf("build %d: %d, want 200", i+1, res.StatusCode)
		}
	}
	res := post("/build", nil)
	if ra, _ := time.ParseDuration(res.Header.Get("Retry-After") + "s"); res.StatusCode != http.StatusTooManyRequests || ra <= 0 {
		t.Errorf("build 3: %d Retry-After %q, want 429 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}

	if err := tc.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	var page struct {
		Events []struct {
			Event  string
			UserID string `json:"user_id"`
			Value  float64
			Props  struct{ Route string }
		}
	}
	req, _ := http.NewRequest("GET", tallySrv.URL+"/api/analytics/events?limit=100", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err = tallySrv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(&page); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("list events: %d %v", res.StatusCode, err)
	}
	counts := map[string]int{}
	for _, e := range page.Events {
		counts[e.Event]++
		if e.Event == "files.uploaded" && (e.Value != 1500 || e.UserID != "u1") {
			t.Errorf("files.uploaded value %v user %q, want 1500 by u1", e.Value, e.UserID)
		}
		if e.Event == "http.request" && !strings.HasPrefix(e.Props.Route, "POST /") {
			t.Errorf("http.request route %q", e.Props.Route)
		}
	}
	if counts["files.uploaded"] != 1 || counts["builder.generate.completed"] != 2 || counts["http.request"] != 4 {
		t.Errorf("events %v: want 1 upload, 2 builds, 4 requests", counts)
	}
}
