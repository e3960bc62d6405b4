package storetest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func eventCases() []testCase {
	return []testCase{
		{"InsertRoundTrip", testInsertRoundTrip},
		{"InsertDedup", testInsertDedup},
		{"InsertWithoutProps", testInsertWithoutProps},
		{"InsertSameEventIDInTwoTenants", testInsertTwoTenants},
		{"InsertConcurrentDedup", testInsertConcurrent},
		{"ListOrder", testListOrder},
		{"ListFilters", testListFilters},
		{"ListPaginationWithInserts", testListPaginationWithInserts},
		{"ListExactlyLimit", testListExactlyLimit},
		{"ListBadLimit", testListBadLimit},
		{"DeleteUserEvents", testDeleteUserEvents},
		{"PurgeEvents", testPurgeEvents},
		{"Count", testCount},
	}
}

func testInsertRoundTrip(t *testing.T, s tally.Store) {
	a := newTenant(t, s, "tenant-a")
	t0 := now().Add(-time.Hour).Add(123456 * time.Microsecond)
	e := tally.Event{TenantID: a.ID, EventID: "evt-1", Name: "files.uploaded", UserID: "user-ü-1", Source: "sdk",
		Timestamp: t0, ReceivedAt: t0.Add(1500 * time.Millisecond), Value: 2.75,
		Props: json.RawMessage(`{"metric":"x","n":[1,2.5],"s":"é","nested":{"ok":true}}`)}
	want := insertNew(t, s, e)
	got, next, err := s.ListEvents(t.Context(), a.ID, tally.EventFilter{Limit: 10})
	check(t, err)
	if next != nil {
		t.Fatalf("ListEvents of one event returned cursor %+v", next)
	}
	wantEvents(t, "round trip", got, want)

	none, err := s.InsertEvents(t.Context(), nil)
	check(t, err)
	if len(none) != 0 {
		t.Fatalf("InsertEvents(nil) = %v", none)
	}
}

func testInsertDedup(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "tenant-a")
	t0 := now().Add(-time.Hour)
	first := ev(a.ID, "x", "first", "u1", t0)
	first.Props = json.RawMessage(`{"v":1}`)
	dup := ev(a.ID, "x", "second", "u2", t0.Add(5*time.Minute))
	dup.Value, dup.Props = 2, json.RawMessage(`{"v":2}`)
	batch := []tally.Event{first, ev(a.ID, "y", "other", "u1", t0.Add(time.Minute)), dup}
	inserted, err := s.InsertEvents(ctx, batch)
	check(t, err)
	if !slices.Equal(inserted, []bool{true, true, false}) {
		t.Fatalf("InsertEvents(x, y, x again) inserted = %v, want [true true false]", inserted)
	}
	if batch[0].ID == 0 || batch[1].ID == 0 || batch[0].ID == batch[1].ID {
		t.Fatalf("inserted events got IDs %d and %d", batch[0].ID, batch[1].ID)
	}

	again := []tally.Event{withValue(ev(a.ID, "x", "third", "u3", t0.Add(10*time.Minute)), 3), ev(a.ID, "z", "other", "u1", t0.Add(2*time.Minute))}
	inserted, err = s.InsertEvents(ctx, again)
	check(t, err)
	if !slices.Equal(inserted, []bool{false, true}) {
		t.Fatalf("InsertEvents(x again, z) inserted = %v, want [false true]", inserted)
	}
	if again[1].ID == 0 {
		t.Fatal("InsertEvents did not set the ID of an inserted event")
	}

	want := []tally.Event{again[1], batch[1], batch[0]}
	got := listAll(t, s, a.ID, tally.EventFilter{Limit: 100})
	wantEvents(t, "after duplicates (the first stored wins)", got, want)
}

