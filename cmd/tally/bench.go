package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// runBench is tally's load generator: it sends event batches to a running
// server for a fixed time and reports throughput and latency, next to a
// baseline (GET /healthz) measured in the same run, so figures from a
// shared, noisy machine can be read as ratios.
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "base URL of a running tally (loopback only)")
	key := fs.String("key", getenv("TALLY_KEY"), "API key with analytics:write (TALLY_KEY)")
	conc := fs.Int("c", 16, "concurrent clients")
	batch := fs.Int("batch", 50, "events per request")
	dur := fs.Duration("d", 10*time.Second, "duration of each phase")
	if err := fs.Parse(args); err != nil {
		return &configError{msg: err.Error()}
	}
	if *key == "" {
		return &configError{msg: "bench needs -key (or TALLY_KEY): an API key with analytics:write"}
	}
	if *conc < 1 || *batch < 1 || *batch > 1000 || *dur <= 0 || *dur > 10*time.Minute {
		return &configError{msg: "bench: -c >= 1, -batch 1-1000, -d up to 10m"}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conc * 2}, Timeout: 30 * time.Second}

	base := load(ctx, *conc, *dur, func(int, int) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, *url+"/healthz", nil)
	}, client)
	var run atomic.Int64
	events := load(ctx, *conc, *dur, func(worker, i int) (*http.Request, error) {
		n := run.Add(1)
		evs := make([]map[string]any, *batch)
		for j := range evs {
			evs[j] = map[string]any{"event": "bench.event", "user_id": fmt.Sprintf("u%d", (int(n)+j)%500),
				"event_id": fmt.Sprintf("bench-%d-%d-%d", time.Now().UnixNano(), n, j), "props": map[string]any{"worker": worker}}
		}
		body, _ := json.Marshal(map[string]any{"batch": evs})
		req, err := http.NewRequest(http.MethodPost, *url+"/api/analytics/events", bytes.NewReader(body))
		if err == nil {
			req.Header.Set("Authorization", "Bearer "+*key)
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}, client)
	fmt.Fprintf(stdout, "phase            requests  errors   req/s    p50 ms   p99 ms\n")
	base.print(stdout, "GET /healthz")
	events.print(stdout, "POST events")
	if base.rps() > 0 && events.rps() > 0 {
		fmt.Fprintf(stdout, "\nevents ingested: %.0f events/s (batch %d, %d clients)\n", events.rps()*float64(*batch), *batch, *conc)
		fmt.Fprintf(stdout, "ingest request rate / healthz request rate: %.3f\n", events.rps()/base.rps())
		fmt.Fprintf(stdout, "ingest p99 / healthz p99: %.1fx\n", events.pct(0.99)/max(base.pct(0.99), 1e-9))
	}
	return nil
}

type phase struct {
	ok, errs  int64
	elapsed   time.Duration
	latencies []time.Duration
}

func (p *phase) rps() float64 { return float64(p.ok) / p.elapsed.Seconds() }

func (p *phase) pct(q float64) float64 {
	if len(p.latencies) == 0 {
		return 0
	}
	return float64(p.latencies[int(q*float64(len(p.latencies)-1))].Microseconds()) / 1000
}

func (p *phase) print(w io.Writer, name string) {
	fmt.Fprintf(w, "%-16s %8d %7d %8.0f %9.2f %8.2f\n", name, p.ok, p.errs, p.rps(), p.pct(0.5), p.pct(0.99))
}

// load runs conc workers sending requests for d and collects latencies of
// 2xx answers; anything else counts as an error.
func load(ctx context.Context, conc int, d time.Duration, mk func(worker, i int) (*http.Request, error), client *http.Client) *phase {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	p := &phase{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			var lat []time.Duration
			var ok, errs int64
			for i := 0; ctx.Err() == nil; i++ {
				req, err := mk(w, i)
				if err != nil {
					errs++
					continue
				}
				t := time.Now()
				resp, err := client.Do(req.WithContext(ctx))
				if err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					ok++
					lat = append(lat, time.Since(t))
				} else {
					errs++
				}
			}
			mu.Lock()
			p.ok += ok
			p.errs += errs
			p.latencies = append(p.latencies, lat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	p.elapsed = time.Since(start)
	slices.Sort(p.latencies)
	return p
}
