package storetest

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// auditFixture writes nine entries to a (three share the newest time) and
// three to b at the same times, and returns a's entries newest first.
func auditFixture(t *testing.T, s tally.Store, a, b int64, base time.Time) []tally.AuditEntry {
	t.Helper()
	var written []tally.AuditEntry
	for i := range 9 {
		at := base.Add(time.Duration(min(i, 6)) * time.Minute)
		action := "key.create"
		if i%2 == 1 {
			action = "member.add"
		}
		actor := "user:ann@example.com"
		if i%3 == 2 {
			actor = "system"
		}
		e := tally.AuditEntry{TenantID: a, At: at, Actor: actor, Action: action,
			Target: "target-" + string(rune('a'+i)), Meta: map[string]any{"n": "v" + string(rune('a'+i))}}
		check(t, s.WriteAudit(t.Context(), &e))
		if e.ID == 0 {
			t.Fatal("WriteAudit did not set ID")
		}
		written = append(written, e)
		if i < 3 {
			other := tally.AuditEntry{TenantID: b, At: at, Actor: "key:tly_b", Action: action, Target: "b"}
			check(t, s.WriteAudit(t.Context(), &other))
		}
	}
	slices.SortFunc(written, func(x, y tally.AuditEntry) int {
		return cmp.Or(y.At.Compare(x.At), cmp.Compare(y.ID, x.ID))
	})
	return written
}

// listAudit pages through a tenant's audit log with f.
func listAudit(t *testing.T, s tally.Store, tenantID int64, f tally.AuditFilter) []tally.AuditEntry {
	t.Helper()
	var out []tally.AuditEntry
	for range 100 {
		page, next, err := s.ListAudit(t.Context(), tenantID, f)
		check(t, err)
		if len(page) > f.Limit {
			t.Fatalf("ListAudit returned %d entries, limit %d", len(page), f.Limit)
		}
		out = append(out, page...)
		if next == nil {
			return out
		}
		if len(page) == 0 {
			t.Fatal("ListAudit returned an empty page with a cursor")
		}
		f.Cursor = reparse(t, next)
	}
	t.Fatal("ListAudit never returned a nil cursor")
	return nil
}

func wantAudit(t *testing.T, what string, got, want []tally.AuditEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d entries %v, want %d %v", what, len(got), auditIDs(got), len(want), auditIDs(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID != w.ID || g.TenantID != w.TenantID || !g.At.Equal(w.At) || g.Actor != w.Actor ||
			g.Action != w.Action || g.Target != w.Target || !reflect.DeepEqual(g.Meta, w.Meta) {
			t.Fatalf("%s: entry %d = %+v, want %+v", what, i, g, w)
		}
	}
}

func auditIDs(es []tally.AuditEntry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func auditCases() []testCase {
	return []testCase{
		{"NewestFirstAndFilters", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			base := now().Add(-time.Hour)
			all := auditFixture(t, s, a.ID, b.ID, base)
			only := func(keep func(tally.AuditEntry) bool) []tally.AuditEntry {
				var out []tally.AuditEntry
				for _, e := range all {
					if keep(e) {
						out = append(out, e)
					}
				}
				return out
			}
			// Bounds fall between entries: the contract does not say
			// whether they are inclusive.
			from, to := base.Add(2*time.Minute-30*time.Second), base.Add(4*time.Minute+30*time.Second)
			for _, c := range []struct {
				name string
				f    tally.AuditFilter
				want []tally.AuditEntry
			}{
				{"all", tally.AuditFilter{}, all},
				{"action", tally.AuditFilter{Action: "member.add"}, only(func(e tally.AuditEntry) bool { return e.Action == "member.add" })},
				{"from", tally.AuditFilter{From: from}, only(func(e tally.AuditEntry) bool { return e.At.After(from) })},
				{"to", tally.AuditFilter{To: to}, only(func(e tally.AuditEntry) bool { return e.At.Before(to) })},
				{"from-to-action", tally.AuditFilter{From: from, To: to, Action: "key.create"}, only(func(e tally.AuditEntry) bool {
					return e.At.After(from) && e.At.Before(to) && e.Action == "key.create"
				})},
				{"actor", tally.AuditFilter{Actor: "system"}, only(func(e tally.AuditEntry) bool { return e.Actor == "system" })},
				{"action-actor", tally.AuditFilter{Action: "member.add", Actor: "system"}, only(func(e tally.AuditEntry) bool {
					return e.Action == "member.add" && e.Actor == "system"
				})},
				{"no match", tally.AuditFilter{Action: "nothing.happened"}, nil},
				{"no actor", tally.AuditFilter{Actor: "key:tly_b"}, nil},
			} {
				c.f.Limit = 100
				got, next, err := s.ListAudit(t.Context(), a.ID, c.f)
				check(t, err)
				if next != nil {
					t.Fatalf("%s: a page holding everything returned cursor %+v", c.name, next)
				}
				wantAudit(t, c.name, got, c.want)
			}
		}},
		{"Pagination", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			all := auditFixture(t, s, a.ID, b.ID, now().Add(-time.Hour))
			for _, limit := range []int{1, 2, 4, 8, 9, 10} {
				got := listAudit(t, s, a.ID, tally.AuditFilter{Limit: limit})
				wantAudit(t, fmt.Sprintf("pages of %d", limit), got, all)
			}
			var keyCreates []tally.AuditEntry
			for _, e := range all {
				if e.Action == "key.create" {
					keyCreates = append(keyCreates, e)
				}
			}
			got := listAudit(t, s, a.ID, tally.AuditFilter{Action: "key.create", Limit: 2})
			wantAudit(t, "filtered pages", got, keyCreates)
		}},
		{"ExactlyLimitIsLastPage", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			all := auditFixture(t, s, a.ID, b.ID, now().Add(-time.Hour))
			page, next, err := s.ListAudit(t.Context(), a.ID, tally.AuditFilter{Limit: len(all)})
			check(t, err)
			if next != nil {
				t.Fatalf("a page of exactly all %d entries returned cursor %+v", len(all), next)
			}
			wantAudit(t, "exact page", page, all)
		}},
		{"TenantIsolation", func(t *testing.T, s tally.Store) {
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			auditFixture(t, s, a.ID, b.ID, now().Add(-time.Hour))
			got := listAudit(t, s, b.ID, tally.AuditFilter{Limit: 100})
			if len(got) != 3 {
				t.Fatalf("ListAudit(b) returned %d entries, want b's 3", len(got))
			}
			for _, e := range got {
				if e.Actor != "key:tly_b" || e.TenantID != b.ID {
					t.Fatalf("ListAudit(b) returned %+v", e)
				}
			}
			c := newTenant(t, s, "tenant-c")
			got = listAudit(t, s, c.ID, tally.AuditFilter{Limit: 100})
			if len(got) != 0 {
				t.Fatalf("ListAudit of a tenant without entries = %+v", got)
			}
		}},
	}
}
