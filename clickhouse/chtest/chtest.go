// Package chtest gives tests a fresh database on a real ClickHouse server,
// or on every shard of a real two-shard cluster, skipping them loudly when
// there is none (and failing them under CI=true, where .ci/run starts both
// with scripts/clickhouse.sh).
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally/internal/testenv"
)

// defaultURL is where scripts/clickhouse.sh starts the server;
// TALLY_TEST_CLICKHOUSE overrides it.
const defaultURL = "http://127.0.0.1:18123"

// ServerURL is the test server's HTTP interface: TALLY_TEST_CLICKHOUSE,
// else scripts/clickhouse.sh's address.
func ServerURL() string {
	if u := os.Getenv("TALLY_TEST_CLICKHOUSE"); u != "" {
		return strings.TrimSuffix(u, "/")
	}
	return defaultURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// RequireServer skips t, loudly, when no ClickHouse answers at the test
// URL; under CI=true it fails t instead.
func RequireServer(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() { reachErr = run(context.Background(), "SELECT 1") })
	if reachErr == nil {
		return
	}
	testenv.Missing(t, "ClickHouse at "+ServerURL(), reachErr.Error(),
		"run scripts/clickhouse.sh start, or set TALLY_TEST_CLICKHOUSE")
}

// FreshDatabase names a database that does not exist yet, dropped when t
// ends, and returns its EVENTS_URL (clickhouse://HOST:PORT/DATABASE).
func FreshDatabase(t testing.TB) string {
	t.Helper()
	RequireServer(t)
	db := freshName(t, ServerURL())
	u, _ := url.Parse(ServerURL())
	return "clickhouse://" + u.Host + "/" + db
}

// freshName names a database that does not exist yet, dropped from the
// servers when t ends.
func freshName(t testing.TB, servers ...string) string {
	b := make([]byte, 8)
	rand.Read(b)
	db := "tally_t_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		// A drop waits for the table's merges and mutations: generous.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, base := range servers {
			if _, err := QueryAt(ctx, base, "DROP DATABASE IF EXISTS "+db); err != nil {
				t.Errorf("drop database %s on %s: %v", db, base, err)
			}
		}
	})
	return db
}

// Query runs sql on the test server and returns its answer as text
// (TabSeparated): for tests that look at system tables.
func Query(ctx context.Context, sql string) (string, error) { return QueryAt(ctx, ServerURL(), sql) }

// QueryAt is Query on the server at base (http://HOST:PORT).
func QueryAt(ctx context.Context, base, sql string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = &serverError{resp.Status, strings.TrimSpace(string(body))}
	}
	return string(body), err
}

func run(ctx context.Context, sql string) error {
	return runAt(ctx, ServerURL(), sql)
}

func runAt(ctx context.Context, base, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := QueryAt(ctx, base, sql)
	return err
}

type serverError struct{ status, msg string }

func (e *serverError) Error() string { return "clickhouse: " + e.status + ": " + e.msg }
