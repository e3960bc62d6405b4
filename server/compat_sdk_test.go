package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/posthog/posthog-go"
	segment "github.com/segmentio/analytics-go/v3"
)

// These tests drive the real, unmodified client libraries of Segment,
// PostHog and CloudEvents against a real tally, through a proxy that
// loses the answer of the first request it forwards: the library retries
// the same events, which tally stores once.

// lossyProxy forwards to h's server; the answer to the first request is
// dropped (tally stored its events) and replaced by a 503, so the client
// retries.
type lossyProxy struct {
	srv      *httptest.Server
	requests atomic.Int64
}

func newLossyProxy(t *testing.T, h *harness) *lossyProxy {
	t.Helper()
	target, _ := url.Parse(h.srv.URL)
	p := &lossyProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(res *http.Response) error {
		if p.requests.Add(1) == 1 {
			return errors.New("answer lost on the way back")
		}
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	p.srv = httptest.NewServer(rp)
	t.Cleanup(p.srv.Close)
	return p
}

// compatMetric is the value of sbh_compat_events_total for format and
// outcome (0 when absent).
func compatMetric(t *testing.T, h *harness, format, outcome string) int {
	t.Helper()
	re := regexp.MustCompile(`(?m)^sbh_compat_events_total\{format="` + format + `",outcome="` + outcome + `"\} (\d+)$`)
	m := re.FindStringSubmatch(h.metrics())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// eventsOf lists the events of source in o's tenant, by event_id.
func eventsOf(t *testing.T, h *harness, o owner, source string) map[string]apiEvent {
	t.Helper()
	out := map[string]apiEvent{}
	for _, e := range h.allEvents(o.h(), url.Values{"source": {source}, "from": {"2020-01-01"}}) {
		if _, dup := out[e.EventID]; dup {
			t.Errorf("event_id %s stored twice", e.EventID)
		}
		out[e.EventID] = e
	}
	return out
}

// wantActiveUsers waits until the active_users KPI of o's tenant today is
// n end users: the owner's own sign-up and login (tracked in the
// background as tally's own events, with no user id) are not among them.
func wantActiveUsers(t *testing.T, h *harness, o owner, n int64) {
	t.Helper()
	eventually(t, "active users is "+strconv.FormatInt(n, 10), func() bool { return activeUsers(t, h, o) == n })
}

// activeUsers is the active_users KPI of o's tenant today.
func activeUsers(t *testing.T, h *harness, o owner) int64 {
	t.Helper()
	var rep struct {
		KPIs map[string]struct {
			Value int64 `json:"value"`
		} `json:"kpis"`
	}
	h.do("GET", "/api/analytics/metrics?range=today", nil, o.h()).want(t, http.StatusOK).decode(t, &rep)
	return rep.KPIs["active_users"].Value
}

// props decodes an event's props.
func props(t *testing.T, e apiEvent) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Props, &m); err != nil {
		t.Fatalf("props of %s: %v", e.EventID, err)
	}
	return m
}

