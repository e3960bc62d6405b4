package ingest_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/ingest"
)

func TestForeignName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Order Completed":        "Order_Completed",
		"$pageview":              "pageview",
		"$identify":              "identify",
		"llm.tokens":             "llm.tokens",
		"a..b":                   "a.b",
		"  Signed  up!! ":        "Signed_up",
		"café ☕ time":            "caf_time",
		"$$$":                    "",
		"com.example.object.v1":  "com.example.object.v1",
		strings.Repeat("x", 200): strings.Repeat("x", tally.MaxEventNameLen),
	} {
		got := ingest.ForeignName(in)
		if got != want {
			t.Errorf("ForeignName(%q) = %q, want %q", in, got, want)
		}
		if got != "" && !tally.ValidEventName(got) {
			t.Errorf("ForeignName(%q) = %q is not a valid event name", in, got)
		}
	}
}

// props decodes the props of a mapped event.
func foreignProps(t *testing.T, e tally.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Props, &m); err != nil {
		t.Fatalf("props %s: %v", e.Props, err)
	}
	return m
}

func TestDecodeSegment(t *testing.T) {
	t.Parallel()
	f, err := ingest.DecodeSegment([]byte(`{"writeKey":"tk_x","sentAt":"2026-01-01T00:00:10Z","context":{"ip":"1.2.3.4"},"batch":[
		{"type":"track","messageId":"m1","userId":42,"anonymousId":"a1","event":"Clicked Buy","timestamp":"2026-01-01T00:00:00.000Z","properties":{"x":1}},
		{"type":"page","anonymousId":"a2","name":"Home","properties":{"name":"Kept"}},
		{"type":"track","userId":"u"},
		"not an object",
		{"type":"alias","userId":"u","previousId":"a1","context":{"library":{"name":"l"}}}]}`), "")
	if err != nil {
		t.Fatal(err)
	}
	if f.Key != "tk_x" || len(f.Events) != 3 || len(f.Rejected) != 2 {
		t.Fatalf("got key %q, %d events, rejected %+v", f.Key, len(f.Events), f.Rejected)
	}
	tr := f.Events[0]
	if tr.Event.Name != "Clicked_Buy" || tr.Event.UserID != "42" || tr.Event.EventID != "m1" || tr.Event.Source != "segment" ||
		!tr.SentAt.Equal(time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)) || tr.Index != 0 {
		t.Errorf("track mapped to %+v", tr)
	}
	if p := foreignProps(t, tr.Event); p["x"] != 1.0 || p["anonymous_id"] != "a1" || p["context"].(map[string]any)["ip"] != "1.2.3.4" {
		t.Errorf("track props %v: want properties, anonymous_id and the batch's context", p)
	}
	if pg := f.Events[1]; pg.Event.Name != "page" || pg.Event.UserID != "a2" || foreignProps(t, pg.Event)["name"] != "Kept" || !pg.Event.Timestamp.IsZero() {
		t.Errorf("page mapped to %+v", pg)
	}
	if al := f.Events[2]; al.Index != 4 || foreignProps(t, al.Event)["context"].(map[string]any)["ip"] != nil {
		t.Errorf("alias mapped to %+v: its own context wins", al)
	}
	if f.Rejected[0].Index != 2 || f.Rejected[0].Field != "event" || f.Rejected[1].Index != 3 {
		t.Errorf("rejected %+v", f.Rejected)
	}
	for _, body := range []string{`[]`, `{"batch":{}}`, `{"batch":[]}`, `{"batch":"` + strings.Repeat("a", ingest.SegmentMaxBatch) + `"}`} {
		if _, err := ingest.DecodeSegment([]byte(body), ""); err == nil {
			t.Errorf("%.40s: accepted", body)
		}
	}
	if _, err := ingest.DecodeSegment([]byte(`{"type":"page","event":"x"}`), "track"); err != nil {
		t.Errorf("one message: %v", err)
	} else if f, _ := ingest.DecodeSegment([]byte(`{"type":"page","event":"x"}`), "track"); len(f.Rejected) != 1 {
		t.Errorf("a page on the track path: %+v", f)
	}
}

func TestDecodePostHog(t *testing.T) {
	t.Parallel()
	f, err := ingest.DecodePostHog([]byte(`[
		{"event":"$pageview","properties":{"distinct_id":7,"token":"tk_y","$current_url":"/"},"offset":1500},
		{"event":"$identify","distinct_id":"u","$set":{"email":"e"},"uuid":"x1","timestamp":"2026-01-01T00:00:00Z","sent_at":"2026-01-01T00:00:05Z"},
		{"properties":{}}]`))
	if err != nil {
		t.Fatal(err)
	}
	if f.Key != "tk_y" || len(f.Events) != 2 || len(f.Rejected) != 1 || f.Rejected[0].Index != 2 {
		t.Fatalf("got key %q, %+v", f.Key, f)
	}
	pv := f.Events[0]
	if pv.Event.Name != "pageview" || pv.Event.UserID != "7" || pv.SentAt.Sub(pv.Event.Timestamp) != 1500*time.Millisecond {
		t.Errorf("pageview mapped to %+v", pv)
	}
	if p := foreignProps(t, pv.Event); p["token"] != nil || p["distinct_id"] != nil || p["$current_url"] != "/" {
		t.Errorf("pageview props %v", p)
	}
	id := f.Events[1]
	if id.Event.Name != "identify" || id.Event.EventID != "x1" || foreignProps(t, id.Event)["$set"] == nil ||
		!id.SentAt.Equal(time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)) {
		t.Errorf("identify mapped to %+v", id)
	}
	for _, body := range []string{`"x"`, `{"batch":{}}`, `[]`, `{`} {
		if _, err := ingest.DecodePostHog([]byte(body)); err == nil {
			t.Errorf("%s: accepted", body)
		}
	}
}

func TestDecodeCloudEvents(t *testing.T) {
	t.Parallel()
	f, err := ingest.DecodeCloudEvents([]byte(`[
		{"specversion":"1.0","id":"1","source":"/s","type":"api-calls","subject":"c1","time":"2026-01-01T00:00:00Z","data":{"n":3}},
		{"specversion":"1.0","id":"2","source":"/s","type":"t","data":"text"},
		{"specversion":"0.3","id":"3","source":"/s","type":"t"},
		{"specversion":"1.0","id":"4","source":"/s","type":"t","data_base64":"eA=="}]`), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Events) != 2 || len(f.Rejected) != 2 {
		t.Fatalf("%+v", f)
	}
	e := f.Events[0].Event
	if e.Name != "api-calls" || e.UserID != "c1" || e.EventID != "1" || e.Source != "cloudevents" || !e.Timestamp.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("mapped to %+v", e)
	}
	if p := foreignProps(t, e); p["n"] != 3.0 || p["$source"] != "/s" {
		t.Errorf("props %v", p)
	}
	if p := foreignProps(t, f.Events[1].Event); p["data"] != "text" {
		t.Errorf("props %v", p)
	}
	if _, err := ingest.DecodeCloudEvents([]byte(`{"specversion":"1.0"}`), true); err == nil {
		t.Error("an object as a batch: accepted")
	}
}
