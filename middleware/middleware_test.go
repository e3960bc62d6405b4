package middleware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/internal/app/apptest"
	"github.com/tallyhq/tally/middleware"
)

// tally is a real tally (temp SQLite file) with a tenant, a client
// tracking into it and a way to read back what was stored.
type tally struct {
	t      *testing.T
	url    string
	key    string
	hc     *http.Client
	client *client.Client
}

func newTally(t *testing.T) *tally {
	t.Helper()
	_, srv := apptest.Start(t, nil)
	tl := &tally{t: t, url: srv.URL, hc: srv.Client(), key: apptest.Key(t, srv, "acme", "analytics:write", "analytics:read")}
	var err error
	tl.client, err = client.New(srv.URL, tl.key, client.WithHTTPClient(srv.Client()), client.WithFlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.client.Close(context.Background()) })
	return tl
}

// call sends body as JSON with auth "token" or "token|tenant-slug".
func (tl *tally) call(method, path, auth string, body any, status int, out any) {
	tl.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, tl.url+path, rd)
	if err != nil {
		tl.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token, slug, _ := strings.Cut(auth, "|"); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
		if slug != "" {
			req.Header.Set("X-Tenant-Slug", slug)
		}
	}
	res, err := tl.hc.Do(req)
	if err != nil {
		tl.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != status {
		tl.t.Fatalf("%s %s: %d, want %d: %s", method, path, res.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tl.t.Fatal(err)
		}
	}
}

type storedEvent struct {
	Event  string `json:"event"`
	UserID string `json:"user_id"`
	Props  struct {
		Method     string   `json:"method"`
		Route      string   `json:"route"`
		Status     int      `json:"status"`
		DurationMS *float64 `json:"duration_ms"`
	} `json:"props"`
	raw json.RawMessage
}

// events flushes the client and returns the stored events named name,
// oldest first.
func (tl *tally) events(name string) []storedEvent {
	tl.t.Helper()
	if err := tl.client.Flush(tl.t.Context()); err != nil {
		tl.t.Fatalf("Flush: %v", err)
	}
	var page struct{ Events []json.RawMessage }
	tl.call("GET", "/api/analytics/events?limit=1000&event="+name, tl.key, nil, http.StatusOK, &page)
	out := make([]storedEvent, len(page.Events))
	for i, raw := range page.Events {
		j := len(page.Events) - 1 - i
		if err := json.Unmarshal(raw, &out[j]); err != nil {
			tl.t.Fatal(err)
		}
		out[j].raw = raw
	}
	return out
}

func serve(h http.Handler, method, target string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestTrackRecordsRouteStatusAndUserButNoQueryOrHeaders(t *testing.T) {
	t.Parallel()
	tl := newTally(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "item "+r.PathValue("id"))
	})
	h := middleware.Track(tl.client, middleware.WithUser(func(r *http.Request) string { return r.Header.Get("X-User") }))(mux)

	w := serve(h, "GET", "/items/42?token=qs-secret&email=a@b.test", map[string]string{
		"X-User": "u-7", "Authorization": "Bearer header-secret", "Cookie": "session=cookie-secret"})
	if w.Code != http.StatusTeapot || w.Body.String() != "item 42" {
		t.Fatalf("the handler's answer changed: %d %q", w.Code, w.Body)
	}
	serve(h, "GET", "/nowhere?x=qs-secret", nil) // no route matched: the path

	evs := tl.events(middleware.DefaultEventName)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	e := evs[0]
	if e.UserID != "u-7" || e.Props.Method != "GET" || e.Props.Route != "GET /items/{id}" ||
		e.Props.Status != http.StatusTeapot || e.Props.DurationMS == nil || *e.Props.DurationMS < 0 {
		t.Errorf("event %s: want user u-7, GET, route GET /items/{id}, status 418, a duration", e.raw)
	}
	if e := evs[1]; e.Props.Route != "/nowhere" || e.Props.Status != http.StatusNotFound || e.UserID != "" {
		t.Errorf("event %s: want route /nowhere (no query), status 404", e.raw)
	}
	for _, e := range evs {
		for _, secret := range []string{"qs-secret", "token", "email", "header-secret", "cookie-secret", "?", "Authorization"} {
			if bytes.Contains(e.raw, []byte(secret)) {
				t.Errorf("event %s records %q", e.raw, secret)
			}
		}
	}
}

func TestTrackRecordsPanicsAsServerErrors(t *testing.T) {
	t.Parallel()
	tl := newTally(t)
	h := middleware.Track(tl.client)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic("boom")
	}))
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the handler's own panic", p)
			}
		}()
		serve(h, "POST", "/explode", nil)
	}()
	evs := tl.events(middleware.DefaultEventName)
	if len(evs) != 1 || evs[0].Props.Status != http.StatusInternalServerError || evs[0].Props.Route != "/explode" || evs[0].Props.Method != "POST" {
		t.Errorf("events %+v: want one POST /explode with status 500", evs)
	}
}

func TestTrackOptions(t *testing.T) {
	t.Parallel()
	tl := newTally(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, isFlusher := w.(http.Flusher); !isFlusher {
			t.Error("the wrapped writer lost http.Flusher")
		}
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("ResponseController.Flush: %v", err)
		}
	})
	h := middleware.Track(tl.client,
		middleware.WithEventName("web.hit"),
		middleware.WithSkip(func(r *http.Request) bool { return r.URL.Path == "/healthz" }))(ok)
	serve(h, "GET", "/healthz", nil)
	serve(h, "BREW", "/pot", nil)
	evs := tl.events("web.hit")
	if len(evs) != 1 || evs[0].Props.Route != "/pot" || evs[0].Props.Method != "OTHER" || evs[0].Props.Status != http.StatusOK {
		t.Errorf("events %+v: want only /pot, method OTHER, status 200 (flushed)", evs)
	}
}

func TestTrackNeverFailsTheRequest(t *testing.T) {
	t.Parallel()
	c, err := client.New("http://tally.invalid", "tk_x")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	h := middleware.Track(c)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fine")
	}))
	start := time.Now()
	if w := serve(h, "GET", "/", nil); w.Code != http.StatusOK || w.Body.String() != "fine" {
		t.Errorf("with a closed client: %d %q", w.Code, w.Body)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("request took %s", d)
	}
}
