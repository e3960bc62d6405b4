package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tallyhq/tally"
)

// fakeMeter refuses events whose name starts with "over." and reserves one
// unit for each other event. It checks that Settle releases every
// reservation exactly once.
type fakeMeter struct {
	mu       sync.Mutex
	reserved int // reservations not yet settled
	used     int // settled as inserted
	settles  int
	nilSets  int // Settle calls with inserted == nil
}

func (f *fakeMeter) Admit(ctx context.Context, events []tally.Event) ([]error, *tally.Reservation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(events))
	r := &tally.Reservation{Amounts: make([][]tally.Amount, len(events))}
	for i, e := range events {
		if strings.HasPrefix(e.Name, "over.") {
			errs[i] = tally.Errorf(tally.ERateLimited, "quota events_daily exceeded")
			continue
		}
		r.Amounts[i] = []tally.Amount{{Metric: "events_daily", N: 1}}
		f.reserved++
	}
	return errs, r
}

func (f *fakeMeter) Settle(ctx context.Context, events []tally.Event, inserted []bool, r *tally.Reservation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil {
		panic("Settle got a dead context")
	}
	f.settles++
	if inserted == nil {
		f.nilSets++
	}
	for i := range events {
		if len(r.Amounts[i]) > 0 {
			f.reserved--
			if inserted != nil && inserted[i] {
				f.used++
			}
		}
	}
}

func (f *fakeMeter) state() (reserved, used, settles, nilSets int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reserved, f.used, f.settles, f.nilSets
}

func eventsCounter(m *Metrics, tenant int64, event, source string) float64 {
	return testutil.ToFloat64(m.events.WithLabelValues(strconv.FormatInt(tenant, 10), event, source))
}