func TestSegmentGoLibrary(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("seg")
		k := h.createKey(o, "analytics:write")
		proxy := newLossyProxy(t, h)

		var ok, failed atomic.Int64
		c, err := segment.NewWithConfig(k.Key, segment.Config{
			Endpoint: proxy.srv.URL, BatchSize: 6, Interval: time.Hour, // one batch of the six
			RetryAfter: func(int) time.Duration { return 10 * time.Millisecond },
			Callback:   callback{ok: &ok, failed: &failed},
		})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
		msgs := []segment.Message{
			segment.Track{MessageId: "seg-track", UserId: "u1", Event: "Order Completed", Timestamp: at,
				Properties: segment.NewProperties().Set("revenue", 9.5).Set("password", "hunter2")},
			segment.Page{MessageId: "seg-page", AnonymousId: "anon-1", Name: "Home",
				Properties: segment.NewProperties().SetURL("https://example.test/")},
			segment.Screen{MessageId: "seg-screen", UserId: "u1", Name: "Settings"},
			segment.Identify{MessageId: "seg-identify", UserId: "u1", AnonymousId: "anon-1",
				Traits: segment.NewTraits().SetEmail("u1@example.test")},
			segment.Group{MessageId: "seg-group", UserId: "u1", GroupId: "acme"},
			segment.Alias{MessageId: "seg-alias", UserId: "u1", PreviousId: "anon-1"},
		}
		for _, m := range msgs {
			if err := c.Enqueue(m); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "the library reports the batch sent", func() bool { return ok.Load()+failed.Load() == 6 })
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if ok.Load() != 6 || failed.Load() != 0 {
			t.Fatalf("the library reports %d sent, %d failed; want 6, 0", ok.Load(), failed.Load())
		}
		if n := proxy.requests.Load(); n != 2 {
			t.Errorf("%d requests reached tally, want 2 (one lost answer, one retry)", n)
		}

		evs := eventsOf(t, h, o, "segment")
		// The page was sent as anon-1; the batch's identify links it to u1.
		want := map[string]struct{ name, user string }{
			"seg-track": {"Order_Completed", "u1"}, "seg-page": {"page", "u1"}, "seg-screen": {"screen", "u1"},
			"seg-identify": {"identify", "u1"}, "seg-group": {"group", "u1"}, "seg-alias": {"alias", "u1"},
		}
		if len(evs) != len(want) {
			t.Fatalf("stored %d segment events, want %d: %v", len(evs), len(want), evs)
		}
		for id, w := range want {
			e := evs[id]
			if e.Event != w.name || e.UserID != w.user {
				t.Errorf("%s stored as %s/%s, want %s/%s", id, e.Event, e.UserID, w.name, w.user)
			}
		}
		tr := props(t, evs["seg-track"])
		if tr["revenue"] != 9.5 || tr["password"] != "[redacted]" {
			t.Errorf("track props %v: want revenue 9.5 and password redacted", tr)
		}
		if lib, _ := tr["context"].(map[string]any)["library"].(map[string]any); lib["name"] != "analytics-go" {
			t.Errorf("track props %v: want the library's context", tr)
		}
		if !evs["seg-track"].Timestamp.Equal(at) && evs["seg-track"].Timestamp.Sub(at).Abs() > 5*time.Second {
			t.Errorf("track timestamp %s, want about %s", evs["seg-track"].Timestamp, at)
		}
		if p := props(t, evs["seg-page"]); p["name"] != "Home" || p["url"] != "https://example.test/" {
			t.Errorf("page props %v", p)
		}
		if p := props(t, evs["seg-group"]); p["group_id"] != "acme" {
			t.Errorf("group props %v", p)
		}
		if p := props(t, evs["seg-alias"]); p["previous_id"] != "anon-1" {
			t.Errorf("alias props %v", p)
		}
		if p := props(t, evs["seg-identify"]); p["email"] != "u1@example.test" || p["anonymous_id"] != "anon-1" {
			t.Errorf("identify props %v", p)
		}
		if got := compatMetric(t, h, "segment", "accepted"); got != 6 {
			t.Errorf("accepted %d, want 6", got)
		}
		if got := compatMetric(t, h, "segment", "duplicate"); got != 6 {
			t.Errorf("duplicate %d, want 6 (the retry)", got)
		}
		wantActiveUsers(t, h, o, 1) // u1, also for the page sent as anon-1
		h.noPanic(t)
	})
}

// callback counts the messages a Segment client reports.
type callback struct{ ok, failed *atomic.Int64 }

func (c callback) Success(segment.Message)        { c.ok.Add(1) }
func (c callback) Failure(segment.Message, error) { c.failed.Add(1) }

// phCallback counts the messages a PostHog client reports sent.
type phCallback struct{ ok *atomic.Int64 }

func (c phCallback) Success(posthog.APIMessage)        { c.ok.Add(1) }
func (c phCallback) Failure(posthog.APIMessage, error) {}

