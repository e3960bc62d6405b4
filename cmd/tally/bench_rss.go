package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// rssProbe reads the resident memory of the server under test from its
// Prometheus metrics (process_resident_memory_bytes, which tally's
// operator listener serves at METRICS_ADDR's /metrics), so that the bench
// can report a phase's peak RSS (target P6) without being on the server's
// process.
type rssProbe struct {
	url    string
	client *http.Client
}

// read returns the server's resident memory in bytes.
func (p *rssProbe) read(ctx context.Context) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", p.url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", p.url, err)
	}
	f, ok := families["process_resident_memory_bytes"]
	if !ok || len(f.GetMetric()) == 0 {
		return 0, fmt.Errorf("%s: no process_resident_memory_bytes", p.url)
	}
	return f.GetMetric()[0].GetGauge().GetValue(), nil
}

// during calls run while sampling the server's RSS every 100 ms, and
// returns run's result and the highest RSS seen (0 if no read succeeded).
func (p *rssProbe) during(ctx context.Context, run func() *phase) (*phase, float64) {
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg   sync.WaitGroup
		peak float64
	)
	wg.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := p.read(ctx); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	ph := run()
	cancel()
	wg.Wait()
	return ph, peak
}

// sampled runs a load phase and, when the server's metrics can be read,
// notes its peak RSS against the server's RSS before the phase.
func (p *rssProbe) sampled(ctx context.Context, name string, rep *report, run func() *phase) *phase {
	if p == nil {
		return run()
	}
	idle, err := p.read(ctx)
	if err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s: server RSS not read (%v); pass -metrics off or the operator listener's /metrics URL", name, err))
		return run()
	}
	ph, peak := p.during(ctx, run)
	const mb = 1 << 20
	rep.RSS = append(rep.RSS, rssResult{Phase: name, BeforeMB: idle / mb, PeakMB: peak / mb})
	return ph
}

// rssResult is a phase's peak server RSS (P6: ≤ 150 MB during batch and
// single-event ingest).
type rssResult struct {
	Phase    string  `json:"phase"`
	BeforeMB float64 `json:"before_mb"`
	PeakMB   float64 `json:"peak_mb"`
}
