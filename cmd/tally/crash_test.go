package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/postgres/pgtest"
	_ "modernc.org/sqlite"
)

// buildTally compiles the tally binary once per test run.
func buildTally(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tally")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build tally: %v", err)
	}
	return bin
}

// startServe starts `tally serve` and returns its base URL.
func startServe(t *testing.T, bin string, env []string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	urlc := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if u, ok := strings.CutPrefix(lines.Text(), "tally listening on "); ok {
				urlc <- u
			}
		}
	}()
	select {
	case u := <-urlc:
		return cmd, u
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("tally serve did not start in 30s")
	}
	return nil, ""
}

func cli(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tally %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// TestCrashDurability kills a tally serve process with SIGKILL while
// clients send batches, several times, and checks that every event that
// was answered 202 is stored after restart, exactly once.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary; skipped with -short")
	}
	bin := buildTally(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "tally.db")
	env := []string{"DATABASE_URL=" + dbPath, "LISTEN_ADDR=127.0.0.1:0", "METRICS_ADDR=off", "LOG_LEVEL=error"}
	crashRounds(t, bin, env, func() map[string]int {
		db, err := sql.Open("sqlite", "file:"+dbPath+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT event_id, count(*) FROM events WHERE event = 'crash.test' GROUP BY event_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		stored := map[string]int{}
		for rows.Next() {
			var id string
			var c int
			if err := rows.Scan(&id, &c); err != nil {
				t.Fatal(err)
			}
			stored[id] = c
		}
		return stored
	})
}

// TestCrashDurabilityClickHouse is TestCrashDurability with the event log
// on ClickHouse (EVENTS_URL) and the rest on PostgreSQL.
func TestCrashDurabilityClickHouse(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary; skipped with -short")
	}
	pg, events := pgtest.FreshSchema(t), chtest.FreshDatabase(t)
	bin := buildTally(t)
	env := []string{"DATABASE_URL=" + pg, "EVENTS_URL=" + events, "LISTEN_ADDR=127.0.0.1:0", "METRICS_ADDR=off", "LOG_LEVEL=error",
		"DB_STATEMENT_TIMEOUT=1s"} // leases of killed writers run out in 7 s
	database := events[strings.LastIndexByte(events, '/')+1:]
	crashRounds(t, bin, env, func() map[string]int { return storedOn(t, chtest.ServerURL(), database+".events") })
}

// TestCrashDurabilityClickHouseCluster is TestCrashDurabilityClickHouse
// with the event log sharded over two ClickHouse servers, the stored
// events counted through the Distributed table (every shard).
func TestCrashDurabilityClickHouseCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and runs the binary; skipped with -short")
	}
	pg, events := pgtest.FreshSchema(t), chtest.FreshClusterDatabase(t)
	bin := buildTally(t)
	env := []string{"DATABASE_URL=" + pg, "EVENTS_URL=" + events, "LISTEN_ADDR=127.0.0.1:0", "METRICS_ADDR=off", "LOG_LEVEL=error",
		"DB_STATEMENT_TIMEOUT=1s"}
	u, err := url.Parse(events)
	if err != nil {
		t.Fatal(err)
	}
	database := strings.Trim(u.Path, "/")
	crashRounds(t, bin, env, func() map[string]int { return storedOn(t, chtest.Shards()[0], database+".events_all") })
}

// storedOn counts the rows per event_id of the crash test's events in
// table on the ClickHouse server at base.
func storedOn(t *testing.T, base, table string) map[string]int {
	t.Helper()
	out, err := chtest.QueryAt(t.Context(), base, "SELECT event_id, count() FROM "+table+
		" WHERE event = 'crash.test' GROUP BY event_id FORMAT TabSeparated")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int{}
	for line := range strings.Lines(out) {
		id, c, _ := strings.Cut(strings.TrimSpace(line), "\t")
		n, err := strconv.Atoi(c)
		if err != nil {
			t.Fatalf("count of %q: %v", id, err)
		}
		stored[id] = n
	}
	return stored
}

// crashRounds creates a tenant and key through the CLI with env, then runs
// tally serve five times, killing it with SIGKILL under concurrent batches
// each time; it re-sends acknowledged events to a last instance (all must
// be duplicates) and checks with stored (event_id → rows) that every
// acknowledged event is stored exactly once.
func crashRounds(t *testing.T, bin string, env []string, stored func() map[string]int) {
	cli(t, bin, env, "user", "create", "-email", "crash@example.com", "-password", "crash-test-pw")
	cli(t, bin, env, "tenant", "create", "-slug", "crash", "-name", "Crash", "-owner", "crash@example.com")
	key := cli(t, bin, env, "key", "create", "-tenant", "crash", "-name", "crash", "-scopes", "analytics:write")

	var mu sync.Mutex
	acked := map[string]bool{}
	const rounds = 5
	for round := range rounds {
		cmd, url := startServe(t, bin, env)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				client := &http.Client{Timeout: 10 * time.Second}
				for i := 0; ctx.Err() == nil; i++ {
					ids := make([]string, 20)
					batch := make([]map[string]any, len(ids))
					for j := range ids {
						ids[j] = fmt.Sprintf("r%d-w%d-%d-%d", round, w, i, j)
						batch[j] = map[string]any{"event": "crash.test", "event_id": ids[j], "user_id": "u"}
					}
					body, _ := json.Marshal(map[string]any{"batch": batch})
					req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/analytics/events", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+key)
					resp, err := client.Do(req)
					if err != nil {
						return // the server died mid-request: not acknowledged
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusAccepted {
						mu.Lock()
						for _, id := range ids {
							acked[id] = true
						}
						mu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(400+round*150) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		cancel()
		wg.Wait()
	}
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n == 0 {
		t.Fatal("no batch was acknowledged before the kills; the test proved nothing")
	}

	// Restart once more: re-sending acknowledged events must store nothing new.
	cmd, url := startServe(t, bin, env)
	var sample []map[string]any
	for id := range acked {
		sample = append(sample, map[string]any{"event": "crash.test", "event_id": id, "user_id": "u"})
		if len(sample) == 100 {
			break
		}
	}
	body, _ := json.Marshal(map[string]any{"batch": sample})
	req, _ := http.NewRequest(http.MethodPost, url+"/api/analytics/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Accepted, Duplicates int }
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if res.Accepted != 0 || res.Duplicates != len(sample) {
		t.Errorf("re-sent %d acknowledged events: accepted %d, duplicates %d; want 0 and %d", len(sample), res.Accepted, res.Duplicates, len(sample))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()

	counts := stored()
	for id, c := range counts {
		if c != 1 {
			t.Errorf("event %s stored %d times", id, c)
		}
	}
	missing := 0
	for id := range acked {
		if counts[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d events answered 202 are missing after %d SIGKILLs", missing, len(acked), rounds)
	}
	t.Logf("%d acknowledged events, all present exactly once after %d SIGKILLs (%d stored in all)", len(acked), rounds, len(counts))
}
