package clickhouse_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/meter"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/storetest"
)

// TestClusterConformance runs the store suite on a log sharded over two
// ClickHouse servers.
func TestClusterConformance(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireCluster(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) tally.Store {
		return openAt(t, now, chtest.FreshClusterDatabase(t))
	})
}

func TestParseURLCluster(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url, base, db, err string
	}{
		{url: "clickhouse://a:1/ev?cluster=c&shards=a:1,b:2", base: "http://a:1/", db: "ev"},
		{url: "clickhouses://b:2/?cluster=c_1&shards=a:1,b:2", base: "https://b:2/", db: "tally"},
		{url: "clickhouse://a:1/ev?cluster=c", err: "want ?cluster=NAME&shards="},
		{url: "clickhouse://a:1/ev?shards=a:1,b:2", err: "want ?cluster=NAME&shards="},
		{url: "clickhouse://a:1/ev?cluster=c-x&shards=a:1", err: `cluster "c-x"`},
		{url: "clickhouse://a:1/ev?cluster=c&shards=a:1,,b:2", err: `shard ""`},
		{url: "clickhouse://a:1/ev?cluster=c&shards=a:1,b:2/x", err: `shard "b:2/x"`},
		{url: "clickhouse://a:1/ev?cluster=c&shards=a:1,a:1", err: "a:1 listed twice"},
		{url: "clickhouse://c:3/ev?cluster=c&shards=a:1,b:2", err: "the server c:3 is not one of the shards"},
	} {
		base, db, err := clickhouse.ParseURL(c.url)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseURL(%q) = %q, %q, %v; want an error with %q", c.url, base, db, err, c.err)
		case c.err == "" && (err != nil || base != c.base || db != c.db):
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", c.url, base, db, err, c.base, c.db)
		}
	}
}

// TestClusterOpenChecksShards: a shard list that is not the cluster's, in
// its order (swapped, one missing, an unknown cluster), is refused at Open
// with what is wrong.
func TestClusterOpenChecksShards(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireCluster(t)
	t.Parallel()
	good := chtest.FreshClusterDatabase(t)
	u, _ := url.Parse(good)
	q := u.Query()
	shards := strings.Split(q.Get("shards"), ",")
	for name, c := range map[string]struct {
		shards []string
		want   string
	}{
		"swapped": {[]string{shards[1], shards[0]}, "listed as shard 1 (list the shards in remote_servers order)"},
		"one":     {shards[:1], "has 2 shards, shards= lists 1"},
		"unknown": {shards, "knows no cluster nope"},
	} {
		v := url.Values{"cluster": {q.Get("cluster")}, "shards": {strings.Join(c.shards, ",")}}
		if name == "unknown" {
			v.Set("cluster", "nope")
		}
		bad := *u
		bad.RawQuery = v.Encode()
		pg := openPostgres(t, nil)
		s, err := clickhouse.Open(t.Context(), bad.String(), pg, clickhouse.Options{})
		if err == nil {
			s.Close()
			t.Errorf("%s: Open(%s) succeeded", name, bad.String())
			continue
		}
		pg.Close()
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open(%s): %v; want %q", name, bad.String(), err, c.want)
		}
	}
}

// shardCounts is how many rows each shard's events table of the database
// in eventsURL holds per tenant (and, with user, of that user only).
func shardCounts(t *testing.T, eventsURL, user string) []map[int64]int64 {
	t.Helper()
	u, _ := url.Parse(eventsURL)
	db := strings.Trim(u.Path, "/")
	where := ""
	if user != "" {
		where = " WHERE user_id = '" + user + "'"
	}
	var out []map[int64]int64
	for _, base := range chtest.Shards() {
		text, err := chtest.QueryAt(t.Context(), base, "SELECT tenant_id, count() FROM "+db+".events"+where+" GROUP BY tenant_id")
		if err != nil {
			t.Fatal(err)
		}
		m := map[int64]int64{}
		for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
			if line == "" {
				continue
			}
			f := strings.Split(line, "\t")
			id, _ := strconv.ParseInt(f[0], 10, 64)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			m[id] = n
		}
		out = append(out, m)
	}
	return out
}