// testInsertWithoutProps stores an event whose Props is nil (the zero
// value): it reads back as no props or an empty object, never as bytes that
// are not JSON, so the event still encodes.
func testInsertWithoutProps(t *testing.T, s tally.Store) {
	a := newTenant(t, s, "tenant-a")
	e := ev(a.ID, "bare", "x", "u", now().Add(-time.Hour))
	e.Props = nil
	insertNew(t, s, e)
	listed := listAll(t, s, a.ID, tally.EventFilter{Limit: 10})
	exported := export(t, s, a.ID, tally.EventFilter{}, 10).rows
	for what, got := range map[string][]tally.Event{"ListEvents": listed, "ExportEvents": exported} {
		if len(got) != 1 {
			t.Fatalf("%s returned %d events, want 1", what, len(got))
		}
		p := got[0].Props
		if p != nil && !jsonEqual(p, []byte(`{}`)) && !jsonEqual(p, []byte(`null`)) {
			t.Fatalf("%s: event stored without props has Props %q, want nil, {} or null", what, p)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Fatalf("%s: event stored without props does not encode: %v", what, err)
		}
	}
}

func testInsertTwoTenants(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	t0 := now().Add(-time.Hour)
	batch := []tally.Event{ev(a.ID, "shared", "in.a", "ua", t0), ev(b.ID, "shared", "in.b", "ub", t0.Add(time.Second))}
	inserted, err := s.InsertEvents(ctx, batch)
	check(t, err)
	if !slices.Equal(inserted, []bool{true, true}) {
		t.Fatalf("same event_id in two tenants: inserted = %v, want both", inserted)
	}
	if batch[0].ID == batch[1].ID {
		t.Fatalf("events of two tenants share ID %d", batch[0].ID)
	}
	inserted, err = s.InsertEvents(ctx, []tally.Event{ev(b.ID, "shared", "in.b.again", "ub", t0)})
	check(t, err)
	if !slices.Equal(inserted, []bool{false}) {
		t.Fatalf("repeating b's event: inserted = %v, want [false]", inserted)
	}
	wantEvents(t, "tenant a", listAll(t, s, a.ID, tally.EventFilter{Limit: 10}), batch[:1])
	wantEvents(t, "tenant b", listAll(t, s, b.ID, tally.EventFilter{Limit: 10}), batch[1:])
}

