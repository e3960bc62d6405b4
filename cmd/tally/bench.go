package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/sqlite"
)

// runBench is tally's load tool. Against a running server it sends
// realistic traffic (random UUID event ids, props of a few hundred bytes,
// one tenant per key given) in phases — GET /healthz, batch ingest,
// single-event requests — and measures in the same run the raw SQLite
// baselines of the machine (a lean insert, an insert into tally's own
// schema, one commit per event), so that figures from a shared, noisy
// machine read as ratios. With -dataset it builds a SQLite file of
// generated events instead, and with -meter it times the meter query of
// the biggest tenant of such a file (bench_meter.go).
func runBench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080", "base URL of a running tally (loopback only)")
	keys := fs.String("key", getenv("TALLY_KEY"), "API keys with analytics:write, comma separated, one per tenant (TALLY_KEY)")
	conc := fs.Int("c", 16, "concurrent clients of batch ingest")
	single := fs.Int("single-c", 64, "concurrent clients of single-event requests (0: no such phase)")
	batch := fs.Int("batch", 100, "events per batch request")
	dur := fs.Duration("d", 10*time.Second, "duration of each phase")
	propsBytes := fs.Int("props", 300, "rough size of each event's props in bytes")
	baselines := fs.Bool("baselines", true, "measure the raw SQLite baselines in a temporary directory")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	out := fs.String("dataset", "", "build a SQLite dataset at this path instead of load-testing")
	events := fs.Int("events", 1_000_000, "events of the dataset")
	tenants := fs.Int("tenants", 100, "tenants of the dataset")
	days := fs.Int("days", 90, "days the dataset spans, ending now")
	meterDS := fs.String("meter", "", "measure the meter query on this dataset (of -dataset) instead of load-testing")
	readsDS := fs.String("reads", "", "roll up this dataset (of -dataset) and measure KPIs and usage of its biggest and smallest tenant instead of load-testing")
	reroll := fs.Bool("reroll", true, "with -reads: also re-roll every tenant's days, timed (false: only what is dirty)")
	chURL := fs.String("clickhouse", "", "measure the ClickHouse tier's store at this EVENTS_URL (with -postgres) against the SQLite tier's, instead of load-testing")
	pgURL := fs.String("postgres", "", "PostgreSQL URL for -clickhouse (a scratch schema is made and dropped)")
	prefill := fs.Int("prefill", 1_000_000, "events stored before the prefilled phase of -clickhouse")
	metricsURL := fs.String("metrics", "http://127.0.0.1:9091/metrics", "the server's Prometheus metrics (its operator listener, METRICS_ADDR), read for its peak RSS during the ingest phases (\"off\": not read)")
	verify := fs.Bool("verify", true, "after the ingest phases, read back each key's events (analytics:read) and check that every acknowledged event is stored once")
	chTimeout := fs.Duration("statement-timeout", 0, "the ClickHouse tier's statement timeout in -clickhouse (0: the store's default, DB_STATEMENT_TIMEOUT's)")
	prefillSQL := fs.Bool("prefill-sql", false, "make -clickhouse's prefill inside ClickHouse and PostgreSQL (INSERT … SELECT), not through InsertEvents: for 100 M events")
	liveN := fs.Int("live", 0, "live subscribers (SSE streams over the tenants of -key, which then need analytics:read too) during a batch-ingest phase between two without them (0: no such phase)")
	consume := consumeFlags(fs)
	if err := fs.Parse(args); err != nil {
		return &configError{msg: err.Error()}
	}
	for _, ds := range []struct {
		path  string
		bench func(context.Context, string, time.Duration, *report) error
	}{{*meterDS, benchMeter}, {*readsDS, func(ctx context.Context, p string, d time.Duration, rep *report) error {
		return benchReads(ctx, p, d, *reroll, rep)
	}}} {
		if ds.path == "" {
			continue
		}
		if *dur <= 0 || *dur > 10*time.Minute {
			return &configError{msg: "bench: -d up to 10m"}
		}
		var rep report
		if err := ds.bench(ctx, ds.path, *dur, &rep); err != nil {
			return err
		}
		return rep.write(stdout, *asJSON)
	}
	if *out != "" {
		if *events < 1 || *tenants < 1 || *days < 1 {
			return &configError{msg: "bench -dataset: -events, -tenants and -days must be at least 1"}
		}
		return buildDataset(ctx, *out, *events, *tenants, *days, *propsBytes, stdout)
	}
	if *chURL != "" {
		if *pgURL == "" || *prefill < 1 || *prefillSQL && *prefill > maxSQLEvents || *dur <= 0 || *dur > 10*time.Minute || *chTimeout < 0 {
			return &configError{msg: fmt.Sprintf("bench -clickhouse needs -postgres, -prefill >= 1 (up to %d with -prefill-sql) and -d up to 10m", maxSQLEvents)}
		}
		return benchClickHouse(ctx, *chURL, *pgURL, *prefill, *prefillSQL, *chTimeout, *dur, *propsBytes, stdout)
	}
	var keyList []string
	for k := range strings.SplitSeq(*keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keyList = append(keyList, k)
		}
	}
	if len(keyList) == 0 {
		return &configError{msg: "bench needs -key (or TALLY_KEY): API keys with analytics:write"}
	}
	if *conc < 1 || *single < 0 || *batch < 1 || *batch > 1000 || *dur <= 0 || *dur > 10*time.Minute || *liveN < 0 || *liveN > 10000 {
		return &configError{msg: "bench: -c >= 1, -single-c >= 0, -batch 1-1000, -d up to 10m, -live 0-10000"}
	}
	if err := consume.check(); err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: max(*conc, *single, consume.clients) * 2}, Timeout: 30 * time.Second}
	gen := dataset.New(dataset.Config{Events: 1 << 62, PropsBytes: *propsBytes, Seed: uint64(time.Now().UnixNano())})
	var genMu sync.Mutex
	body := func(n int) ([]byte, []string) {
		genMu.Lock()
		defer genMu.Unlock()
		now := time.Now()
		evs := make([]map[string]any, n)
		ids := make([]string, n)
		for j := range evs {
			e := gen.Event(1, now)
			ids[j] = e.EventID
			evs[j] = map[string]any{"event": e.Name, "event_id": e.EventID, "user_id": e.UserID, "value": e.Value,
				"timestamp": e.Timestamp.Format(time.RFC3339Nano), "props": json.RawMessage(e.Props)}
		}
		if n == 1 {
			b, _ := json.Marshal(evs[0])
			return b, ids
		}
		b, _ := json.Marshal(map[string]any{"batch": evs})
		return b, ids
	}
	// post is an ingest phase of n events per request; the ids of every
	// request answered 2xx are kept for the check after the phases.
	acks := newAcked(len(keyList))
	began := time.Now()
	post := func(conc int, d time.Duration, n int) *phase {
		return measure(ctx, conc, d, func(ctx context.Context, worker, i int) error {
			b, ids := body(n)
			k := (worker + i) % len(keyList)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, *url+"/api/analytics/events", bytes.NewReader(b))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+keyList[k])
			req.Header.Set("Content-Type", "application/json")
			if err := roundTrip(client, req); err != nil {
				return err
			}
			acks.add(k, ids)
			return nil
		})
	}

	var rss *rssProbe
	if *metricsURL != "off" {
		rss = &rssProbe{url: *metricsURL, client: &http.Client{Timeout: 2 * time.Second}}
	}
	var rep report
	base := load(ctx, *conc, *dur, func(int, int) (*http.Request, error) {
		return http.NewRequest(http.MethodGet, *url+"/healthz", nil)
	}, client)
	rep.add("GET /healthz", base, 0)
	if err := consume.run(ctx, client, *url, keyList, *dur, base, &rep); err != nil || consume.only {
		if err != nil {
			return err
		}
		return rep.write(stdout, *asJSON)
	}
	name := fmt.Sprintf("batch ingest (%d×%d)", *conc, *batch)
	ingest := rss.sampled(ctx, name, &rep, func() *phase { return post(*conc, *dur, *batch) })
	rep.add(name, ingest, *batch)
	if *liveN > 0 {
		if err := benchLive(ctx, *url, keyList, *liveN, *dur, func(d time.Duration) *phase { return post(*conc, d, *batch) },
			*batch, &rep); err != nil {
			return err
		}
	}
	var singles *phase
	if *single > 0 {
		name := fmt.Sprintf("single events (%d)", *single)
		singles = rss.sampled(ctx, name, &rep, func() *phase { return post(*single, *dur, 1) })
		rep.add(name, singles, 1)
	}
	if *baselines {
		dir, err := os.MkdirTemp("", "tally-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		lean, err := rawInsert(ctx, filepath.Join(dir, "lean.db"), leanSchema, 1000, 1, *dur, *propsBytes)
		if err != nil {
			return err
		}
		rep.add("raw lean insert, 1000/tx", lean, 1000)
		schema, err := rawInsert(ctx, filepath.Join(dir, "tally.db"), "", 1000, 1, *dur, *propsBytes)
		if err != nil {
			return err
		}
		rep.add("raw tally schema, 1000/tx", schema, 1000)
		ceiling, err := rawInsert(ctx, filepath.Join(dir, "commit.db"), leanSchema, 1, max(*single, 1), *dur, *propsBytes)
		if err != nil {
			return err
		}
		rep.add("raw one commit per event", ceiling, 1)
		rep.ratio("batch ingest / raw lean insert (P1 ≥ 0.5)", ingest.eps(*batch), lean.eps(1000))
		rep.ratio("batch ingest / raw tally schema (P1 ≥ 0.9)", ingest.eps(*batch), schema.eps(1000))
		if singles != nil {
			rep.ratio("single events / one-commit ceiling (P2 ≥ 3)", singles.eps(1), ceiling.eps(1))
		}
	}
	rep.ratio("batch ingest p99 / healthz p99", ingest.pct(0.99), base.pct(0.99))
	if *verify {
		v, err := acks.verify(ctx, client, *url, keyList, began.Add(-time.Minute))
		if err != nil {
			return err
		}
		rep.Verify = v
		rep.Notes = append(rep.Notes, "verified: "+v.String())
		if !v.ok() {
			rep.write(stdout, *asJSON)
			return fmt.Errorf("bench: not every acknowledged event is stored once: %s", v)
		}
	}
	return rep.write(stdout, *asJSON)
}

