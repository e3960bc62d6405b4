package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/storetest"
)

// meterAnswer is the answer of a meter query.
type meterAnswer = tally.MeterResult

// lastDSTDay returns the local midnight starting the latest day of loc,
// at least three days before now, that does not last 24 hours.
func lastDSTDay(t *testing.T, loc *time.Location, now time.Time) time.Time {
	y, m, d := now.In(loc).Date()
	for i := 3; i < 380; i++ {
		start := time.Date(y, m, d-i, 0, 0, 0, 0, loc)
		if time.Date(y, m, d-i+1, 0, 0, 0, 0, loc).Sub(start) != 24*time.Hour {
			return start
		}
	}
	t.Skipf("no daylight-saving change in %s within a year", loc)
	return time.Time{}
}

// sendMeterEvents sends events over the API in batches.
func sendMeterEvents(h *harness, headers map[string]string, events []tally.Event) {
	h.t.Helper()
	for len(events) > 0 {
		n := min(len(events), tally.MaxBatchEvents)
		batch := make([]any, n)
		for i, e := range events[:n] {
			batch[i] = map[string]any{"event_id": e.EventID, "event": e.Name, "user_id": e.UserID, "source": e.Source,
				"timestamp": e.Timestamp.Format(time.RFC3339Nano), "value": e.Value, "props": e.Props}
		}
		if res := h.send(headers, map[string]any{"batch": batch}); res.Accepted != n {
			h.t.Fatalf("accepted %d of %d events: %+v", res.Accepted, n, res.Rejected)
		}
		events = events[n:]
	}
}

// checkMeterAnswer compares an answer with the brute-force computation
// over events of the same meter, windows and filters: every window of
// every group present, empty ones 0 or null by the aggregation.
func checkMeterAnswer(t *testing.T, def tally.MeterDef, ans meterAnswer, in tally.MeterQueryInput, events []tally.Event) {
	t.Helper()
	windows, err := tally.MeterWindows(in.Window, in.From, in.To, in.Loc)
	if err != nil {
		t.Fatal(err)
	}
	bounds := slices.Clone(windows)
	bounds[0], bounds[len(bounds)-1] = in.From, in.To
	want := storetest.MeterBruteForce(tally.MeterQuery{Meter: def, Bounds: bounds, GroupBy: in.GroupBy, Filter: in.Filter}, events)
	groups := map[string]bool{}
	for k := range want {
		_, g, _ := strings.Cut(k, "|")
		groups[g] = true
	}
	nGroups := max(len(groups), 1)
	if len(ans.Data) != nGroups*(len(windows)-1) {
		t.Fatalf("%s: %d points, want %d groups × %d windows", def.Slug, len(ans.Data), nGroups, len(windows)-1)
	}
	for _, p := range ans.Data {
		w := slices.IndexFunc(windows, func(s time.Time) bool { return s.Equal(p.WindowStart) })
		if w < 0 || w+1 >= len(windows) || !windows[w+1].Equal(p.WindowEnd) {
			t.Fatalf("%s: point window [%v, %v) is not one of %v", def.Slug, p.WindowStart, p.WindowEnd, windows)
		}
		group := make([]*string, len(in.GroupBy))
		for i, g := range in.GroupBy {
			v, ok := p.GroupBy[g]
			if !ok {
				t.Fatalf("%s: point without group %s: %+v", def.Slug, g, p.GroupBy)
			}
			group[i] = v
		}
		exp, ok := want[storetest.MeterRowKey(w, group)]
		if !ok && def.Aggregation.EmptyIsZero() {
			zero := 0.0
			exp = &zero
		}
		if !storetest.SameMeterValue(p.Value, exp) {
			t.Errorf("%s window %s tz %s group_by %v filter %v: [%v, %v) %v = %s, want %s", def.Slug, in.Window, in.Loc, in.GroupBy, in.Filter,
				p.WindowStart, p.WindowEnd, p.GroupBy, fmtMeterValue(p.Value), fmtMeterValue(exp))
		}
	}
}