// testInsertConcurrent has writers race to store the same event ids with
// different payloads: each id is inserted exactly once, and the payload
// stored is the one of the writer told it inserted the event.
func testInsertConcurrent(t *testing.T, s tally.Store) {
	a := newTenant(t, s, "tenant-a")
	t0 := now().Add(-time.Hour)
	const writers, ids = 8, 20
	winners := make([][]bool, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			batch := make([]tally.Event, ids)
			for i := range batch {
				// Writers go through the ids in different orders.
				id := (i + w*3) % ids
				batch[i] = withValue(ev(a.ID, fmt.Sprintf("c-%d", id), fmt.Sprintf("writer.%d", w), "u", t0.Add(time.Duration(id)*time.Second)), float64(w))
			}
			inserted, err := s.InsertEvents(t.Context(), batch)
			if err != nil {
				t.Errorf("writer %d: %v", w, err)
				return
			}
			won := make([]bool, ids)
			for i, ok := range inserted {
				won[(i+w*3)%ids] = ok
			}
			winners[w] = won
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	got := listAll(t, s, a.ID, tally.EventFilter{Limit: 7})
	if len(got) != ids {
		t.Fatalf("stored %d events, want %d", len(got), ids)
	}
	for _, e := range got {
		var id int
		if _, err := fmt.Sscanf(e.EventID, "c-%d", &id); err != nil {
			t.Fatalf("unexpected event %q", e.EventID)
		}
		var won []int
		for w := range writers {
			if winners[w][id] {
				won = append(won, w)
			}
		}
		if len(won) != 1 {
			t.Fatalf("event %q reported inserted by writers %v, want exactly one", e.EventID, won)
		}
		if e.Name != fmt.Sprintf("writer.%d", won[0]) || e.Value != float64(won[0]) {
			t.Fatalf("event %q stored as %q value %g, but writer %d inserted it", e.EventID, e.Name, e.Value, won[0])
		}
	}
}

func testListOrder(t *testing.T, s tally.Store) {
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	t0 := now().Add(-time.Hour)
	var all []tally.Event
	offsets := []int{3, 1, 2, 1, 3, 0, 2, 1, 0, 3, 2, 1}
	for half := range 2 {
		var batch []tally.Event
		for i, m := range offsets[half*6 : half*6+6] {
			batch = append(batch, ev(a.ID, fmt.Sprintf("e%d-%d", half, i), "order.test", "u", t0.Add(time.Duration(m)*time.Minute)))
		}
		batch = append(batch, ev(b.ID, fmt.Sprintf("b%d", half), "order.test", "u", t0.Add(time.Minute)))
		got := insertNew(t, s, batch...)
		all = append(all, got[:6]...)
	}
	want := newestFirst(all)
	ids := keys(want)
	slices.Sort(ids)
	if len(slices.Compact(ids)) != len(all) {
		t.Fatalf("events share IDs: %v", keys(all))
	}
	for _, limit := range []int{1, 2, 3, 5, 11, 12, 13, 100} {
		got := listAll(t, s, a.ID, tally.EventFilter{Limit: limit})
		wantEvents(t, fmt.Sprintf("newest first, limit %d", limit), got, want)
	}
}

// filterFixture stores the same events in a and b and returns the time
// they start at. Event ids name the events in the filter cases.
func filterFixture(t *testing.T, s tally.Store, a, b int64) time.Time {
	t.Helper()
	t0 := now().Add(-time.Hour)
	fixture := []struct {
		id, name, user, source string
		minute                 int
	}{
		{"a", "auth.user.login", "u1", "api", 0},
		{"b", "auth.user.register", "u2", "web", 1},
		{"c", "authz.check", "u1", "api", 2},
		{"d", "api.request", "u2", "api", 3},
		{"e", "files.uploaded", "u1", "sdk", 4},
		{"f", "files_bulk.done", "", "sdk", 5},
		{"g", "auth", "u3", "api", 6},
		{"h", "api.request", "u1", "web", 7},
		{"i", "édition.opened", "u3", "api", 8},
	}
	for _, tenant := range []int64{a, b} {
		var batch []tally.Event
		for _, x := range fixture {
			e := ev(tenant, x.id, x.name, x.user, t0.Add(time.Duration(x.minute)*time.Minute))
			e.Source = x.source
			batch = append(batch, e)
		}
		insertNew(t, s, batch...)
	}
	return t0
}

func testListFilters(t *testing.T, s tally.Store) {
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	t0 := filterFixture(t, s, a.ID, b.ID)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, c := range []struct {
		name string
		f    tally.EventFilter
		want string // event ids, newest first
	}{
		{"none", tally.EventFilter{}, "ihgfedcba"},
		{"star", tally.EventFilter{Name: "*"}, "ihgfedcba"},
		{"exact name", tally.EventFilter{Name: "api.request"}, "hd"},
		{"exact name is not a prefix", tally.EventFilter{Name: "auth"}, "g"},
		{"prefix with dot", tally.EventFilter{Name: "auth.*"}, "ba"},
		{"prefix without dot", tally.EventFilter{Name: "auth*"}, "gcba"},
		{"prefix is literal, not LIKE", tally.EventFilter{Name: "files_*"}, "f"},
		{"prefix dot is literal", tally.EventFilter{Name: "files.*"}, "e"},
		{"non-ASCII prefix", tally.EventFilter{Name: "édition.*"}, "i"},
		{"prefix of only non-ASCII", tally.EventFilter{Name: "é*"}, "i"},
		{"prefix ending in a multi-byte rune", tally.EventFilter{Name: "édi*"}, "i"},
		{"unknown name", tally.EventFilter{Name: "nothing"}, ""},
		{"name is case sensitive", tally.EventFilter{Name: "API.request"}, ""},
		{"user", tally.EventFilter{UserID: "u1"}, "heca"},
		{"source", tally.EventFilter{Source: "web"}, "hb"},
		{"from to inclusive", tally.EventFilter{From: at(2), To: at(4)}, "edc"},
		{"from only", tally.EventFilter{From: at(6)}, "ihg"},
		{"to only", tally.EventFilter{To: at(1)}, "ba"},
		{"between events", tally.EventFilter{From: at(2).Add(time.Microsecond), To: at(4).Add(-time.Microsecond)}, "d"},
		{"name and user", tally.EventFilter{Name: "api.request", UserID: "u1"}, "h"},
		{"user and source", tally.EventFilter{UserID: "u2", Source: "api"}, "d"},
		{"prefix, user and time", tally.EventFilter{Name: "auth*", UserID: "u1", From: at(1)}, "c"},
	} {
		for _, tenant := range []int64{a.ID, b.ID} {
			for _, limit := range []int{100, 2} {
				f := c.f
				f.Limit = limit
				got := listAll(t, s, tenant, f)
				if ids := strings.Join(eventIDs(got), ""); ids != c.want {
					t.Errorf("%s (tenant %d, limit %d): got %q, want %q", c.name, tenant, limit, ids, c.want)
				}
				for _, e := range got {
					if e.TenantID != tenant {
						t.Errorf("%s: ListEvents(%d) returned an event of tenant %d", c.name, tenant, e.TenantID)
					}
				}
			}
		}
	}
}

// testListPaginationWithInserts pages through the log while events arrive
// between pages, newer and older than the page, and at the cursor's own
// timestamp: no event is listed twice, the order holds across pages, every
// event present at the start is listed, newer ones never are, and older
// ones are (they sort after the cursor).
func testListPaginationWithInserts(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	t0 := now().Add(-2 * time.Hour)
	var orig []tally.Event
	for i := range 9 {
		orig = append(orig, ev(a.ID, fmt.Sprintf("orig-%d", i), "page.test", "u", t0.Add(time.Duration(i/3)*time.Minute)))
	}
	orig = insertNew(t, s, orig...)

	f := tally.EventFilter{Limit: 2}
	var got, newer, older []tally.Event
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatal("pagination does not end")
		}
		list, next, err := s.ListEvents(ctx, a.ID, f)
		check(t, err)
		if len(list) > f.Limit {
			t.Fatalf("page %d has %d events, limit %d", page, len(list), f.Limit)
		}
		got = append(got, list...)
		if next == nil {
			break
		}
		ins := insertNew(t, s,
			ev(a.ID, fmt.Sprintf("newer-%d", page), "page.test", "u", t0.Add(time.Hour+time.Duration(page)*time.Second)),
			ev(a.ID, fmt.Sprintf("older-%d", page), "page.test", "u", t0.Add(-time.Hour-time.Duration(page)*time.Second)),
			ev(a.ID, fmt.Sprintf("tie-%d", page), "page.test", "u", next.At),
			ev(b.ID, fmt.Sprintf("b-%d", page), "page.test", "u", next.At.Add(-time.Second)),
		)
		newer, older = append(newer, ins[0]), append(older, ins[1])
		f.Cursor = reparse(t, next)
	}

	seen := map[int64]int{}
	for i, e := range got {
		if e.TenantID != a.ID || strings.HasPrefix(e.EventID, "b-") {
			t.Fatalf("listed event %q of tenant %d", e.EventID, e.TenantID)
		}
		if seen[e.ID]++; seen[e.ID] > 1 {
			t.Fatalf("event %q listed twice: %v", e.EventID, eventIDs(got))
		}
		if i > 0 {
			p := got[i-1]
			if c := e.Timestamp.Compare(p.Timestamp); c > 0 || c == 0 && e.ID > p.ID {
				t.Fatalf("order broken across pages: %q (%v, %d) after %q (%v, %d)", e.EventID, e.Timestamp, e.ID, p.EventID, p.Timestamp, p.ID)
			}
		}
	}
	for _, e := range orig {
		if seen[e.ID] != 1 {
			t.Fatalf("event %q present before paging was listed %d times: %v", e.EventID, seen[e.ID], eventIDs(got))
		}
	}
	for _, e := range newer {
		if seen[e.ID] != 0 {
			t.Fatalf("event %q, newer than the cursor when inserted, was listed", e.EventID)
		}
	}
	for _, e := range older {
		if seen[e.ID] != 1 {
			t.Fatalf("event %q, older than the cursor when inserted, was listed %d times", e.EventID, seen[e.ID])
		}
	}
}

