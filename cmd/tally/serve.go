package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/demo"
	"github.com/tallyhq/tally/server"
)

// parseConfig loads the environment, applies the command's flags and
// validates the result.
func parseConfig(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet, *config)) (config, *flag.FlagSet, error) {
	c, err := loadConfig(getenv)
	if err != nil {
		return c, nil, err
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.bindFlags(fs)
	if extra != nil {
		extra(fs, &c)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, fs, err
		}
		return c, fs, &configError{msg: err.Error()}
	}
	return c, fs, c.validate()
}

func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, _, err := parseConfig("serve", args, getenv, stderr, func(fs *flag.FlagSet, c *config) {
		fs.StringVar(&c.ListenAddr, "listen", c.ListenAddr, "address to listen on (LISTEN_ADDR)")
		fs.BoolVar(&c.Demo, "demo", c.Demo, "seed a demo tenant with 30 days of events and print its admin login")
		fs.StringVar(&c.DevDir, "dev", c.DevDir, "read dashboard templates and assets from this directory (e.g. server/web)")
	})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := newLogger(stderr, c.LogLevel)
	log.Info("starting tally", "version", buildVersion(), "config", c)

	cfg := server.DefaultConfig()
	cfg.RegistrationOpen = c.Registration == "open"
	cfg.MaxExportRows = c.MaxExportRows
	cfg.SessionTTL = c.SessionTTL
	cfg.SecureCookies = c.SecureCookies
	cfg.DevAssetsDir = c.DevDir
	cfg.MetricsToken = c.MetricsToken
	cfg.LoginLimits.HashMemory = int64(c.LoginHashMemory) << 20
	cfg.LoginLimits.PerAddress.Free = int64(c.LoginFreeAddress)
	cfg.LoginLimits.PerEmail.Free = int64(c.LoginFreeEmail)
	a, err := app.New(ctx, app.Config{
		SQLitePath: c.sqlitePath(), SQLiteSync: c.SQLiteSync, PostgresURL: c.postgresURL(), EventsURL: c.EventsURL, RedisURL: c.RedisURL,
		AnalyticsEnabled: c.AnalyticsEnabled, QuotasEnabled: c.QuotasEnabled, QuotaDefaults: c.QuotaDefaults,
		UsageRules: c.UsageRules, RedactKeys: c.RedactKeys, IngestQueue: c.IngestQueue, LabelCap: c.LabelCap,
		StatementTimeout: c.StatementTimeout, RedisTimeout: c.RedisTimeout, ReconcileInterval: c.Reconcile,
		AbsenceInterval: c.AbsenceInterval,
		RollupDailyAt:   c.RollupDailyAt, AllowPrivateWebhooks: c.WebhookPrivate, Server: cfg, Logger: log,
	})
	if err != nil {
		return err
	}
	closeApp := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Close(sctx); err != nil {
			log.Error("shutdown", "err", err)
		}
	}
	defer closeApp()

	if c.Demo {
		res, err := demo.Seed(ctx, a.Store, a.Accounts, func(ctx context.Context, tenantID int64, from, to time.Time) error {
			_, err := a.Rollup.RunDays(ctx, tenantID, from, to, "manual", "")
			return err
		}, time.Now())
		if err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
		if err := a.RebuildCounters(ctx); err != nil {
			return err
		}
		printDemo(stdout, res, c.ListenAddr)
	}
	a.StartScheduler()

	ln, err := net.Listen("tcp", c.ListenAddr)
	if err != nil {
		return &configError{msg: fmt.Sprintf("listen on %s: %v", c.ListenAddr, err)}
	}
	hs := newHTTPServer(a.Handler(), log)
	hs.WriteTimeout = 5 * time.Minute // long CSV exports stream
	fmt.Fprintf(stdout, "tally listening on http://%s\n", ln.Addr())
	log.Info("listening", "addr", ln.Addr().String())

	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	servers := []*http.Server{hs}
	if c.MetricsAddr != "off" {
		// The operator listener: metrics and readiness details without
		// credentials, so on loopback (or a private network) only.
		mln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			hs.Close()
			return &configError{msg: fmt.Sprintf("listen on METRICS_ADDR %s: %v", c.MetricsAddr, err)}
		}
		ms := newHTTPServer(withPprof(a.OperatorHandler(), c.Pprof), log)
		servers = append(servers, ms)
		fmt.Fprintf(stdout, "tally metrics on http://%s/metrics\n", mln.Addr())
		log.Info("operator listener", "addr", mln.Addr().String())
		go func() { errc <- ms.Serve(mln) }()
	}
	select {
	case err := <-errc:
		for _, s := range servers {
			s.Close()
		}
		return err
	case <-ctx.Done():
	}
	// Readiness answers 503 for the drain delay while the listener still
	// serves, so a load balancer takes this instance out before it stops
	// accepting; then the listener stops, in-flight requests finish and
	// the ingest queue drains.
	a.Server.Drain()
	log.Info("shutting down: readiness answers 503 during the drain delay", "delay", c.DrainDelay)
	select {
	case err := <-errc:
		closeApp()
		return err
	case <-time.After(c.DrainDelay):
	}
	log.Info("shutting down: draining requests and the ingest queue")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(sctx); err != nil {
			log.Error("http shutdown", "err", err)
		}
	}
	closeApp()
	log.Info("stopped")
	return nil
}

// newHTTPServer is an http.Server with tally's limits whose own error
// lines (TLS handshakes, bad requests it answers itself) go to the JSON log.
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    server.HTTPMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func printDemo(w io.Writer, res *demo.Result, addr string) {
	fmt.Fprintf(w, "\n  demo tenant %q ready: %d events over 30 days\n", res.TenantSlug, res.Events)
	fmt.Fprintf(w, "  dashboard: http://%s/ui/analytics\n", addr)
	fmt.Fprintf(w, "  admin login: %s / %s\n", res.Email, res.Password)
	fmt.Fprintf(w, "  API key (analytics read/write/export/admin): %s\n\n", res.Key)
}

// withPprof serves the runtime profiles (net/http/pprof) under
// /debug/pprof/ in front of h when on (PPROF), for the operator listener
// only: profiles show internals and cost CPU, so they are opt-in and never
// on the public listener.
func withPprof(h http.Handler, on bool) http.Handler {
	if !on {
		return h
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