// clusterTenants creates n tenants on s, the same on every store it is
// called for in the same order (so with the same ids).
func clusterTenants(t testing.TB, s tally.Store, n int) []*tally.Tenant {
	t.Helper()
	u := &tally.User{Email: "cluster@example.com"}
	if err := s.CreateUser(t.Context(), u, "!"); err != nil {
		t.Fatal(err)
	}
	var out []*tally.Tenant
	for i := range n {
		tn := &tally.Tenant{Slug: fmt.Sprintf("c%d", i), Name: fmt.Sprintf("C%d", i)}
		if err := s.CreateTenant(t.Context(), tn, u.ID); err != nil {
			t.Fatal(err)
		}
		out = append(out, tn)
	}
	return out
}

// clusterEvents are three days of events of each tenant up to now: page
// views, uploads with sizes and kinds, usage increments, several users.
func clusterEvents(tenants []*tally.Tenant, now time.Time) []tally.Event {
	var evs []tally.Event
	for ti, tn := range tenants {
		for i := range 40 + 7*ti {
			at := now.Add(-time.Duration(i*97+ti*13) * time.Minute)
			e := tally.Event{TenantID: tn.ID, EventID: fmt.Sprintf("e-%d-%d", ti, i), Name: "page.view",
				UserID: fmt.Sprintf("u%d", i%5), Source: "api", Timestamp: at, ReceivedAt: at.Add(time.Second),
				Value: float64(i % 4), Props: json.RawMessage(`{}`)}
			switch i % 3 {
			case 1:
				e.Name = "files.uploaded"
				e.Props = json.RawMessage(fmt.Sprintf(`{"bytes":%d,"kind":"k%d"}`, 100*i, i%2))
			case 2:
				if i%2 == 0 {
					e.Name = tally.EventUsageIncrement
					e.Props = json.RawMessage(`{"metric":"builds_daily","amount":2}`)
					e.Value = 2
				}
			}
			evs = append(evs, e)
		}
	}
	return evs
}

// tenantReads is everything the store and the services above it answer
// about one tenant's events.
func tenantReads(t *testing.T, s tally.Store, tenantID int64, now time.Time) map[string]any {
	t.Helper()
	ctx := t.Context()
	out := map[string]any{}
	from, to := now.Add(-96*time.Hour), now.Add(time.Hour)

	var pages [][]tally.Event
	f := tally.EventFilter{Limit: 7}
	for {
		page, next, err := s.ListEvents(ctx, tenantID, f)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, page)
		if next == nil {
			break
		}
		f.Cursor = next
	}
	out["list pages"] = pages
	uploads, _, err := s.ListEvents(ctx, tenantID, tally.EventFilter{Limit: 100, Name: "files.*", UserID: "u1"})
	check(t, err)
	out["list filtered"] = uploads

	var exports []any
	var cursor *tally.Cursor
	for {
		var info tally.ExportInfo
		var rows []tally.Event
		err := s.ExportEvents(ctx, tenantID, tally.EventFilter{Cursor: cursor}, 15,
			func(i tally.ExportInfo) error { info = i; return nil },
			func(e *tally.Event) error { rows = append(rows, *e); return nil })
		check(t, err)
		exports = append(exports, info, rows)
		if !info.Truncated {
			break
		}
		cursor = info.Next
	}
	out["export pages"] = exports

	tail, err := s.TailEvents(ctx, tenantID, tally.EventFilter{}, 0, 1000)
	check(t, err)
	out["tail"] = tail
	n, err := s.CountEvents(ctx, tenantID, from, to)
	check(t, err)
	out["count"] = n
	hours, err := s.AggregateEvents(ctx, tenantID, from, to, time.Hour)
	check(t, err)
	out["hourly aggregate"] = hours
	var users []string
	check(t, s.BucketUsers(ctx, tenantID, []time.Time{from, now.Add(-24 * time.Hour), to}, func(b int, u string) error {
		users = append(users, fmt.Sprint(b, u))
		return nil
	}))
	out["bucket users"] = users
	ids, err := s.StoredEventIDs(ctx, tenantID, []string{"e-0-1", "e-1-1", "e-2-5", "nope"})
	check(t, err)
	out["stored ids"] = ids
	at, ok, err := s.(tally.AbsenceStore).LastEventAt(ctx, tenantID, "files.*", from)
	check(t, err)
	out["last upload"] = fmt.Sprint(at, ok)

	reports := rollup.NewReports(rollup.ReportsConfig{}, s)
	usage, err := reports.Usage(ctx, tenantID, []string{"events_daily", "file_uploads_daily", "builds_daily"}, from, to, true, time.UTC)
	check(t, err)
	out["usage"] = usage
	for _, rng := range []string{"today", "7d"} {
		kpis, err := reports.KPIs(ctx, tenantID, rng, time.UTC, now)
		check(t, err)
		out["kpis "+rng] = kpis
	}

	meters := meter.New(meter.Config{Rules: tally.DefaultUsageRules()}, s)
	for _, slug := range []string{"events_daily", "upload_bytes", "upload_kinds"} {
		for _, w := range []tally.MeterWindow{tally.WindowHour, tally.WindowDay, tally.WindowNone} {
			res, err := meters.Query(ctx, tenantID, slug, tally.MeterQueryInput{From: from, To: to, Window: w, Loc: time.UTC})
			check(t, err)
			out["meter "+slug+" "+string(w)] = res
		}
	}
	return out
}

