package server_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// createPublishableKey creates a publishable key in o's tenant.
func (h *harness) createPublishableKey(o owner, rate int, origins ...string) createdKey {
	h.t.Helper()
	r := h.do("POST", "/api/keys", map[string]any{"name": h.uniq("site"), "kind": "publishable",
		"allowed_origins": origins, "rate_limit_per_minute": rate}, o.h())
	r.want(h.t, http.StatusCreated)
	var k createdKey
	r.decode(h.t, &k)
	if len(k.Scopes) != 1 || k.Scopes[0] != "analytics:write" {
		h.t.Fatalf("publishable key scopes %v, want analytics:write only", k.Scopes)
	}
	return k
}

// sitePage is a page of a host app on another origin that loads
// /js/tally.js from tally with key.
const sitePage = `<!doctype html><html><head><title>%s</title>
<script src="%s/js/tally.js" data-key="%s"></script>
</head><body><h1>%s</h1>
<script>
tally.track("button.clicked", {n: 1});
window.probe = function (body) {
  return fetch(%q + "/api/analytics/events?key=" + %q, {method: "POST", body: body, headers: {"Content-Type": "text/plain"}})
    .then(function (r) { return r.status; }, function (e) { return "error " + e; });
};
</script></body></html>`

// newSite serves sitePage at every path, for key, as another origin.
func newSite(t *testing.T, tallyURL, key string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, sitePage, r.URL.Path, tallyURL, key, r.URL.Path, tallyURL, key)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestBrowserIngestion loads pages of a host app, on another origin, that
// use /js/tally.js with a publishable key, in Chromium: their page views
// and events arrive (also the one sent by sendBeacon as the page is left),
// while a page of an origin the key does not allow is refused.
func TestBrowserIngestion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("web")
	// The allowed site's origin is known once it listens; its handler
	// reads the key when it serves.
	var key string
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, sitePage, r.URL.Path, h.srv.URL, key, r.URL.Path, h.srv.URL, key)
	}))
	t.Cleanup(site.Close)
	key = h.createPublishableKey(o, 0, site.URL).Key
	other := newSite(t, h.srv.URL, key)

	b := newBrowserSession(t, site.URL)
	b.do(chromedp.Navigate(site.URL + "/pricing"))
	b.waitJS("tally.js loaded", `window.tally && window.tally._loaded === true`)
	events := func() []apiEvent {
		return h.allEvents(o.h(), url.Values{"source": {"browser"}})
	}
	has := func(name, path string) bool {
		for _, e := range events() {
			if e.Event == name && (path == "" || strings.Contains(string(e.Props), `"path":"`+path+`"`)) {
				return true
			}
		}
		return false
	}
	eventually(t, "the page view and the custom event arrive", func() bool {
		return has("page.view", "/pricing") && has("button.clicked", "")
	})
	for _, e := range events() {
		if !strings.HasPrefix(e.UserID, "anon-") {
			t.Errorf("event %s has user_id %q, want the page's anonymous id", e.Event, e.UserID)
		}
	}
	// An event still queued when the page is left goes by sendBeacon.
	b.do(chromedp.Evaluate[chromedp.Void](`tally.track("page.left", {}); location.href = "/docs"`))
	eventually(t, "the queued event and the next page view arrive", func() bool {
		return has("page.left", "") && has("page.view", "/docs")
	})

	// The same key from an origin it does not allow: 403, nothing stored.
	b.do(chromedp.Navigate(other.URL + "/elsewhere"))
	b.waitJS("tally.js loaded", `window.tally && window.tally._loaded === true`)
	status := browserEval[any](b, `probe(JSON.stringify({event: "probe.other", event_id: "probe-other"}))`)
	if status != 403.0 {
		t.Errorf("a disallowed origin got %v, want 403", status)
	}
	// From the allowed origin the same probe is stored.
	b.do(chromedp.Navigate(site.URL + "/again"))
	b.waitJS("tally.js loaded", `window.tally && window.tally._loaded === true`)
	if status := browserEval[any](b, `probe(JSON.stringify({event: "probe.site", event_id: "probe-site"}))`); status != 202.0 {
		t.Errorf("the allowed origin got %v, want 202", status)
	}
	for _, e := range events() {
		if e.Event == "probe.other" || strings.Contains(string(e.Props), "/elsewhere") {
			t.Errorf("an event of the disallowed origin was stored: %+v", e)
		}
	}
	// The one network error is the refused probe's.
	b.wantCleanConsole("browser ingestion", h.srv.URL+"/api/analytics/events?key="+key)
	h.noPanic(t)
}

