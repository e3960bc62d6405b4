package faults_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/app/apptest"
	"github.com/tallyhq/tally/internal/faults"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// statementTimeout is the app's DB_STATEMENT_TIMEOUT in these tests;
// bound is how long any answer may take under a fault (a hang check,
// not a timing assertion).
const (
	statementTimeout = 500 * time.Millisecond
	bound            = 5 * time.Second
)

// client sends batches of events with event_ids and records which were
// acknowledged and every bad answer.
type client struct {
	t    *testing.T
	srv  *httptest.Server
	key  string
	http *http.Client

	mu    sync.Mutex
	acked map[string]bool
	seq   int
	codes map[int]int
}

func (c *client) send(prefix string) (int, error) {
	c.mu.Lock()
	c.seq++
	n := c.seq
	c.mu.Unlock()
	ids := make([]string, 5)
	batch := make([]map[string]any, len(ids))
	for j := range ids {
		ids[j] = fmt.Sprintf("%s-%d-%d", prefix, n, j)
		batch[j] = map[string]any{"event": "fault.test", "event_id": ids[j], "user_id": "u"}
	}
	body, _ := json.Marshal(map[string]any{"batch": batch})
	req, _ := http.NewRequest(http.MethodPost, c.srv.URL+"/api/analytics/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if took := time.Since(start); took > bound {
		c.t.Errorf("ingest answered %d after %v; want within %v (statement timeout %v)", res.StatusCode, took, bound, statementTimeout)
	}
	c.mu.Lock()
	c.codes[res.StatusCode]++
	c.mu.Unlock()
	if res.StatusCode/100 == 2 {
		c.mu.Lock()
		for _, id := range ids {
			c.acked[id] = true
		}
		c.mu.Unlock()
		return res.StatusCode, nil
	}
	if res.StatusCode != http.StatusServiceUnavailable {
		c.t.Errorf("ingest under fault answered %d %s; want 503", res.StatusCode, raw)
	} else {
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			c.t.Errorf("503 Content-Type %q; want application/problem+json", ct)
		}
		if res.Header.Get("Retry-After") == "" {
			c.t.Errorf("503 without Retry-After: %s", raw)
		}
	}
	return res.StatusCode, nil
}

func readiness(t *testing.T, srv *httptest.Server) int {
	t.Helper()
	code, _ := readinessBody(t, srv)
	return code
}

func readinessBody(t *testing.T, srv *httptest.Server) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: bound}
	res, err := c.Get(srv.URL + "/readiness")
	if err != nil {
		t.Errorf("readiness: %v", err)
		return 0, ""
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(body)
}

// TestPostgresFaults puts the proxy between tally and PostgreSQL and,
// for each fault, runs concurrent ingest through it: every error answer
// is a 503 problem with Retry-After within a bounded time, and once the
// proxy passes again ingest and /readiness recover and every
// acknowledged event is stored exactly once.
func TestPostgresFaults(t *testing.T) {
	direct := pgtest.FreshSchema(t)
	proxy, proxied, err := faults.Front(direct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	_, srv := apptest.Start(t, func(cfg *app.Config) {
		cfg.PostgresURL = proxied
		cfg.StatementTimeout = statementTimeout
	})
	c := &client{t: t, srv: srv, key: apptest.Key(t, srv, "faults", "analytics:write"),
		http: &http.Client{Timeout: 30 * time.Second}, acked: map[string]bool{}, codes: map[int]int{}}

	for _, mode := range []faults.Mode{faults.Down, faults.Stall, faults.Reset} {
		t.Run(mode.String(), func(t *testing.T) {
			c.t = t
			if code, err := c.send("warm-" + mode.String()); err != nil || code/100 != 2 {
				t.Fatalf("before the fault: ingest %d %v", code, err)
			}
			if err := proxy.Set(mode); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for range 3 {
						if _, err := c.send(fmt.Sprintf("%s-w%d", mode, w)); err != nil {
							t.Errorf("ingest under %v: %v", mode, err)
						}
					}
				})
			}
			wg.Wait()
			if code, body := readinessBody(t, srv); mode == faults.Down && (code != http.StatusServiceUnavailable || !strings.Contains(body, "database_writes")) {
				t.Errorf("/readiness with the database down: %d %s; want 503 naming database_writes", code, body)
			}
			if err := proxy.Set(faults.Pass); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				code, err := c.send("after-" + mode.String())
				if err == nil && code/100 == 2 && readiness(t, srv) == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after %v ended: ingest %d %v, readiness not back to 200 within 30s", mode, code, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
	c.t = t
	t.Logf("answers: %v, acknowledged events: %d", c.codes, len(c.acked))
	if c.codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 under any fault; the test proved nothing")
	}

	conn, err := pgx.Connect(t.Context(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	checkStoredOnce(t, conn, c.acked, `SELECT event_id, count(*) FROM events WHERE event = 'fault.test' GROUP BY event_id`)
}

// checkStoredOnce runs query, which returns (text, bigint) rows of event
// ids and how often each is stored, and checks that every one is stored
// once and every acknowledged id is stored.
func checkStoredOnce(t *testing.T, conn *pgx.Conn, acked map[string]bool, query string, args ...any) {
	t.Helper()
	rows, err := conn.Query(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]int64{}
	for rows.Next() {
		var id string
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		stored[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for id, n := range stored {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
	lost := 0
	for id := range acked {
		if stored[id] == 0 {
			if lost++; lost <= 5 {
				t.Errorf("acknowledged event %s is not stored", id)
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d acknowledged events lost", lost)
	}
}
