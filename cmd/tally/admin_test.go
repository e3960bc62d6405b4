package main

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccountCommands runs user, tenant and key commands against one
// SQLite file: they apply the same account rules as the API (passwords
// are counted in characters), and a broken rule is a configError naming
// the flag.
func TestAccountCommands(t *testing.T) {
	t.Parallel()
	env := envOf(map[string]string{"DATABASE_URL": filepath.Join(t.TempDir(), "t.db")})
	for _, tc := range []struct {
		args []string
		bad  string // "": succeeds; else the configError names this flag
	}{
		{[]string{"user", "create", "-email", "ada@example.com", "-password", "ééééééé"}, "-password"},
		{[]string{"user", "create", "-email", "not-an-email", "-password", "abcdefgh"}, "-email"},
		{[]string{"user", "create", "-email", "ada@example.com", "-password", "éééééééé", "-name", "Ada"}, ""},
		{[]string{"user", "passwd", "-email", "ada@example.com", "-password", "short"}, "-password"},
		{[]string{"user", "passwd", "-email", "ada@example.com", "-password", "üüüüüüüü"}, ""},
		{[]string{"tenant", "create", "-slug", "-bad", "-name", "Acme", "-owner", "ada@example.com"}, "-slug"},
		{[]string{"tenant", "create", "-slug", "acme", "-name", "Acme", "-owner", "ada@example.com"}, ""},
		{[]string{"key", "create", "-tenant", "acme", "-name", "ci", "-scopes", "analytics:read,nope"}, "-scopes"},
		{[]string{"key", "create", "-tenant", "acme", "-name", "ci", "-scopes", "analytics:read,analytics:write"}, ""},
	} {
		err := run(t.Context(), tc.args, env, io.Discard, io.Discard)
		if tc.bad == "" {
			if err != nil {
				t.Fatalf("run(%v) = %v", tc.args, err)
			}
			continue
		}
		var ce *configError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.bad) {
			t.Fatalf("run(%v) = %v, want a configError naming %s", tc.args, err, tc.bad)
		}
	}
}
