package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/internal/app/apptest"
	"github.com/tallyhq/tally/internal/testenv"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/sqlite"
)

// TestBenchClickHouse runs the ClickHouse phase briefly, prefilled through
// InsertEvents and in SQL: it reports every figure and leaves no scratch
// database behind.
func TestBenchClickHouse(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireServer(t)
	t.Parallel()
	u := chtest.ServerURL()
	for _, prefill := range [][]string{{"-prefill", "3000"}, {"-prefill", "20000", "-prefill-sql"}} {
		var out, errs bytes.Buffer
		args := append([]string{"bench", "-clickhouse", "clickhouse://" + strings.TrimPrefix(u, "http://") + "/x", "-postgres", pgtest.ServerURL(),
			"-d", "300ms"}, prefill...)
		if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err != nil {
			t.Fatalf("bench -clickhouse %v: %v (%s)", prefill, err, errs.String())
		}
		for _, want := range []string{"SQLite tier, one writer", "ClickHouse tier, one writer, empty", "prefill " + prefill[1] + " events",
			"bytes per event on disk", "PostgreSQL key table bytes per event", "30-day daily meter", "30-day 4-step funnel", "privacy deletion",
			"rollup of the prefill", "30-day KPIs from rollups", "KPIs from rollups / raw hourly aggregate",
			"the same meter from rollups", "meter from rollups / raw",
			"ClickHouse / SQLite batch ingest"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("bench -clickhouse %v printed no %q:\n%s", prefill, want, out.String())
			}
		}
		if strings.Contains(out.String(), "failed:") {
			t.Errorf("bench -clickhouse %v: a phase failed:\n%s", prefill, out.String())
		}
	}
	left, err := chtest.Query(t.Context(), "SELECT count() FROM system.databases WHERE name LIKE 'tally_bench_%'")
	if err != nil || strings.TrimSpace(left) != "0" {
		t.Errorf("scratch databases left: %q (%v)", left, err)
	}
}

func TestBenchBuildsADataset(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ds.db")
	var out, errs bytes.Buffer
	args := []string{"bench", "-dataset", path, "-events", "1500", "-tenants", "3", "-days", "2"}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err != nil {
		t.Fatalf("bench -dataset: %v (%s)", err, errs.String())
	}
	if !strings.Contains(out.String(), "1500 events, 3 tenants") {
		t.Errorf("bench -dataset printed %q", out.String())
	}
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n, err := db.CountAllEvents(t.Context(), time.Now().AddDate(0, 0, -3), time.Now().Add(time.Hour))
	if err != nil || n != 1500 {
		t.Fatalf("the dataset holds %d events (%v), want 1500", n, err)
	}
	tenants, err := db.AllTenants(t.Context())
	if err != nil || len(tenants) != 3 {
		t.Fatalf("the dataset has %d tenants (%v), want 3", len(tenants), err)
	}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err == nil {
		t.Error("bench -dataset over an existing file: no error")
	}
}

// TestBenchMeter runs the meter phases on a small dataset: every phase
// answers, and the report gives the p95 ratios to the raw count.
func TestBenchMeter(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ds.db")
	var out, errs bytes.Buffer
	getenv := func(string) string { return "" }
	if err := run(t.Context(), []string{"bench", "-dataset", path, "-events", "3000", "-tenants", "3", "-days", "40"}, getenv, &out, &errs); err != nil {
		t.Fatalf("bench -dataset: %v (%s)", err, errs.String())
	}
	// Twice: a second run starts from a fresh meter again.
	for range 2 {
		out.Reset()
		if err := run(t.Context(), []string{"bench", "-meter", path, "-d", "300ms", "-json"}, getenv, &out, &errs); err != nil {
			t.Fatalf("bench -meter: %v (%s)", err, errs.String())
		}
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench -meter -json printed %q: %v", out.String(), err)
	}
	if len(rep.Phases) != 4 {
		t.Fatalf("phases %+v, want the raw count and three meter queries", rep.Phases)
	}
	for _, p := range rep.Phases {
		if p.OK == 0 || p.Errors != 0 || p.P95MS <= 0 {
			t.Errorf("phase %+v: want answers and no error", p)
		}
	}
	names := map[string]bool{}
	for _, r := range rep.Ratios {
		names[r.Name] = r.Value > 0
	}
	if !names["meter p95, rollups / raw count p95"] || !names["meter p95, raw log / raw count p95"] {
		t.Errorf("ratios %+v", rep.Ratios)
	}
	if len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "rollup of the biggest tenant's 31 days") {
		t.Errorf("notes %q", rep.Notes)
	}
}

