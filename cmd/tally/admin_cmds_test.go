package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// adminCLI runs tally commands through run against one database.
type adminCLI struct {
	t   *testing.T
	env func(string) string
	url string
}

// ok runs args, fails the test on an error and returns stdout.
func (c adminCLI) ok(args ...string) string {
	c.t.Helper()
	var out, errOut bytes.Buffer
	if err := run(c.t.Context(), args, c.env, &out, &errOut); err != nil {
		c.t.Fatalf("tally %s: %v\n%s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String()
}

// json runs args with -json and decodes stdout into v.
func (c adminCLI) json(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "-json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("tally %s -json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs args and wants an error whose text contains want.
func (c adminCLI) fails(want string, args ...string) error {
	c.t.Helper()
	err := run(c.t.Context(), args, c.env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), want) {
		c.t.Fatalf("tally %s = %v, want an error naming %q", strings.Join(args, " "), err, want)
	}
	return err
}

// TestAdminCommands runs the whole admin surface through run, on SQLite
// and PostgreSQL: every command's -json answer, the tables, the domain
// rules (as configErrors naming the flag), the tenant scoping, and the
// audit entries each action writes by the actor "cli".
func TestAdminCommands(t *testing.T) {
	t.Parallel()
	for name, url := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return filepath.Join(t.TempDir(), "t.db") },
		"postgres": func(t *testing.T) string { return pgtest.FreshSchema(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			u := url(t)
			testAdminCommands(t, adminCLI{t: t, url: u, env: envOf(map[string]string{"DATABASE_URL": u, "QUOTA_DEFAULTS": `{"api_calls":1000}`})})
		})
	}
}

