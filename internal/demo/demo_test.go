package demo_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/internal/demo"
	"github.com/tallyhq/tally/internal/secret"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// TestGenerate checks that the demo data is what the dashboard needs to
// look alive: every kind of event, on every day, valid under ingestion's
// rules, busier on weekdays, and the same for the same seed.
func TestGenerate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)
	events := demo.Generate(7, now, demo.Days, 42)
	if len(events) < 5000 {
		t.Fatalf("%d events: too few for a realistic month", len(events))
	}
	if !slices.EqualFunc(events, demo.Generate(7, now, demo.Days, 42), func(a, b tally.Event) bool {
		return a.EventID == b.EventID && a.Timestamp.Equal(b.Timestamp) && a.Name == b.Name
	}) {
		t.Fatal("the same seed gave different events")
	}
	v := ingest.NewValidator(ingest.Config{})
	tenant := &tally.Tenant{ID: 7}
	names := map[string]int{}
	days := map[time.Time]int{}
	weekday, weekend := 0, 0
	for _, e := range events {
		if _, err := v.Prepare(e, tenant, now); err != nil {
			t.Fatalf("event %s is not valid: %v", e.EventID, err)
		}
		if e.Timestamp.After(now) || e.Timestamp.Before(now.AddDate(0, 0, -demo.Days-1)) {
			t.Fatalf("event %s at %s is outside the %d days before %s", e.EventID, e.Timestamp, demo.Days, now)
		}
		names[e.Name]++
		days[tally.DayStart(e.Timestamp)]++
		if wd := e.Timestamp.Weekday(); wd == time.Saturday || wd == time.Sunday {
			weekend++
		} else {
			weekday++
		}
	}
	for _, n := range []string{tally.EventRegister, tally.EventLogin, tally.EventAPIRequest, "builder.generate.completed", "files.uploaded"} {
		if names[n] == 0 {
			t.Errorf("no %s events", n)
		}
	}
	if len(days) < demo.Days {
		t.Errorf("events on %d days, want every one of %d", len(days), demo.Days)
	}
	if weekday/5 < 2*(weekend/2) {
		t.Errorf("weekday average %d is not clearly above the weekend's %d", weekday/5, weekend/2)
	}
}

// TestSeed checks the first seed and a reseed: the tenant, its admin and
// a key exist, events are stored once, and each start prints a login and
// a key that work, the previous key revoked.
func TestSeed(t *testing.T) {
	t.Parallel()
	db := sqlitetest.Open(t)
	accounts := identity.New(db, nil, nil)
	ctx := t.Context()
	now := time.Now()
	rolled := 0
	roll := func(context.Context, int64, time.Time, time.Time) error { rolled++; return nil }

	first, err := demo.Seed(ctx, db, accounts, roll, now)
	if err != nil {
		t.Fatal(err)
	}
	tn, err := db.TenantBySlug(ctx, demo.Slug)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := db.CountEvents(ctx, tn.ID, now.AddDate(0, 0, -demo.Days-1), now.Add(time.Hour))
	if first.Events == 0 || int64(first.Events) != stored || rolled != 1 {
		t.Fatalf("first seed: %d events reported, %d stored, rolled %d times", first.Events, stored, rolled)
	}
	second, err := demo.Seed(ctx, db, accounts, roll, now)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := db.CountEvents(ctx, tn.ID, now.AddDate(0, 0, -demo.Days-1), now.Add(time.Hour))
	if again != stored || rolled != 1 || second.Events != first.Events {
		t.Fatalf("reseed stored events again: %d then %d, rolled %d times", stored, again, rolled)
	}
	if second.Password == first.Password || second.Key == first.Key {
		t.Fatal("a reseed printed the same password or key")
	}
	_, hash, err := db.UserByEmail(ctx, demo.Email)
	if err != nil || !secret.CheckPassword(hash, second.Password) || secret.CheckPassword(hash, first.Password) {
		t.Fatalf("the printed password does not log in (or the old one still does): %v", err)
	}
	for _, c := range []struct {
		key    string
		active bool
	}{{first.Key, false}, {second.Key, true}} {
		prefix, ok := secret.ParseKey(c.key)
		if !ok {
			t.Fatalf("printed key %q is not a tally key", c.key)
		}
		k, err := db.KeyByPrefix(ctx, prefix)
		if err != nil || k.TenantID != tn.ID || k.Active(now.Add(time.Second)) != c.active || !secret.Equal(k.Hash, secret.HashToken(c.key)) {
			t.Fatalf("key %s: %+v, %v; want active=%v", prefix, k, err, c.active)
		}
	}
}