func TestPipelineSubmit(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 0)
	w := startWriter(t, db, WriterConfig{}, m)
	meter := &fakeMeter{}
	p := NewPipeline(w, meter, m)
	v := NewValidator(Config{})
	ctx := context.Background()

	// Store the id "dup" first.
	d, err := v.Decode([]byte(`{"event":"a","event_id":"dup"}`), tn, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res, err := p.Submit(ctx, d.Events); err != nil || res.Accepted != 1 {
		t.Fatalf("first Submit: %+v, %v", res, err)
	}
	rec := NewRecorder(RecorderConfig{Validator: v, Pipeline: p})

	body := `{"batch":[
		{"event":"a"},
		{"event":"bad..name"},
		{"event":"over.quota"},
		{"event":"a","event_id":"dup"},
		{"event":"b","source":"web"},
		{"event":"over.again"},
		{"event":"a","event_id":"twice"},
		{"event":"a","event_id":"twice"}]}`
	res, err := rec.Events(ctx, tn, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 3 || res.Duplicates != 2 || res.RateLimited != 2 {
		t.Fatalf("result %+v: want 3 accepted, 2 duplicates, 2 rate limited", res)
	}
	var idx []int
	for _, r := range res.Rejected {
		idx = append(idx, r.Index)
	}
	if fmt.Sprint(idx) != "[1 2 5]" || res.Rejected[1].Error != "quota events_daily exceeded" {
		t.Fatalf("rejected %+v: want indexes 1, 2, 5 with the meter's message", res.Rejected)
	}
	out, _ := json.Marshal(res)
	if !strings.HasPrefix(string(out), `{"accepted":3,"duplicates":2,"rejected":[{"index":1,"error":"event: must be`) {
		t.Fatalf("result JSON %s", out)
	}

	reserved, used, settles, nilSets := meter.state()
	if reserved != 0 || used != 4 || settles != 2 || nilSets != 0 {
		t.Fatalf("meter: %d still reserved, %d used, %d settles (%d nil); want 0, 4, 2, 0", reserved, used, settles, nilSets)
	}
	if n := countRows(t, db, tn.ID); n != 4 {
		t.Fatalf("%d rows, want 4", n)
	}
	if got := eventsCounter(m, tn.ID, "a", "api"); got != 3 {
		t.Errorf("sbh_analytics_events_total{event=a} = %v, want 3 (duplicates not counted)", got)
	}
	if got := eventsCounter(m, tn.ID, "b", "web"); got != 1 {
		t.Errorf("sbh_analytics_events_total{event=b,source=web} = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "sbh_analytics_events_total"); err != nil || n != 2 {
		t.Errorf("%d event series (%v), want 2: refused events are not counted", n, err)
	}

	// Every event over quota: nothing written, all rate limited.
	res, err = rec.Events(ctx, tn, []byte(`{"batch":[{"event":"over.a"},{"event":"over.b"}]}`))
	if err != nil || res.RateLimited != 2 || res.Accepted != 0 || len(res.Rejected) != 2 {
		t.Fatalf("all over quota: %+v, %v", res, err)
	}

	// Submit sets the ID of the events it inserted, and only of those.
	d, _ = v.Decode([]byte(`{"batch":[{"event":"a","event_id":"dup"},{"event":"over.c"},{"event":"c"}]}`), tn, time.Now())
	if _, err := p.Submit(ctx, d.Events); err != nil {
		t.Fatal(err)
	}
	for i, e := range d.Events {
		if stored := i == 2; stored != (e.ID != 0) {
			t.Errorf("event %d (%s): ID %d; want set on inserted events only", i, e.Name, e.ID)
		}
	}
}

func TestPipelineWriteError(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	m := NewMetrics(nil, 0)
	w := startWriter(t, failingStore{db}, WriterConfig{}, m)
	meter := &fakeMeter{}
	p := NewPipeline(w, meter, m)
	d, _ := NewValidator(Config{}).Decode([]byte(`{"batch":[{"event":"a"},{"event":"over.x"},{"event":"b"}]}`), tn, time.Now())

	// A cancelled request must still release its reservations.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Submit(ctx, d.Events); err == nil {
		t.Fatal("Submit with a cancelled context succeeded")
	}
	res, err := p.Submit(context.Background(), d.Events)
	if err != errDiskFull || res != nil {
		t.Fatalf("Submit: %+v, %v; want the store's error", res, err)
	}
	reserved, used, settles, nilSets := meter.state()
	if reserved != 0 || used != 0 || settles != 2 || nilSets != 2 {
		t.Fatalf("meter: %d reserved, %d used, %d settles (%d nil); want 0, 0, 2, 2", reserved, used, settles, nilSets)
	}
	if got := eventsCounter(m, tn.ID, "a", "api"); got != 0 {
		t.Fatalf("counter %v after a failed write", got)
	}
}

func TestPipelineWithoutMeter(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	p := NewPipeline(startWriter(t, db, WriterConfig{}, nil), nil, nil)
	d, _ := NewValidator(Config{}).Decode([]byte(`{"event":"over.quota"}`), tn, time.Now())
	res, err := p.Submit(context.Background(), d.Events)
	if err != nil {
		t.Fatal(err)
	}
	if out, _ := json.Marshal(res); string(out) != `{"accepted":1,"duplicates":0,"rejected":[]}` {
		t.Fatalf("result %s", out)
	}
	if res, err := p.Submit(context.Background(), nil); err != nil || res.Rejected == nil {
		t.Fatalf("empty Submit: %+v, %v", res, err)
	}
}

func TestMetricsLabelCap(t *testing.T) {
	t.Parallel()
	db, tn := openDB(t)
	m := NewMetrics(prometheus.NewRegistry(), 2)
	p := NewPipeline(startWriter(t, db, WriterConfig{}, m), nil, m)
	d, _ := NewValidator(Config{}).Decode([]byte(`{"batch":[{"event":"e1"},{"event":"e2"},{"event":"e3"},{"event":"e4"},{"event":"e1"}]}`), tn, time.Now())
	if _, err := p.Submit(context.Background(), d.Events); err != nil {
		t.Fatal(err)
	}
	for event, want := range map[string]float64{"e1": 2, "e2": 1, "other": 2} {
		if got := eventsCounter(m, tn.ID, event, "api"); got != want {
			t.Errorf("counter{event=%s} = %v, want %v", event, got, want)
		}
	}
}
