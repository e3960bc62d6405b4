package clickhouse

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
)

func TestUUIDBytes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		id string
		ok bool
	}{
		{"6b4b627b-3d8f-41c5-8f44-24005476cc2b", true},
		{"6B4B627B-3D8F-41C5-8F44-24005476CC2B", false}, // would read back lowercase
		{"00000000-0000-0000-0000-000000000000", false}, // event_uuid's "see event_id"
		{"6b4b627b3d8f41c58f4424005476cc2b", false},
		{"6b4b627b-3d8f-41c5-8f44-24005476cc2", false},
		{"6b4b627b-3d8f-41c5-8f44+24005476cc2b", false},
		{"6b4b627g-3d8f-41c5-8f44-24005476cc2b", false},
		{"", false},
		{"order-1", false},
	} {
		u, ok := uuidBytes(c.id)
		if ok != c.ok {
			t.Errorf("uuidBytes(%q): ok %v, want %v", c.id, ok, c.ok)
		}
		if ok && u[0] != 0x6b || ok && u[15] != 0x2b {
			t.Errorf("uuidBytes(%q) = %x", c.id, u)
		}
	}
}

// TestUpgradeEvents opens a store over an events table of the layout
// before event_uuid and received_after: its rows read as they were
// written, their ids are found, and new events (UUID ids and others)
// read back exactly beside them.
func TestUpgradeEvents(t *testing.T) {
	chtest.RequireServer(t)
	pgtest.RequireServer(t)
	t.Parallel()
	ctx := t.Context()
	eventsURL := chtest.FreshDatabase(t)
	base, database, err := ParseURL(eventsURL)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(base, database, 10*time.Second)
	check(t, c.exec(ctx, "", "CREATE DATABASE "+database))
	check(t, c.exec(ctx, database, `CREATE TABLE events (tenant_id Int64, ts Int64, id Int64, event_id String,
		event String, user_id String, source String, received_at Int64, value Float64, props String, metric String)
		ENGINE = MergeTree PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000000))) ORDER BY (tenant_id, ts, id)`))
	db, err := postgres.Open(ctx, pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "4"}), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &tally.User{Email: "up@example.com"}
	check(t, db.CreateUser(ctx, u, "!"))
	tn := &tally.Tenant{Slug: "up", Name: "Up"}
	check(t, db.CreateTenant(ctx, tn, u.ID))
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	old := []tally.Event{
		{TenantID: tn.ID, ID: 1, EventID: "6b4b627b-3d8f-41c5-8f44-24005476cc2b", Name: "old.uuid", Source: "sdk",
			Timestamp: at, ReceivedAt: at.Add(1500 * time.Millisecond), Value: 1, Props: []byte(`{"a":1}`)},
		{TenantID: tn.ID, ID: 2, EventID: "order-7", Name: "old.text", UserID: "bob", Source: "api",
			Timestamp: at.Add(time.Second), ReceivedAt: at.Add(time.Second), Value: 2.5, Props: []byte(`{}`)},
	}
	w := &rowWriter{}
	for _, e := range old {
		w.int64(e.TenantID)
		w.int64(e.Timestamp.UnixMicro())
		w.int64(e.ID)
		w.string(e.EventID)
		w.string(e.Name)
		w.string(e.UserID)
		w.string(e.Source)
		w.int64(e.ReceivedAt.UnixMicro())
		w.float64(e.Value)
		w.string(string(e.Props))
		w.string("")
	}
	check(t, c.insert(ctx, "INSERT INTO events (tenant_id, ts, id, event_id, event, user_id, source, received_at, value, props, metric)", w.b))

	s, err := Open(ctx, eventsURL, db, Options{})
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	defer s.Close()
	fresh := []tally.Event{
		{TenantID: tn.ID, EventID: "0f0e0d0c-0b0a-4908-8706-050403020100", Name: "new.uuid", Timestamp: at.Add(2 * time.Second),
			ReceivedAt: at.Add(2*time.Second + 250*time.Microsecond), Value: 1, Props: []byte(`{}`)},
		{TenantID: tn.ID, EventID: "00000000-0000-0000-0000-000000000000", Name: "new.zero", Timestamp: at.Add(3 * time.Second),
			ReceivedAt: at.Add(2 * time.Second), Value: 1, Props: []byte(`{}`)}, // received before its timestamp
		{TenantID: tn.ID, EventID: "A-Text-Id", Name: "new.text", Timestamp: at.Add(4 * time.Second), ReceivedAt: at.Add(5 * time.Second),
			Value: 1, Props: []byte(`{}`)},
	}
	ins, err := s.InsertEvents(ctx, fresh)
	check(t, err)
	if countInserted(ins) != len(fresh) {
		t.Fatalf("inserted %v", ins)
	}
	got, _, err := s.ListEvents(ctx, tn.ID, tally.EventFilter{Limit: 10})
	check(t, err)
	want := append(append([]tally.Event{}, old...), fresh...)
	if len(got) != len(want) {
		t.Fatalf("listed %d events, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[len(got)-1-i], want[i]
		if g.EventID != w.EventID || g.Name != w.Name || !g.Timestamp.Equal(w.Timestamp) || !g.ReceivedAt.Equal(w.ReceivedAt) ||
			g.UserID != w.UserID || g.Value != w.Value || string(g.Props) != string(w.Props) {
			t.Errorf("event %d: got %+v, want %+v", i, g, w)
		}
	}
	ids := []string{old[0].EventID, old[1].EventID, fresh[0].EventID, fresh[1].EventID, fresh[2].EventID, "missing"}
	stored, err := s.StoredEventIDs(ctx, tn.ID, ids)
	check(t, err)
	if len(stored) != 5 {
		t.Fatalf("stored ids %v, want all 5 but missing", stored)
	}
	for _, id := range ids[:5] {
		if _, ok := stored[id]; !ok {
			t.Errorf("stored ids %v lack %q", stored, id)
		}
	}
	// Opening again finds the upgraded table as it is.
	s2, err := Open(ctx, eventsURL, s.DB, Options{})
	check(t, err)
	n, err := s2.CountEvents(ctx, tn.ID, at, at.Add(time.Minute))
	check(t, err)
	if n != 5 {
		t.Fatalf("count after reopening: %d, want 5", n)
	}
}
