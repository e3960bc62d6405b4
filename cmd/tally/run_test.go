package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/testenv"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestRunServe runs the whole program through run on a free port, checks
// it serves, and that cancelling its context shuts it down cleanly.
func TestRunServe(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{
		"LISTEN_ADDR":   "127.0.0.1:0",
		"METRICS_ADDR":  "127.0.0.1:0",
		"METRICS_TOKEN": "operator-token-0123456789",
		"DATABASE_URL":  filepath.Join(t.TempDir(), "data", "tally.db"),
		"LOG_LEVEL":     "warn",

		"SHUTDOWN_DRAIN_DELAY": "0s",
	})
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "-demo"}, env, &stdout, &stderr) }()

	var base, metricsURL string
	// Seeding the demo under the race detector on a loaded machine can take
	// a while; a run that ends early fails at once with its error.
	deadline := time.Now().Add(3 * time.Minute)
	for base == "" || metricsURL == "" {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		select {
		case err := <-done:
			t.Fatalf("run ended before serving: %v; stdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		default:
		}
		for _, line := range strings.Split(stdout.String(), "\n") {
			if u, ok := strings.CutPrefix(line, "tally listening on "); ok {
				base = u
			}
			if u, ok := strings.CutPrefix(line, "tally metrics on "); ok {
				metricsURL = u
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	out := stdout.String()
	if !strings.Contains(out, "admin login: admin@demo.tally.local / ") {
		t.Fatalf("the demo admin login is not printed:\n%s", out)
	}
	// The printed login works and sees the demo tenant with its events.
	var email, password string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "admin login: "); ok {
			email, password, _ = strings.Cut(rest, " / ")
		}
	}
	lb, _ := json.Marshal(map[string]string{"email": email, "password": password})
	resp, err = http.Post(base+"/api/auth/login", "application/json", bytes.NewReader(lb))
	if err != nil {
		t.Fatal(err)
	}
	var login struct {
		Token   string
		Tenants []struct{ Slug, Role string }
	}
	json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(login.Tenants) != 1 || login.Tenants[0].Slug != "demo" || login.Tenants[0].Role != "owner" {
		t.Fatalf("demo login: %d %+v", resp.StatusCode, login)
	}
	req, _ := http.NewRequest("GET", base+"/api/analytics/metrics?range=30d", nil)
	req.Header.Set("Authorization", "Bearer "+login.Token)
	req.Header.Set("X-Tenant-Slug", "demo")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		KPIs map[string]struct{ Value int64 } `json:"kpis"`
	}
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if m.KPIs["events"].Value < 1000 || m.KPIs["signups"].Value == 0 || m.KPIs["active_users"].Value == 0 {
		t.Fatalf("demo tenant KPIs look empty: %+v", m.KPIs)
	}

	// Metrics: open on the operator listener; on the public one only with
	// METRICS_TOKEN.
	get := func(url, token string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// tally's own events of the sign-in above are recorded in the
	// background: their series appears once they are written.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := get(metricsURL, "")
		if code == 200 && strings.Contains(body, `tenant="demo"`) {
			break
		}
		if time.Now().After(deadline) { // a guard against a hang, not a timed assertion
			t.Errorf("operator /metrics: %d, tenant label by slug missing", code)
			break
		}
	}
	if code, _ := get(base+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("public /metrics without the token: %d, want 401", code)
	}
	if code, _ := get(base+"/metrics", "operator-token-0123456789"); code != 200 {
		t.Errorf("public /metrics with the token: %d, want 200", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v after shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context was cancelled")
	}
}

// TestRunServeDrains checks the graceful shutdown: once the context ends
// (SIGTERM), /readiness answers 503 "draining" while the listener still
// serves other requests, for SHUTDOWN_DRAIN_DELAY; then run returns.
func TestRunServeDrains(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{
		"LISTEN_ADDR":          "127.0.0.1:0",
		"DATABASE_URL":         filepath.Join(t.TempDir(), "tally.db"),
		"LOG_LEVEL":            "warn",
		"SHUTDOWN_DRAIN_DELAY": "3s",
	})
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env, &stdout, &stderr) }()
	var base string
	for deadline := time.Now().Add(60 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start; stderr:\n%s", stderr.String())
		}
		for _, line := range strings.Split(stdout.String(), "\n") {
			if u, ok := strings.CutPrefix(line, "tally listening on "); ok {
				base = u
			}
		}
	}
	get := func(path string) (int, string, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := get("/readiness"); err != nil || code != 200 {
		t.Fatalf("readiness before shutdown: %d %s %v", code, body, err)
	}
	cancel()
	// Within the drain delay: readiness 503 draining, healthz still 200.
	var drained bool
	for deadline := time.Now().Add(10 * time.Second); !drained && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		code, body, err := get("/readiness")
		if err != nil {
			t.Fatalf("readiness refused before the drain delay ended: %v", err)
		}
		if code == http.StatusServiceUnavailable && strings.Contains(body, `"draining"`) {
			if hc, _, err := get("/healthz"); err != nil || hc != 200 {
				t.Fatalf("healthz during the drain: %d %v", hc, err)
			}
			drained = true
		}
	}
	if !drained {
		t.Fatal("readiness never answered 503 draining after shutdown began")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run did not return after the drain")
	}
	if _, _, err := get("/healthz"); err == nil {
		t.Fatal("the listener still accepts after run returned")
	}
}

