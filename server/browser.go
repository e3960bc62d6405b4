package server

import (
	_ "embed"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tallyhq/tally"
)

// Browser ingestion: publishable keys (tally.KeyPublishable) may send
// events from web pages — the ingestion routes only, from their allowed
// origins, within their rate limit — with CORS for those routes and
// /js/tally.js, tally's own small script.

//go:embed web/js/tally.js
var tallyJS []byte

// handleTallyJS serves /js/tally.js, for any page to load.
func (s *Server) handleTallyJS() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		w.WriteHeader(http.StatusOK)
		w.Write(tallyJS)
	})
}

// nativeEventsPath is the route of tally's own event ingestion.
const nativeEventsPath = "/api/analytics/events"

// ingestionPath reports whether POSTs to path send events: the routes a
// publishable key may use and that answer CORS.
func ingestionPath(path string) bool {
	switch path {
	case nativeEventsPath, "/api/v1/events", "/v1/batch", "/v1/b":
		return true
	}
	for _, sp := range segmentPaths {
		if path == sp.long || path == sp.short {
			return true
		}
	}
	for _, p := range postHogPaths {
		if path == p || path == p+"/" {
			return true
		}
	}
	return false
}

// publishableRoute reports whether a publishable key may be used on the
// route of r (its matched pattern).
func publishableRoute(r *http.Request) bool {
	method, path, _ := strings.Cut(r.Pattern, " ")
	return method == http.MethodPost && ingestionPath(strings.TrimSuffix(path, "{$}"))
}

// cors answers the CORS preflight of the ingestion routes and lets pages
// of any origin read their answers; which origins a key accepts is the
// key's (checkPublishable), so a refused origin gets a 403.
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !ingestionPath(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Content-Encoding, X-Request-ID")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", "X-Request-ID, Retry-After")
		next.ServeHTTP(w, r)
	})
}

// checkPublishable applies a publishable key's rules to r: an ingestion
// route only (EForbidden), from an allowed origin when the key names any
// (EForbidden; a request without Origin is refused then), within the
// key's requests per minute (ERateLimited with Retry-After). Other keys
// pass.
func (s *Server) checkPublishable(r *http.Request, k *tally.APIKey) error {
	if !k.Publishable() {
		return nil
	}
	if !publishableRoute(r) {
		return tally.Errorf(tally.EForbidden, "a publishable key may only send events")
	}
	if !k.AllowsOrigin(r.Header.Get("Origin")) {
		return tally.Errorf(tally.EForbidden, "this publishable key is not allowed from this origin")
	}
	limit := k.RatePerMinute
	if limit <= 0 {
		limit = tally.DefaultPublishableRate
	}
	now := s.now()
	if ok, after := s.keyRates.allow(rateKey{key: k.ID}, limit, now); !ok {
		return &retryError{error: tally.Errorf(tally.ERateLimited, "this publishable key is over its rate limit"), after: after}
	}
	if k.AddressRatePerMinute > 0 {
		if ok, after := s.keyRates.allow(rateKey{key: k.ID, addr: remoteHost(r)}, k.AddressRatePerMinute, now); !ok {
			return &retryError{error: tally.Errorf(tally.ERateLimited, "this address is over the publishable key's rate limit"), after: after}
		}
	}
	return nil
}

// rateKey is what a rate window counts: a key, or a key from one address.
type rateKey struct {
	key  int64
	addr string
}

// keyRates counts the requests of each publishable key, and of each key
// and address, in fixed one-minute windows, per instance. Windows of
// addresses are dropped once a minute old, so the map stays as large as
// one minute's clients.
type keyRates struct {
	mu      sync.Mutex
	windows map[rateKey]*rateWindow
	swept   time.Time
}

type rateWindow struct {
	start time.Time
	n     int
}

func newKeyRates() *keyRates { return &keyRates{windows: map[rateKey]*rateWindow{}} }

// allow counts one request of rk at now; false with the time to wait when
// limit is spent for the current minute.
func (kr *keyRates) allow(rk rateKey, limit int, now time.Time) (bool, time.Duration) {
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if now.Sub(kr.swept) >= time.Minute {
		for k, w := range kr.windows {
			if k.addr != "" && now.Sub(w.start) >= time.Minute {
				delete(kr.windows, k)
			}
		}
		kr.swept = now
	}
	win := kr.windows[rk]
	if win == nil || now.Sub(win.start) >= time.Minute {
		win = &rateWindow{start: now}
		kr.windows[rk] = win
	}
	if win.n >= limit {
		return false, win.start.Add(time.Minute).Sub(now)
	}
	win.n++
	return true, 0
}

// queryKey is the publishable key of a request that cannot set headers
// (navigator.sendBeacon, tally.js): the key query parameter of an
// ingestion route.
func queryKey(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost || !ingestionPath(r.URL.Path) {
		return "", false
	}
	k := r.URL.Query().Get("key")
	return k, k != ""
}

// publishableKeyAuth authenticates a key presented in the URL, which only
// a publishable key may be (a secret key there would end up in logs and
// histories).
func (s *Server) publishableKeyAuth(r *http.Request, key string) (*credentials, error) {
	k, t, err := s.Accounts.KeyAuth(r.Context(), key, remoteHost(r))
	if err != nil {
		return nil, err
	}
	if !k.Publishable() {
		return nil, tally.Errorf(tally.EUnauthorized, "only a publishable key may be sent in the URL")
	}
	return &credentials{p: &tally.Principal{Key: k, Tenant: t}}, nil
}
