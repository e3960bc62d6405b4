// Package apptest starts a real tally for tests: the whole app on a fresh
// SQLite file behind an httptest server, and an owner, tenant and API key
// made through the HTTP API like any client would.
package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/server"
)

// Start runs tally (analytics and quotas on, SQLite synchronous=NORMAL for
// speed) until t ends; edit, when not nil, adjusts the configuration.
func Start(t testing.TB, edit func(*app.Config)) (*app.App, *httptest.Server) {
	t.Helper()
	cfg := app.Config{
		SQLitePath:       filepath.Join(t.TempDir(), "tally.db"),
		SQLiteSync:       "NORMAL",
		AnalyticsEnabled: true,
		QuotasEnabled:    true,
		Server:           server.DefaultConfig(),
	}
	if edit != nil {
		edit(&cfg)
	}
	// A few attempts: with a short DB_STATEMENT_TIMEOUT (the fault
	// tests), waiting for the migration lock that parallel test packages
	// hold can time out once; an error that persists still fails.
	a, err := app.New(context.Background(), cfg)
	for attempt := 1; err != nil && attempt < 10; attempt++ {
		time.Sleep(200 * time.Millisecond)
		a, err = app.New(context.Background(), cfg)
	}
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("app.Close: %v", err)
		}
	})
	return a, srv
}

// Owner is the password of the owners Key registers.
const Owner = "correct-horse-battery"

// Key registers owner@<slug>.test, creates the tenant slug and an API key
// with scopes through srv's HTTP API, and returns the key.
func Key(t testing.TB, srv *httptest.Server, slug string, scopes ...string) string {
	t.Helper()
	call := func(path, token string, body, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("X-Tenant-Slug", slug)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		if res.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, raw)
		}
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				t.Fatalf("POST %s: %v", path, err)
			}
		}
	}
	user := map[string]string{"email": "owner@" + slug + ".test", "password": Owner}
	call("/api/auth/register", "", user, nil)
	var login struct{ Token string }
	call("/api/auth/login", "", user, &login)
	call("/api/tenants", login.Token, map[string]string{"name": slug, "slug": slug}, nil)
	var key struct{ Key string }
	call("/api/keys", login.Token, map[string]any{"name": "test", "scopes": scopes}, &key)
	return key.Key
}
