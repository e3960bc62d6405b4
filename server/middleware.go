package server

import (
	"context"
	"crypto/rand"
	"errors"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tallyhq/tally"
)

type requestIDKey struct{}

func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// validRequestID accepts a client's X-Request-ID when it is short printable
// ASCII, so that it is safe to echo and to log.
func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// httpMetrics are the HTTP request count and latency by route pattern.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	query    *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_http_requests_total", Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sbh_http_request_duration_seconds", Help: "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
	}
	m.query = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sbh_analytics_query_duration_seconds", Help: "Analytics read query latency by query.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"query"})
	reg.MustRegister(m.requests, m.latency, m.query)
	return m
}

// observe is the outermost middleware: request id, panic recovery, body
// limit, security headers, access log and HTTP metrics.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = rand.Text()
		}
		w.Header().Set("X-Request-ID", id)
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if strings.HasPrefix(r.URL.Path, "/api/") {
			// API answers are per caller and often secret (keys shown once).
			h.Set("Cache-Control", "no-store")
		}
		ctx := context.WithValue(r.Context(), requestIDKey{}, id)
		r = r.WithContext(ctx)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.ErrorContext(ctx, "panic", "request_id", id, "panic", v, "stack", string(debug.Stack()))
				if sw.status == 0 {
					s.writeError(sw, r, tally.Internal(errors.New("panic")))
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			d := time.Since(start)
			s.httpm.requests.WithLabelValues(route, r.Method, strconv.Itoa(sw.code())).Inc()
			s.httpm.latency.WithLabelValues(route, r.Method).Observe(d.Seconds())
			s.log.InfoContext(ctx, "request", "request_id", id, "method", r.Method, "path", loggedPath(r), "route", route,
				"status", sw.code(), "bytes", sw.bytes, "duration_ms", float64(d.Microseconds())/1000, "remote", r.RemoteAddr)
		}()
		if headerBytes(r) > MaxHeaderBytes {
			// Answered here as a problem; net/http's own plain-text 431
			// only comes past HTTPMaxHeaderBytes (see cmd/tally).
			writeProblem(sw, http.StatusRequestHeaderFieldsTooLarge, "header_too_large",
				"request headers are larger than "+strconv.Itoa(MaxHeaderBytes)+" bytes")
			return
		}
		if err := checkTenantHeader(r); err != nil {
			s.writeError(sw, r, err)
			return
		}
		if !jsonBody(r) {
			writeProblem(sw, http.StatusUnsupportedMediaType, "unsupported_media_type",
				"the request body must be JSON (Content-Type: application/json)")
			return
		}
		next.ServeHTTP(sw, r)
	})
}

// checkTenantHeader refuses an X-Tenant-Slug sent more than once (which
// one would count is ambiguous) or that is not text (invalid UTF-8, NUL).
func checkTenantHeader(r *http.Request) error {
	vs := r.Header.Values("X-Tenant-Slug")
	if len(vs) > 1 {
		return tally.Invalid("the X-Tenant-Slug header is sent more than once",
			tally.FieldError{Field: "X-Tenant-Slug", Message: "must be sent once"})
	}
	if len(vs) == 1 {
		if msg := tally.CheckText(vs[0], MaxHeaderBytes, "is too long"); msg != "" {
			return tally.Invalid("invalid X-Tenant-Slug header", tally.FieldError{Field: "X-Tenant-Slug", Message: msg})
		}
	}
	return nil
}

// jsonBody reports whether r may go on: anything but a POST, PUT or PATCH
// to /api/ with a body, or such a request whose Content-Type is JSON
// (application/json or a +json type) or absent. Every /api/ body is JSON;
// the one exception is an ingestion route with a publishable key in the
// URL (?key=), which also takes JSON sent as text/plain
// (navigator.sendBeacon).
func jsonBody(r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/api/") || r.ContentLength == 0 {
		return true
	}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return true
	}
	ct := r.Header.Values("Content-Type")
	if len(ct) == 0 {
		return true
	}
	if len(ct) > 1 {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct[0])
	if _, beacon := queryKey(r); err == nil && mt == "text/plain" && beacon {
		// navigator.sendBeacon and tally.js send JSON as text/plain, the
		// one type a page may send across origins without a preflight,
		// with the publishable key in the URL.
		return true
	}
	return err == nil && (mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// MaxHeaderBytes bounds a request's header lines (names, values and the
// request line): above it tally answers a 431 problem.
const MaxHeaderBytes = 32 << 10

// HTTPMaxHeaderBytes is the http.Server.MaxHeaderBytes tally serves with:
// larger than MaxHeaderBytes so that tally's own 431 problem answers
// first; only a request past this limit gets net/http's plain-text 431,
// written before any handler runs.
const HTTPMaxHeaderBytes = 2 * MaxHeaderBytes

// headerBytes is the size of r's request line and header lines as sent
// (approximately: each line's name, ": ", value and CRLF).
func headerBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + 4
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	if r.Host != "" {
		n += len("Host: ") + len(r.Host) + 2
	}
	return n
}

// observeQuery records the duration of an analytics read since start.
func (s *Server) observeQuery(name string, start time.Time) {
	s.httpm.query.WithLabelValues(name).Observe(time.Since(start).Seconds())
}
