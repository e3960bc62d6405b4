package server

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/tallyhq/tally"
)

func (s *Server) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// operator reports whether r carries the operator credential: a Bearer
// token equal to Config.MetricsToken (never when no token is configured).
func (s *Server) operator(r *http.Request) bool {
	if s.cfg.MetricsToken == "" {
		return false
	}
	token, byCookie, ok := presentedToken(r)
	return ok && !byCookie && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.MetricsToken)) == 1
}

// handleReadiness answers whether the service can do its job. Anonymous
// callers see the health of each dependency only; the figures that sum
// over every tenant (events today, the last rollup) are shown to the
// operator: on the operator listener (details) or with the metrics token.
func (s *Server) handleReadiness(details bool) http.Handler {
	type check struct {
		Configured *bool  `json:"configured,omitempty"`
		OK         bool   `json:"ok"`
		Detail     string `json:"detail,omitempty"` // why not OK, caller-safe
	}
	type analytics struct {
		Configured    bool       `json:"configured"`
		OK            bool       `json:"ok"`
		EventsToday   *int64     `json:"events_today,omitempty"`
		RollupLastRun *time.Time `json:"rollup_last_run"`
	}
	type response struct {
		Status    string           `json:"status"`
		Checks    map[string]check `json:"checks"`
		Analytics analytics        `json:"analytics"`
	}
	yes, no := true, false
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		res := response{Status: "ok", Checks: map[string]check{}}
		failing := func(err error) string {
			if err == nil {
				return ""
			}
			return "failing: " + tally.ErrorMessageOf(err)
		}
		dbErr := s.Store.Ping(ctx)
		dbOK := dbErr == nil
		res.Checks["database"] = check{OK: dbOK, Detail: failing(dbErr)}
		res.Checks["redis"] = check{Configured: &no, OK: true}
		for name, fn := range s.ReadyChecks {
			err := fn(ctx)
			res.Checks[name] = check{Configured: &yes, OK: err == nil, Detail: failing(err)}
		}
		for name, fn := range s.DegradedChecks {
			err := fn(ctx)
			res.Checks[name] = check{Configured: &yes, OK: err == nil, Detail: failing(err)}
			if err != nil {
				res.Status = "degraded"
			}
		}
		for name, c := range res.Checks {
			if _, soft := s.DegradedChecks[name]; !c.OK && !soft {
				res.Status = "unavailable"
			}
		}
		if s.draining.Load() {
			// Shutting down: the listener still serves for the drain
			// delay so that load balancers see this and stop sending.
			res.Status = "draining"
			res.Checks["shutdown"] = check{OK: false, Detail: "draining: the instance is stopping"}
		}
		res.Analytics.Configured = s.cfg.AnalyticsEnabled
		res.Analytics.OK = s.cfg.AnalyticsEnabled && dbOK
		if res.Analytics.OK && (details || s.operator(r)) {
			day := tally.DayStart(s.now())
			n, err := s.Store.CountAllEvents(ctx, day, day.Add(24*time.Hour))
			res.Analytics.OK = err == nil
			res.Analytics.EventsToday = &n
			if run, err := s.Store.LastRollupRun(ctx); err == nil && run != nil {
				res.Analytics.RollupLastRun = &run.FinishedAt
			}
		}
		status := http.StatusOK
		if res.Status != "ok" && res.Status != "degraded" {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "5")
		}
		encode(w, status, res)
	})
}

// handleMetrics serves the Prometheus metrics on the public listener: only
// with the operator's Bearer token (Config.MetricsToken). Without a token
// configured the endpoint does not exist there (404); the operator
// listener (Operator) serves it without one.
func (s *Server) handleMetrics() http.Handler {
	metrics := s.metricsHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case s.cfg.MetricsToken == "":
			s.writeError(w, r, tally.Errorf(tally.ENotFound, "no such endpoint"))
		case !s.operator(r):
			s.writeError(w, r, tally.Errorf(tally.EUnauthorized, "the metrics need the operator's bearer token"))
		default:
			metrics.ServeHTTP(w, r)
		}
	})
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{ErrorLog: slogLogger{s.log}})
}

// Operator is the handler of the operator listener (METRICS_ADDR, on
// loopback by default): /metrics, /readiness with its details and
// /healthz, without credentials. Anything else is a 404 problem.
func (s *Server) Operator() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHandler())
	mux.Handle("GET /readiness", s.handleReadiness(true))
	mux.Handle("GET /healthz", s.handleHealthz())
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, tally.Errorf(tally.ENotFound, "no such endpoint"))
	}))
	return s.observe(mux)
}

// slogLogger lets promhttp report its errors through the JSON log.
type slogLogger struct{ log *slog.Logger }

func (l slogLogger) Println(v ...any) { l.log.Error("metrics", "err", fmt.Sprint(v...)) }