func TestPostHogGoLibrary(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("ph")
		k := h.createKey(o, "analytics:write")
		proxy := newLossyProxy(t, h)

		var ok atomic.Int64
		c, err := posthog.NewWithConfig(k.Key, posthog.Config{
			Endpoint: proxy.srv.URL, BatchSize: 3, Interval: time.Hour, // one batch of the three
			RetryAfter: func(int) time.Duration { return 10 * time.Millisecond },
			Callback:   phCallback{ok: &ok},
		})
		if err != nil {
			t.Fatal(err)
		}
		msgs := []posthog.Message{
			posthog.Capture{Uuid: "ph-view", DistinctId: "d1", Event: "$pageview",
				Properties: posthog.NewProperties().Set("$current_url", "https://example.test/").Set("api_key", "leak")},
			posthog.Capture{Uuid: "ph-signup", DistinctId: "d2", Event: "signed up", Properties: posthog.NewProperties().Set("plan", "pro")},
			posthog.Identify{DistinctId: "d1", Properties: posthog.NewProperties().Set("email", "d1@example.test")},
		}
		for _, m := range msgs {
			if err := c.Enqueue(m); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "the library reports the batch sent", func() bool { return ok.Load() == 3 })
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if n := proxy.requests.Load(); n != 2 {
			t.Errorf("%d requests reached tally, want 2 (one lost answer, one retry)", n)
		}
		evs := eventsOf(t, h, o, "posthog")
		// The identify carries no uuid: the retry stores it again under a
		// new id, as PostHog itself would. The captures with uuids are once.
		if len(evs) < 3 {
			t.Fatalf("stored %d posthog events, want the 3 sent: %v", len(evs), evs)
		}
		if e := evs["ph-view"]; e.Event != "pageview" || e.UserID != "d1" {
			t.Errorf("pageview stored as %s/%s", e.Event, e.UserID)
		}
		if p := props(t, evs["ph-view"]); p["$current_url"] != "https://example.test/" || p["api_key"] != "[redacted]" || p["$lib"] != "posthog-go" {
			t.Errorf("pageview props %v", p)
		}
		if e := evs["ph-signup"]; e.Event != "signed_up" || e.UserID != "d2" {
			t.Errorf("signup stored as %s/%s", e.Event, e.UserID)
		}
		identifies := 0
		for _, e := range evs {
			if e.Event == "identify" && e.UserID == "d1" {
				identifies++
			}
		}
		if identifies == 0 {
			t.Errorf("no identify event stored: %v", evs)
		}
		if got := compatMetric(t, h, "posthog", "duplicate"); got != 2 {
			t.Errorf("duplicate %d, want 2 (the retried captures)", got)
		}
		wantActiveUsers(t, h, o, 2)

		// posthog-js sends gzip, named by the header or the query.
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(`[{"event":"$autocapture","uuid":"ph-gz","properties":{"distinct_id":"d3","token":"` + k.Key + `"}}]`))
		zw.Close()
		h.do("POST", "/e/?compression=gzip-js", gz.Bytes(), nil).want(t, http.StatusOK)
		h.do("POST", "/batch", gz.Bytes(), hdr("", "", "Content-Encoding", "gzip")).want(t, http.StatusOK)
		if e, ok := eventsOf(t, h, o, "posthog")["ph-gz"]; !ok || e.Event != "autocapture" || e.UserID != "d3" {
			t.Errorf("gzip event stored as %+v", e)
		}
		if p := props(t, eventsOf(t, h, o, "posthog")["ph-gz"]); p["token"] != nil {
			t.Errorf("the key was stored in props: %v", p)
		}
		for _, path := range []string{"/decide/?v=3", "/flags/?v=2", "/decide", "/flags"} {
			r := h.do("POST", path, `{"token":"x","distinct_id":"d1"}`, nil).want(t, http.StatusOK)
			if m := r.object(t); m["errorsWhileComputingFlags"] != false {
				t.Errorf("%s: %s", path, r.Body)
			}
		}
		h.noPanic(t)
	})
}

