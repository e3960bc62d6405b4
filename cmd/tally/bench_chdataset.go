package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/bench/dataset"
	"github.com/tallyhq/tally/clickhouse"
)

// sqlDataset is an event log like bench/dataset's, made inside the
// stores instead of through InsertEvents: ClickHouse computes the events
// (INSERT … SELECT FROM numbers) and PostgreSQL their dedup keys (INSERT
// … SELECT FROM generate_series), so that `tally bench -clickhouse
// -prefill-sql` fills 100 M events in minutes rather than hours.
//
// Event n (0 ≤ n < events) is what the store would have stored for the
// n-th event of dataset.Generator: timestamp from + n·step (so in time
// order), id firstID+n (the store's ids grow with each reservation),
// event id the UUID form of MD5("seed:n") (random-looking 16 bytes, the
// same text in both stores), tenant by share 1/(i+1) as the generator's,
// name, user, plan, path and duration drawn from sipHash64(n, seed), and
// props of about propsBytes in the generator's JSON (keys in order).
// The tenant is picked by the Weyl sequence n·⌊2³²/φ⌋ mod 2³² against
// integer thresholds, which ClickHouse, PostgreSQL and Go compute alike,
// so the keys match their events and tests know each tenant's count.
type sqlDataset struct {
	events     int64
	tenants    []int64
	from, to   time.Time
	propsBytes int
	seed       uint64
	firstID    int64 // id of event 0: one above the key table's sequence
}

// maxSQLEvents bounds sqlDataset.events: n·2654435769 must fit a
// PostgreSQL bigint.
const maxSQLEvents = 1_000_000_000

// weyl is the multiplier of the tenant draw: 2³²/φ, odd.
const weyl = 2654435769

// usageMetric and plans are the metric of the generator's usage
// increments and the plans of its props (see dataset.Generator.Event).
const usageMetric = "seats_daily"

var plans = []string{"free", "pro", "team"}

// step is the time between two events, in microseconds.
func (d sqlDataset) step() int64 {
	return max(1, d.to.Sub(d.from).Microseconds()/d.events)
}

// at is event n's timestamp.
func (d sqlDataset) at(n int64) time.Time {
	return time.UnixMicro(d.from.UnixMicro() + n*d.step()).UTC()
}

// thresholds are the tenants' cumulative shares of 2³², but the last's:
// event n goes to the tenant whose index is how many of them are at most
// (n·weyl) mod 2³².
func (d sqlDataset) thresholds() []uint64 {
	total := 0.0
	for i := range d.tenants {
		total += 1 / float64(i+1)
	}
	var out []uint64
	cum := 0.0
	for i := range len(d.tenants) - 1 {
		cum += 1 / float64(i+1)
		out = append(out, uint64(math.Floor(cum/total*(1<<32))))
	}
	return out
}

// tenantOf is event n's tenant.
func (d sqlDataset) tenantOf(n int64) int64 {
	x := uint64(n) * weyl % (1 << 32)
	i := 0
	for _, t := range d.thresholds() {
		if t <= x {
			i++
		}
	}
	return d.tenants[i]
}

