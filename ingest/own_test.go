package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/sqlite"
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

// requestTracking is a Recorder tracking into a buffer of size events
// (not started) in front of a writer on a SQLite file with a tenant.
func requestTracking(t *testing.T, size int) (*sqlite.DB, *tally.Tenant, *Metrics, *Buffer, *Recorder) {
	db, tn := openDB(t)
	m := NewMetrics(nil, 0)
	p := NewPipeline(startWriter(t, db, WriterConfig{}, m), nil, m)
	b := NewBuffer(p, size, m)
	return db, tn, m, b, NewRecorder(RecorderConfig{Validator: NewValidator(Config{}), Pipeline: p, Tracker: b})
}

// TestAPIRequestsShareAnEvent: the API requests of one key, route, method
// and status that wait in the buffer together are one tally.api.request
// event whose value is their number, with their mean and longest duration;
// requests that differ in any of those are events of their own; nothing
// counted is lost at Stop; past as many distinct counts as the buffer
// holds events, a request is dropped and counted.
func TestAPIRequestsShareAnEvent(t *testing.T) {
	t.Parallel()
	db, tn, m, b, rec := requestTracking(t, 3)
	get := APIRequest{Route: "GET /api/analytics/events", Method: "GET", KeyPrefix: "tk_a", Status: 200}
	failed, other := get, get
	failed.Status = 500
	other.KeyPrefix = "tk_b"
	// Not started: everything counted waits for the one drain of Stop.
	for i := range 50 {
		rec.TrackAPIRequest(tn, get, time.Duration(i+1)*time.Millisecond)
	}
	for range 3 {
		rec.TrackAPIRequest(tn, failed, 4*time.Millisecond)
	}
	rec.TrackAPIRequest(tn, other, time.Millisecond)
	dropped := get
	dropped.Route = "GET /api/analytics/kpis"
	rec.TrackAPIRequest(tn, dropped, time.Millisecond) // a fourth count in a buffer of 3
	if d := testutil.ToFloat64(m.dropped); d != 1 {
		t.Errorf("sbh_autotrack_dropped_total = %v past the buffer's size, want 1", d)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs, _, err := db.ListEvents(context.Background(), tn.ID, tally.EventFilter{Name: tally.EventOwnAPIRequest, Limit: 10, From: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	type props struct {
		Route     string  `json:"route"`
		Method    string  `json:"method"`
		Status    int     `json:"status"`
		KeyPrefix string  `json:"key_prefix"`
		Requests  int64   `json:"requests"`
		Mean      float64 `json:"duration_ms"`
		Max       float64 `json:"duration_ms_max"`
	}
	want := map[APIRequest]props{
		get:    {get.Route, "GET", 200, "tk_a", 50, 25.5, 50},
		failed: {failed.Route, "GET", 500, "tk_a", 3, 4, 4},
		other:  {other.Route, "GET", 200, "tk_b", 1, 1, 1},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d tally.api.request events, want %d: %+v", len(evs), len(want), evs)
	}
	for _, e := range evs {
		var got props
		if err := json.Unmarshal(e.Props, &got); err != nil {
			t.Fatal(err)
		}
		r := APIRequest{Route: got.Route, Method: got.Method, KeyPrefix: got.KeyPrefix, Status: got.Status}
		if got != want[r] || e.Value != float64(got.Requests) || e.Source != tally.OwnSource || e.UserID != "" {
			t.Errorf("event %+v props %s, want props %+v and the number of requests as its value", e, e.Props, want[r])
		}
	}
}

// TestAPIRequestsCountedUnderLoad: requests counted from many goroutines
// while the buffer drains (woken by the counts and by other events) are
// all in the stored events' values.
func TestAPIRequestsCountedUnderLoad(t *testing.T) {
	t.Parallel()
	db, tn, m, b, rec := requestTracking(t, 0)
	b.Start()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				rec.TrackAPIRequest(tn, APIRequest{Route: "POST /api/analytics/events", Method: "POST", KeyPrefix: "tk_a", Status: 200 + g%2*2}, time.Duration(i)*time.Microsecond)
				if i%10 == 0 {
					time.Sleep(50 * time.Microsecond)
				}
			}
		})
	}
	wg.Go(func() { // events queued one by one wake drains that find counts, and none
		for range 400 {
			rec.Track(context.Background(), tn, tally.EventOwnLogin, "user:1", nil)
			time.Sleep(20 * time.Microsecond)
		}
	})
	wg.Wait()
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs, _, err := db.ListEvents(context.Background(), tn.ID, tally.EventFilter{Name: tally.EventOwnAPIRequest, Limit: 1000, From: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, e := range evs {
		sum += e.Value
	}
	if sum != 8*500 || testutil.ToFloat64(m.dropped) != 0 {
		t.Errorf("values sum to %v over %d events (%v dropped), want the 4000 requests counted", sum, len(evs), testutil.ToFloat64(m.dropped))
	}
	t.Logf("4000 requests in %d events", len(evs))
}

// TestRequestCountsWhileDraining: counts of new requests race with drains
// that find none (run with -race): a drain reads the counts only under
// the lock, or the ones it took from it.
func TestRequestCountsWhileDraining(t *testing.T) {
	t.Parallel()
	b := NewBuffer(nil, 0, NewMetrics(nil, 0))
	build := func(*tally.Tenant, APIRequest, RequestCount) (tally.Event, bool) { return tally.Event{Value: 1}, true }
	var wg sync.WaitGroup
	var drained float64
	wg.Go(func() {
		for range 2000 {
			for _, e := range b.requests(nil) {
				drained += e.Value
			}
		}
	})
	wg.Go(func() {
		for i := range 2000 {
			b.CountRequest(&tally.Tenant{ID: 1}, APIRequest{Route: fmt.Sprint(i % 1000)}, time.Now(), time.Millisecond, build)
		}
	})
	wg.Wait()
	for _, e := range b.requests(nil) {
		drained += e.Value
	}
	if drained > 2000 || drained < 1000 {
		t.Errorf("drained %v events of 2000 counts over 1000 routes", drained)
	}
}