// TestClusterMatchesOneServer stores the same events of four tenants in a
// log sharded over two servers and in a log on one: every tenant's events
// are on one shard, both shards hold some, and every read of a tenant
// (list and its cursors, export pages, tail, counts, aggregates, users,
// usage, KPIs, meters) answers the same on both.
func TestClusterMatchesOneServer(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireServer(t)
	chtest.RequireCluster(t)
	t.Parallel()
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Second)
	clusterURL := chtest.FreshClusterDatabase(t)
	stores := []*clickhouse.Store{openAt(t, nil, clusterURL), open(t, nil)}
	var tenants []*tally.Tenant
	for _, s := range stores {
		made := clusterTenants(t, s, 4)
		if tenants != nil && made[0].ID != tenants[0].ID {
			t.Fatalf("tenant ids %d and %d on the two stores; the comparison needs the same", made[0].ID, tenants[0].ID)
		}
		tenants = made
		meters := meter.New(meter.Config{Rules: tally.DefaultUsageRules()}, s)
		for _, tn := range tenants {
			for _, m := range []tally.MeterDef{
				{Slug: "upload_bytes", Event: "files.uploaded", Aggregation: tally.AggSum, ValueProperty: "props.bytes", GroupBy: []string{"props.kind"}},
				{Slug: "upload_kinds", Event: "files.*", Aggregation: tally.AggUniqueCount, ValueProperty: "props.kind",
					Filter: map[string]string{"user_id": "u1"}},
			} {
				_, err := meters.Create(ctx, tn.ID, m)
				check(t, err)
			}
		}
		evs := clusterEvents(tenants, now)
		for lo := 0; lo < len(evs); lo += 50 { // batches that mix tenants, as the writer's do
			_, err := s.InsertEvents(ctx, evs[lo:min(lo+50, len(evs))])
			check(t, err)
		}
	}

	counts := shardCounts(t, clusterURL, "")
	held := make([]int, len(counts))
	for ti, tn := range tenants {
		on := -1
		for i, m := range counts {
			if m[tn.ID] == 0 {
				continue
			}
			if on >= 0 {
				t.Errorf("tenant %d has events on shards %d and %d", tn.ID, on, i)
			}
			on = i
			held[i]++
		}
		if want := int64(40 + 7*ti); on < 0 || counts[on][tn.ID] != want {
			t.Errorf("tenant %d: per-shard counts %v, want all %d on one shard", tn.ID, counts, want)
		}
	}
	for i, n := range held {
		if n == 0 {
			t.Errorf("shard %d holds no tenant's events (counts %v)", i, counts)
		}
	}
	t.Logf("tenants per shard: %v (counts %v)", held, counts)

	for _, tn := range tenants {
		got, want := tenantReads(t, stores[0], tn.ID, now), tenantReads(t, stores[1], tn.ID, now)
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				g, _ := json.Marshal(got[k])
				w, _ := json.Marshal(want[k])
				t.Errorf("tenant %d, %s: the cluster answers\n%.600s\none server\n%.600s", tn.ID, k, g, w)
			}
		}
	}
	all, err := stores[0].CountAllEvents(ctx, now.Add(-96*time.Hour), now.Add(time.Hour))
	check(t, err)
	one, err := stores[1].CountAllEvents(ctx, now.Add(-96*time.Hour), now.Add(time.Hour))
	check(t, err)
	if all != one || all == 0 {
		t.Errorf("CountAllEvents: cluster %d, one server %d", all, one)
	}
}