func testAdminCommands(t *testing.T, c adminCLI) {
	c.ok("user", "create", "-email", "ada@example.com", "-password", "correct-horse", "-name", "Ada")
	var bob tally.User
	c.json(&bob, "user", "create", "-email", "bob@example.com", "-password", "correct-horse")
	c.ok("tenant", "create", "-slug", "acme", "-name", "Acme", "-owner", "ada@example.com")
	c.ok("tenant", "create", "-slug", "other", "-name", "Other", "-owner", "bob@example.com")

	var users []tally.User
	c.json(&users, "user", "list")
	if len(users) != 2 || users[0].Email != "ada@example.com" || users[1].ID != bob.ID {
		t.Fatalf("user list %+v", users)
	}
	var tenants []tally.Tenant
	c.json(&tenants, "tenant", "list")
	if len(tenants) != 2 || tenants[0].Slug != "acme" || tenants[1].Slug != "other" {
		t.Fatalf("tenant list %+v", tenants)
	}
	if table := c.ok("tenant", "list"); !strings.HasPrefix(table, "SLUG") || !strings.Contains(table, "acme") || !strings.Contains(table, "Other") {
		t.Errorf("tenant list table:\n%s", table)
	}

	// tenant update sets only the flags given, by the domain's rules.
	c.fails("-timezone", "tenant", "update", "-tenant", "acme", "-timezone", "Mars/Olympus")
	var upd tally.Tenant
	c.json(&upd, "tenant", "update", "-tenant", "acme", "-timezone", "Europe/Berlin", "-retention-days", "30")
	if upd.Timezone != "Europe/Berlin" || upd.RetentionDays != 30 || upd.Name != "Acme" {
		t.Errorf("tenant update %+v", upd)
	}
	var shown struct {
		tally.Tenant
		Members []tally.Member `json:"members"`
	}
	c.json(&shown, "tenant", "show", "-tenant", "acme")
	if shown.Timezone != "Europe/Berlin" || len(shown.Members) != 1 || shown.Members[0].Role != tally.RoleOwner {
		t.Errorf("tenant show %+v", shown)
	}
	c.fails("not found", "tenant", "show", "-tenant", "nope")

	// Members: add, change the role, remove; the last owner stays.
	c.ok("member", "add", "-tenant", "acme", "-email", "bob@example.com", "-role", "admin")
	c.fails("-role", "member", "role", "-tenant", "acme", "-email", "bob@example.com", "-role", "boss")
	c.ok("member", "role", "-tenant", "acme", "-email", "bob@example.com", "-role", "member")
	var ms []tally.Member
	c.json(&ms, "member", "list", "-tenant", "acme")
	if len(ms) != 2 || ms[1].Email != "bob@example.com" || ms[1].Role != tally.RoleMember {
		t.Fatalf("member list %+v", ms)
	}
	c.fails("owner", "member", "remove", "-tenant", "acme", "-email", "ada@example.com")
	c.ok("member", "remove", "-tenant", "acme", "-email", "bob@example.com")
	c.json(&ms, "member", "list", "-tenant", "acme")
	if len(ms) != 1 {
		t.Fatalf("members after remove %+v", ms)
	}

	// Keys: create (the secret once), list, revoke; another tenant's key
	// is out of reach.
	var created struct {
		ID     int64  `json:"id"`
		Key    string `json:"key"`
		Prefix string `json:"prefix"`
	}
	c.json(&created, "key", "create", "-tenant", "acme", "-name", "ci", "-scopes", "analytics:read,analytics:write")
	if created.Key == "" || !strings.HasPrefix(created.Key, created.Prefix) {
		t.Fatalf("key create %+v", created)
	}
	var keys []tally.APIKey
	c.json(&keys, "key", "list", "-tenant", "acme")
	if len(keys) != 1 || keys[0].Prefix != created.Prefix || keys[0].RevokedAt != nil {
		t.Fatalf("key list %+v", keys)
	}
	if out := c.ok("key", "list", "-tenant", "acme"); strings.Contains(out, created.Key) || !strings.Contains(out, "active") {
		t.Errorf("key list table:\n%s", out)
	}
	c.fails("not found", "key", "revoke", "-tenant", "other", "-id", itoa(created.ID))
	c.ok("key", "revoke", "-tenant", "acme", "-id", itoa(created.ID))
	c.json(&keys, "key", "list", "-tenant", "acme")
	if len(keys) != 1 || keys[0].RevokedAt == nil {
		t.Fatalf("key list after revoke %+v", keys)
	}
	if out := c.ok("key", "list", "-tenant", "acme"); !strings.Contains(out, "revoked") {
		t.Errorf("key list table after revoke:\n%s", out)
	}

	// Quotas: the configured default, an override, its deletion.
	c.fails("-limit", "quota", "set", "-tenant", "acme", "-metric", "api_calls", "-limit", "-5")
	c.fails("-metric", "quota", "set", "-tenant", "acme", "-metric", "Bad Name", "-limit", "5")
	c.fails("anchor_day", "quota", "set", "-tenant", "acme", "-metric", "builds", "-limit", "5", "-period", "billing")
	c.fails("period", "quota", "set", "-tenant", "acme", "-metric", "builds", "-limit", "5", "-period", "hour")
	c.fails("thresholds", "quota", "set", "-tenant", "acme", "-metric", "builds", "-limit", "5", "-thresholds", "90,50")
	c.fails("-thresholds", "quota", "set", "-tenant", "acme", "-metric", "builds", "-limit", "5", "-thresholds", "half")
	c.ok("quota", "set", "-tenant", "acme", "-metric", "builds", "-limit", "20", "-enforced", "-period", "billing", "-anchor-day", "31", "-thresholds", "50,100")
	var qs []quotaView
	c.json(&qs, "quota", "list", "-tenant", "acme")
	if len(qs) != 2 || qs[0].Metric != "api_calls" || qs[0].Source != "default" || qs[0].Limit != 1000 ||
		qs[1].Metric != "builds" || qs[1].Limit != 20 || !qs[1].Enforced || qs[1].Source != "override" || qs[1].Period != "billing" || qs[1].AnchorDay != 31 ||
		!slices.Equal(qs[1].Thresholds, []int{50, 100}) {
		t.Fatalf("quota list %+v", qs)
	}
	c.json(&qs, "quota", "list", "-tenant", "other")
	if len(qs) != 1 || qs[0].Source != "default" {
		t.Fatalf("other tenant's quotas %+v", qs)
	}
	c.ok("quota", "delete", "-tenant", "acme", "-metric", "builds")
	c.fails("no quota override", "quota", "delete", "-tenant", "acme", "-metric", "builds")

	// A privacy deletion removes that user's events in that tenant only.
	seedEvents(t, c.url, "acme", "u_1", "u_1", "u_2")
	seedEvents(t, c.url, "other", "u_1")
	var del struct{ Deleted int64 }
	c.json(&del, "user", "delete-events", "-tenant", "acme", "-user", "u_1")
	if del.Deleted != 2 {
		t.Errorf("deleted %d events, want 2", del.Deleted)
	}
	c.json(&del, "user", "delete-events", "-tenant", "other", "-user", "u_1")
	if del.Deleted != 1 {
		t.Errorf("deleted %d events in other, want 1", del.Deleted)
	}

	// Every action above is audited by "cli", filterable by action and actor.
	var entries []tally.AuditEntry
	c.json(&entries, "audit", "list", "-tenant", "acme", "-actor", "cli", "-limit", "100")
	var actions []string
	for _, e := range entries {
		if e.Actor != "cli" {
			t.Errorf("actor filter gave %+v", e)
		}
		actions = append(actions, e.Action)
	}
	want := []string{"events.user_deleted", "quota.deleted", "quota.set", "key.revoked", "key.created", "member.removed",
		"member.role_changed", "member.added", "tenant.updated", "tenant.created"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Errorf("acme's audit actions\n got %v\nwant %v", actions, want)
	}
	c.json(&entries, "audit", "list", "-tenant", "acme", "-action", "tenant.updated")
	if len(entries) != 1 || !strings.Contains(mustJSON(t, entries[0].Meta), "Europe/Berlin") {
		t.Errorf("tenant.updated entries %+v", entries)
	}
	if out := c.ok("audit", "list", "-tenant", "acme", "-action", "key.created"); strings.Contains(out, created.Key) ||
		!strings.Contains(out, created.Prefix) || !strings.HasPrefix(out, "AT") {
		t.Errorf("audit table:\n%s", out)
	}
	c.json(&entries, "audit", "list", "-tenant", "other", "-action", "key.revoked")
	if len(entries) != 0 {
		t.Errorf("other tenant's audit holds acme's actions: %+v", entries)
	}
	c.fails("-limit", "audit", "list", "-tenant", "acme", "-limit", "0")

	// Usage of a group names its subcommands; -h lists the flags and is no error.
	var ce *configError
	if err := c.fails("tally quota set", "quota"); !errors.As(err, &ce) {
		t.Errorf("group usage is not a configError: %v", err)
	}
	var help bytes.Buffer
	if err := run(t.Context(), []string{"rollup", "-h"}, c.env, io.Discard, &help); err != nil {
		t.Errorf("rollup -h: %v", err)
	}
	if h := help.String(); strings.Contains(h, "-listen") || !strings.Contains(h, "-tenant") || !strings.Contains(h, "-database") {
		t.Errorf("rollup -h lists flags that do not apply:\n%s", h)
	}
}

// seedEvents stores one event per user in tenant slug, straight in the
// store (the CLI has no ingestion command).
func seedEvents(t *testing.T, url, slug string, users ...string) {
	t.Helper()
	ctx := t.Context()
	cfg := app.StoreConfig{SQLitePath: url, SQLiteSync: "FULL", StatementTimeout: 5 * time.Second}
	if strings.HasPrefix(url, "postgres") {
		cfg = app.StoreConfig{PostgresURL: url, StatementTimeout: 5 * time.Second}
	}
	db, err := app.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tn, err := db.TenantBySlug(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	var evs []tally.Event
	for i, u := range users {
		evs = append(evs, tally.Event{TenantID: tn.ID, EventID: slug + u + itoa(int64(i)), Name: "app.opened", UserID: u,
			Source: "api", Timestamp: time.Now().UTC(), ReceivedAt: time.Now().UTC(), Props: json.RawMessage(`{}`)})
	}
	if _, err := db.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
