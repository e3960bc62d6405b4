package server

import (
	"context"
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

func (s *Server) handleReadiness() http.Handler {
	type check struct {
		Configured *bool  `json:"configured,omitempty"`
		OK         bool   `json:"ok"`
		Detail     string `json:"detail,omitempty"` // why not OK, caller-safe
	}
	type analytics struct {
		Configured    bool       `json:"configured"`
		OK            bool       `json:"ok"`
		EventsToday   int64      `json:"events_today"`
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
		for _, c := range res.Checks {
			if !c.OK {
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
		if s.cfg.AnalyticsEnabled && dbOK {
			day := tally.DayStart(s.now())
			n, err := s.Store.CountAllEvents(ctx, day, day.Add(24*time.Hour))
			res.Analytics.OK = err == nil
			res.Analytics.EventsToday = n
			if run, err := s.Store.LastRollupRun(ctx); err == nil && run != nil {
				res.Analytics.RollupLastRun = &run.FinishedAt
			}
		}
		status := http.StatusOK
		if res.Status != "ok" {
			status = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "5")
		}
		encode(w, status, res)
	})
}

func (s *Server) handleMetrics() http.Handler {
	return promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{ErrorLog: nil})
}