// TestClusterDistributedAgrees: rows inserted through the Distributed
// table events_all (synchronously) land on the shard where tally puts the
// tenant's events, so the table's sharding key and tally's shard
// arithmetic are the same.
func TestClusterDistributedAgrees(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireCluster(t)
	t.Parallel()
	ctx := t.Context()
	eventsURL := chtest.FreshClusterDatabase(t)
	s := openAt(t, nil, eventsURL)
	tenants := clusterTenants(t, s, 5)
	now := time.Now().UTC()
	var rows []string
	var batch []tally.Event
	for i, tn := range tenants {
		batch = append(batch, tally.Event{TenantID: tn.ID, EventID: "tally", Name: "a", Timestamp: now, ReceivedAt: now})
		rows = append(rows, fmt.Sprintf("(%d, %d, %d, 'distributed', 'a')", tn.ID, now.UnixMicro(), 1_000_000+i))
	}
	_, err := s.InsertEvents(ctx, batch)
	check(t, err)
	byTally := shardCounts(t, eventsURL, "")
	u, _ := url.Parse(eventsURL)
	db := strings.Trim(u.Path, "/")
	sql := "INSERT INTO " + db + ".events_all (tenant_id, ts, id, event_id, event) VALUES " + strings.Join(rows, ", ")
	resp, err := http.Post(chtest.Shards()[0]+"/?insert_distributed_sync=1", "text/plain", strings.NewReader(sql))
	check(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("insert through events_all: %s", resp.Status)
	}
	both := shardCounts(t, eventsURL, "")
	for i := range both {
		for _, tn := range tenants {
			if both[i][tn.ID] != 2*byTally[i][tn.ID] {
				t.Errorf("tenant %d: shard %d holds %d rows after tally's insert, %d after the Distributed insert; want both on one shard",
					tn.ID, i, byTally[i][tn.ID], both[i][tn.ID])
			}
		}
	}
}

