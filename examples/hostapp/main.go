// Command hostapp is a tiny host app that reports to tally through the Go
// SDK: it accepts file uploads (tracked as files.uploaded, value = bytes)
// and runs builds gated by the builds_daily quota with a reservation that
// each finished build commits (tracked as builder.generate.completed,
// counted once). Every request is also tracked as
// http.request by the middleware. See README.md to run it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/tallyhq/tally/client"
	"github.com/tallyhq/tally/middleware"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hostapp:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then drains requests and the tally buffer.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("hostapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tallyURL := fs.String("tally", "http://127.0.0.1:8080", "base URL of tally")
	key := fs.String("key", getenv("TALLY_API_KEY"), "tally API key with analytics:write (default $TALLY_API_KEY)")
	listen := fs.String("listen", "127.0.0.1:8090", "address to serve on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	tc, err := client.New(*tallyURL, *key, client.WithSource("hostapp"), client.WithLogger(log))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		tc.Close(context.Background())
		return err
	}
	srv := &http.Server{Handler: newHandler(tc, log), ReadHeaderTimeout: 10 * time.Second}
	log.Info("hostapp listening", "addr", "http://"+ln.Addr().String(), "tally", *tallyURL)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err = <-served:
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = errors.Join(err, srv.Shutdown(shutdown))
	// Send what the SDK still buffers before exiting.
	err = errors.Join(err, tc.Close(shutdown))
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("hostapp stopped", "tally", fmt.Sprintf("%+v", tc.Stats()))
	return err
}

// newHandler is the app's routes wrapped in the tally middleware.
func newHandler(tc *client.Client, log *slog.Logger) http.Handler {
	a := &hostApp{tally: tc, log: log}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /upload", a.upload)
	mux.HandleFunc("POST /build", a.build)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	return middleware.Track(tc,
		middleware.WithUser(userOf),
		middleware.WithSkip(func(r *http.Request) bool { return r.URL.Path == "/healthz" }),
	)(mux)
}

// userOf is who is calling. A real app takes it from its session; this
// one trusts an X-User header to stay small.
func userOf(r *http.Request) string { return r.Header.Get("X-User") }

type hostApp struct {
	tally *client.Client
	log   *slog.Logger
}

// maxUpload caps an upload.
const maxUpload = 64 << 20

func (a *hostApp) upload(w http.ResponseWriter, r *http.Request) {
	n, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, maxUpload)) // a real app stores it
	if err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		answer(w, status, map[string]any{"error": "upload failed"})
		return
	}
	// Non-blocking: the upload's answer never waits for tally.
	if err := a.tally.Track(client.Event{Name: "files.uploaded", UserID: userOf(r), Value: new(float64(n))}); err != nil {
		a.log.Warn("upload not tracked", "err", err)
	}
	answer(w, http.StatusCreated, map[string]any{"bytes": n})
}

// build gates a build by the builds_daily quota with a reservation: one
// build is held before it runs, committed when it is done (settling the
// build's completion event, so that tally counts each build exactly once,
// whether the quota is soft or enforced and whether a usage rule also maps
// builder.generate.completed to builds_daily), released when it fails.
func (a *hostApp) build(w http.ResponseWriter, r *http.Request) {
	resv, err := a.tally.Reserve(r.Context(), "builds_daily", 1, client.ReserveOptions{TTL: time.Minute})
	if qe, ok := errors.AsType[*client.QuotaExceededError](err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(qe.RetryAfter.Seconds()))))
		answer(w, http.StatusTooManyRequests, map[string]any{
			"error": "build quota used up", "limit": qe.Quota.Limit, "resets_at": qe.Quota.ResetsAt})
		return
	}
	held := err == nil
	if err != nil {
		// tally is down or has no quota for builds_daily: this app chooses
		// to let builds run rather than stop its users (fail open).
		a.log.Warn("build quota not checked", "err", err)
	}
	start := time.Now()
	select { // the "build"
	case <-time.After(20 * time.Millisecond):
	case <-r.Context().Done():
		if held {
			if _, err := a.tally.Release(context.WithoutCancel(r.Context()), resv); err != nil {
				a.log.Warn("build reservation not released; it expires by itself", "err", err)
			}
		}
		return
	}
	done := client.Event{Name: "builder.generate.completed", UserID: userOf(r), EventID: client.NewEventID(),
		Props: map[string]any{"duration_ms": time.Since(start).Milliseconds()}}
	remaining := int64(-1)
	if held {
		c, err := a.tally.Commit(r.Context(), resv, 1, done.EventID)
		if err != nil {
			a.log.Warn("build not committed; its reservation expires", "err", err)
		}
		remaining = c.Remaining
	}
	if err := a.tally.Track(done); err != nil {
		a.log.Warn("build not tracked", "err", err)
	}
	answer(w, http.StatusOK, map[string]any{"build": "done", "remaining": remaining})
}

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
