package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAPIEventsIngest(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	key := h.createKey(o, "analytics:write")
	w := hdr(key.Key, "")

	// One event.
	r := h.do("POST", "/api/analytics/events", map[string]any{"event": "shop.order.created", "user_id": "u1", "value": 12.5, "props": map[string]any{"sku": "A-1"}}, w)
	r.want(t, http.StatusAccepted)
	if got := strings.TrimSpace(string(r.Body)); got != `{"accepted":1,"duplicates":0,"rejected":[]}` {
		t.Errorf("single event answer %s", got)
	}

	// A batch with bad events: the good ones are stored, the bad ones named.
	res := h.send(w, map[string]any{"sent_at": time.Now().UTC().Format(time.RFC3339Nano), "batch": []any{
		map[string]any{"event": "shop.order.paid", "user_id": "u1"},
		map[string]any{"event": ""},
		map[string]any{"event": "shop.order.paid", "colour": "red"},
		map[string]any{"event": "shop.cart.viewed", "source": "web"},
		map[string]any{"event": "shop.x", "value": "ten"},
		"not an object",
	}})
	if res.Accepted != 2 || res.Duplicates != 0 || len(res.Rejected) != 4 {
		t.Fatalf("partial batch %+v", res)
	}
	for i, want := range []int{1, 2, 4, 5} {
		if res.Rejected[i].Index != want || res.Rejected[i].Error == "" {
			t.Errorf("rejected[%d] = %+v, want index %d", i, res.Rejected[i], want)
		}
	}
	if !strings.Contains(res.Rejected[1].Error, "colour") || !strings.Contains(res.Rejected[2].Error, "value") {
		t.Errorf("rejections do not name the field: %+v", res.Rejected)
	}

	// Nothing valid: 400 with the reasons.
	r = h.do("POST", "/api/analytics/events", map[string]any{"batch": []any{
		map[string]any{"event": "bad name"}, map[string]any{"event": "ok.name", "props": []int{1}},
	}}, w)
	p := wantProblem(t, r, http.StatusBadRequest)
	if len(p.Errors) != 2 || !strings.Contains(p.Errors[0].Field+p.Errors[0].Message, "0") || !strings.Contains(p.Errors[1].Field+p.Errors[1].Message, "1") ||
		!strings.Contains(p.Errors[1].Message, "props") {
		t.Errorf("all-rejected problem %s", r.Body)
	}

	long := func(n int) string { return strings.Repeat("a", n) }
	nested := map[string]any{"l2": map[string]any{"l3": map[string]any{"l4": map[string]any{"l5": map[string]any{"l6": map[string]any{"x": 1}}}}}}
	rules := []struct {
		name  string
		body  string
		field string // named in the problem
		code  int
	}{
		{"event missing", `{"user_id":"u"}`, "event", 400},
		{"event empty segment", `{"event":"a..b"}`, "event", 400},
		{"event bad char", `{"event":"a.b!"}`, "event", 400},
		{"event 129 chars", `{"event":"` + long(129) + `"}`, "event", 400},
		{"event not string", `{"event":5}`, "event", 400},
		{"source upper case", `{"event":"a.b","source":"Web"}`, "source", 400},
		{"source empty", `{"event":"a.b","source":""}`, "source", 400},
		{"source 65 chars", `{"event":"a.b","source":"` + long(65) + `"}`, "source", 400},
		{"timestamp not RFC 3339", `{"event":"a.b","timestamp":"yesterday"}`, "timestamp", 400},
		{"timestamp 2h ahead", `{"event":"a.b","timestamp":"` + time.Now().Add(2*time.Hour).UTC().Format(time.RFC3339) + `"}`, "timestamp", 400},
		{"timestamp beyond retention", `{"event":"a.b","timestamp":"` + time.Now().AddDate(0, 0, -401).UTC().Format(time.RFC3339) + `"}`, "timestamp", 400},
		{"event_id 129 chars", `{"event":"a.b","event_id":"` + long(129) + `"}`, "event_id", 400},
		{"user_id NUL", `{"event":"a.b","user_id":"a\u0000b"}`, "user_id", 400},
		{"value not number", `{"event":"a.b","value":"1"}`, "value", 400},
		{"value too big", `{"event":"a.b","value":1e400}`, "value", 400},
		{"props array", `{"event":"a.b","props":[1]}`, "props", 400},
		{"props too deep", `{"event":"a.b","props":` + mustJSON(t, nested) + `}`, "props", 400},
		{"props over 8 KiB", `{"event":"a.b","props":{"k":"` + long(8200) + `"}}`, "props", 400},
		{"unknown field", `{"event":"a.b","colour":"red"}`, "colour", 400},
		{"duplicate field", `{"event":"a.b","event":"c.d"}`, "event", 400},
		{"invalid UTF-8", "{\"event\":\"a.b\",\"user_id\":\"\xff\"}", "", 400},
		{"not an object", `["a.b"]`, "body", 400},
		{"not JSON", `{"event":`, "body", 400},
		{"empty batch", `{"batch":[]}`, "batch", 400},
		{"batch not array", `{"batch":{"event":"a.b"}}`, "batch", 400},
		{"bad sent_at", `{"batch":[{"event":"a.b"}],"sent_at":"now"}`, "sent_at", 400},
		{"field next to batch", `{"batch":[{"event":"a.b"}],"extra":1}`, "extra", 400},
		{"1001 events", `{"batch":[` + strings.TrimSuffix(strings.Repeat(`{"event":"a.b"},`, 1001), ",") + `]}`, "batch", 413},
	}
	for _, tt := range rules {
		t.Run(tt.name, func(t *testing.T) {
			r := h.doT(t, "POST", "/api/analytics/events", tt.body, w)
			p := wantProblem(t, r, tt.code)
			named := tt.field == ""
			for _, e := range p.Errors {
				named = named || e.Field == tt.field || strings.Contains(e.Message, tt.field)
			}
			if !named {
				t.Errorf("%s: does not name %q", r, tt.field)
			}
		})
	}
	// Five levels of props are fine.
	five := map[string]any{"l2": map[string]any{"l3": map[string]any{"l4": map[string]any{"l5": map[string]any{"x": 1}}}}}
	h.send(w, map[string]any{"event": "deep.ok", "props": five})
	// 1000 events are fine.
	if res := h.send(w, map[string]any{"batch": slices.Repeat([]any{map[string]string{"event": "bulk.one"}}, 1000)}); res.Accepted != 1000 {
		t.Errorf("1000 events: %+v", res)
	}

	// sent_at corrects the client's clock: a client 2h ahead is not "in the future".
	ahead := time.Now().Add(2 * time.Hour).UTC()
	res = h.send(w, map[string]any{"sent_at": ahead.Format(time.RFC3339Nano), "batch": []any{
		map[string]any{"event": "skew.test", "event_id": "skewed", "timestamp": ahead.Add(-time.Minute).Format(time.RFC3339Nano)},
	}})
	if res.Accepted != 1 {
		t.Fatalf("skewed batch %+v", res)
	}
	evs := h.listEvents(o.h(), "event=skew.test").Events
	if len(evs) != 1 || time.Until(evs[0].Timestamp.Add(time.Minute)).Abs() > 30*time.Second {
		t.Errorf("skew-corrected event %+v", evs)
	}
	if time.Since(evs[0].ReceivedAt) > time.Minute {
		t.Errorf("received_at %v", evs[0].ReceivedAt)
	}

	// The stored single event.
	evs = h.listEvents(o.h(), "event=shop.order.created").Events
	if len(evs) != 1 {
		t.Fatalf("shop.order.created: %+v", evs)
	}
	e := evs[0]
	if e.UserID != "u1" || e.Source != "api" || e.Value != 12.5 || e.EventID == "" || e.ID <= 0 || string(e.Props) != `{"sku":"A-1"}` {
		t.Errorf("stored %+v props %s", e, e.Props)
	}
	if e.Timestamp.Location() != time.UTC || time.Since(e.Timestamp) > time.Minute {
		t.Errorf("timestamp %v", e.Timestamp)
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAPIEventsDedupAndRedaction(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a := h.newTenant("acme")
	b := h.newTenant("bobco")

	first := map[string]any{"event": "dedup.test", "event_id": "evt-1", "user_id": "first"}
	if res := h.send(a.h(), first); res.Accepted != 1 || res.Duplicates != 0 {
		t.Errorf("first %+v", res)
	}
	// Again, and with another payload: a duplicate; the first wins.
	if res := h.send(a.h(), first); res.Accepted != 0 || res.Duplicates != 1 || len(res.Rejected) != 0 {
		t.Errorf("again %+v", res)
	}
	if res := h.send(a.h(), map[string]any{"event": "dedup.test", "event_id": "evt-1", "user_id": "second"}); res.Duplicates != 1 {
		t.Errorf("changed payload %+v", res)
	}
	// Within one batch.
	res := h.send(a.h(), map[string]any{"batch": []any{
		map[string]any{"event": "dedup.test", "event_id": "evt-2"},
		map[string]any{"event": "dedup.test", "event_id": "evt-2"},
		map[string]any{"event": "dedup.test", "event_id": "evt-1"},
	}})
	if res.Accepted != 1 || res.Duplicates != 2 {
		t.Errorf("batch %+v", res)
	}
	// Another tenant may use the same ids.
	if res := h.send(b.h(), first); res.Accepted != 1 {
		t.Errorf("tenant b %+v", res)
	}
	evs := h.listEvents(a.h(), "event=dedup.test").Events
	if len(evs) != 2 {
		t.Fatalf("tenant a stored %d dedup.test events: %+v", len(evs), evs)
	}
	for _, e := range evs {
		if e.EventID == "evt-1" && e.UserID != "first" {
			t.Errorf("the first evt-1 did not win: %+v", e)
		}
	}
	if evs := h.listEvents(b.h(), "event=dedup.test").Events; len(evs) != 1 || evs[0].EventID != "evt-1" {
		t.Errorf("tenant b: %+v", evs)
	}
	// Only the stored ones count in metrics.
	if !regexp.MustCompile(`(?m)^sbh_analytics_events_total\{[^}]*event="dedup.test"[^}]*\} 2$`).MatchString(h.metrics()) {
		t.Errorf("sbh_analytics_events_total for dedup.test is not 2 in total")
	}

	// Secret-named props are redacted at every depth, case-insensitively.
	props := map[string]any{
		"plan":     "pro",
		"Password": "hunter2",
		"nested": map[string]any{
			"api_key": "sk_live_1",
			"deeper":  map[string]any{"Authorization": "Bearer abc", "card_number": "4242424242424242", "keep": "me"},
			"list":    []any{map[string]any{"token": "t0k3n"}, "plain"},
		},
		"user_password":  "x1",
		"githubToken":    "x2",
		"client_secret":  "x3",
		"not_sensitive":  42,
		"secret_santa_x": "x4",
	}
	h.send(a.h(), map[string]any{"event": "redact.test", "props": props})
	evs = h.listEvents(a.h(), "event=redact.test").Events
	if len(evs) != 1 {
		t.Fatalf("redact.test: %+v", evs)
	}
	var got map[string]any
	if err := json.Unmarshal(evs[0].Props, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"plan":     "pro",
		"Password": "[redacted]",
		"nested": map[string]any{
			"api_key": "[redacted]",
			"deeper":  map[string]any{"Authorization": "[redacted]", "card_number": "[redacted]", "keep": "me"},
			"list":    []any{map[string]any{"token": "[redacted]"}, "plain"},
		},
		"user_password":  "[redacted]",
		"githubToken":    "[redacted]",
		"client_secret":  "[redacted]",
		"not_sensitive":  float64(42),
		"secret_santa_x": "[redacted]",
	}
	if mustJSON(t, got) != mustJSON(t, want) {
		t.Errorf("props\n got %s\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
	for _, s := range []string{"hunter2", "sk_live_1", "Bearer abc", "4242424242424242", "t0k3n", "x1", "x2", "x3", "x4"} {
		if bytes.Contains(evs[0].Props, []byte(s)) {
			t.Errorf("props keep the secret %q", s)
		}
	}
	// Nor does the export show them.
	r := h.do("GET", "/api/analytics/export.csv?event=redact.test", nil, a.h())
	r.want(t, http.StatusOK)
	if bytes.Contains(r.Body, []byte("hunter2")) || bytes.Contains(r.Body, []byte("sk_live_1")) {
		t.Errorf("export shows a secret: %s", r.Body)
	}
}

// seedEvent is an event the query tests send, with a name to refer to it.
type seedEvent struct {
	ref, event, user, source string
	at                       time.Time
}

func TestAPIEventsQuery(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	// Every seeded event is older than base, and so older than anything
	// the server tracks on its own during the test.
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	seeds := []seedEvent{
		{"old", "shop.order.created", "u9", "web", base.AddDate(0, 0, -10)},
		{"e1", "auth.user.signup", "u1", "web", base.Add(-72 * time.Hour)},
		{"e2", "auth.user.logout", "u2", "web", base.Add(-48 * time.Hour)},
		{"e3", "shop.order.created", "u1", "api", base.Add(-24 * time.Hour)},
		{"e4", "shop.order.paid", "u1", "api", base.Add(-time.Hour)},
		{"e5", "authx.other", "u3", "api", base.Add(-30 * time.Minute)},
		{"e6", "auth", "u3", "ios", base.Add(-10 * time.Minute)},
	}
	var batch []any
	for _, s := range seeds {
		batch = append(batch, map[string]any{"event": s.event, "event_id": s.ref, "user_id": s.user, "source": s.source, "timestamp": s.at.Format(time.RFC3339)})
	}
	if res := h.send(o.h(), map[string]any{"batch": batch}); res.Accepted != len(seeds) {
		t.Fatalf("seed %+v", res)
	}
	day := func(t time.Time) string { return t.Format(time.DateOnly) }
	rfc := func(t time.Time) string { return t.Format(time.RFC3339) }
	to := "&to=" + url.QueryEscape(rfc(base))

	for _, tt := range []struct {
		query string
		want  []string // refs, newest first
	}{
		{"to=" + url.QueryEscape(rfc(base)), []string{"e6", "e5", "e4", "e3", "e2", "e1"}}, // default from: 7 days back
		{"from=" + day(base.AddDate(0, 0, -11)) + to, []string{"e6", "e5", "e4", "e3", "e2", "e1", "old"}},
		{"event=shop.order.paid", []string{"e4"}},
		{"event=auth.*" + to, []string{"e2", "e1"}},
		{"event=shop.*&from=" + day(base.AddDate(0, 0, -30)), []string{"e4", "e3", "old"}},
		{"event=*" + to, []string{"e6", "e5", "e4", "e3", "e2", "e1"}},
		{"event=auth", []string{"e6"}},
		{"user_id=u1", []string{"e4", "e3", "e1"}},
		{"user_id=u1&event=shop.*", []string{"e4", "e3"}},
		{"source=web", []string{"e2", "e1"}},
		{"source=ios&user_id=u3", []string{"e6"}},
		{"user_id=nobody", nil},
		{"from=" + day(base.Add(-48*time.Hour)) + to, []string{"e6", "e5", "e4", "e3", "e2"}},
		{"from=" + day(base.Add(-72*time.Hour)) + "&to=" + day(base.Add(-72*time.Hour)), []string{"e1"}},
		{"from=" + url.QueryEscape(rfc(base.Add(-90*time.Minute))) + to, []string{"e6", "e5", "e4"}},
		{"from=" + url.QueryEscape(rfc(base.Add(-time.Hour))) + "&to=" + url.QueryEscape(rfc(base.Add(-30*time.Minute))), []string{"e5", "e4"}},
		{"from=" + url.QueryEscape(base.Add(-time.Hour).In(time.FixedZone("X", 3600)).Format(time.RFC3339)) + "&to=" + url.QueryEscape(rfc(base.Add(-59*time.Minute))), []string{"e4"}},
	} {
		p := h.listEvents(o.h(), tt.query)
		var got []string
		for _, e := range p.Events {
			got = append(got, e.EventID)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("?%s: got %v, want %v", tt.query, got, tt.want)
		}
		if p.NextCursor != nil {
			t.Errorf("?%s: next_cursor on the only page", tt.query)
		}
	}

	// Bad parameters.
	cursor := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tt := range []struct{ query, field string }{
		{"from=" + day(base) + "&to=" + day(base.AddDate(0, 0, -1)), "from"},
		{"from=" + url.QueryEscape(rfc(base)) + "&to=" + url.QueryEscape(rfc(base.Add(-time.Second))), "from"},
		{"from=yesterday", "from"},
		{"to=2026-13-01", "to"},
		{"from=2026-01-15T25:00:00Z", "from"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=-1", "limit"},
		{"limit=x", "limit"},
		{"limit=1.5", "limit"},
		{"cursor=!!!", "cursor"},
		{"cursor=abc", "cursor"},
		{"cursor=" + cursor("nodot"), "cursor"},
		{"cursor=" + cursor("1.2.3"), "cursor"},
		{"cursor=" + cursor("1.-5"), "cursor"},
		{"cursor=" + strings.Repeat("A", 100), "cursor"},
		{"event=a*b", "event"},
		{"event=has+space", "event"},
		{"event=**", "event"},
		{"user_id=" + strings.Repeat("u", 257), "user_id"},
		{"source=" + strings.Repeat("s", 65), "source"},
	} {
		r := h.do("GET", "/api/analytics/events?"+tt.query, nil, o.h())
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%s: does not name %s", r, tt.field)
		}
	}
	if p := h.listEvents(o.h(), "limit=1000"+to); len(p.Events) != 6 {
		t.Errorf("limit=1000: %d events", len(p.Events))
	}
	p := h.listEvents(o.h(), "limit=1"+to)
	if len(p.Events) != 1 || p.Events[0].EventID != "e6" || p.NextCursor == nil {
		t.Fatalf("limit=1: %+v", p)
	}
	// The cursor continues with the same filters.
	p = h.listEvents(o.h(), "limit=2"+to+"&cursor="+url.QueryEscape(*p.NextCursor))
	if len(p.Events) != 2 || p.Events[0].EventID != "e5" || p.Events[1].EventID != "e4" || p.NextCursor == nil {
		t.Errorf("second page: %+v", p)
	}
	if p := h.listEvents(o.h(), "limit=50"); len(p.Events) > 50 {
		t.Errorf("default limit")
	}
}

// TestAPIEventsPaginationWhileInserting pages through a tenant's events
// while newer and older events keep arriving between the pages: every
// original event is seen exactly once, in order.
func TestAPIEventsPaginationWhileInserting(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	base := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second)
	var batch []any
	original := map[string]bool{}
	for i := range 30 {
		// Groups of three share a timestamp, so that ties are broken by id.
		at := base.Add(time.Duration(i/3) * time.Minute)
		id := fmt.Sprintf("orig-%02d", i)
		original[id] = true
		batch = append(batch, map[string]any{"event": "page.test", "event_id": id, "timestamp": at.Format(time.RFC3339)})
	}
	h.send(o.h(), map[string]any{"batch": batch})

	q := url.Values{"event": {"page.*"}, "limit": {"4"}, "from": {base.AddDate(0, 0, -5).Format(time.DateOnly)}}
	seen := map[string]int{}
	var order []apiEvent
	for page := 0; ; page++ {
		p := h.listEvents(o.h(), q.Encode())
		order = append(order, p.Events...)
		for _, e := range p.Events {
			seen[e.EventID]++
		}
		// Between pages: a newer event, an older one, and one at a
		// timestamp already passed.
		h.send(o.h(), map[string]any{"batch": []any{
			map[string]any{"event": "page.new", "event_id": fmt.Sprintf("new-%d", page)},
			map[string]any{"event": "page.old", "event_id": fmt.Sprintf("old-%d", page), "timestamp": base.Add(-time.Duration(page+1) * time.Hour).Format(time.RFC3339)},
			map[string]any{"event": "page.mid", "event_id": fmt.Sprintf("mid-%d", page), "timestamp": base.Add(5 * time.Minute).Format(time.RFC3339)},
		}})
		if p.NextCursor == nil {
			break
		}
		if page > 100 {
			t.Fatal("pagination does not end")
		}
		q.Set("cursor", *p.NextCursor)
	}
	for id := range original {
		if seen[id] != 1 {
			t.Errorf("original event %s seen %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s seen %d times", id, n)
		}
	}
	for i := 1; i < len(order); i++ {
		a, b := order[i-1], order[i]
		// Ties in time are in the store's order, which the per-tenant
		// opaque ids do not show (tally.EventIDs).
		if b.Timestamp.After(a.Timestamp) {
			t.Errorf("not newest first: %s (%v) before %s (%v)", a.EventID, a.Timestamp, b.EventID, b.Timestamp)
		}
	}
}

func TestAPIDeleteUserEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	h.send(o.h(), map[string]any{"batch": []any{
		map[string]any{"event": "gdpr.a", "user_id": "user/42"},
		map[string]any{"event": "gdpr.b", "user_id": "user/42"},
		map[string]any{"event": "gdpr.c", "user_id": "user/42", "timestamp": time.Now().AddDate(0, 0, -30).UTC().Format(time.RFC3339)},
		map[string]any{"event": "gdpr.a", "user_id": "user/7"},
	}})
	path := "/api/analytics/users/" + url.PathEscape("user/42") + "/events"
	r := h.do("DELETE", path, nil, o.h())
	r.want(t, http.StatusOK)
	if got := strings.TrimSpace(string(r.Body)); got != `{"deleted":3}` {
		t.Errorf("delete answer %s", got)
	}
	from := "&from=" + time.Now().AddDate(0, 0, -60).Format(time.DateOnly)
	if evs := h.listEvents(o.h(), "user_id=user%2F42"+from).Events; len(evs) != 0 {
		t.Errorf("events left: %+v", evs)
	}
	if evs := h.listEvents(o.h(), "user_id=user%2F7"+from).Events; len(evs) != 1 {
		t.Errorf("another user's events: %+v", evs)
	}
	r = h.do("DELETE", path, nil, o.h())
	r.want(t, http.StatusOK)
	if got := strings.TrimSpace(string(r.Body)); got != `{"deleted":0}` {
		t.Errorf("second delete %s", got)
	}

	r = h.do("GET", "/api/analytics/audit?action=events.user_deleted", nil, o.h())
	r.want(t, http.StatusOK)
	var audit struct {
		Entries []struct {
			Actor  string         `json:"actor"`
			Action string         `json:"action"`
			Target string         `json:"target"`
			Meta   map[string]any `json:"meta"`
		} `json:"entries"`
	}
	r.decode(t, &audit)
	if len(audit.Entries) != 2 {
		t.Fatalf("audit %s", r.Body)
	}
	e := audit.Entries[1] // oldest last
	if e.Target != "user/42" || !strings.Contains(e.Actor, o.email) || e.Meta["deleted"] != float64(3) {
		t.Errorf("audit entry %+v", e)
	}

	// A user id of 256 non-ASCII characters (more than 256 bytes) is
	// accepted by ingestion, so it can be filtered and deleted too.
	wide := strings.Repeat("é", 256)
	h.send(o.h(), map[string]any{"event": "gdpr.wide", "user_id": wide})
	if evs := h.listEvents(o.h(), url.Values{"user_id": {wide}}.Encode()).Events; len(evs) != 1 {
		t.Errorf("filter by a 256-character user id: %d events", len(evs))
	}
	r = h.do("DELETE", "/api/analytics/users/"+url.PathEscape(wide)+"/events", nil, o.h())
	r.want(t, http.StatusOK)
	if got := strings.TrimSpace(string(r.Body)); got != `{"deleted":1}` {
		t.Errorf("delete of a 256-character user id: %s", got)
	}
	wantProblem(t, h.do("DELETE", "/api/analytics/users/"+url.PathEscape(wide+"é")+"/events", nil, o.h()), http.StatusBadRequest)
}