// TestClusterPrivacyDeletion: a user's events go from every shard that
// holds any (also rows of the tenant on a shard that is not its own, as
// an earlier shard layout would leave), and so does a purge; the other
// users' events stay.
func TestClusterPrivacyDeletion(t *testing.T) {
	pgtest.RequireServer(t)
	chtest.RequireCluster(t)
	t.Parallel()
	ctx := t.Context()
	eventsURL := chtest.FreshClusterDatabase(t)
	s := openAt(t, nil, eventsURL)
	tenants := clusterTenants(t, s, 2)
	now := time.Now().UTC().Truncate(time.Second)
	evs := clusterEvents(tenants, now)
	_, err := s.InsertEvents(ctx, evs)
	check(t, err)

	// Strays: rows of each tenant on the shard that is not its own.
	u, _ := url.Parse(eventsURL)
	db := strings.Trim(u.Path, "/")
	before := shardCounts(t, eventsURL, "")
	for i, base := range chtest.Shards() {
		for _, tn := range tenants {
			if before[i][tn.ID] != 0 {
				continue
			}
			old := now.Add(-30 * 24 * time.Hour).UnixMicro()
			_, err := chtest.QueryAt(ctx, base, fmt.Sprintf("INSERT INTO %s.events (tenant_id, ts, id, event_id, event, user_id) VALUES "+
				"(%d, %d, 1, 'stray-a', 'page.view', 'u1'), (%d, %d, 2, 'stray-b', 'page.view', 'u2')", db, tn.ID, old, tn.ID, old))
			check(t, err)
		}
	}
	a, b := tenants[0].ID, tenants[1].ID
	u1 := shardCounts(t, eventsURL, "u1")
	var want int64
	for _, m := range u1 {
		if m[a] == 0 {
			t.Fatalf("user u1 of tenant %d is not on every shard before the deletion: %v", a, u1)
		}
		want += m[a]
	}
	n, err := s.DeleteUserEvents(ctx, a, "u1")
	check(t, err)
	if n != want {
		t.Errorf("DeleteUserEvents answered %d, the shards held %d", n, want)
	}
	for i, m := range shardCounts(t, eventsURL, "u1") {
		if m[a] != 0 {
			t.Errorf("shard %d still holds %d events of u1 of tenant %d", i, m[a], a)
		}
		if m[b] != u1[i][b] {
			t.Errorf("shard %d: tenant %d's u1 went from %d to %d events; only tenant %d's were deleted", i, b, u1[i][b], m[b], a)
		}
	}
	for i, m := range shardCounts(t, eventsURL, "u2") {
		if m[a] == 0 {
			t.Errorf("shard %d: user u2 of tenant %d lost its events", i, a)
		}
	}

	// A purge of tenant b's events older than two weeks takes its strays
	// on the other shard too, and keeps its recent events on its own.
	n, err = s.PurgeEvents(ctx, b, now.Add(-14*24*time.Hour))
	check(t, err)
	if n != 2 {
		t.Errorf("PurgeEvents answered %d, want the 2 strays", n)
	}
	for i, m := range shardCounts(t, eventsURL, "") {
		if want := before[i][b]; m[b] != want {
			t.Errorf("after the purge, shard %d holds %d events of tenant %d, want %d (its recent ones where they live, none elsewhere)",
				i, m[b], b, want)
		}
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkClusterRead compares a tenant's reads on its shard's events
// table (what tally does) with the same reads through the Distributed
// table events_all, sent to the other shard (which asks every shard):
// the events list's first page and a 30-day hourly aggregate, over
// 500 000 events of each of two tenants, one per shard. Compare the
// ns/op of each pair, measured in the same run.
func BenchmarkClusterRead(b *testing.B) {
	pgtest.RequireServer(b)
	chtest.RequireCluster(b)
	ctx := b.Context()
	eventsURL := chtest.FreshClusterDatabase(b)
	s, err := clickhouse.Open(ctx, eventsURL, openPostgres(b, nil), clickhouse.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	u, _ := url.Parse(eventsURL)
	db := strings.Trim(u.Path, "/")
	shards := chtest.Shards()
	const n = 500_000
	start := time.Now().UTC().Add(-30 * 24 * time.Hour).UnixMicro()
	step := 30 * 24 * time.Hour.Microseconds() / n
	for i, base := range shards {
		tenant := 2 - i // tenant_id mod 2 is the shard: 2 on the first, 1 on the second
		_, err := chtest.QueryAt(ctx, base, fmt.Sprintf("INSERT INTO %s.events (tenant_id, ts, id, event_id, event, user_id, props) "+
			"SELECT %d, %d + toInt64(number) * %d, toInt64(number) * 2 + %d, toString(number), if(number %% 3 = 0, 'files.uploaded', 'page.view'), "+
			"concat('u', toString(number %% 1000)), '{\"a\":1}' FROM system.numbers LIMIT %d", db, tenant, start, step, tenant, n))
		if err != nil {
			b.Fatal(err)
		}
	}
	list := func(table string) string {
		return "SELECT id, event_id, event, user_id, source, ts, received_at, value, props FROM " + db + "." + table +
			" WHERE tenant_id = 1 ORDER BY ts DESC, id DESC LIMIT 101"
	}
	agg := func(table string) string {
		return "SELECT intDiv(ts, 3600000000) AS h, event, count(), uniqExact(user_id) FROM " + db + "." + table +
			" WHERE tenant_id = 1 AND ts >= " + strconv.FormatInt(start, 10) + " GROUP BY h, event"
	}
	for _, c := range []struct{ name, at, sql string }{
		{"list/shard", shards[1], list("events")},
		{"list/distributed", shards[0], list("events_all")},
		{"aggregate/shard", shards[1], agg("events")},
		{"aggregate/distributed", shards[0], agg("events_all")},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := chtest.QueryAt(ctx, c.at, c.sql); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClusterInsert is InsertEvents of batches of 1000 events of four
// tenants (as the group-commit writer sends them) on one server and on
// two shards, in the same run: events/s of each.
func BenchmarkClusterInsert(b *testing.B) {
	pgtest.RequireServer(b)
	chtest.RequireServer(b)
	chtest.RequireCluster(b)
	for _, c := range []struct {
		name string
		url  func(testing.TB) string
	}{{"one-server", chtest.FreshDatabase}, {"two-shards", chtest.FreshClusterDatabase}} {
		b.Run(c.name, func(b *testing.B) {
			s := openAt(b, nil, c.url(b))
			tenants := clusterTenants(b, s, 4)
			now := time.Now().UTC()
			props := json.RawMessage(`{"path":"/a/b","bytes":1234,"kind":"upload"}`)
			batch := make([]tally.Event, 1000)
			n := 0
			for b.Loop() {
				for i := range batch {
					n++
					batch[i] = tally.Event{TenantID: tenants[n%len(tenants)].ID, EventID: "b" + strconv.Itoa(n), Name: "page.view",
						UserID: "u" + strconv.Itoa(n%100), Timestamp: now, ReceivedAt: now, Props: props}
				}
				if _, err := s.InsertEvents(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
