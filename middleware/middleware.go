// Package middleware tracks a host app's HTTP requests in tally through
// the client SDK: one event per request with its method, route, status
// and duration.
//
//	c, _ := client.New(tallyURL, apiKey)
//	mux := http.NewServeMux()
//	mux.HandleFunc("GET /items/{id}", getItem)
//	track := middleware.Track(c, middleware.WithUser(userOf))
//	http.ListenAndServe(":8080", track(mux))
//
// Tracking never blocks or fails a request: events go through the
// client's non-blocking buffer, and when it is full the event is dropped
// (and counted in the client's Stats). Query strings, headers and bodies
// are never recorded.
package middleware

import (
	"net/http"
	"time"

	"github.com/tallyhq/tally/client"
)

// DefaultEventName is the name of the events Track records.
const DefaultEventName = "http.request"

// Option configures Track.
type Option func(*config)

type config struct {
	name string
	user func(*http.Request) string
	skip func(*http.Request) bool
}

// WithEventName sets the event name (default DefaultEventName); it must
// follow tally's event name rules, else no event is recorded.
func WithEventName(name string) Option { return func(c *config) { c.name = name } }

// WithUser sets how to find the end user of a request (e.g. from the
// session the host app's auth middleware put in the context); it runs
// after the handler. Default: no user.
func WithUser(f func(*http.Request) string) Option { return func(c *config) { c.user = f } }

// WithSkip sets which requests are not tracked (health checks, say).
func WithSkip(f func(*http.Request) bool) Option { return func(c *config) { c.skip = f } }

// Track returns middleware that records one event per request in c, with
// props method, route, status and duration_ms. route is the ServeMux
// pattern that served the request (r.Pattern, e.g. "GET /items/{id}")
// when the wrapped handler is or contains a ServeMux that sets it on the
// request Track sees, else the URL path (without the query). A handler
// that panics is recorded with status 500 (unless it had answered) and
// the panic goes on unchanged.
func Track(c *client.Client, opts ...Option) func(http.Handler) http.Handler {
	cfg := config{name: DefaultEventName}
	for _, o := range opts {
		o(&cfg)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if cfg.skip != nil && cfg.skip(r) {
				next.ServeHTTP(w, r)
				return
			}
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w}
			returned := false
			// Deferred without recover: it also runs when the handler
			// panics, and the panic keeps its original stack.
			defer func() {
				status := sw.status
				if status == 0 {
					status = http.StatusOK
					if !returned {
						status = http.StatusInternalServerError
					}
				}
				route := r.Pattern
				if route == "" {
					route = r.URL.Path
				}
				var user string
				if cfg.user != nil {
					user = cfg.user(r)
				}
				// The error (buffer full, closed, bad name) is the
				// client's to count; the request must not notice.
				_ = c.Track(client.Event{
					Name:      cfg.name,
					UserID:    user,
					Timestamp: start,
					Props: map[string]any{
						"method":      method(r.Method),
						"route":       route,
						"status":      status,
						"duration_ms": float64(time.Since(start).Microseconds()) / 1000,
					},
				})
			}()
			next.ServeHTTP(sw, r)
			returned = true
		})
	}
}

// method returns m when it is a standard method, else "OTHER": a client
// chooses the method, and it must not fill the props with junk.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "OTHER"
}

// statusWriter remembers the status a handler answered with. Flush passes
// through (streaming handlers assert http.Flusher); Unwrap lets
// http.ResponseController reach everything else of the original writer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