// eventID is event n's event id.
func (d sqlDataset) eventID(n int64) string {
	sum := md5.Sum([]byte(d.idSeed() + strconv.FormatInt(n, 10)))
	h := hex.EncodeToString(sum[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (d sqlDataset) idSeed() string      { return strconv.FormatUint(d.seed, 10) + ":" }
func (d sqlDataset) sessionSeed() string { return "s" + strconv.FormatUint(d.seed, 10) + ":" }

// counts is how many events each tenant gets.
func (d sqlDataset) counts() map[int64]int64 {
	out := map[int64]int64{}
	for n := range d.events {
		out[d.tenantOf(n)]++
	}
	return out
}

// chCols are the events table's columns the SELECT of eventsSQL gives.
const chCols = "tenant_id, ts, id, event_uuid, event_id, event, user_id, source, received_after, value, props, metric"

// eventsSQL is the ClickHouse SELECT of events lo ≤ n < hi, in chCols
// (ClickHouse 18.16 SQL: no generateUUIDv4, no DateTime64).
func (d sqlDataset) eventsSQL(lo, hi int64) string {
	i64 := func(v int64) string { return "toInt64(" + strconv.FormatInt(v, 10) + ")" }
	tenant := i64(d.tenants[0])
	if len(d.tenants) > 1 {
		ts := make([]string, len(d.tenants))
		for i, t := range d.tenants {
			ts[i] = i64(t)
		}
		thr := make([]string, 0, len(d.tenants)-1)
		for _, t := range d.thresholds() {
			thr = append(thr, "toUInt64("+strconv.FormatUint(t, 10)+")")
		}
		tenant = "[" + strings.Join(ts, ", ") + "][1 + arrayCount(t -> t <= number * " + strconv.Itoa(weyl) +
			" % 4294967296, [" + strings.Join(thr, ", ") + "])]"
	}
	names := dataset.Names()
	for i, n := range names {
		names[i] = sqlText(n)
	}
	plan := make([]string, len(plans))
	for i, p := range plans {
		plan[i] = sqlText(p)
	}
	// One hash per event, cut into its draws: name (len(names)), user
	// (dataset.DefaultUsers), ms (2000), path (5000), plan (3), amount (5).
	nn := int64(len(names))
	div := func(parts ...int64) string {
		p := int64(1)
		for _, x := range parts {
			p *= x
		}
		return "intDiv(h, " + strconv.FormatInt(p, 10) + ")"
	}
	users := int64(dataset.DefaultUsers)
	usage := "event = " + sqlText(tally.EventUsageIncrement)
	filler := strings.Repeat("x", max(0, d.propsBytes-120))
	props := "concat('{', if(" + usage + ", " + sqlText(`"`+tally.UsageMetricProp+`":"`+usageMetric+`",`) + ", ''), " +
		`'"ms":', toString(` + div(nn, users) + ` % 2000), ` +
		sqlText(`,"note":"`+filler+`","path":"/app/projects/`) + ", toString(" + div(nn, users, 2000) + " % 5000), " +
		sqlText(`/settings","plan":"`) + ", [" + strings.Join(plan, ", ") + "][1 + " + div(nn, users, 2000, 5000) + " % 3], " +
		sqlText(`","session":"`) + ", UUIDNumToString(MD5(concat(" + sqlText(d.sessionSeed()) + ", toString(number)))), " + sqlText(`"}`) + ")"
	return "SELECT " + tenant + " AS tenant_id, " +
		i64(d.from.UnixMicro()) + " + toInt64(number) * " + i64(d.step()) + " AS ts, " +
		i64(d.firstID) + " + toInt64(number) AS id, " +
		"MD5(concat(" + sqlText(d.idSeed()) + ", toString(number))) AS event_uuid, '' AS event_id, " +
		"[" + strings.Join(names, ", ") + "][1 + h % " + strconv.FormatInt(nn, 10) + "] AS event, " +
		"concat('user-', toString(" + div(nn) + " % " + strconv.FormatInt(users, 10) + ")) AS user_id, " +
		"'sdk' AS source, toInt64(0) AS received_after, " +
		"if(" + usage + ", toFloat64(1 + " + div(nn, users, 2000, 5000, 3) + " % 5), 1.) AS value, " +
		props + " AS props, " +
		"if(" + usage + ", " + sqlText(usageMetric) + ", '') AS metric " +
		"FROM (SELECT number, sipHash64(number, toUInt64(" + strconv.FormatUint(d.seed, 10) + ")) AS h FROM numbers(" +
		strconv.FormatInt(lo, 10) + ", " + strconv.FormatInt(hi-lo, 10) + "))"
}

// keysSQL is the PostgreSQL INSERT of the keys of events lo ≤ n < hi
// into event_keys, as stored keys (batch 0, as postgres.MigratedKeys
// records them): postgres.EventKey computed in SQL, as migration 0021
// does.
func (d sqlDataset) keysSQL(lo, hi int64) string {
	ts := make([]string, len(d.tenants))
	for i, t := range d.tenants {
		ts[i] = strconv.FormatInt(t, 10)
	}
	tenant := "(ARRAY[" + strings.Join(ts, ", ") + "]::bigint[])[1"
	for _, t := range d.thresholds() {
		tenant += " + (x >= " + strconv.FormatUint(t, 10) + ")::int"
	}
	tenant += "]"
	return `INSERT INTO event_keys (key, tenant_id, id, ts, batch_id)
SELECT encode(substring(sha256(int8send(t) || convert_to(md5(` + sqlText(d.idSeed()) + ` || n)::uuid::text, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid,
	t, ` + strconv.FormatInt(d.firstID, 10) + ` + n,
	timestamptz 'epoch' + (` + strconv.FormatInt(d.from.UnixMicro(), 10) + ` + n * ` + strconv.FormatInt(d.step(), 10) + `) * interval '1 microsecond', 0
FROM (SELECT n, ` + tenant + ` AS t
	FROM (SELECT n, n * ` + strconv.Itoa(weyl) + ` % 4294967296 AS x FROM generate_series(` +
		strconv.FormatInt(lo, 10) + `::bigint, ` + strconv.FormatInt(hi-1, 10) + `) AS n) w) s`
}

// sqlText quotes s as an SQL string literal of both ClickHouse and
// PostgreSQL (standard_conforming_strings): only ' is special in what
// this file quotes, which has no backslash.
func sqlText(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// prefillTook is what loading an sqlDataset took, per store.
type prefillTook struct {
	events, keys, index, all time.Duration
}

// load stores d: its events in ch, chunk events per statement, and at the
// same time their keys in the key table of the PostgreSQL schema at
// pgURL (ch's), on two connections, the table's unique index dropped
// while they go in and built again after (a bulk load's usual order; the
// store must have no other writer meanwhile). Then it moves the key
// table's id sequence past the events' ids, so that later InsertEvents
// never reuse one, and marks every hour of the span dirty for each
// tenant, as the store's inserts would have (rollups are computed from
// those marks). progress, when not nil, gets a line per chunk.
func (d sqlDataset) load(ctx context.Context, ch *clickhouse.Store, pgURL string, chunk int64, progress io.Writer) (prefillTook, error) {
	var took prefillTook
	if d.events < 1 || d.events > maxSQLEvents || len(d.tenants) == 0 || !d.from.Before(d.to) {
		return took, fmt.Errorf("prefill-sql: want 1 to %d events, tenants and a time span", maxSQLEvents)
	}
	cfg, err := pgxpool.ParseConfig(pgURL)
	if err != nil {
		return took, err
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return took, err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "ALTER TABLE event_keys DROP CONSTRAINT event_keys_pkey"); err != nil {
		return took, fmt.Errorf("prefill-sql: %w", err)
	}
	began := time.Now()
	var logMu sync.Mutex // the loaders below report from goroutines of their own
	logf := func(format string, args ...any) {
		if progress != nil {
			logMu.Lock()
			defer logMu.Unlock()
			fmt.Fprintf(progress, format+"\n", args...)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		for lo := int64(0); lo < d.events; lo += chunk {
			hi := min(lo+chunk, d.events)
			if err := ch.InsertSelect(gctx, chCols, d.eventsSQL(lo, hi)); err != nil {
				return fmt.Errorf("prefill-sql: ClickHouse events %d-%d: %w", lo, hi, err)
			}
			logf("  prefill: events to %d in ClickHouse (%s)", hi, time.Since(began).Round(time.Second))
		}
		took.events = time.Since(began)
		return nil
	})
	// Keys in smaller pieces than events, so that both connections stay
	// busy to the end.
	keyChunk := max(1, min(chunk, d.events/8))
	next := make(chan int64)
	g.Go(func() error {
		defer close(next)
		for lo := int64(0); lo < d.events; lo += keyChunk {
			select {
			case next <- lo:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var keysDone [2]time.Duration
	for w := range 2 {
		g.Go(func() error {
			for lo := range next {
				hi := min(lo+keyChunk, d.events)
				if _, err := pool.Exec(gctx, d.keysSQL(lo, hi)); err != nil {
					return fmt.Errorf("prefill-sql: PostgreSQL keys %d-%d: %w", lo, hi, err)
				}
				logf("  prefill: keys %d-%d in PostgreSQL (%s)", lo, hi, time.Since(began).Round(time.Second))
			}
			keysDone[w] = time.Since(began)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return took, err
	}
	took.keys = max(keysDone[0], keysDone[1])
	indexBegan := time.Now()
	tx, err := pool.Begin(ctx)
	if err != nil {
		return took, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	last := d.firstID + d.events - 1
	for _, sql := range []string{
		"SET LOCAL maintenance_work_mem = '1GB'",
		"ALTER TABLE event_keys ADD CONSTRAINT event_keys_pkey PRIMARY KEY (key)",
		"SELECT setval('event_keys_id_seq', " + strconv.FormatInt(last, 10) + ") FROM event_keys_id_seq WHERE NOT is_called OR last_value < " + strconv.FormatInt(last, 10),
		`INSERT INTO rollup_dirty (tenant_id, hour, marked_at)
			SELECT t, h, now() FROM unnest($1::bigint[]) AS t,
				generate_series(date_trunc('hour', $2::timestamptz), $3::timestamptz, interval '1 hour') AS h
			ORDER BY t, h
			ON CONFLICT (tenant_id, hour) DO UPDATE SET marked_at = excluded.marked_at, seq = excluded.seq`,
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{d.tenants, d.from, d.at(d.events - 1)}
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return took, fmt.Errorf("prefill-sql: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return took, fmt.Errorf("prefill-sql: %w", err)
	}
	if _, err := pool.Exec(ctx, "ANALYZE event_keys"); err != nil {
		return took, fmt.Errorf("prefill-sql: %w", err)
	}
	took.index = time.Since(indexBegan)
	took.all = time.Since(began)
	return took, nil
}

// prefillInSQL stores prefill events over the 30 days before now in ch as
// an sqlDataset (10 M events per ClickHouse statement), with ids above
// every one the key table gave so far, and prints the rates.
func prefillInSQL(ctx context.Context, ch *clickhouse.Store, pgURL string, tenants []int64, prefill int, now time.Time, propsBytes int, stdout io.Writer) error {
	last, err := ch.LastEventID(ctx)
	if err != nil {
		return err
	}
	d := sqlDataset{events: int64(prefill), tenants: tenants, from: now.AddDate(0, 0, -30), to: now, propsBytes: propsBytes, seed: 4, firstID: last + 1}
	took, err := d.load(ctx, ch, pgURL, 10_000_000, stdout)
	if err != nil {
		return err
	}
	rate := func(name string, t time.Duration) {
		fmt.Fprintf(stdout, "%-48s %12.0f  (%s)\n", name, float64(prefill)/t.Seconds(), t.Round(time.Second))
	}
	rate(fmt.Sprintf("prefill %d events in SQL, keys included", prefill), took.all)
	rate("  its events in ClickHouse (INSERT … SELECT)", took.events)
	rate("  its keys in PostgreSQL (2 connections)", took.keys)
	fmt.Fprintf(stdout, "  %-46s %12s  (%s)\n", "then the key index, id sequence, dirty hours", "", took.index.Round(time.Second))
	return nil
}