func testListExactlyLimit(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a := newTenant(t, s, "tenant-a")
	empty := newTenant(t, s, "empty")
	t0 := now().Add(-time.Hour)
	all := newestFirst(insertNew(t, s, ev(a.ID, "1", "x", "u", t0), ev(a.ID, "2", "x", "u", t0.Add(time.Second)), ev(a.ID, "3", "x", "u", t0.Add(2*time.Second))))

	page, next, err := s.ListEvents(ctx, a.ID, tally.EventFilter{Limit: 3})
	check(t, err)
	if next != nil {
		t.Fatalf("a page of exactly all 3 events returned cursor %+v", next)
	}
	wantEvents(t, "limit 3", page, all)

	page, next, err = s.ListEvents(ctx, a.ID, tally.EventFilter{Limit: 2})
	check(t, err)
	wantEvents(t, "limit 2, first page", page, all[:2])
	if next == nil || !next.At.Equal(all[1].Timestamp) || next.ID != all[1].ID {
		t.Fatalf("cursor after the first page = %+v, want the position of its last event", next)
	}
	page, next, err = s.ListEvents(ctx, a.ID, tally.EventFilter{Limit: 2, Cursor: next})
	check(t, err)
	wantEvents(t, "limit 2, second page", page, all[2:])
	if next != nil {
		t.Fatalf("the last page returned cursor %+v", next)
	}

	page, next, err = s.ListEvents(ctx, empty.ID, tally.EventFilter{Limit: 10})
	check(t, err)
	if len(page) != 0 || next != nil {
		t.Fatalf("ListEvents of a tenant without events = %v, %+v", eventIDs(page), next)
	}
}