func TestCloudEventsGoLibrary(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("ce")
		k := h.createKey(o, "analytics:write")
		proxy := newLossyProxy(t, h)

		c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(proxy.srv.URL+"/api/v1/events"),
			cehttp.WithHeader("Authorization", "Bearer "+k.Key))
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
		newEvent := func(id, subject string, tokens int) cloudevents.Event {
			e := cloudevents.NewEvent()
			e.SetID(id)
			e.SetSource("/llm/gateway")
			e.SetType("llm.tokens")
			e.SetSubject(subject)
			e.SetTime(at)
			if err := e.SetData(cloudevents.ApplicationJSON, map[string]any{"tokens": tokens, "model": "m1"}); err != nil {
				t.Fatal(err)
			}
			return e
		}
		ctx := cloudevents.ContextWithRetriesConstantBackoff(context.Background(), 10*time.Millisecond, 3)
		// Structured mode, retried after the lost answer.
		if res := c.Send(cloudevents.WithEncodingStructured(ctx), newEvent("ce-1", "cust-1", 10)); cloudevents.IsUndelivered(res) || !cloudevents.IsACK(res) {
			t.Fatalf("structured send: %v", res)
		}
		// Binary mode (the library's default).
		if res := c.Send(ctx, newEvent("ce-2", "cust-2", 20)); !cloudevents.IsACK(res) {
			t.Fatalf("binary send: %v", res)
		}
		// A batch, encoded by the library, with one id already stored.
		batch, err := json.Marshal([]cloudevents.Event{newEvent("ce-2", "cust-2", 20), newEvent("ce-3", "cust-1", 30)})
		if err != nil {
			t.Fatal(err)
		}
		h.do("POST", "/api/v1/events", batch, hdr(k.Key, "", "Content-Type", "application/cloudevents-batch+json")).
			want(t, http.StatusNoContent)

		evs := eventsOf(t, h, o, "cloudevents")
		if len(evs) != 3 {
			t.Fatalf("stored %d events, want 3: %v", len(evs), evs)
		}
		for id, user := range map[string]string{"ce-1": "cust-1", "ce-2": "cust-2", "ce-3": "cust-1"} {
			e := evs[id]
			if e.Event != "llm.tokens" || e.UserID != user || !e.Timestamp.Equal(at) {
				t.Errorf("%s stored as %+v", id, e)
			}
			if p := props(t, e); p["$source"] != "/llm/gateway" || p["model"] != "m1" {
				t.Errorf("%s props %v", id, p)
			}
		}
		if got := compatMetric(t, h, "cloudevents", "duplicate"); got != 2 {
			t.Errorf("duplicate %d, want 2 (the retry and the resent ce-2)", got)
		}
		wantActiveUsers(t, h, o, 2)
		h.noPanic(t)
	})
}

