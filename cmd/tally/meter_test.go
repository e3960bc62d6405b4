package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite"
)

// TestMeterCommands defines a meter from the CLI after its events exist,
// queries it, lists and deletes it; a bad definition names its flag.
func TestMeterCommands(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "t.db")
	env := envOf(map[string]string{"DATABASE_URL": path})
	for _, args := range [][]string{
		{"user", "create", "-email", "ada@example.com", "-password", "abcdefgh"},
		{"tenant", "create", "-slug", "acme", "-name", "Acme", "-owner", "ada@example.com"},
	} {
		if err := run(t.Context(), args, env, io.Discard, io.Discard); err != nil {
			t.Fatalf("run(%v) = %v", args, err)
		}
	}
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tn, err := db.TenantBySlug(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-time.Hour)
	var evs []tally.Event
	for i, in := range []int{3, 4} {
		evs = append(evs, tally.Event{TenantID: tn.ID, EventID: string(rune('a' + i)), Name: "llm.call", Source: "api",
			Timestamp: at, ReceivedAt: at, Props: json.RawMessage(`{"usage":{"input":` + string(rune('0'+in)) + `}}`)})
	}
	if _, err := db.InsertEvents(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	db.Close()

	err = run(t.Context(), []string{"meter", "create", "-tenant", "acme", "-slug", "input", "-event", "llm.*", "-aggregation", "sum"}, env, io.Discard, io.Discard)
	var ce *configError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "-value") {
		t.Fatalf("meter without a value: %v, want a configError naming -value", err)
	}
	if err := run(t.Context(), []string{"meter", "create", "-tenant", "acme", "-slug", "input", "-event", "llm.*",
		"-aggregation", "sum", "-value", "props.usage.input"}, env, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), []string{"meter", "query", "-tenant", "acme", "-slug", "input"}, env, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	var res tally.MeterResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Data) != 1 || res.Data[0].Value == nil || *res.Data[0].Value != 7 {
		t.Fatalf("query answer %s (%v), want one total of 7", out.Bytes(), err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"meter", "list", "-tenant", "acme"}, env, &out, io.Discard); err != nil || !strings.Contains(out.String(), "input") ||
		!strings.Contains(out.String(), "events_daily") {
		t.Fatalf("meter list: %v\n%s", err, out.String())
	}
	if err := run(t.Context(), []string{"meter", "delete", "-tenant", "acme", "-slug", "input"}, env, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"meter", "query", "-tenant", "acme", "-slug", "input"}, env, io.Discard, io.Discard)
	if tally.ErrorCodeOf(err) != tally.ENotFound {
		t.Fatalf("query of a deleted meter: %v", err)
	}
}
