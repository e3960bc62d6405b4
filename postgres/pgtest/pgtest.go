// Package pgtest gives tests an empty schema on a real PostgreSQL server,
// skipping them loudly when there is none (and failing them under
// CI=true, where the server must be there).
package pgtest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally/internal/testenv"
)

// defaultURL is this kind of machine's PostgreSQL (trust authentication);
// TALLY_TEST_POSTGRES_URL overrides it.
const defaultURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"

// ServerURL is the test server: TALLY_TEST_POSTGRES_URL, else this
// machine's PostgreSQL.
func ServerURL() string {
	if u := os.Getenv("TALLY_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return defaultURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// RequireServer skips t, loudly, when no server answers at the test URL;
// under CI=true it fails t instead: CI must not pass without the backend.
func RequireServer(t testing.TB) {
	t.Helper()
	reachOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			reachErr = err
			return
		}
		reachErr = conn.Ping(ctx)
		conn.Close(ctx)
	})
	if reachErr == nil {
		return
	}
	testenv.Missing(t, "PostgreSQL at "+testenv.RedactedURL(ServerURL()), reachErr.Error(), "start it or set TALLY_TEST_POSTGRES_URL")
}

// WithParams adds connection parameters to a URL or a key=value string.
func WithParams(base string, params map[string]string) string {
	if strings.Contains(base, "://") {
		u, err := url.Parse(base)
		if err == nil {
			q := u.Query()
			for k, v := range params {
				q.Set(k, v)
			}
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	for k, v := range params {
		base += " " + k + "=" + v
	}
	return base
}

// FreshSchema creates an empty schema, dropped when t ends, and returns the
// URL of the test database with that schema as its search_path.
func FreshSchema(t testing.TB) string {
	t.Helper()
	RequireServer(t)
	ctx := t.Context()
	schema := "tally_t_" + strings.ToLower(rand.Text()[:16])
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return WithParams(ServerURL(), map[string]string{"search_path": schema})
}
