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

// TestHostAppCountsEachBuildOnce: builds gated by reserve/commit whose
// completion event a usage rule also maps to builds_daily are counted
// once: the quota, the usage series and the builds KPI agree on the exact
// number of builds, with a soft quota and with an enforced one that
// refuses the builds past its limit.
func TestHostAppCountsEachBuildOnce(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		enforced      bool
		limit, builds int
		want          int // builds that ran
	}{
		{"soft", false, 10, 4, 4},
		{"enforced", true, 3, 5, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, tallySrv := apptest.Start(t, func(c *app.Config) { c.QuotaDefaults = map[string]int64{"builds_daily": int64(tt.limit)} })
			key := apptest.Key(t, tallySrv, "acme", "analytics:write", "analytics:read", "analytics:admin")
			call := func(method, path, body string, v any) int {
				t.Helper()
				req, _ := http.NewRequest(method, tallySrv.URL+path, strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				if body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				res, err := tallySrv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if v != nil {
					if err := json.NewDecoder(res.Body).Decode(v); err != nil {
						t.Fatalf("%s %s: %v", method, path, err)
					}
				}
				return res.StatusCode
			}
			if tt.enforced {
				if code := call("PUT", "/api/analytics/quotas/builds_daily", `{"limit":3,"enforced":true}`, nil); code != http.StatusOK {
					t.Fatalf("PUT quota: %d", code)
				}
			}
			tc, err := client.New(tallySrv.URL, key, client.WithSource("hostapp"), client.WithHTTPClient(tallySrv.Client()))
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close(context.Background())
			host := httptest.NewServer(newHandler(tc, slog.New(slog.DiscardHandler)))
			defer host.Close()
			ran := 0
			for range tt.builds {
				res, err := host.Client().Post(host.URL+"/build", "", nil)
				if err != nil {
					t.Fatal(err)
				}
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusOK:
					ran++
				case http.StatusTooManyRequests:
				default:
					t.Fatalf("build: %d", res.StatusCode)
				}
			}
			if ran != tt.want {
				t.Fatalf("%d builds ran, want %d", ran, tt.want)
			}
			if err := tc.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			var q client.Quota
			call("GET", "/api/analytics/quotas/builds_daily", "", &q)
			today := time.Now().UTC().Format(time.DateOnly)
			var usage struct {
				Series []struct {
					Metric string
					Points []struct{ Value int64 }
				}
			}
			call("GET", "/api/analytics/usage?metric=builds_daily&tz=UTC&from="+today+"&to="+today, "", &usage)
			used := int64(0)
			for _, s := range usage.Series {
				for _, p := range s.Points {
					used += p.Value
				}
			}
			var kpis struct {
				KPIs map[string]struct{ Value int64 } `json:"kpis"`
			}
			call("GET", "/api/analytics/metrics?range=today&tz=UTC", "", &kpis)
			var page struct {
				Events []struct{ Event string }
			}
			call("GET", "/api/analytics/events?event=builder.generate.completed&limit=100", "", &page)
			if q.Current != int64(ran) || used != int64(ran) || kpis.KPIs["builds"].Value != int64(ran) || len(page.Events) != ran {
				t.Errorf("%d builds: quota %d, usage %d, builds KPI %d, %d completion events", ran, q.Current, used, kpis.KPIs["builds"].Value, len(page.Events))
			}
		})
	}
}