// TestBenchReads runs the P4 reads on a small dataset: the rollups run
// (the second finds nothing dirty), and the biggest and the smallest
// tenant each get KPI and usage phases with ratios to their raw count.
func TestBenchReads(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "ds.db")
	var out, errs bytes.Buffer
	getenv := func(string) string { return "" }
	if err := run(t.Context(), []string{"bench", "-dataset", path, "-events", "3000", "-tenants", "3", "-days", "40"}, getenv, &out, &errs); err != nil {
		t.Fatalf("bench -dataset: %v (%s)", err, errs.String())
	}
	out.Reset()
	if err := run(t.Context(), []string{"bench", "-reads", path, "-d", "200ms", "-json"}, getenv, &out, &errs); err != nil {
		t.Fatalf("bench -reads: %v (%s)", err, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench -reads -json printed %q: %v", out.String(), err)
	}
	if len(rep.Phases) != 8 {
		t.Fatalf("phases %+v, want a raw count, two KPI ranges and usage for two tenants", rep.Phases)
	}
	for _, p := range rep.Phases {
		if p.OK == 0 || p.Errors != 0 {
			t.Errorf("phase %+v: want answers and no error", p)
		}
	}
	if len(rep.Ratios) != 6 {
		t.Errorf("ratios %+v, want three per tenant", rep.Ratios)
	}
	if len(rep.Notes) != 3 || !strings.Contains(rep.Notes[1], ": 0 tenant-days") {
		t.Errorf("notes %q: want three rollups, the second with nothing to do", rep.Notes)
	}
}

