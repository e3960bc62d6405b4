package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPlans checks the query plans that performance depends on: BucketUsers
// reads the covering index alone, in its order, and the event listing and
// export keep reading (ts, id) order from the index that replaced
// events_tenant_ts (migration 0002), and the live tail near the end of the
// log reads by id.
func TestPlans(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "plan.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const rangeScan = "SEARCH events USING COVERING INDEX events_tenant_ts_user (tenant_id=? AND ts>? AND ts<?)"
	for _, c := range []struct {
		query string
		args  int
		want  []string // the plan's steps that read events
	}{
		{bucketUsersSQL, 3, []string{rangeScan}},
		{`SELECT ` + eventCols + ` FROM events WHERE tenant_id = ? AND (ts, id) < (?, ?) ORDER BY ts DESC, id DESC LIMIT ?`, 4,
			[]string{"SEARCH events USING INDEX events_tenant_ts_user (tenant_id=? AND ts<?)"}},
		{`SELECT ` + eventCols + ` FROM events WHERE tenant_id = ? AND ts >= ? AND (ts, id) > (?, ?) ORDER BY ts, id LIMIT ?`, 5,
			[]string{"SEARCH events USING INDEX events_tenant_ts_user (tenant_id=? AND ts>?)"}},
		{`SELECT count(*) FROM events WHERE tenant_id = ? AND ts >= ? AND ts < ?`, 3, []string{rangeScan}},
		// The live tail near the end of the log: the rows after its cursor
		// by id, whatever the filter, never the whole tenant sorted.
		{`SELECT ` + eventCols + ` FROM events NOT INDEXED WHERE tenant_id = ? AND ts >= ? AND event = ? AND user_id = ? AND id > ? ORDER BY id LIMIT ?`, 6,
			[]string{"SEARCH events USING INTEGER PRIMARY KEY (rowid>?)"}},
	} {
		rows, err := db.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+c.query, make([]any, c.args)...)
		if err != nil {
			t.Fatal(err)
		}
		var plan, reads []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
			if strings.Contains(detail, " events") {
				reads = append(reads, detail)
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(reads, c.want) || slices.ContainsFunc(plan, func(s string) bool { return strings.Contains(s, "TEMP B-TREE") }) {
			t.Errorf("plan of %s:\n%s\nwant reads of events %q and no temp b-tree", c.query, strings.Join(plan, "\n"), c.want)
		}
	}
}