// TestCompatRefusals checks each format's error answers: bad bodies,
// missing or weak keys, and that a bad message in a batch loses none of
// the good ones.
func TestCompatRefusals(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("refuse")
	w := h.createKey(o, "analytics:write")
	ro := h.createKey(o, "analytics:read")
	basic := func(key string) map[string]string {
		r, _ := http.NewRequest("POST", "/", nil)
		r.SetBasicAuth(key, "")
		return map[string]string{"Authorization": r.Header.Get("Authorization")}
	}

	segmentErr := func(r *apiResponse, status int) {
		t.Helper()
		r.want(t, status)
		if m := r.object(t); m["success"] != false || m["message"] == "" {
			t.Errorf("%s: want Segment's error shape", r)
		}
	}
	segmentErr(h.do("POST", "/v1/batch", `{"batch":[]}`, basic(w.Key)), http.StatusBadRequest)
	segmentErr(h.do("POST", "/v1/batch", `not json`, basic(w.Key)), http.StatusBadRequest)
	segmentErr(h.do("POST", "/v1/track", `{"event":"x","userId":"u"}`, nil), http.StatusUnauthorized)
	segmentErr(h.do("POST", "/v1/track", `{"event":"x","userId":"u"}`, basic(ro.Key)), http.StatusForbidden)
	segmentErr(h.do("POST", "/v1/t", `{"event":"x","userId":"u","properties":{"p":"`+strings.Repeat("a", 33<<10)+`"}}`, basic(w.Key)), http.StatusRequestEntityTooLarge)
	// writeKey in the body; one bad message among good ones.
	h.do("POST", "/v1/batch", `{"writeKey":"`+w.Key+`","batch":[
		{"type":"track","messageId":"ok-1","userId":"u","event":"Good"},
		{"type":"nope","messageId":"bad-1"},
		{"type":"track","messageId":"bad-2","userId":"u"},
		{"type":"track","messageId":"ok-2","anonymousId":"a","event":"Good","timestamp":"2999-01-01T00:00:00Z"},
		{"type":"identify","messageId":"ok-3","userId":"u","traits":{"n":1}}]}`, nil).want(t, http.StatusOK)
	evs := eventsOf(t, h, o, "segment")
	if _, ok := evs["ok-1"]; !ok || len(evs) != 2 {
		t.Errorf("stored %v, want ok-1 and ok-3 (ok-2 is in the future)", evs)
	}
	if got := compatMetric(t, h, "segment", "rejected"); got != 3 {
		t.Errorf("rejected %d, want 3", got)
	}
	if !strings.Contains(h.logs.String(), `"events rejected"`) {
		t.Errorf("rejections are not logged: %s", h.logs.String())
	}

	postHogErr := func(r *apiResponse, status int, typ string) {
		t.Helper()
		r.want(t, status)
		if m := r.object(t); m["type"] != typ || m["detail"] == "" {
			t.Errorf("%s: want PostHog's error shape with type %s", r, typ)
		}
	}
	postHogErr(h.do("POST", "/batch/", `{"api_key":"`+w.Key+`","batch":{}}`, nil), http.StatusBadRequest, "validation_error")
	postHogErr(h.do("POST", "/capture/", `"str"`, nil), http.StatusBadRequest, "validation_error")
	postHogErr(h.do("POST", "/e", `[{"event":"x","properties":{"distinct_id":"d"}}]`, nil), http.StatusUnauthorized, "authentication_error")
	postHogErr(h.do("POST", "/i/v0/e/", `{"api_key":"tk_nope","event":"x"}`, nil), http.StatusUnauthorized, "authentication_error")
	postHogErr(h.do("POST", "/e/?compression=gzip-js", "not gzip", nil), http.StatusBadRequest, "validation_error")
	h.do("POST", "/track", `{"api_key":"`+w.Key+`","batch":[{"event":"ok","uuid":"ph-ok","distinct_id":"d"},{"uuid":"ph-bad"}]}`, nil).
		want(t, http.StatusOK)
	if evs := eventsOf(t, h, o, "posthog"); len(evs) != 1 {
		t.Errorf("stored %v, want ph-ok only", evs)
	}

	ce := func(body, ct string, key string) *apiResponse {
		return h.do("POST", "/api/v1/events", body, hdr(key, "", "Content-Type", ct))
	}
	wantProblem(t, ce(`{"id":"x"}`, "application/cloudevents+json", w.Key), http.StatusBadRequest)
	wantProblem(t, ce(`{"specversion":"1.0","id":"x","source":"s","type":"t"}`, "application/cloudevents-batch+json", w.Key), http.StatusBadRequest)
	wantProblem(t, ce(`{}`, "text/plain", w.Key), http.StatusUnsupportedMediaType)
	wantProblem(t, ce(`{"specversion":"1.0","id":"x","source":"s","type":"t"}`, "application/json", ""), http.StatusUnauthorized)
	wantProblem(t, ce(`{"specversion":"1.0","id":"x","source":"s","type":"t"}`, "application/json", ro.Key), http.StatusForbidden)
	p := wantProblem(t, ce(`[{"specversion":"1.0","id":"ce-ok","source":"s","type":"t"},{"specversion":"1.0","id":"ce-bad","type":"t"}]`,
		"application/cloudevents-batch+json", w.Key), http.StatusBadRequest)
	if !p.hasField("events[1]") {
		t.Errorf("problem %+v does not name events[1]", p)
	}
	if evs := eventsOf(t, h, o, "cloudevents"); len(evs) != 1 {
		t.Errorf("stored %v, want ce-ok, not lost with the bad one", evs)
	}
	h.noPanic(t)
}
