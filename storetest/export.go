package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// exportCall is what one ExportEvents call gave.
type exportCall struct {
	infos []tally.ExportInfo // one per start call
	rows  []tally.Event
}

// export runs one ExportEvents call, copying the reused event of each row.
func export(t *testing.T, s tally.Store, tenantID int64, f tally.EventFilter, max int) exportCall {
	t.Helper()
	var c exportCall
	err := s.ExportEvents(t.Context(), tenantID, f, max,
		func(info tally.ExportInfo) error {
			if len(c.rows) > 0 {
				t.Errorf("start called after %d rows", len(c.rows))
			}
			c.infos = append(c.infos, info)
			return nil
		},
		func(e *tally.Event) error {
			if len(c.infos) == 0 {
				t.Errorf("row called before start")
			}
			x := *e
			x.Props = slices.Clone(e.Props)
			c.rows = append(c.rows, x)
			return nil
		})
	check(t, err)
	if len(c.infos) != 1 {
		t.Fatalf("ExportEvents called start %d times, want once", len(c.infos))
	}
	if len(c.rows) > max {
		t.Fatalf("ExportEvents streamed %d rows, max %d", len(c.rows), max)
	}
	return c
}

// exportAll exports with f in calls of at most max rows, continuing from
// each truncated call's Next, and checks every call's ExportInfo.
func exportAll(t *testing.T, s tally.Store, tenantID int64, f tally.EventFilter, max int) (rows []tally.Event, calls int) {
	t.Helper()
	for calls = 1; calls < 1000; calls++ {
		c := export(t, s, tenantID, f, max)
		info := c.infos[0]
		rows = append(rows, c.rows...)
		if !info.Truncated {
			if info.Next != nil {
				t.Fatalf("call %d: not truncated but Next = %+v", calls, info.Next)
			}
			return rows, calls
		}
		if len(c.rows) != max {
			t.Fatalf("call %d: truncated after %d rows, max %d", calls, len(c.rows), max)
		}
		last := c.rows[len(c.rows)-1]
		if info.Next == nil || !info.Next.At.Equal(last.Timestamp) || info.Next.ID != last.ID {
			t.Fatalf("call %d: truncated with Next %+v, want the position of the last row (%v, %d)", calls, info.Next, last.Timestamp, last.ID)
		}
		f.Cursor = reparse(t, info.Next)
	}
	t.Fatal("export never ends")
	return nil, 0
}