// TestRunConfigErrors checks that bad configuration is a configError
// (exit code 2) with a message naming the setting.
func TestRunConfigErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", nil, nil, "no command"},
		{"unknown command", []string{"frobnicate"}, nil, "unknown command"},
		{"bad bool", []string{"migrate"}, map[string]string{"ANALYTICS_ENABLED": "maybe"}, "ANALYTICS_ENABLED"},
		{"bad quota json", []string{"migrate"}, map[string]string{"QUOTA_DEFAULTS": "{"}, "QUOTA_DEFAULTS"},
		{"bad quota metric", []string{"migrate"}, map[string]string{"QUOTA_DEFAULTS": `{"Bad Name":1}`}, "QUOTA_DEFAULTS"},
		{"bad registration", []string{"migrate"}, map[string]string{"REGISTRATION": "sometimes"}, "REGISTRATION"},
		{"bad export rows", []string{"migrate"}, map[string]string{"ANALYTICS_MAX_EXPORT_ROWS": "0"}, "ANALYTICS_MAX_EXPORT_ROWS"},
		{"bad flag", []string{"serve", "-nope"}, nil, "nope"},
		{"bad sync", []string{"migrate"}, map[string]string{"SQLITE_SYNCHRONOUS": "OFF"}, "SQLITE_SYNCHRONOUS"},
		{"short metrics token", []string{"migrate"}, map[string]string{"METRICS_TOKEN": "short"}, "METRICS_TOKEN"},
		{"bad statement timeout", []string{"migrate"}, map[string]string{"DB_STATEMENT_TIMEOUT": "1ms"}, "DB_STATEMENT_TIMEOUT"},
		{"bad drain delay", []string{"migrate"}, map[string]string{"SHUTDOWN_DRAIN_DELAY": "soon"}, "SHUTDOWN_DRAIN_DELAY"},
		{"events url without postgres", []string{"migrate"}, map[string]string{"EVENTS_URL": "clickhouse://127.0.0.1:18123/tally"}, "EVENTS_URL needs DATABASE_URL=postgres"},
		{"events url of another scheme", []string{"migrate"}, map[string]string{"EVENTS_URL": "http://127.0.0.1:18123/tally"}, "EVENTS_URL: want clickhouse://"},
		{"events url bad database", []string{"migrate"}, map[string]string{"EVENTS_URL": "clickhouse://127.0.0.1:18123/x;drop"}, "EVENTS_URL: database"},
		{"events url cluster without shards", []string{"migrate"}, map[string]string{"EVENTS_URL": "clickhouse://127.0.0.1:18131/tally?cluster=c"}, "EVENTS_URL: want ?cluster=NAME&shards="},
		{"migrate-events without clickhouse", []string{"migrate-events", "-tenant", "a"}, nil, "migrate-events needs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"DATABASE_URL": filepath.Join(t.TempDir(), "t.db")}
			for k, v := range tc.env {
				env[k] = v
			}
			err := run(t.Context(), tc.args, envOf(env), io.Discard, io.Discard)
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("run(%v) = %v, want a configError", tc.args, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// TestConfigLogRedactsSecrets checks that the logged configuration hides
// passwords in URLs.
func TestConfigLogRedactsSecrets(t *testing.T) {
	t.Parallel()
	c := defaultConfig()
	c.DatabaseURL = "postgres://tally:hunter2@db:5432/tally"
	c.RedisURL = "redis://:s3cret@cache:6379/0"
	var buf bytes.Buffer
	newLogger(&buf, 0).Info("config", "config", c)
	if strings.Contains(buf.String(), "hunter2") || strings.Contains(buf.String(), "s3cret") {
		t.Fatalf("secrets in the logged configuration: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "db:5432") {
		t.Fatalf("the logged configuration lost the database host: %s", buf.String())
	}
	if !strings.Contains(buf.String(), `"session_ttl":"720h0m0s"`) || !strings.Contains(buf.String(), `"rollup_daily_at":"10m0s"`) {
		t.Fatalf("the logged configuration does not print durations as Go durations: %s", buf.String())
	}
}

// TestVersion checks what `tally version` prints from the build
// information: the module or -ldflags version, the revision, its time and
// whether the tree was modified.
func TestVersion(t *testing.T) {
	t.Parallel()
	bi := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"},
		{Key: "vcs.time", Value: "2026-11-30T10:00:00Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	for _, tc := range []struct {
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"", bi, "v1.2.3 revision 0123456789ab 2026-11-30T10:00:00Z modified"},
		{"v1.3.0-rc1", bi, "v1.3.0-rc1 revision 0123456789ab 2026-11-30T10:00:00Z modified"},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "(devel)"},
		{"", nil, "(devel)"},
	} {
		if got := versionOf(tc.ldflags, tc.bi); got != tc.want {
			t.Errorf("versionOf(%q) = %q, want %q", tc.ldflags, got, tc.want)
		}
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"version"}, envOf(nil), &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "tally ") {
		t.Fatalf("tally version: %q, %v", out.String(), err)
	}
}