// TestBenchLive runs the -live phase briefly against a running tally with
// two tenants: the subscribers' streams open and read the events ingested
// meanwhile, and the report gives the ratio to the phases before and after
// without them; a key
// that cannot read the stream is a clear error.
func TestBenchLive(t *testing.T) {
	t.Parallel()
	_, srv := apptest.Start(t, nil)
	keys := apptest.Key(t, srv, "acme", "analytics:write", "analytics:read") + "," +
		apptest.Key(t, srv, "globex", "analytics:write", "analytics:read")
	var out, errs bytes.Buffer
	args := []string{"bench", "-url", srv.URL, "-key", keys, "-c", "2", "-batch", "20", "-single-c", "0", "-baselines=false",
		"-d", "400ms", "-live", "4", "-json", "-metrics", "off"}
	if err := run(t.Context(), args, func(string) string { return "" }, &out, &errs); err != nil {
		t.Fatalf("bench -live: %v (%s)", err, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench -live -json printed %q: %v", out.String(), err)
	}
	phases := map[string]phaseResult{}
	for _, p := range rep.Phases {
		phases[p.Name] = p
	}
	for _, name := range []string{"batch ingest (2×20)", "batch ingest, no subscriber (before)", "batch ingest, 4 live subscribers", "batch ingest, no subscriber (after)"} {
		if p, ok := phases[name]; !ok || p.OK == 0 || p.Errors != 0 {
			t.Errorf("phase %q: %+v (of %+v), want answers and no error", name, p, rep.Phases)
		}
	}
	found := false
	for _, r := range rep.Ratios {
		found = found || r.Name == "batch ingest with 4 live subscribers / without (≥ 0.9)" && r.Value > 0
	}
	if !found {
		t.Errorf("ratios %+v: no live ratio", rep.Ratios)
	}
	var read int64
	if len(rep.Notes) != 2 || !strings.HasPrefix(rep.Notes[0], "4 live subscribers over 2 tenants read ") {
		t.Fatalf("notes %q", rep.Notes)
	}
	fmt.Sscanf(strings.TrimPrefix(rep.Notes[0], "4 live subscribers over 2 tenants read "), "%d", &read)
	if read == 0 {
		t.Errorf("the subscribers read no event: %q", rep.Notes[0])
	}
	// Every event of the four ingest phases, over both tenants, is stored once.
	var sent int64
	for _, p := range rep.Phases {
		if strings.HasPrefix(p.Name, "batch ingest") {
			sent += p.OK * 20
		}
	}
	if v := rep.Verify; v == nil || !v.ok() || v.Acknowledged != sent {
		t.Errorf("verify %+v, want the %d events acknowledged each stored once", v, sent)
	}

	writeOnly := apptest.Key(t, srv, "initech", "analytics:write")
	args = []string{"bench", "-url", srv.URL, "-key", writeOnly, "-c", "1", "-single-c", "0", "-baselines=false", "-d", "100ms", "-live", "2", "-metrics", "off", "-verify=false"}
	err := run(t.Context(), args, func(string) string { return "" }, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "analytics:read") {
		t.Errorf("bench -live with a write-only key: %v, want the stream's 403 and the scope it needs", err)
	}
}

// TestBenchConsume runs the consume phases briefly against a server of
// run with a default quota: consumes succeed, and the report gives the
// ratio to healthz; with Redis, the bare EVAL phase and the P3 ratio
// (here against the same server, as the second one).
func TestBenchConsume(t *testing.T) {
	t.Parallel()
	env, key := benchServer(t, map[string]string{"QUOTAS_ENABLED": "true", "QUOTA_DEFAULTS": `{"bench_units":1000000000}`},
		"analytics:read,analytics:write")
	base, _ := serveForBench(t, env)
	args := []string{"bench", "-url", base, "-key", key, "-consume-c", "2", "-consume-only", "-d", "300ms", "-json"}
	redisAddr := "127.0.0.1:6379"
	withRedis := goredis.NewClient(&goredis.Options{Addr: redisAddr}).Ping(t.Context()).Err() == nil
	if withRedis {
		args = append(args, "-redis", redisAddr, "-consume-redis-url", base)
	}
	var out, errs bytes.Buffer
	if err := run(t.Context(), args, env, &out, &errs); err != nil {
		t.Fatalf("bench -consume-c: %v (%s)", err, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench -json printed %q: %v", out.String(), err)
	}
	want := []string{"GET /healthz", "consume (2)"}
	ratios := []string{"consume p99 / healthz p99"}
	if withRedis {
		want = append(want, "bare Redis EVAL (2)", "consume, Redis counters (2)")
		ratios = append(ratios, "Redis consume p99 / (EVAL p99 + consume p99) (P3 ≤ 1.5)")
	} else {
		t.Log("no Redis at " + redisAddr + ": the EVAL phase is not run")
	}
	if len(rep.Phases) != len(want) {
		t.Fatalf("phases %+v, want %q", rep.Phases, want)
	}
	for i, p := range rep.Phases {
		if p.Name != want[i] || p.OK == 0 || p.Errors != 0 {
			t.Errorf("phase %+v, want %q with answers and no error", p, want[i])
		}
	}
	if len(rep.Ratios) != len(ratios) {
		t.Fatalf("ratios %+v, want %q", rep.Ratios, ratios)
	}
	for i, r := range rep.Ratios {
		if r.Name != ratios[i] || r.Value <= 0 {
			t.Errorf("ratio %+v, want %q", r, ratios[i])
		}
	}
	// The consumes were counted: the quota's usage is at least the
	// consume phases' successes.
	req, _ := http.NewRequest(http.MethodGet, base+"/api/analytics/quotas/bench_units", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Current int64 }
	json.NewDecoder(resp.Body).Decode(&st)
	var consumed int64
	for _, p := range rep.Phases[1:] {
		if strings.HasPrefix(p.Name, "consume") {
			consumed += p.OK
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET quota: %d", resp.StatusCode)
	}
	if st.Current < consumed {
		t.Errorf("the quota counts %d, fewer than the %d consumes acknowledged", st.Current, consumed)
	}
}

// benchServer makes a SQLite tally with one tenant and an API key of
// scopes (comma separated) for the bench tests, and returns its
// environment and the key.
func benchServer(t *testing.T, extra map[string]string, scopes string) (func(string) string, string) {
	t.Helper()
	vars := map[string]string{
		"LISTEN_ADDR":          "127.0.0.1:0",
		"METRICS_ADDR":         "off",
		"DATABASE_URL":         filepath.Join(t.TempDir(), "tally.db"),
		"LOG_LEVEL":            "warn",
		"SHUTDOWN_DRAIN_DELAY": "0s",
	}
	maps.Copy(vars, extra)
	env := envOf(vars)
	runOut(t, env, "migrate")
	runOut(t, env, "user", "create", "-email", "bench@example.com", "-password", "a-bench-passw0rd-long")
	runOut(t, env, "tenant", "create", "-slug", "bench", "-name", "Bench", "-owner", "bench@example.com")
	return env, strings.TrimSpace(runOut(t, env, "key", "create", "-tenant", "bench", "-name", "bench", "-scopes", scopes))
}

// serveForBench runs `tally serve` with env until the test ends and
// returns its base URL and, when METRICS_ADDR is on, its metrics URL.
func serveForBench(t *testing.T, env func(string) string) (base, metrics string) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env, &stdout, &stderr) }()
	t.Cleanup(func() { cancel(); <-done })
	wantMetrics := env("METRICS_ADDR") != "off"
	for deadline := time.Now().Add(60 * time.Second); base == "" || wantMetrics && metrics == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("server did not start; stderr:\n%s", stderr.String())
		}
		for _, line := range strings.Split(stdout.String(), "\n") {
			if u, ok := strings.CutPrefix(line, "tally listening on "); ok {
				base = u
			}
			if u, ok := strings.CutPrefix(line, "tally metrics on "); ok {
				metrics = u
			}
		}
	}
	return base, metrics
}