// roundTrip sends req and reads its answer; anything but 2xx is an error.
func roundTrip(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// write prints the report, as a table or as JSON.
func (r *report) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	r.print(w)
	return nil
}

// report is the outcome of a bench run, as printed and as -json.
type report struct {
	Phases []phaseResult `json:"phases"`
	Ratios []ratio       `json:"ratios"`
	RSS    []rssResult   `json:"server_rss,omitempty"`
	Verify *verifyResult `json:"verify,omitempty"`
	Notes  []string      `json:"notes,omitempty"`
}

type phaseResult struct {
	Name     string  `json:"name"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	PerSec   float64 `json:"requests_per_second"`
	Events   float64 `json:"events_per_second,omitempty"`
	P50MS    float64 `json:"p50_ms"`
	P95MS    float64 `json:"p95_ms"`
	P99MS    float64 `json:"p99_ms"`
	Duration float64 `json:"seconds"`
}

type ratio struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

func (r *report) add(name string, p *phase, perReq int) {
	r.Phases = append(r.Phases, phaseResult{Name: name, OK: p.ok, Errors: p.errs, PerSec: p.rps(), Events: p.eps(perReq),
		P50MS: p.pct(0.5), P95MS: p.pct(0.95), P99MS: p.pct(0.99), Duration: p.elapsed.Seconds()})
}

func (r *report) ratio(name string, a, b float64) {
	if a > 0 && b > 0 {
		r.Ratios = append(r.Ratios, ratio{name, a / b})
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "%-38s %9s %7s %9s %10s %9s %9s %9s\n", "phase", "requests", "errors", "req/s", "events/s", "p50 ms", "p95 ms", "p99 ms")
	for _, p := range r.Phases {
		fmt.Fprintf(w, "%-38s %9d %7d %9.0f %10.0f %9.2f %9.2f %9.2f\n", p.Name, p.OK, p.Errors, p.PerSec, p.Events, p.P50MS, p.P95MS, p.P99MS)
	}
	fmt.Fprintln(w)
	for _, q := range r.Ratios {
		fmt.Fprintf(w, "%-50s %7.2f\n", q.Name, q.Value)
	}
	for _, m := range r.RSS {
		fmt.Fprintf(w, "%-50s %7.1f MB (%.1f MB before; P6 ≤ 150)\n", "peak server RSS, "+m.Phase, m.PeakMB, m.BeforeMB)
	}
	r.printNotes(w)
}

type phase struct {
	ok, errs  int64
	elapsed   time.Duration
	latencies []time.Duration
}

func (p *phase) rps() float64 { return float64(p.ok) / p.elapsed.Seconds() }

// eps is the event rate of a phase of n events per request (0: none).
func (p *phase) eps(n int) float64 { return p.rps() * float64(n) }

func (p *phase) pct(q float64) float64 {
	if len(p.latencies) == 0 {
		return 0
	}
	return float64(p.latencies[int(q*float64(len(p.latencies)-1))].Microseconds()) / 1000
}

// load runs conc workers sending requests for d and collects latencies of
// 2xx answers; anything else counts as an error.
func load(ctx context.Context, conc int, d time.Duration, mk func(worker, i int) (*http.Request, error), client *http.Client) *phase {
	return measure(ctx, conc, d, func(ctx context.Context, w, i int) error {
		req, err := mk(w, i)
		if err != nil {
			return err
		}
		return roundTrip(client, req.WithContext(ctx))
	})
}

// measure runs conc workers calling op for d and collects the latencies
// of the calls that succeed.
func measure(ctx context.Context, conc int, d time.Duration, op func(ctx context.Context, worker, i int) error) *phase {
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
				t := time.Now()
				if err := op(ctx, w, i); err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				ok++
				lat = append(lat, time.Since(t))
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

// leanSchema is the lean raw baseline: the event columns, a unique key
// and one (tenant, ts) index.
const leanSchema = `CREATE TABLE events (id INTEGER PRIMARY KEY, tenant_id INTEGER NOT NULL, event_id TEXT NOT NULL,
	event TEXT NOT NULL, user_id TEXT NOT NULL, source TEXT NOT NULL, ts INTEGER NOT NULL, received_at INTEGER NOT NULL,
	value REAL NOT NULL, props TEXT NOT NULL, metric TEXT NOT NULL DEFAULT '', UNIQUE (tenant_id, event_id));
	CREATE INDEX events_tenant_ts ON events (tenant_id, ts);`

// rawInsert measures plain SQL inserts of realistic events into a fresh
// SQLite file (synchronous FULL, WAL) for d: perTx events per transaction
// from conc writers. schema "" means tally's own schema, by its migrations
// (and a tenant for the foreign keys).
func rawInsert(ctx context.Context, path, schema string, perTx, conc int, d time.Duration, propsBytes int) (*phase, error) {
	tenant := int64(1)
	if schema == "" {
		st, err := sqlite.Open(ctx, path, sqlite.Options{})
		if err != nil {
			return nil, err
		}
		ids, err := benchTenants(ctx, st, 1)
		st.Close()
		if err != nil {
			return nil, err
		}
		tenant = ids[0]
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if schema != "" {
		if _, err := db.ExecContext(ctx, schema); err != nil {
			return nil, err
		}
	}
	gen := dataset.New(dataset.Config{Events: 1 << 62, Tenants: []int64{tenant}, PropsBytes: propsBytes, Seed: 11})
	var genMu sync.Mutex
	return measure(ctx, conc, d, func(ctx context.Context, _, _ int) error {
		genMu.Lock()
		evs := make([]tally.Event, 0, perTx)
		for range perTx {
			evs = append(evs, gen.Event(tenant, time.Now()))
		}
		genMu.Unlock()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		ins, err := tx.PrepareContext(ctx, `INSERT INTO events (tenant_id, event_id, event, user_id, source, ts, received_at, value, props, metric)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '') ON CONFLICT (tenant_id, event_id) DO NOTHING`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, e := range evs {
			if _, err := ins.ExecContext(ctx, e.TenantID, e.EventID, e.Name, e.UserID, e.Source,
				e.Timestamp.UnixMicro(), e.ReceivedAt.UnixMicro(), e.Value, string(e.Props)); err != nil {
				return err
			}
		}
		return tx.Commit()
	}), nil
}

// benchTenants creates n tenants (and their owner) in st.
func benchTenants(ctx context.Context, st tally.Store, n int) ([]int64, error) {
	u := &tally.User{Email: "bench-owner@example.com"}
	if err := st.CreateUser(ctx, u, "!"); err != nil {
		return nil, err
	}
	var ids []int64
	for i := range n {
		tn := &tally.Tenant{Slug: fmt.Sprintf("bench-%d", i), Name: fmt.Sprintf("Bench %d", i)}
		if err := st.CreateTenant(ctx, tn, u.ID); err != nil {
			return nil, err
		}
		ids = append(ids, tn.ID)
	}
	return ids, nil
}

// buildDataset writes a new SQLite database at path with tenants tenants
// and events generated events over the last days days (see bench/dataset),
// through tally's own store, and reports its time and size per event.
func buildDataset(ctx context.Context, path string, events, tenants, days, propsBytes int, stdout io.Writer) error {
	if _, err := os.Stat(path); err == nil {
		return &configError{msg: fmt.Sprintf("bench -dataset: %s exists; give a new path", path)}
	}
	began := time.Now()
	// A long write timeout: the bulk load holds only the dedup key, but a
	// checkpoint of a large WAL on a loaded machine can still take seconds.
	st, err := sqlite.Open(ctx, path, sqlite.Options{Synchronous: "NORMAL", StatementTimeout: time.Minute})
	if err != nil {
		return err
	}
	defer st.Close()
	ids, err := benchTenants(ctx, st, tenants)
	if err != nil {
		return err
	}
	// The log is loaded without its secondary indexes, each built once at
	// the end: keeping six B-trees current row by row made a 10 M build
	// slow down as it grew, past an hour on two cores.
	restore, err := st.DeferEventIndexes(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	g := dataset.New(dataset.Config{Events: events, Tenants: ids, From: now.AddDate(0, 0, -days), To: now, PropsBytes: propsBytes})
	// A batch that still runs out of the timeout was rolled back and is
	// sent again (the event ids dedupe).
	batch := make([]tally.Event, 0, 5000)
	var stored atomic.Int64
	for {
		if batch = g.Next(batch); len(batch) == 0 {
			break
		}
		var err error
		for try := 0; try < 3; try++ {
			if _, err = st.InsertEvents(ctx, batch); tally.ErrorCodeOf(err) != tally.EUnavailable {
				break
			}
		}
		if err != nil {
			return err
		}
		stored.Add(int64(len(batch)))
	}
	loaded := time.Since(began)
	if err := restore(ctx); err != nil {
		return err
	}
	indexed := time.Since(began) - loaded
	if err := st.Close(); err != nil {
		return err
	}
	var size int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			size += fi.Size()
		}
	}
	elapsed := time.Since(began)
	fmt.Fprintf(stdout, "dataset %s: %d events, %d tenants (the biggest %.0f%%), %d days in %v (%.0f events/s; indexes built in %v); %d bytes, %.0f bytes per event\n",
		path, stored.Load(), tenants, 100*g.Share(0), days, elapsed.Round(time.Millisecond), float64(stored.Load())/elapsed.Seconds(),
		indexed.Round(time.Millisecond), size, float64(size)/float64(max(stored.Load(), 1)))
	return nil
}
