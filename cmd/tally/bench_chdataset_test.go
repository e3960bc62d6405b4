package main

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/clickhouse"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
)

// TestSQLDatasetReadsBack loads a small sqlDataset (on one server and on
// the test cluster) after a few events stored the usual way, and reads it
// back through the store: each tenant's count is the generator's, every
// event is the one it describes, ids are unique, and an InsertEvents
// afterwards dedups a generated event id and gets ids above them.
func TestSQLDatasetReadsBack(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireServer(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		events func(t *testing.T) string
	}{
		{"server", func(t *testing.T) string { return chtest.FreshDatabase(t) }},
		{"cluster", func(t *testing.T) string { return chtest.FreshClusterDatabase(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			pgURL := pgtest.FreshSchema(t)
			db, err := postgres.Open(ctx, pgURL, postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := clickhouse.Open(ctx, tc.events(t), db, clickhouse.Options{})
			if err != nil {
				db.Close()
				t.Fatal(err)
			}
			defer s.Close()
			tenants, err := benchTenants(ctx, s, 3)
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC()
			before := dataset.New(dataset.Config{Events: 10, Tenants: tenants, From: now.Add(-time.Hour), To: now, Seed: 2})
			stored := before.Next(make([]tally.Event, 0, 10))
			if _, err := s.InsertEvents(ctx, stored); err != nil {
				t.Fatal(err)
			}
			last, err := s.LastEventID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			d := sqlDataset{events: 20_000, tenants: tenants, from: now.AddDate(0, 0, -30), to: now, propsBytes: 300, seed: 9, firstID: last + 1}
			if _, err := d.load(ctx, s, pgURL, 7000, nil); err != nil {
				t.Fatal(err)
			}

			names := dataset.Names()
			want := d.counts()
			ids := map[int64]bool{}
			for _, tenant := range tenants {
				if want[tenant] == 0 {
					t.Fatalf("tenant %d gets no events: %v", tenant, want)
				}
				all := want[tenant]
				for _, e := range stored {
					if e.TenantID == tenant {
						all++
					}
				}
				n, err := s.CountEvents(ctx, tenant, d.from, d.to.Add(time.Second))
				if err != nil || n != all {
					t.Errorf("tenant %d: CountEvents = %d, %v; want %d (%d generated)", tenant, n, err, all, want[tenant])
				}
				var listed int64
				f := tally.EventFilter{From: d.from, To: d.to.Add(time.Second), Limit: 1000}
				for {
					evs, next, err := s.ListEvents(ctx, tenant, f)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range evs {
						if e.ID < d.firstID {
							continue // one of before's
						}
						listed++
						if ids[e.ID] {
							t.Fatalf("id %d listed twice", e.ID)
						}
						ids[e.ID] = true
						n := e.ID - d.firstID
						var props map[string]any
						switch {
						case n >= d.events:
							t.Fatalf("id %d past the dataset's", e.ID)
						case d.tenantOf(n) != tenant || e.EventID != d.eventID(n) || !e.Timestamp.Equal(d.at(n)) || !e.ReceivedAt.Equal(e.Timestamp):
							t.Fatalf("event %d of tenant %d: %+v; want tenant %d, id %s at %v", n, tenant, e, d.tenantOf(n), d.eventID(n), d.at(n))
						case !slices.Contains(names, e.Name) || e.Source != "sdk" || e.UserID == "":
							t.Fatalf("event %d: name %q, source %q, user %q", n, e.Name, e.Source, e.UserID)
						case json.Unmarshal(e.Props, &props) != nil || props["session"] == nil || len(e.Props) < 250:
							t.Fatalf("event %d: props %s", n, e.Props)
						case (e.Name == tally.EventUsageIncrement) != (props[tally.UsageMetricProp] == usageMetric):
							t.Fatalf("event %d (%s): props %s", n, e.Name, e.Props)
						}
					}
					if next == nil {
						break
					}
					f.Cursor = next
				}
				if listed != want[tenant] {
					t.Errorf("tenant %d: ListEvents gave %d generated events, want %d", tenant, listed, want[tenant])
				}
			}
			if int64(len(ids)) != d.events {
				t.Errorf("%d distinct ids, want %d", len(ids), d.events)
			}

			// A retry of a generated event (another timestamp, inside the
			// window) is a duplicate; a new event gets an id above them.
			dup := before.Event(d.tenantOf(123), now)
			dup.EventID = d.eventID(123)
			fresh := before.Event(d.tenantOf(123), now)
			batch := []tally.Event{dup, fresh}
			inserted, err := s.InsertEvents(ctx, batch)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(inserted, []bool{false, true}) {
				t.Errorf("InsertEvents of a generated event's retry and a new event = %v, want [false true]", inserted)
			}
			if top := d.firstID + d.events - 1; batch[1].ID <= top {
				t.Errorf("new event's id %d is not above the dataset's %d", batch[1].ID, top)
			}
			found, err := s.StoredEventIDs(ctx, dup.TenantID, []string{dup.EventID})
			if err != nil || len(found) != 1 {
				t.Errorf("StoredEventIDs(%s) = %v, %v", dup.EventID, found, err)
			}
		})
	}
}
