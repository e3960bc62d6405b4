package ingest

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/metrics"
)

// Metrics are the Prometheus metrics of ingestion. A nil *Metrics is valid
// and counts nothing.
type Metrics struct {
	queueDepth    prometheus.Gauge
	batchSize     prometheus.Histogram
	commitSeconds prometheus.Histogram
	events        *prometheus.CounterVec
	dropped       prometheus.Counter

	tenantLabel             *metrics.TenantLabels
	eventLabel, sourceLabel *metrics.Limiter
}

// NewMetrics creates the ingestion metrics and registers them with reg
// (nil: not registered, as in tests). Each label of
// sbh_analytics_events_total takes at most labelCap distinct values
// (labelCap <= 0 means 100); later new ones are counted under "other".
// Registering twice with one registry panics, like prometheus.MustRegister.
func NewMetrics(reg prometheus.Registerer, labelCap int) *Metrics {
	m := &Metrics{
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sbh_ingest_queue_depth",
			Help: "Events waiting in the group-commit writer's queue.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sbh_ingest_batch_size",
			Help:    "Events per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12), // 1 .. 2048
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sbh_ingest_commit_seconds",
			Help:    "Time to write and commit one group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14), // 0.5ms .. 4s
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sbh_analytics_events_total",
			Help: "Analytics events stored (duplicates not counted), by tenant slug, event name and source.",
		}, []string{"tenant", "event", "source"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sbh_autotrack_dropped_total",
			Help: "Events of in-process producers dropped because the buffer was full or the write failed.",
		}),
		tenantLabel: metrics.NewTenantLabels(labelCap, nil),
		eventLabel:  metrics.NewLimiter(labelCap),
		sourceLabel: metrics.NewLimiter(labelCap),
	}
	if reg != nil {
		reg.MustRegister(m.queueDepth, m.batchSize, m.commitSeconds, m.events, m.dropped)
	}
	return m
}

// NameTenants makes the tenant label the tenant's slug, looked up with
// slug (by default it is the tenant id). Call it before the metrics are
// used; it returns m.
func (m *Metrics) NameTenants(labelCap int, slug metrics.SlugFunc) *Metrics {
	m.tenantLabel = metrics.NewTenantLabels(labelCap, slug)
	return m
}

func (m *Metrics) setDepth(n int) {
	if m != nil {
		m.queueDepth.Set(float64(n))
	}
}

func (m *Metrics) observeCommit(events int, took time.Duration) {
	if m != nil {
		m.batchSize.Observe(float64(events))
		m.commitSeconds.Observe(took.Seconds())
	}
}

func (m *Metrics) drop(n int) {
	if m != nil && n > 0 {
		m.dropped.Add(float64(n))
	}
}

// countInserted counts the events that were inserted.
func (m *Metrics) countInserted(ctx context.Context, events []tally.Event, inserted []bool) {
	if m == nil {
		return
	}
	type key struct{ tenant, event, source string }
	counts := map[key]int{}
	for i := range events {
		if i < len(inserted) && inserted[i] {
			e := &events[i]
			counts[key{
				m.tenantLabel.Value(ctx, e.TenantID),
				m.eventLabel.Value(e.Name),
				m.sourceLabel.Value(e.Source),
			}]++
		}
	}
	for k, n := range counts {
		m.events.WithLabelValues(k.tenant, k.event, k.source).Add(float64(n))
	}
}
