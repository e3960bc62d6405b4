package server_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

var exportHeader = []string{"id", "timestamp", "event", "user_id", "source", "value", "props"}

// export gets the CSV export with query and parses it; it checks the
// content type and the header row, and returns the data rows.
func (h *harness) export(t testing.TB, headers map[string]string, query string) (*apiResponse, [][]string) {
	t.Helper()
	r := h.doT(t, "GET", "/api/analytics/export.csv?"+query, nil, headers)
	r.want(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("export Content-Type %q", ct)
	}
	cr := csv.NewReader(strings.NewReader(string(r.Body)))
	cr.FieldsPerRecord = len(exportHeader)
	records, err := cr.ReadAll()
	if err != nil {
		t.Fatalf("export is not RFC 4180 CSV: %v\n%s", err, r.Body)
	}
	if len(records) == 0 || strings.Join(records[0], ",") != strings.Join(exportHeader, ",") {
		t.Fatalf("export header row %v", records)
	}
	if !strings.HasPrefix(string(r.Body), "id,timestamp,event,user_id,source,value,props\n") && !strings.HasPrefix(string(r.Body), "id,timestamp,event,user_id,source,value,props\r\n") {
		t.Errorf("export does not start with the exact header row")
	}
	return r, records[1:]
}

func TestAPIExport(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

	users := []string{"=cmd()", "+SUM(A1)", "-2+3", "@import", "\tx", "\rx", "plain", "multi \"line\"\nuser, with comma", "a=b"}
	var batch []any
	for i, u := range users {
		batch = append(batch, map[string]any{
			"event": "exp.row", "event_id": fmt.Sprintf("x%02d", i), "user_id": u, "source": "web", "value": float64(i) + 0.5,
			"timestamp": base.Add(time.Duration(i) * time.Minute).Format(time.RFC3339),
			"props":     map[string]any{"note": "a,b \"quoted\"\nline2", "i": i, "formula": "=1+1"},
		})
	}
	// Names and sources a spreadsheet would run are neutralised too.
	batch = append(batch,
		map[string]any{"event": "-danger.x", "event_id": "x-name", "source": "-src", "timestamp": base.Add(-time.Minute).Format(time.RFC3339)},
		map[string]any{"event": "other.row", "event_id": "x-other", "user_id": "plain", "source": "api", "timestamp": base.Add(-2 * time.Minute).Format(time.RFC3339)},
	)
	if res := h.send(o.h(), map[string]any{"batch": batch}); res.Accepted != len(batch) {
		t.Fatalf("seed %+v", res)
	}
	listed := map[string]apiEvent{}
	for _, e := range h.listEvents(o.h(), "limit=1000").Events {
		listed[strconv.FormatInt(e.ID, 10)] = e
	}

	r, rows := h.export(t, o.h(), "event=exp.row")
	if got := r.Header.Get("X-Export-Row-Limit"); got != "50000" {
		t.Errorf("X-Export-Row-Limit %q", got)
	}
	if got := r.Header.Get("X-Export-Truncated"); got != "false" {
		t.Errorf("X-Export-Truncated %q", got)
	}
	if r.Header.Get("X-Export-Next-Cursor") != "" {
		t.Errorf("a complete export has a next cursor")
	}
	if len(rows) != len(users) {
		t.Fatalf("%d rows, want %d", len(rows), len(users))
	}
	wantUser := []string{"'=cmd()", "'+SUM(A1)", "'-2+3", "'@import", "'\tx", "'\rx", "plain", "multi \"line\"\nuser, with comma", "a=b"}
	for i, row := range rows {
		e, ok := listed[row[0]]
		if !ok {
			t.Fatalf("row %d: id %s is not an event of the tenant", i, row[0])
		}
		if e.EventID != fmt.Sprintf("x%02d", i) {
			t.Errorf("row %d is %s: not oldest first", i, e.EventID)
		}
		ts, err := time.Parse(time.RFC3339Nano, row[1])
		if err != nil || !ts.Equal(e.Timestamp) || !strings.HasSuffix(row[1], "Z") {
			t.Errorf("row %d timestamp %q, want %v", i, row[1], e.Timestamp)
		}
		if row[2] != "exp.row" || row[3] != wantUser[i] || row[4] != "web" {
			t.Errorf("row %d: %q", i, row)
		}
		if v, err := strconv.ParseFloat(row[5], 64); err != nil || v != float64(i)+0.5 {
			t.Errorf("row %d value %q", i, row[5])
		}
		var props map[string]any
		if err := json.Unmarshal([]byte(row[6]), &props); err != nil {
			t.Errorf("row %d props %q: %v", i, row[6], err)
		} else if props["note"] != "a,b \"quoted\"\nline2" || props["formula"] != "=1+1" || props["i"] != float64(i) {
			t.Errorf("row %d props %v", i, props)
		}
		if row[6] != string(e.Props) {
			t.Errorf("row %d props cell %q, stored %s", i, row[6], e.Props)
		}
	}

	// The whole export, oldest first, neutralising names and sources.
	_, rows = h.export(t, o.h(), "")
	var names []string
	for _, row := range rows {
		names = append(names, row[2])
	}
	if len(rows) < len(batch) || rows[0][2] != "other.row" || rows[1][2] != "'-danger.x" || rows[1][4] != "'-src" {
		t.Errorf("full export names %v", names)
	}
	for i := 1; i < len(rows); i++ {
		a, _ := time.Parse(time.RFC3339Nano, rows[i-1][1])
		b, _ := time.Parse(time.RFC3339Nano, rows[i][1])
		if b.Before(a) {
			t.Errorf("rows %d and %d are not oldest first", i-1, i)
		}
	}

	// Filters apply as in the list.
	for _, tt := range []struct {
		query string
		want  int
	}{
		{"user_id=plain", 2},
		{"user_id=plain&event=exp.*", 1},
		{"source=api", 1},
		{"event=-danger.x", 1},
		{"event=exp.row&from=" + url.QueryEscape(base.Add(5*time.Minute).Format(time.RFC3339)), 4},
		{"event=exp.row&to=" + url.QueryEscape(base.Add(1*time.Minute).Format(time.RFC3339)), 2},
		{"event=nothing.here", 0},
	} {
		if _, rows := h.export(t, o.h(), tt.query); len(rows) != tt.want {
			t.Errorf("export ?%s: %d rows, want %d", tt.query, len(rows), tt.want)
		}
	}
	for _, q := range []string{"from=x", "limit=0", "cursor=zz", "event=a*b", "from=2026-02-02&to=2026-02-01"} {
		wantProblem(t, h.do("GET", "/api/analytics/export.csv?"+q, nil, o.h()), http.StatusBadRequest)
	}

	// Every export is audited with its row count and filters.
	r = h.do("GET", "/api/analytics/audit?action=events.exported&limit=1", nil, o.h())
	r.want(t, http.StatusOK)
	var audit struct {
		Entries []struct {
			Actor  string `json:"actor"`
			Action string `json:"action"`
			Meta   struct {
				Rows    *int              `json:"rows"`
				Filters map[string]string `json:"filters"`
			} `json:"meta"`
		} `json:"entries"`
	}
	r.decode(t, &audit)
	if len(audit.Entries) != 1 {
		t.Fatalf("audit %s", r.Body)
	}
	e := audit.Entries[0] // the newest: event=nothing.here
	if e.Action != "events.exported" || !strings.Contains(e.Actor, o.email) || e.Meta.Rows == nil || *e.Meta.Rows != 0 || e.Meta.Filters["event"] != "nothing.here" {
		t.Errorf("newest export audit %s", r.Body)
	}
	r = h.do("GET", "/api/analytics/audit?action=events.exported&limit=100", nil, o.h())
	r.decode(t, &audit)
	if len(audit.Entries) != 9 {
		t.Errorf("%d export audit entries, want 9", len(audit.Entries))
	}
	first := audit.Entries[len(audit.Entries)-1]
	if first.Meta.Rows == nil || *first.Meta.Rows != len(users) || first.Meta.Filters["event"] != "exp.row" {
		t.Errorf("first export audit %+v", first)
	}
}

func TestAPIExportCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withMaxExportRows(5))
	o := h.newTenant("acme")
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	send := func(name string, n int) {
		var batch []any
		for i := range n {
			batch = append(batch, map[string]any{"event": name, "event_id": fmt.Sprintf("%s-%02d", name, i), "timestamp": base.Add(time.Duration(i) * time.Second).Format(time.RFC3339)})
		}
		h.send(o.h(), map[string]any{"batch": batch})
	}
	send("cap.twelve", 12)
	send("cap.five", 5)

	var ids []string
	q := url.Values{"event": {"cap.twelve"}}
	for i, want := range []struct {
		rows      int
		truncated string
	}{{5, "true"}, {5, "true"}, {2, "false"}} {
		r, rows := h.export(t, o.h(), q.Encode())
		if r.Header.Get("X-Export-Row-Limit") != "5" || r.Header.Get("X-Export-Truncated") != want.truncated || len(rows) != want.rows {
			t.Fatalf("page %d: %d rows, headers %v", i, len(rows), r.Header)
		}
		for _, row := range rows {
			ids = append(ids, row[0])
		}
		next := r.Header.Get("X-Export-Next-Cursor")
		if (next != "") != (want.truncated == "true") {
			t.Fatalf("page %d: next cursor %q with truncated %s", i, next, want.truncated)
		}
		q.Set("cursor", next)
	}
	if len(ids) != 12 {
		t.Fatalf("%d rows over three exports", len(ids))
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("row %s exported twice", id)
		}
		seen[id] = true
	}

	r, rows := h.export(t, o.h(), "event=cap.five")
	if len(rows) != 5 || r.Header.Get("X-Export-Truncated") != "false" || r.Header.Get("X-Export-Next-Cursor") != "" {
		t.Errorf("exactly the cap: %d rows, headers %v", len(rows), r.Header)
	}
	// A smaller limit is allowed; one above the cap is not.
	if r, rows := h.export(t, o.h(), "event=cap.five&limit=2"); len(rows) != 2 || r.Header.Get("X-Export-Truncated") != "true" {
		t.Errorf("limit=2: %d rows, headers %v", len(rows), r.Header)
	}
	wantProblem(t, h.do("GET", "/api/analytics/export.csv?limit=6", nil, o.h()), http.StatusBadRequest)

	r = h.do("GET", "/api/analytics/audit?action=events.exported&limit=10", nil, o.h())
	var audit struct {
		Entries []struct {
			Meta map[string]any `json:"meta"`
		} `json:"entries"`
	}
	r.decode(t, &audit)
	if len(audit.Entries) != 5 || audit.Entries[len(audit.Entries)-1].Meta["truncated"] != true {
		t.Errorf("export audit %s", r.Body)
	}
}
