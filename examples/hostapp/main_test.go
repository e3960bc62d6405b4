package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/server"
)

// TestHostApp drives the example against a real tally whose builds_daily
// quota is 2.
func TestHostApp(t *testing.T) {
	t.Parallel()
	a, err := app.New(context.Background(), app.Config{
		SQLitePath: filepath.Join(t.TempDir(), "tally.db"), SQLiteSync: "NORMAL",
		AnalyticsEnabled: true, QuotasEnabled: true, Server: server.DefaultConfig(),
		QuotaDefaults: map[string]int64{"builds_daily": 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	tallySrv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		tallySrv.Close()
		a.Close(context.Background())
	})
	call := func(method, path, auth string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, tallySrv.URL+path, bytes.NewReader(b))
		if token, slug, _ := strings.Cut(auth, "|"); token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
			if slug != "" {
				req.Header.Set("X-Tenant-Slug", slug)
			}
		}
		res, err := tallySrv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
		}
		if out != nil {
			json.Unmarshal(raw, out)
		}
	}
	user := map[string]string{"email": "o@acme.test", "password": "correct-horse-battery"}
	call("POST", "/api/auth/register", "", user, nil)
	var login struct{ Token string }
	call("POST", "/api/auth/login", "", user, &login)
	call("POST", "/api/tenants", login.Token, map[string]string{"name": "Acme", "slug": "acme"}, nil)
	var key struct{ Key string }
	call("POST", "/api/keys", login.Token+"|acme", map[string]any{"name": "hostapp", "scopes": []string{"analytics:write", "analytics:read"}}, &key)

	tc, err := client.New(tallySrv.URL, key.Key, client.WithSource("hostapp"), client.WithHTTPClient(tallySrv.Client()))
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
	call("GET", "/api/analytics/events?limit=100", key.Key, nil, &page)
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