// testListBadLimit: a limit below one selects no page; it is invalid input,
// not a reason to panic or to list everything.
func testListBadLimit(t *testing.T, s tally.Store) {
	a := newTenant(t, s, "tenant-a")
	t0 := now().Add(-time.Hour)
	insertNew(t, s, ev(a.ID, "1", "x", "u", t0), ev(a.ID, "2", "x", "u", t0.Add(time.Second)), ev(a.ID, "3", "x", "u", t0.Add(2*time.Second)))
	check(t, s.WriteAudit(t.Context(), &tally.AuditEntry{TenantID: a.ID, Actor: "system", Action: "x"}))
	check(t, s.WriteAudit(t.Context(), &tally.AuditEntry{TenantID: a.ID, Actor: "system", Action: "y"}))
	for _, limit := range []int{0, -1, -2} {
		_, _, err := s.ListEvents(t.Context(), a.ID, tally.EventFilter{Limit: limit})
		wantCode(t, err, tally.EInvalid, fmt.Sprintf("ListEvents(limit %d)", limit))
		_, _, err = s.ListAudit(t.Context(), a.ID, tally.AuditFilter{Limit: limit})
		wantCode(t, err, tally.EInvalid, fmt.Sprintf("ListAudit(limit %d)", limit))
	}
}