// TestBenchServerRSS runs the ingest phases against a server whose
// operator listener is on: the report gives each phase's peak RSS, read
// from the server's own process_resident_memory_bytes, no lower than
// before the phase and no higher than the kernel's high-water mark of the
// process (the server runs in this test's process), and the check that
// every acknowledged event was stored once; with the metrics URL wrong,
// the report says so instead of a figure; a key that cannot read the
// events back is a clear error unless -verify=false.
func TestBenchServerRSS(t *testing.T) {
	t.Parallel()
	env, key := benchServer(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0"}, "analytics:read,analytics:write")
	base, metrics := serveForBench(t, env)
	var out, errs bytes.Buffer
	args := []string{"bench", "-url", base, "-key", key, "-c", "2", "-batch", "20", "-single-c", "2", "-baselines=false",
		"-d", "300ms", "-json", "-metrics", metrics}
	if err := run(t.Context(), args, env, &out, &errs); err != nil {
		t.Fatalf("bench: %v (%s)", err, errs.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("bench -json printed %q: %v", out.String(), err)
	}
	hwm := highWaterMark(t)
	want := []string{"batch ingest (2×20)", "single events (2)"}
	if len(rep.RSS) != len(want) {
		t.Fatalf("server_rss %+v, want one per phase of %q (notes %q)", rep.RSS, want, rep.Notes)
	}
	for i, m := range rep.RSS {
		if m.Phase != want[i] || m.BeforeMB <= 0 || m.PeakMB < m.BeforeMB*0.5 || m.PeakMB > hwm {
			t.Errorf("server_rss %+v: want phase %q, a peak above zero, near or above before, within the process's high-water mark %.1f MB",
				m, want[i], hwm)
		}
	}
	if len(rep.Phases) != 3 {
		t.Fatalf("phases %+v", rep.Phases)
	}
	sent := rep.Phases[1].OK*20 + rep.Phases[2].OK
	if v := rep.Verify; v == nil || !v.ok() || v.Acknowledged != sent || v.Read < sent {
		t.Errorf("verify %+v, want the %d events acknowledged each stored once", v, sent)
	}

	out.Reset()
	args[len(args)-1] = base + "/no-such-metrics"
	if err := run(t.Context(), args, env, &out, &errs); err != nil {
		t.Fatalf("bench: %v (%s)", err, errs.String())
	}
	rep = report{}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.RSS) != 0 || len(rep.Notes) != 3 || !strings.Contains(rep.Notes[0], "server RSS not read") {
		t.Errorf("with a wrong metrics URL: server_rss %+v, notes %q; want no figure and a note per phase", rep.RSS, rep.Notes)
	}

	writeOnly := strings.TrimSpace(runOut(t, env, "key", "create", "-tenant", "bench", "-name", "w", "-scopes", "analytics:write"))
	args = []string{"bench", "-url", base, "-key", writeOnly, "-c", "1", "-single-c", "0", "-baselines=false", "-d", "100ms", "-metrics", "off"}
	if err := run(t.Context(), args, env, &out, &errs); err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "analytics:read") {
		t.Errorf("bench with a write-only key: %v, want the list's 403 and the scope it needs", err)
	}
	if err := run(t.Context(), append(args, "-verify=false"), env, &out, &errs); err != nil {
		t.Errorf("bench -verify=false with a write-only key: %v", err)
	}
}

// runOut runs a tally command with env and returns what it printed.
func runOut(t *testing.T, env func(string) string, args ...string) string {
	t.Helper()
	var out, errs bytes.Buffer
	if err := run(t.Context(), args, env, &out, &errs); err != nil {
		t.Fatalf("%v: %v (%s)", args, err, errs.String())
	}
	return out.String()
}

// highWaterMark is this process's peak resident memory (VmHWM) in MB.
func highWaterMark(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
