package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
)

// BenchmarkExport measures the CSV export (P5 of the performance issue)
// over HTTP against its baseline in the same run: the store's read of the
// same rows (ExportEvents, rows discarded). One tenant of 100,000
// realistic events (TALLY_BENCH_EVENTS overrides) on SQLite; it reports
// rows per second of each and their ratio.
func BenchmarkExport(b *testing.B) {
	n := dataset.EventsFromEnv(b, 100_000)
	h := newHarness(b, withMaxExportRows(n))
	o := h.newTenant("export-bench")
	ctx := context.Background()
	tn, err := h.app.Store.TenantBySlug(ctx, o.slug)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	g := dataset.New(dataset.Config{Events: n, Tenants: []int64{tn.ID}, From: now.Add(-24 * time.Hour), To: now.Add(-time.Minute)})
	for batch := make([]tally.Event, 0, 5000); ; {
		if batch = g.Next(batch); len(batch) == 0 {
			break
		}
		if _, err := h.app.Store.InsertEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	var raw, export time.Duration
	for b.Loop() {
		t0 := time.Now()
		rows := 0
		err := h.app.Store.ExportEvents(ctx, tn.ID, tally.EventFilter{}, n, func(tally.ExportInfo) error { return nil },
			func(*tally.Event) error { rows++; return nil })
		if err != nil || rows != n {
			b.Fatalf("store export: %d rows, %v", rows, err)
		}
		raw += time.Since(t0)

		t0 = time.Now()
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+"/api/analytics/export.csv?limit="+strconv.Itoa(n), nil)
		for k, v := range o.h() {
			req.Header.Set(k, v)
		}
		resp, err := h.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		lines := 0
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || sc.Err() != nil || lines < n+1 {
			b.Fatalf("export: %s, %d lines, %v", resp.Status, lines, sc.Err())
		}
		export += time.Since(t0)
	}
	rawRate := float64(n*b.N) / raw.Seconds()
	exportRate := float64(n*b.N) / export.Seconds()
	b.ReportMetric(rawRate, "store-rows/s")
	b.ReportMetric(exportRate, "export-rows/s")
	b.ReportMetric(exportRate/rawRate, "export/store")
}