func testDeleteUserEvents(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	t0 := now().Add(-time.Hour)
	var batch []tally.Event
	for i, u := range []string{"u1", "u2", "u1", "", "u1", "u2", "u10"} {
		batch = append(batch, ev(a.ID, fmt.Sprintf("a%d", i), "x", u, t0.Add(time.Duration(i)*time.Minute)))
	}
	batch = append(batch, ev(b.ID, "b0", "x", "u1", t0), ev(b.ID, "b1", "x", "u1", t0.Add(time.Minute)))
	all := insertNew(t, s, batch...)

	n, err := s.DeleteUserEvents(ctx, a.ID, "u1")
	check(t, err)
	if n != 3 {
		t.Fatalf("DeleteUserEvents(a, u1) = %d, want 3", n)
	}
	var keep []tally.Event
	for _, e := range all[:7] {
		if e.UserID != "u1" {
			keep = append(keep, e)
		}
	}
	wantEvents(t, "tenant a after deleting u1", listAll(t, s, a.ID, tally.EventFilter{Limit: 100}), newestFirst(keep))
	wantEvents(t, "tenant b after deleting a's u1", listAll(t, s, b.ID, tally.EventFilter{Limit: 100}), newestFirst(all[7:]))

	n, err = s.DeleteUserEvents(ctx, a.ID, "u1")
	check(t, err)
	if n != 0 {
		t.Fatalf("deleting u1 again = %d, want 0", n)
	}
}

func testPurgeEvents(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	cut := now().Add(-time.Hour)
	all := insertNew(t, s,
		ev(a.ID, "old", "x", "u", cut.Add(-2*time.Hour)),
		ev(a.ID, "just-before", "x", "u", cut.Add(-time.Microsecond)),
		ev(a.ID, "at", "x", "u", cut),
		ev(a.ID, "after", "x", "u", cut.Add(time.Minute)),
		ev(b.ID, "b-old", "x", "u", cut.Add(-2*time.Hour)),
	)
	n, err := s.PurgeEvents(ctx, a.ID, cut)
	check(t, err)
	if n != 2 {
		t.Fatalf("PurgeEvents = %d, want 2", n)
	}
	wantEvents(t, "tenant a after purge", listAll(t, s, a.ID, tally.EventFilter{Limit: 10}), newestFirst(all[2:4]))
	wantEvents(t, "tenant b after a's purge", listAll(t, s, b.ID, tally.EventFilter{Limit: 10}), all[4:])
}

func testCount(t *testing.T, s tally.Store) {
	ctx := t.Context()
	a, b, c := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b"), newTenant(t, s, "tenant-c")
	from := now().Add(-3 * time.Hour)
	to := from.Add(time.Hour)
	insertNew(t, s,
		ev(a.ID, "before", "x", "u", from.Add(-time.Microsecond)),
		ev(a.ID, "at-from", "x", "u", from),
		ev(a.ID, "inside", "x", "u", from.Add(30*time.Minute)),
		ev(a.ID, "last", "x", "u", to.Add(-time.Microsecond)),
		ev(a.ID, "at-to", "x", "u", to),
		ev(b.ID, "b-inside", "x", "u", from.Add(time.Minute)),
		ev(b.ID, "b-after", "x", "u", to.Add(time.Minute)),
	)
	for _, x := range []struct {
		name     string
		tenant   int64
		from, to time.Time
		want     int64
	}{
		{"a in [from, to)", a.ID, from, to, 3},
		{"b in [from, to)", b.ID, from, to, 1},
		{"c has none", c.ID, from, to, 0},
		{"a from to", a.ID, to, to.Add(time.Hour), 1},
		{"a everything", a.ID, from.Add(-time.Hour), to.Add(time.Hour), 5},
		{"empty range", a.ID, from, from, 0},
	} {
		n, err := s.CountEvents(ctx, x.tenant, x.from, x.to)
		check(t, err)
		if n != x.want {
			t.Errorf("CountEvents %s = %d, want %d", x.name, n, x.want)
		}
	}
	for _, x := range []struct {
		from, to time.Time
		want     int64
	}{
		{from, to, 4},
		{to, to.Add(time.Hour), 2},
		{from.Add(-time.Hour), to.Add(time.Hour), 7},
	} {
		n, err := s.CountAllEvents(ctx, x.from, x.to)
		check(t, err)
		if n != x.want {
			t.Errorf("CountAllEvents [%v, %v) = %d, want %d", x.from, x.to, n, x.want)
		}
	}
}