// meterBody is the POST body that defines d.
func meterBody(d tally.MeterDef) map[string]any {
	return map[string]any{"slug": d.Slug, "event": d.Event, "aggregation": d.Aggregation, "value_property": d.ValueProperty,
		"group_by": d.GroupBy, "filter": d.Filter, "description": d.Description}
}

func fmtMeterValue(v *float64) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprint(*v)
}

func meterQueryURL(slug string, in tally.MeterQueryInput) string {
	q := url.Values{"from": {in.From.Format(time.RFC3339)}, "to": {in.To.Format(time.RFC3339)}, "tz": {in.Loc.String()}}
	if in.Window != "" {
		q.Set("window", string(in.Window))
	}
	if len(in.GroupBy) > 0 {
		q.Set("group_by", strings.Join(in.GroupBy, ","))
	}
	for k, v := range in.Filter {
		if k == "user_id" {
			q.Set("user_id", v)
		} else {
			q.Set("filter["+k+"]", v)
		}
	}
	return "/api/analytics/meters/" + slug + "/query?" + q.Encode()
}

// TestAPIMetersMatchBruteForce checks every aggregation × window ×
// group-by × time zone (across a daylight-saving day) against a brute-force
// computation over the same events, for meters defined after their events
// were stored, and again after late events arrive in windows already
// queried.
func TestAPIMetersMatchBruteForce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("meters")
		ny, err := time.LoadLocation("America/New_York")
		if err != nil {
			t.Skip("no tzdata: ", err)
		}
		kolkata, _ := time.LoadLocation("Asia/Kolkata")
		dst := lastDSTDay(t, ny, time.Now())
		start := dst.Add(-30 * time.Hour)
		events := storetest.MeterEvents(0, start, 80)
		sendMeterEvents(h, o.h(), events)

		// Meters defined now, after their events.
		var defs []tally.MeterDef
		for _, agg := range tally.MeterAggregations {
			d := tally.MeterDef{Slug: "m_" + string(agg), Event: "llm.*", Aggregation: agg, ValueProperty: "props.qty",
				GroupBy: []string{"props.model", "props.plan"}}
			if agg == tally.AggCount {
				d.ValueProperty = ""
			}
			defs = append(defs, d)
		}
		defs = append(defs,
			tally.MeterDef{Slug: "nested_sum", Event: "llm.call", Aggregation: tally.AggSum, ValueProperty: "props.usage.input",
				GroupBy: []string{"props.usage.tier"}, Filter: map[string]string{"source": "api"}},
			tally.MeterDef{Slug: "value_avg", Event: "*", Aggregation: tally.AggAvg, ValueProperty: "value", GroupBy: []string{"props.plan"}},
		)
		for _, d := range defs {
			r := h.do("POST", "/api/analytics/meters", meterBody(d), o.h()).want(t, http.StatusCreated)
			if r.Header.Get("Location") != "/api/analytics/meters/"+d.Slug {
				t.Errorf("Location %q", r.Header.Get("Location"))
			}
		}

		type qcase struct {
			window tally.MeterWindow
			from   time.Time
			to     time.Time
		}
		end := start.Add(80 * time.Hour)
		cases := []qcase{
			{tally.WindowHour, start.Add(90 * time.Minute), end},
			{tally.WindowDay, start, end},
			{tally.WindowMonth, start.Add(-24 * time.Hour), end},
			{tally.WindowNone, start.Add(7 * time.Minute), end.Add(-5 * time.Hour)},
			{tally.WindowMinute, dst.Add(2 * time.Hour), dst.Add(4 * time.Hour)},
		}
		run := func(events []tally.Event) {
			for _, d := range defs {
				for _, c := range cases {
					for _, loc := range []*time.Location{ny, time.UTC, kolkata} {
						for _, gb := range [][]string{nil, d.GroupBy[:1], d.GroupBy} {
							in := tally.MeterQueryInput{From: c.from, To: c.to, Window: c.window, Loc: loc, GroupBy: gb}
							if len(gb) == 2 {
								in.Filter = map[string]string{"user_id": "u1"}
							}
							var ans meterAnswer
							h.do("GET", meterQueryURL(d.Slug, in), nil, o.h()).want(t, http.StatusOK).decode(t, &ans)
							if ans.Meter != d.Slug || ans.TZ != loc.String() || string(ans.Window) != string(c.window) {
								t.Fatalf("answer head %+v", ans)
							}
							checkMeterAnswer(t, d, ans, in, events)
						}
					}
				}
			}
		}
		run(events)

		// Late events: stamped inside windows already answered.
		late := storetest.MeterEvents(0, start.Add(30*time.Minute+7*time.Second), 20)
		for i := range late {
			late[i].EventID = "late-" + late[i].EventID
		}
		sendMeterEvents(h, o.h(), late)
		run(append(events, late...))

		// A query filter on a props path.
		in := tally.MeterQueryInput{From: start, To: end, Window: tally.WindowDay, Loc: ny, GroupBy: []string{"props.model"},
			Filter: map[string]string{"props.plan": "pro"}}
		var ans meterAnswer
		h.do("GET", meterQueryURL("m_sum", in), nil, o.h()).want(t, http.StatusOK).decode(t, &ans)
		checkMeterAnswer(t, defs[1], ans, in, append(events, late...))
		h.noPanic(t)
	})
}

