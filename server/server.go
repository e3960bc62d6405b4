// Package server is tally's HTTP layer: the JSON API of api/openapi.yaml,
// the dashboard, operations endpoints, authentication and the tenant
// context rules. routes.go lists every route.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/dedupe"
)

// Config is the HTTP layer's configuration. The zero value is not useful:
// start from DefaultConfig.
type Config struct {
	RegistrationOpen bool          // POST /api/auth/register allowed
	AnalyticsEnabled bool          // false: analytics endpoints answer 503
	MaxExportRows    int           // cap of one CSV export
	MaxBodyBytes     int64         // request body limit
	SessionTTL       time.Duration // lifetime of a login session
	SecureCookies    bool          // mark cookies Secure (behind TLS)
	DevAssetsDir     string        // when set, templates and assets are read from this directory
	// AllowPrivateWebhooks accepts webhook URLs on loopback and private
	// addresses (for development).
	AllowPrivateWebhooks bool
	// MetricsToken, when set, is the operator's bearer token: with it the
	// public listener serves /metrics and /readiness's cross-tenant
	// figures. Without it the public /metrics is 404; the operator
	// listener (Server.Operator) serves them either way.
	MetricsToken string
	// LoginLimits throttle failed logins and bound concurrent password
	// hashes (DefaultLoginLimits; a zero HashMemory means the default).
	LoginLimits LoginLimits
	// LiveHeartbeat is how often an idle live stream sends a comment line
	// (default 15s), so proxies keep it open and clients see it alive.
	LiveHeartbeat time.Duration
}

// DefaultConfig returns the documented defaults (api/openapi.yaml, README).
func DefaultConfig() Config {
	return Config{
		RegistrationOpen: true,
		AnalyticsEnabled: true,
		MaxExportRows:    50000,
		MaxBodyBytes:     1 << 20,
		SessionTTL:       30 * 24 * time.Hour,
		LoginLimits:      DefaultLoginLimits(),
	}
}

// Deps are the services the handlers use. Analytics services may be nil
// when analytics is disabled.
type Deps struct {
	Store    tally.Store
	Accounts Accounts // account work; required
	Logger   *slog.Logger
	Registry *prometheus.Registry
	Now      func() time.Time

	Recorder Recorder
	Quotas   Quotas
	Reports  Reports
	Rollups  Rollups
	Meters   Meters
	Absence  Absence // absence alerts (nil: their routes answer 503)
	Live     Live
	Insights Insights
	// ReadyChecks are extra readiness checks by name (e.g. "redis").
	ReadyChecks map[string]func(context.Context) error
	// DegradedChecks are readiness checks of parts the instance serves
	// without (e.g. "redis"): a failing one is reported, and the status
	// says "degraded", but readiness stays 200 so that load balancers keep
	// the instance (every instance would fail it alike).
	DegradedChecks map[string]func(context.Context) error
	// LoginFailures, when set, counts failed logins for every instance
	// that shares it (redis.Failures); nil: this process's memory.
	LoginFailures LoginFailures
	// EventIDs maps stored event ids to the per-tenant ids answers show
	// (internal/app builds it from the store's key; nil: a key of this
	// process only, for tests).
	EventIDs *tally.EventIDs
}

// Server is tally's HTTP handler.
type Server struct {
	cfg Config
	Deps
	// auditIDs and webhookIDs map the ids of audit entries and webhook
	// deliveries (in answers and cursors) as EventIDs maps event ids.
	auditIDs, webhookIDs *tally.EventIDs
	log                  *slog.Logger
	httpm                *httpMetrics
	mux                  *http.ServeMux
	patterns             []string
	handler              http.Handler
	web                  *web
	logins               *loginThrottle
	denials              *dedupe.Window // of access.denied entries
	compat               *compatMetrics
	keyRates             *keyRates     // of publishable keys
	draining             atomic.Bool   // Drain was called: /readiness answers 503
	drained              chan struct{} // closed by Drain: live streams end
	drainOne             sync.Once
}

// Drain makes /readiness answer 503 ("draining") from now on, while every
// other route keeps serving: the first step of a graceful shutdown.
// Live streams end then (with an "end" event), so their clients reconnect
// to another instance.
func (s *Server) Drain() {
	s.draining.Store(true)
	s.drainOne.Do(func() { close(s.drained) })
}

// New builds the server and its routes.
func New(cfg Config, d Deps) (*Server, error) {
	if d.Accounts == nil {
		return nil, errors.New("server: Deps.Accounts is nil")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.EventIDs == nil {
		key := make([]byte, 32)
		rand.Read(key)
		d.EventIDs = tally.NewEventIDs(key)
	}
	auditIDs, webhookIDs := d.EventIDs.Derive("audit"), d.EventIDs.Derive("webhook_deliveries")
	s := &Server{cfg: cfg, Deps: d, auditIDs: auditIDs, webhookIDs: webhookIDs, log: d.Logger, mux: http.NewServeMux(), drained: make(chan struct{}), httpm: newHTTPMetrics(d.Registry),
		denials: dedupe.New(tally.RefusalAuditWindow, tally.RefusalAuditMax)}
	w, err := newWeb(cfg.DevAssetsDir)
	if err != nil {
		return nil, err
	}
	s.web = w
	s.compat = newCompatMetrics(d.Registry)
	s.keyRates = newKeyRates()
	limits := cfg.LoginLimits
	if limits == (LoginLimits{}) {
		limits = DefaultLoginLimits()
	} else if limits.HashMemory <= 0 {
		limits.HashMemory = DefaultLoginLimits().HashMemory
	}
	s.logins = newLoginThrottle(limits, d.LoginFailures, s.now, s.log, d.Registry)
	s.routes()
	s.handler = s.observe(s.cors(embedCORS(s.mux)))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Patterns lists every registered route pattern, in registration order.
func (s *Server) Patterns() []string { return s.patterns }

// handle registers h under pattern and remembers the pattern. API routes
// take only the query parameters queryParams lists for them.
func (s *Server) handle(pattern string, h http.Handler) {
	s.patterns = append(s.patterns, pattern)
	if _, path, _ := strings.Cut(pattern, " "); strings.HasPrefix(path, "/api/") {
		h = s.strictQuery(pattern, h)
	}
	s.mux.Handle(pattern, h)
}

func (s *Server) now() time.Time { return s.Now().UTC() }
