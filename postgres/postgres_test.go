package postgres_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/postgres"
	"github.com/tallyhq/tally/postgres/pgtest"
	"github.com/tallyhq/tally/rollup"
	"github.com/tallyhq/tally/storetest"
)

// open opens a store on a fresh schema, closed when t ends.
func open(t *testing.T) *postgres.DB { return openClock(t, nil) }

// openClock opens a store on a fresh schema that tells the time with now.
func openClock(t *testing.T, now func() time.Time) *postgres.DB {
	t.Helper()
	// A small pool per store: the suite opens many stores at once.
	url := pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "4"})
	db, err := postgres.Open(t.Context(), url, postgres.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	pgtest.RequireServer(t)
	storetest.Run(t, func(t *testing.T, now func() time.Time) tally.Store { return openClock(t, now) })
}

// TestMigrateConcurrently starts several instances on one empty schema at
// once: the advisory lock lets one apply the migrations and the others find
// them applied.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := pgtest.FreshSchema(t)
	var wg sync.WaitGroup
	dbs := make([]*postgres.DB, 6)
	errs := make([]error, len(dbs))
	for i := range dbs {
		wg.Go(func() {
			dbs[i], errs[i] = postgres.Open(t.Context(), pgtest.WithParams(url, map[string]string{"pool_max_conns": "2"}), postgres.Options{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	rows, _ := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) == 0 || versions[0] != 1 || len(slices.Compact(slices.Clone(versions))) != len(versions) {
		t.Fatalf("schema_migrations = %v", versions)
	}
	// Opening again applies nothing and fails nothing.
	db, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	status, err := db.MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != len(versions) {
		t.Fatalf("status lists %d migrations, schema_migrations %d", len(status), len(versions))
	}
	for _, s := range status {
		if !s.Applied {
			t.Errorf("%s not applied", s.Migration)
		}
	}
}

// TestSumRoundedLikeGo holds the SQL rounding of sum rules to
// tally.UsageRules.Apply on values where PostgreSQL's own round functions
// differ from Go's math.Round (half to even; 15 significant digits).
func TestSumRoundedLikeGo(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	owner := &tally.User{Email: "o@example.com"}
	check(t, db.CreateUser(ctx, owner, "h"))
	tn := &tally.Tenant{Slug: "acme", Name: "Acme"}
	check(t, db.CreateTenant(ctx, tn, owner.ID))
	d := tally.DayStart(time.Now()).AddDate(0, 0, -3)
	rules := tally.UsageRules{{Event: "x", Metric: "m", Sum: true}}
	values := []float64{0.5, 1.5, 2.5, -0.5, 0.49999999999999994, 1099511627775.4999, 1099511627775.5,
		4.499999999999999, 1 << 40, 1<<40 - 0.5, math.Nextafter(1<<40, 0), 1e300, math.Inf(1), math.Inf(-1), math.NaN(),
		-math.SmallestNonzeroFloat64, math.SmallestNonzeroFloat64, 123456.5, 7}
	for i, v := range values {
		e := tally.Event{TenantID: tn.ID, EventID: fmt.Sprint(i), Name: "x", Source: "api",
			Timestamp: d.Add(time.Duration(i) * time.Minute), ReceivedAt: d, Value: v, Props: []byte(`{}`)}
		if _, err := db.InsertEvents(ctx, []tally.Event{e}); err != nil {
			t.Fatal(err)
		}
		rows, err := db.AggregateEvents(ctx, tn.ID, e.Timestamp, e.Timestamp.Add(time.Microsecond), time.Hour)
		check(t, err)
		want := rules.Apply(&e)[0].N
		if len(rows) != 1 || rows[0].SumRounded != want {
			t.Errorf("value %v: SumRounded %+v, want %d", v, rows, want)
		}
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRollupWhileInserting has writers insert (and delete) events of one
// tenant and day while RecomputeDay runs over and over: whenever it all stops,
// every hour without a dirty mark has exact rollup rows and user sets (no
// mark was lost), and a last RecomputeDay makes the totals equal the raw log.
func TestRollupWhileInserting(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	owner := &tally.User{Email: "o@example.com"}
	check(t, db.CreateUser(ctx, owner, "h"))
	a, b := &tally.Tenant{Slug: "tenant-a", Name: "A"}, &tally.Tenant{Slug: "tenant-b", Name: "B"}
	check(t, db.CreateTenant(ctx, a, owner.ID))
	check(t, db.CreateTenant(ctx, b, owner.ID))
	d := tally.DayStart(time.Now()).AddDate(0, 0, -3)
	rules := tally.DefaultUsageRules()

	const writers, batches, perBatch = 6, 40, 8
	var (
		wg      sync.WaitGroup
		done    atomic.Bool
		rollups atomic.Int64
		seq     atomic.Int64
	)
	for w := range writers {
		wg.Go(func() {
			for i := range batches {
				var batch []tally.Event
				for j := range perBatch {
					n := seq.Add(1)
					tenant := a.ID
					if j == 0 {
						tenant = b.ID // batches span tenants, as the group-commit writer's do
					}
					name := []string{tally.EventAPIRequest, "files.uploaded", "custom.x"}[n%3]
					at := d.Add(time.Duration(n%24)*time.Hour + time.Duration(n%3600)*time.Second)
					batch = append(batch, tally.Event{TenantID: tenant, EventID: fmt.Sprintf("e%d", n), Name: name,
						UserID: fmt.Sprintf("u%d", n%7), Source: "api", Timestamp: at, ReceivedAt: at, Value: float64(n % 5),
						Props: []byte(`{}`)})
				}
				if _, err := db.InsertEvents(ctx, batch); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				if w == 0 && i%5 == 4 {
					if _, err := db.DeleteUserEvents(ctx, a.ID, fmt.Sprintf("u%d", i%7)); err != nil {
						t.Errorf("delete: %v", err)
						return
					}
				}
			}
		})
	}
	var rollers sync.WaitGroup
	for range 2 {
		rollers.Go(func() {
			for !done.Load() {
				if _, err := rollup.RecomputeDay(ctx, db, a.ID, d, rules); err != nil {
					t.Errorf("RecomputeDay: %v", err)
					return
				}
				rollups.Add(1)
			}
		})
	}
	wg.Wait()
	done.Store(true)
	rollers.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d rollups while %d events were inserted", rollups.Load(), seq.Load())

	// The invariant, at rest: an hour with no dirty mark is exact.
	dirty, err := db.DirtyHours(ctx, time.Now())
	check(t, err)
	isDirty := map[time.Time]bool{}
	for _, th := range dirty {
		if th.TenantID == a.ID {
			isDirty[th.Hour] = true
		}
	}
	raw, err := db.AggregateEvents(ctx, a.ID, d, d.Add(24*time.Hour), time.Hour)
	check(t, err)
	rolled, err := db.RollupHours(ctx, a.ID, d, d.Add(24*time.Hour))
	check(t, err)
	rawUsers := hourUsers(t, db, a.ID, d)
	var ids []string
	for _, users := range rawUsers {
		ids = append(ids, users...)
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	names := map[uint32]string{}
	check(t, db.UserOrdinals(ctx, a.ID, ids, func(i int, o uint32) error {
		if other, ok := names[o]; ok {
			return fmt.Errorf("users %q and %q share ordinal %d", other, ids[i], o)
		}
		names[o] = ids[i]
		return nil
	}))
	setUsers := map[time.Time][]string{}
	check(t, db.RollupUserSets(ctx, a.ID, time.Hour, d, d.Add(24*time.Hour), func(h time.Time, set []byte) error {
		var bm roaring.Bitmap
		if len(set) > 0 { // no bytes: the empty set
			if err := bm.UnmarshalBinary(set); err != nil {
				return err
			}
		}
		s := []string{}
		for _, o := range bm.ToArray() {
			s = append(s, cmp.Or(names[o], fmt.Sprintf("#%d", o)))
		}
		slices.Sort(s)
		setUsers[h] = s
		return nil
	}))
	for h := d; h.Before(d.Add(24 * time.Hour)); h = h.Add(time.Hour) {
		if isDirty[h] {
			continue
		}
		if got, want := rowsAt(rolled, h), rowsAt(raw, h); !reflect.DeepEqual(got, want) {
			t.Errorf("hour %v is clean but its rollup rows differ from the log:\ngot  %v\nwant %v", h, got, want)
		}
		if set, ok := setUsers[h]; ok && !reflect.DeepEqual(set, rawUsers[h]) {
			t.Errorf("hour %v is clean but its user set %q differs from the log's %q", h, set, rawUsers[h])
		}
	}

	_, err = rollup.RecomputeDay(ctx, db, a.ID, d, rules)
	check(t, err)
	n, err := db.CountEvents(ctx, a.ID, d, d.Add(24*time.Hour))
	check(t, err)
	rolled, err = db.RollupHours(ctx, a.ID, d, d.Add(24*time.Hour))
	check(t, err)
	days, err := db.RollupDays(ctx, a.ID, d, d.Add(24*time.Hour))
	check(t, err)
	if sumCounts(rolled) != n || sumCounts(days) != n {
		t.Fatalf("after the last rollup: %d raw events, hour rows count %d, day rows %d", n, sumCounts(rolled), sumCounts(days))
	}
	dirty, err = db.DirtyHours(ctx, time.Now())
	check(t, err)
	for _, th := range dirty {
		if th.TenantID == a.ID {
			t.Fatalf("after the last rollup, hour %v of a is still dirty", th.Hour)
		}
	}
}

func hourUsers(t *testing.T, db *postgres.DB, tenantID int64, d time.Time) map[time.Time][]string {
	t.Helper()
	var bounds []time.Time
	for i := range 25 {
		bounds = append(bounds, d.Add(time.Duration(i)*time.Hour))
	}
	out := map[time.Time][]string{}
	for _, h := range bounds[:24] {
		out[h] = []string{}
	}
	check(t, db.BucketUsers(t.Context(), tenantID, bounds, func(i int, u string) error {
		out[bounds[i]] = append(out[bounds[i]], u)
		return nil
	}))
	for _, users := range out {
		slices.Sort(users)
	}
	return out
}

func rowsAt(rows []tally.HourRow, h time.Time) []tally.HourRow {
	var out []tally.HourRow
	for _, r := range rows {
		if r.Start.Equal(h) {
			out = append(out, r)
		}
	}
	return out
}

func sumCounts(rows []tally.HourRow) int64 {
	var n int64
	for _, r := range rows {
		n += r.Count
	}
	return n
}

// TestErrors checks the mapping of driver errors: nothing of the SQL
// reaches the caller's message.
func TestErrors(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	u := &tally.User{Email: "x@example.com"}
	check(t, db.CreateUser(ctx, u, "h"))
	err := db.CreateUser(ctx, &tally.User{Email: "X@example.com"}, "h")
	if tally.ErrorCodeOf(err) != tally.EConflict {
		t.Fatalf("duplicate email: %v", err)
	}
	// A foreign key violation is neither a conflict nor a missing row.
	err = db.AddMember(ctx, 12345, u.ID, tally.RoleMember)
	var te *tally.Error
	if !errors.As(err, &te) || te.Code != tally.EInternal || tally.ErrorMessageOf(err) != "internal error" {
		t.Fatalf("foreign key violation: %v", err)
	}
}

// TestRollupSnapshotOutlastsStatementTimeout: a rollup's snapshot may sit
// idle while its recompute runs (on the ClickHouse tier, reads of a
// tenant-day there) past the statement timeout, up to its context's
// deadline.
func TestRollupSnapshotOutlastsStatementTimeout(t *testing.T) {
	t.Parallel()
	url := pgtest.WithParams(pgtest.FreshSchema(t), map[string]string{"pool_max_conns": "4"})
	db, err := postgres.Open(t.Context(), url, postgres.Options{StatementTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u := &tally.User{Email: "idle@example.com"}
	check(t, db.CreateUser(t.Context(), u, "h"))
	tn := &tally.Tenant{Slug: "idle", Name: "Idle"}
	check(t, db.CreateTenant(t.Context(), tn, u.ID))
	now := time.Now().UTC()
	if _, err := db.InsertEvents(t.Context(), []tally.Event{{TenantID: tn.ID, EventID: "e1", Name: "page.view", Timestamp: now, ReceivedAt: now, Value: 1, Props: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var rows []tally.HourRow
	err = db.InRollupTx(ctx, tn.ID, func(tx tally.RollupTx) error {
		time.Sleep(time.Second) // idle in the snapshot: past the 300 ms
		var err error
		rows, err = tx.AggregateEvents(ctx, now.Add(-time.Hour), now.Add(time.Hour), time.Hour)
		return err
	})
	if err != nil || len(rows) == 0 {
		t.Fatalf("a read after 1 s idle in a rollup snapshot (statement timeout 300 ms): %d rows, %v", len(rows), err)
	}
}