// TestRedisDownAtStart checks that a Redis that does not answer at start
// is one clear log line, not the pool's retries, and that tally serves
// degraded: ready (every instance would fail alike), status degraded.
func TestRedisDownAtStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String() // nothing listens here once closed
	ln.Close()
	env := envOf(map[string]string{
		"LISTEN_ADDR":  "127.0.0.1:0",
		"DATABASE_URL": filepath.Join(t.TempDir(), "tally.db"),
		"REDIS_URL":    "redis://" + closed + "/0",
		"METRICS_ADDR": "127.0.0.1:0",
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env, &stdout, &stderr) }()
	var base string
	for deadline := time.Now().Add(60 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server did not start; stderr:\n%s", stderr.String())
		}
		first, _, _ := strings.Cut(stdout.String(), "\n")
		if u, ok := strings.CutPrefix(strings.TrimSpace(first), "tally listening on "); ok {
			base = u
		}
	}
	resp, err := http.Get(base + "/readiness")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"status":"degraded"`) {
		t.Errorf("readiness with Redis down: %d %s, want 200 degraded", resp.StatusCode, body)
	}
	cancel()
	<-done
	log := stderr.String()
	if n := strings.Count(log, "redis unreachable at start; running degraded"); n != 1 {
		t.Errorf("the degraded start is said %d times, want once:\n%s", n, log)
	}
	if strings.Contains(log, "pool.go") || strings.Contains(log, "connection pool") {
		t.Errorf("go-redis's pool lines reach the log:\n%s", log)
	}
}