// TestAPIMetersManage checks the meter lifecycle: built-ins listed and
// read-only, create, read, patch, delete, audit entries, field errors as
// 400s naming the field, the scopes, and isolation between tenants.
func TestAPIMetersManage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("meters-a")
		other := h.newTenant("meters-b")

		var list struct {
			Meters []tally.MeterDef `json:"meters"`
		}
		h.do("GET", "/api/analytics/meters", nil, o.h()).want(t, http.StatusOK).decode(t, &list)
		var builtins []string
		for _, m := range list.Meters {
			if m.BuiltIn {
				builtins = append(builtins, m.Slug)
			}
		}
		if !slices.Contains(builtins, "api_requests_daily") || !slices.Contains(builtins, "events_daily") {
			t.Fatalf("built-in meters %v lack the usage rules' metrics", builtins)
		}
		wantProblem(t, h.do("PATCH", "/api/analytics/meters/events_daily", map[string]any{"description": "x"}, o.h()), http.StatusConflict)
		wantProblem(t, h.do("DELETE", "/api/analytics/meters/events_daily", nil, o.h()), http.StatusConflict)
		wantProblem(t, h.do("POST", "/api/analytics/meters", map[string]any{"slug": "events_daily", "event": "*", "aggregation": "count"}, o.h()), http.StatusConflict)

		// A built-in meter answers from the log like the usage it mirrors.
		h.send(o.h(), map[string]any{"batch": []any{map[string]any{"event": "files.uploaded"}, map[string]any{"event": "files.uploaded"}}})
		var ans meterAnswer
		h.do("GET", "/api/analytics/meters/file_uploads_daily/query?tz=UTC", nil, o.h()).want(t, http.StatusOK).decode(t, &ans)
		if len(ans.Data) != 1 || ans.Data[0].Value == nil || *ans.Data[0].Value != 2 {
			t.Fatalf("built-in file_uploads_daily total: %+v", ans.Data)
		}

		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"slug": "Bad", "event": "x", "aggregation": "count"}, "slug"},
			{map[string]any{"slug": "a", "event": "x", "aggregation": "median"}, "aggregation"},
			{map[string]any{"slug": "a", "event": "", "aggregation": "count"}, "event"},
			{map[string]any{"slug": "a", "event": "x", "aggregation": "sum"}, "value_property"},
			{map[string]any{"slug": "a", "event": "x", "aggregation": "max", "value_property": "props..a"}, "value_property"},
			{map[string]any{"slug": "a", "event": "x", "aggregation": "count", "group_by": []string{"plan"}}, "group_by[0]"},
			{map[string]any{"slug": "a", "event": "x", "aggregation": "count", "group_by": []string{"props.a", "props.b", "props.c", "props.d", "props.e", "props.f"}}, "group_by"},
			{map[string]any{"slug": "a", "event": "x", "aggregation": "count", "filter": map[string]string{"plan": "pro"}}, "filter[plan]"},
			{map[string]any{"slug": "a", "event": "x", "aggregation": "count", "unknown": 1}, "unknown"},
		} {
			p := wantProblem(t, h.do("POST", "/api/analytics/meters", tc.body, o.h()), http.StatusBadRequest)
			if !slices.ContainsFunc(p.Errors, func(e struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			}) bool {
				return e.Field == tc.field
			}) {
				t.Errorf("POST %v: errors %+v do not name %s", tc.body, p.Errors, tc.field)
			}
		}

		body := map[string]any{"slug": "tokens", "event": "llm.*", "aggregation": "sum", "value_property": "props.qty",
			"group_by": []string{"props.model"}, "description": "tokens"}
		var created tally.MeterDef
		h.do("POST", "/api/analytics/meters", body, o.h()).want(t, http.StatusCreated).decode(t, &created)
		if created.Slug != "tokens" || created.BuiltIn || created.CreatedAt.IsZero() {
			t.Fatalf("created %+v", created)
		}
		wantProblem(t, h.do("POST", "/api/analytics/meters", body, o.h()), http.StatusConflict)
		var patched tally.MeterDef
		h.do("PATCH", "/api/analytics/meters/tokens", map[string]any{"aggregation": "max"}, o.h()).want(t, http.StatusOK).decode(t, &patched)
		if patched.Aggregation != tally.AggMax || patched.ValueProperty != "props.qty" {
			t.Fatalf("patched %+v", patched)
		}
		p := wantProblem(t, h.do("PATCH", "/api/analytics/meters/tokens", map[string]any{"value_property": ""}, o.h()), http.StatusBadRequest)
		if len(p.Errors) == 0 || p.Errors[0].Field != "value_property" {
			t.Errorf("patch breaking the meter: %+v", p)
		}

		// Query errors name their parameter.
		for q, field := range map[string]string{
			"window=week":                                 "window",
			"group_by=props.plan":                         "group_by",
			"filter[plan]=pro":                            "filter[plan]",
			"tz=Mars/Olympus":                             "tz",
			"from=2026-01-02&to=2026-01-01":               "from",
			"window=minute&from=2020-01-01&to=2026-01-01": "window",
		} {
			p := wantProblem(t, h.do("GET", "/api/analytics/meters/tokens/query?"+q, nil, o.h()), http.StatusBadRequest)
			if len(p.Errors) == 0 || p.Errors[0].Field != field {
				t.Errorf("query %s: errors %+v, want field %s", q, p.Errors, field)
			}
		}

		// Another tenant sees neither the meter nor its events.
		wantProblem(t, h.do("GET", "/api/analytics/meters/tokens", nil, other.h()), http.StatusNotFound)
		wantProblem(t, h.do("GET", "/api/analytics/meters/tokens/query", nil, other.h()), http.StatusNotFound)
		wantProblem(t, h.do("DELETE", "/api/analytics/meters/tokens", nil, other.h()), http.StatusNotFound)
		h.send(o.h(), map[string]any{"batch": []any{map[string]any{"event": "llm.call", "props": map[string]any{"qty": 5, "model": "a"}}}})
		h.do("POST", "/api/analytics/meters", body, other.h()).want(t, http.StatusCreated)
		h.do("GET", "/api/analytics/meters/tokens/query", nil, other.h()).want(t, http.StatusOK).decode(t, &ans)
		if len(ans.Data) != 1 || ans.Data[0].Value == nil || *ans.Data[0].Value != 0 {
			t.Fatalf("tenant b's meter sees tenant a's events: %+v", ans.Data)
		}
		h.do("GET", "/api/analytics/meters/tokens/query", nil, o.h()).want(t, http.StatusOK).decode(t, &ans)
		if len(ans.Data) != 1 || ans.Data[0].Value == nil || *ans.Data[0].Value != 5 {
			t.Fatalf("tenant a's max tokens: %+v", ans.Data)
		}

		// Scopes: a read key lists and queries, only an admin key changes.
		read := h.createKey(o, "analytics:read")
		h.do("GET", "/api/analytics/meters/tokens/query", nil, hdr(read.Key, "")).want(t, http.StatusOK)
		wantProblem(t, h.do("POST", "/api/analytics/meters", map[string]any{"slug": "x", "event": "x", "aggregation": "count"}, hdr(read.Key, "")), http.StatusForbidden)
		adm := h.createKey(o, "analytics:admin")
		h.do("POST", "/api/analytics/meters", map[string]any{"slug": "x", "event": "x", "aggregation": "count"}, hdr(adm.Key, "")).want(t, http.StatusCreated)
		member, _ := h.member(o, "member")
		wantProblem(t, h.do("GET", "/api/analytics/meters", nil, hdr(member, o.slug)), http.StatusForbidden)

		h.do("DELETE", "/api/analytics/meters/tokens", nil, o.h()).want(t, http.StatusNoContent)
		wantProblem(t, h.do("GET", "/api/analytics/meters/tokens", nil, o.h()), http.StatusNotFound)

		var audit struct {
			Entries []struct {
				Action string         `json:"action"`
				Target string         `json:"target"`
				Meta   map[string]any `json:"meta"`
			} `json:"entries"`
		}
		h.do("GET", "/api/analytics/audit?limit=100", nil, o.h()).want(t, http.StatusOK).decode(t, &audit)
		var actions []string
		for _, e := range audit.Entries {
			if strings.HasPrefix(e.Action, "meter.") && e.Target == "tokens" {
				actions = append(actions, e.Action)
			}
		}
		if want := []string{"meter.deleted", "meter.updated", "meter.created"}; !slices.Equal(actions, want) {
			t.Errorf("audit of meter tokens: %v, want %v", actions, want)
		}
		h.noPanic(t)
	})
}

