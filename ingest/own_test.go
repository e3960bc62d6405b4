package ingest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// TestOwnEventNamesReserved: clients cannot send events under tally.,
// whether in a request body or through Prepare (the foreign formats, the
// SDK's rules); tally's own events go through Track only.
func TestOwnEventNamesReserved(t *testing.T) {
	t.Parallel()
	v := NewValidator(Config{})
	for _, body := range []string{`{"event":"tally.api.request"}`, `{"event":"tally.x","source":"tally"}`} {
		_, rej := decodeOne(t, v, body)
		if rej == nil || !strings.Contains(rej.Error, "event") || !strings.Contains(rej.Error, "reserved") {
			t.Errorf("%s: rejection %+v, want one naming event as reserved", body, rej)
		}
	}
	if _, rej := decodeOne(t, v, `{"event":"tally_usage.x"}`); rej != nil {
		t.Errorf("a name that merely starts with tally_: %v", rej.Error)
	}
	if _, err := v.Prepare(tally.Event{Name: tally.EventOwnLogin}, testTenant, testNow); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("Prepare of an own name: %v", err)
	}
	if _, err := v.prepareOwn(tally.Event{Name: "api.request", Source: tally.OwnSource}, testTenant, testNow); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("an own event outside tally.: %v", err)
	}
}

// TestTrackOwnEvent: Track stores tally's own event with source tally, no
// user id and the account in props, without changing the caller's props.
func TestTrackOwnEvent(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	m := NewMetrics(nil, 0)
	w := startWriter(t, db, WriterConfig{}, m)
	b := NewBuffer(NewPipeline(w, nil, m), 10, m)
	b.Start()
	rec := NewRecorder(RecorderConfig{Validator: NewValidator(Config{}), Pipeline: NewPipeline(w, nil, m), Tracker: b})
	props := map[string]any{"route": "GET /x"}
	rec.Track(context.Background(), tn, tally.EventOwnLogin, "user:7", props)
	rec.Track(context.Background(), tn, tally.EventOwnAPIRequest, "", props)
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := props[tally.OwnAccountProp]; ok {
		t.Fatal("Track changed the caller's props")
	}
	evs, _, err := db.ListEvents(context.Background(), tn.ID, tally.EventFilter{Source: tally.OwnSource, Limit: 10, From: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d own events stored, want 2", len(evs))
	}
	for _, e := range evs {
		var p map[string]any
		json.Unmarshal(e.Props, &p)
		wantAccount := map[string]any{tally.EventOwnLogin: "user:7", tally.EventOwnAPIRequest: nil}[e.Name]
		if e.UserID != "" || e.Source != tally.OwnSource || p["route"] != "GET /x" || p[tally.OwnAccountProp] != wantAccount {
			t.Errorf("stored %+v (props %s)", e, e.Props)
		}
	}
	if hidden, _, _ := db.ListEvents(context.Background(), tn.ID, tally.EventFilter{Limit: 10}); len(hidden) != 0 {
		t.Errorf("the default list shows %d own events", len(hidden))
	}
}