// TestPublishableKeyRules checks a publishable key outside the browser:
// refused on every route but the ingestion ones, from another origin,
// past its rate limit, and never a secret key in the URL; CORS answers
// of the ingestion routes.
func TestPublishableKeyRules(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("pub")
	const origin = "https://app.example.test"
	k := h.createPublishableKey(o, 0, origin)
	pub := hdr(k.Key, "", "Origin", origin)

	// Every route but ingestion refuses it.
	for _, p := range h.app.Server.Patterns() {
		method, path, _ := strings.Cut(p, " ")
		if !strings.HasPrefix(path, "/api/") || path == "/api/analytics/events" && method == "POST" || path == "/api/v1/events" ||
			strings.HasPrefix(path, "/api/auth/") && method == "POST" && path != "/api/auth/logout" {
			continue
		}
		path = strings.NewReplacer("{slug}", "pub", "{user_id}", "1", "{id}", "1", "{metric}", "m").Replace(path)
		r := h.do(method, path, "{}", pub)
		// (410: a retired route, refused to everyone.)
		if r.Status != http.StatusForbidden && r.Status != http.StatusUnauthorized && r.Status != http.StatusGone {
			t.Errorf("%s with a publishable key: %s, want 403 or 401", p, r)
		}
	}
	// Ingestion takes it, with the Origin it allows, as a header or in the
	// URL with a text/plain body (sendBeacon).
	h.do("POST", "/api/analytics/events", `{"event":"pub.a"}`, pub).want(t, http.StatusAccepted)
	h.do("POST", "/api/analytics/events?key="+k.Key, `{"event":"pub.b"}`, hdr("", "", "Origin", origin, "Content-Type", "text/plain;charset=UTF-8")).
		want(t, http.StatusAccepted)
	h.do("POST", "/v1/track", `{"event":"Pub C","userId":"u","writeKey":"`+k.Key+`"}`, hdr("", "", "Origin", origin)).want(t, http.StatusOK)
	wantProblem(t, h.do("POST", "/api/analytics/events", `{"event":"pub.x"}`, hdr(k.Key, "", "Origin", "https://evil.example.test")), http.StatusForbidden)
	wantProblem(t, h.do("POST", "/api/analytics/events", `{"event":"pub.x"}`, hdr(k.Key, "")), http.StatusForbidden)
	h.do("POST", "/v1/track", `{"event":"Pub X","userId":"u","writeKey":"`+k.Key+`"}`, hdr("", "", "Origin", "https://evil.example.test")).
		want(t, http.StatusForbidden)
	// A secret key is never taken from the URL; text/plain stays a 415
	// without a key there.
	w := h.createKey(o, "analytics:write")
	wantProblem(t, h.do("POST", "/api/analytics/events?key="+w.Key, `{"event":"pub.x"}`, nil), http.StatusUnauthorized)
	wantProblem(t, h.do("POST", "/api/analytics/events", `{"event":"pub.x"}`, hdr(w.Key, "", "Content-Type", "text/plain")), http.StatusUnsupportedMediaType)
	if evs := h.allEvents(o.h(), url.Values{"event": {"pub.x"}}); len(evs) != 0 {
		t.Errorf("refused events were stored: %v", evs)
	}

	// CORS preflight and headers, for the ingestion routes only.
	pre := h.do("OPTIONS", "/api/analytics/events", nil, hdr("", "", "Origin", origin, "Access-Control-Request-Method", "POST",
		"Access-Control-Request-Headers", "authorization, content-type"))
	pre.want(t, http.StatusNoContent)
	if pre.Header.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight headers %v", pre.Header)
	}
	if r := h.do("GET", "/api/analytics/usage", nil, hdr("", "", "Origin", origin)); r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a read route answers CORS: %v", r.Header)
	}
	js := h.do("GET", "/js/tally.js", nil, nil).want(t, http.StatusOK)
	if !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") || !strings.Contains(string(js.Body), "sendBeacon") {
		t.Errorf("/js/tally.js: %s %.80s", js.Header.Get("Content-Type"), js.Body)
	}

	// The rate limit per key and minute.
	lim := h.createPublishableKey(o, 2)
	for range 2 {
		h.do("POST", "/api/analytics/events", `{"event":"lim.ok"}`, hdr(lim.Key, "")).want(t, http.StatusAccepted)
	}
	over := h.do("POST", "/api/analytics/events", `{"event":"lim.over"}`, hdr(lim.Key, ""))
	wantProblem(t, over, http.StatusTooManyRequests)
	if over.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After past the rate limit")
	}
	// The rate limit per key, address and minute.
	r := h.do("POST", "/api/keys", map[string]any{"name": "per-address", "kind": "publishable", "address_rate_limit_per_minute": 1}, o.h())
	r.want(t, http.StatusCreated)
	var addr createdKey
	r.decode(t, &addr)
	h.do("POST", "/api/analytics/events", `{"event":"addr.ok"}`, hdr(addr.Key, "")).want(t, http.StatusAccepted)
	wantProblem(t, h.do("POST", "/api/analytics/events", `{"event":"addr.over"}`, hdr(addr.Key, "")), http.StatusTooManyRequests)
	h.noPanic(t)
}