// TestAPIMeterGroupCap checks that a query past MaxMeterGroups groups is a
// 422 naming group_by, and one within it answers.
func TestAPIMeterGroupCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("meter-cap")
	var batch []any
	for i := range tally.MaxMeterGroups + 1 {
		batch = append(batch, map[string]any{"event": "hit", "props": map[string]any{"k": i}})
	}
	h.send(o.h(), map[string]any{"batch": batch[:500]})
	h.send(o.h(), map[string]any{"batch": batch[500:]})
	h.do("POST", "/api/analytics/meters", map[string]any{"slug": "hits", "event": "hit", "aggregation": "count", "group_by": []string{"props.k"}}, o.h()).
		want(t, http.StatusCreated)
	p := wantProblem(t, h.do("GET", "/api/analytics/meters/hits/query?group_by=props.k", nil, o.h()), http.StatusUnprocessableEntity)
	if len(p.Errors) == 0 || p.Errors[0].Field != "group_by" {
		t.Errorf("422 errors %+v", p.Errors)
	}
	var ans meterAnswer
	h.do("GET", "/api/analytics/meters/hits/query?group_by=props.k&filter[props.k]=7", nil, o.h()).want(t, http.StatusOK).decode(t, &ans)
	if len(ans.Data) != 1 || *ans.Data[0].Value != 1 || *ans.Data[0].GroupBy["props.k"] != "7" {
		b, _ := json.Marshal(ans)
		t.Fatalf("one group: %s", b)
	}
}