func exportCases() []testCase {
	return []testCase{
		{"OldestFirst", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			all := exportFixture(t, s, a.ID, b.ID)
			c := export(t, s, a.ID, tally.EventFilter{}, 100)
			if c.infos[0] != (tally.ExportInfo{}) {
				t.Fatalf("export of everything: info %+v, want not truncated", c.infos[0])
			}
			wantEvents(t, "export", c.rows, oldestFirst(all))
		}},
		{"CapAndContinue", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			all := oldestFirst(exportFixture(t, s, a.ID, b.ID)) // 9 events
			for _, x := range []struct{ max, calls int }{
				{1, 9}, {2, 5}, {3, 3}, {4, 3}, {8, 2}, {9, 1}, {10, 1},
			} {
				rows, calls := exportAll(t, s, a.ID, tally.EventFilter{}, x.max)
				wantEvents(t, fmt.Sprintf("export in calls of %d", x.max), rows, all)
				if calls != x.calls {
					t.Fatalf("export of 9 rows in calls of %d took %d calls, want %d (a call of exactly max rows is not truncated)", x.max, calls, x.calls)
				}
			}
		}},
		{"Filters", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			t0 := filterFixture(t, s, a.ID, b.ID)
			at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
			for _, c := range []struct {
				name string
				f    tally.EventFilter
				want string // event ids, oldest first
			}{
				{"none", tally.EventFilter{}, "abcdefghi"},
				{"exact name", tally.EventFilter{Name: "api.request"}, "dh"},
				{"prefix", tally.EventFilter{Name: "auth.*"}, "ab"},
				{"prefix is literal", tally.EventFilter{Name: "files_*"}, "f"},
				{"non-ASCII prefix", tally.EventFilter{Name: "é*"}, "i"},
				{"user", tally.EventFilter{UserID: "u1"}, "aceh"},
				{"source", tally.EventFilter{Source: "web"}, "bh"},
				{"from to inclusive", tally.EventFilter{From: at(2), To: at(4)}, "cde"},
				{"prefix and user", tally.EventFilter{Name: "auth*", UserID: "u1"}, "ac"},
			} {
				for _, tenant := range []int64{a.ID, b.ID} {
					for _, max := range []int{100, 1, 2} {
						rows, _ := exportAll(t, s, tenant, c.f, max)
						if ids := strings.Join(eventIDs(rows), ""); ids != c.want {
							t.Errorf("%s (tenant %d, max %d): got %q, want %q", c.name, tenant, max, ids, c.want)
						}
						for _, e := range rows {
							if e.TenantID != tenant {
								t.Errorf("%s: export of tenant %d streamed an event of tenant %d", c.name, tenant, e.TenantID)
							}
						}
					}
				}
			}
		}},
		{"Empty", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			exportFixture(t, s, b.ID, b.ID)
			c := export(t, s, a.ID, tally.EventFilter{}, 10)
			if c.infos[0] != (tally.ExportInfo{}) || len(c.rows) != 0 {
				t.Fatalf("export of a tenant without events: info %+v, %d rows", c.infos[0], len(c.rows))
			}
		}},
		{"Snapshot", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			first := oldestFirst(exportFixture(t, s, a.ID, b.ID))[0].Timestamp
			late := 0
			insertLate := func() {
				late++
				insertNew(t, s,
					ev(a.ID, fmt.Sprintf("late-old-%d", late), "late", "u", first.Add(-time.Duration(late)*time.Hour)),
					ev(a.ID, fmt.Sprintf("late-new-%d", late), "late", "u", first.Add(time.Duration(late)*time.Hour)))
			}
			// Events inserted while an export runs, before and among its
			// rows, are not part of it: it neither streams them nor lets
			// them push its own rows out or change whether it is truncated.
			for _, short := range []int{0, 1} {
				all := export(t, s, a.ID, tally.EventFilter{}, 1000).rows
				max := len(all) - short
				var info tally.ExportInfo
				var rows []tally.Event
				err := s.ExportEvents(ctx, a.ID, tally.EventFilter{}, max,
					func(i tally.ExportInfo) error { info = i; insertLate(); return nil },
					func(e *tally.Event) error {
						if len(rows) == 0 {
							insertLate()
						}
						x := *e
						x.Props = slices.Clone(e.Props)
						rows = append(rows, x)
						return nil
					})
				check(t, err)
				wantEvents(t, fmt.Sprintf("export (max %d of %d) while inserting", max, len(all)), rows, all[:max])
				if info.Truncated != (short > 0) {
					t.Fatalf("export (max %d of %d) while inserting: info %+v", max, len(all), info)
				}
			}
			n, err := s.CountEvents(ctx, a.ID, first.Add(-24*time.Hour), first.Add(24*time.Hour))
			check(t, err)
			if want := int64(9 + 2*late); n != want {
				t.Fatalf("after the exports, tenant a has %d events, want %d", n, want)
			}
		}},
		{"BadMax", func(t *testing.T, s tally.Store) {
			// A cap below one cannot export anything: it is invalid input,
			// not an export that claims truncation (or completion) while
			// skipping rows.
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			exportFixture(t, s, a.ID, b.ID)
			for _, max := range []int{0, -1} {
				started, rows := 0, 0
				err := s.ExportEvents(t.Context(), a.ID, tally.EventFilter{}, max,
					func(tally.ExportInfo) error { started++; return nil },
					func(*tally.Event) error { rows++; return nil })
				wantCode(t, err, tally.EInvalid, fmt.Sprintf("ExportEvents(max %d)", max))
				if started != 0 || rows != 0 {
					t.Fatalf("ExportEvents(max %d) failed but called start %d times and row %d times", max, started, rows)
				}
			}
		}},
		{"CallbackErrorsStop", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			exportFixture(t, s, a.ID, b.ID)
			stop := errors.New("client went away")
			rows := 0
			err := s.ExportEvents(ctx, a.ID, tally.EventFilter{}, 100,
				func(tally.ExportInfo) error { return stop },
				func(*tally.Event) error { rows++; return nil })
			if !errors.Is(err, stop) || rows != 0 {
				t.Fatalf("start failing: err %v after %d rows, want %v and no rows", err, rows, stop)
			}
			err = s.ExportEvents(ctx, a.ID, tally.EventFilter{}, 100,
				func(tally.ExportInfo) error { return nil },
				func(*tally.Event) error { rows++; return stop })
			if !errors.Is(err, stop) || rows != 1 {
				t.Fatalf("row failing: err %v after %d rows, want %v after 1 row", err, rows, stop)
			}
		}},
	}
}

// exportFixture stores nine events of a (some sharing a timestamp, in two
// calls, not in time order) and three of b among them.
func exportFixture(t *testing.T, s tally.Store, a, b int64) []tally.Event {
	t.Helper()
	t0 := now().Add(-time.Hour)
	var out []tally.Event
	offsets := []int{2, 0, 1, 2, 0, 3, 1, 2, 4}
	for half, part := range [][]int{offsets[:5], offsets[5:]} {
		var batch []tally.Event
		for i, m := range part {
			e := ev(a, fmt.Sprintf("x%d-%d", half, i), fmt.Sprintf("export.%d", m), fmt.Sprintf("u%d", i%2), t0.Add(time.Duration(m)*time.Minute))
			e.Props = fmt.Appendf(nil, `{"i":%d}`, i)
			batch = append(batch, e)
		}
		if a != b {
			batch = append(batch, ev(b, fmt.Sprintf("b%d", half), "export.b", "u0", t0.Add(time.Minute)))
		}
		got := insertNew(t, s, batch...)
		out = append(out, got[:len(part)]...)
	}
	return out
}
