package server_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// stepName reports whether a step's event, a name or a prefix ending in
// "*", selects the event name n.
func stepName(step, n string) bool {
	if prefix, ok := strings.CutSuffix(step, "*"); ok {
		return strings.HasPrefix(n, prefix)
	}
	return n == step
}

// insightEvent is an event as the brute-force oracles read it.
type insightEvent struct {
	id   int64
	user string
	name string
	at   time.Time
	plan string
	has  bool // props.plan present
}

// seedInsights ingests a reproducible mix of users' events over the last
// days and returns them as stored (ids and timestamps from the list).
func seedInsights(t *testing.T, h *harness, o owner) []insightEvent {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 11))
	names := []string{"signup", "activate", "purchase", "page.view", "activate"}
	plans := []string{"free", "pro", ""}
	base := time.Now().UTC().Add(-20 * 24 * time.Hour).Truncate(time.Second)
	var batch []map[string]any
	for u := range 40 {
		n := 1 + rng.IntN(12)
		for k := range n {
			e := map[string]any{
				"event":     names[rng.IntN(len(names))],
				"event_id":  fmt.Sprintf("u%d-%d", u, k),
				"timestamp": base.Add(time.Duration(rng.IntN(19*24*60)) * time.Minute).Format(time.RFC3339),
			}
			if u%9 != 8 {
				e["user_id"] = fmt.Sprintf("user-%02d", u)
			}
			if p := plans[rng.IntN(len(plans))]; p != "" {
				e["props"] = map[string]any{"plan": p}
			}
			batch = append(batch, e)
		}
	}
	if res := h.send(o.h(), map[string]any{"batch": batch}); res.Accepted != len(batch) {
		t.Fatalf("seed: %+v", res)
	}
	var out []insightEvent
	for _, e := range h.allEvents(o.h(), url.Values{"from": {base.Add(-time.Hour).Format(time.RFC3339)}, "limit": {"1000"}}) {
		if !strings.HasPrefix(e.EventID, "u") || !strings.Contains(e.EventID, "-") {
			continue // not one of the seed's
		}
		var props struct {
			Plan *string `json:"plan"`
		}
		json.Unmarshal(e.Props, &props)
		ie := insightEvent{id: e.ID, user: e.UserID, name: e.Event, at: e.Timestamp}
		if props.Plan != nil {
			ie.plan, ie.has = *props.Plan, true
		}
		out = append(out, ie)
	}
	if len(out) != len(batch) {
		t.Fatalf("listed %d of %d seeded events", len(out), len(batch))
	}
	return out
}

type funnelStepAnswer struct {
	Event     string   `json:"event"`
	Entered   int64    `json:"entered"`
	Converted int64    `json:"converted"`
	Rate      float64  `json:"conversion_rate"`
	Median    *float64 `json:"median_seconds_to_convert"`
}

type funnelAnswer struct {
	Steps     []funnelStepAnswer `json:"steps"`
	Breakdown []struct {
		Value string             `json:"value"`
		Steps []funnelStepAnswer `json:"steps"`
	} `json:"breakdown"`
}

// bruteFunnel is the funnel by exhaustive search: every increasing
// sequence of a user's events that matches the steps within the window,
// the deepest (then earliest start, then earliest steps) counting.
func bruteFunnel(events []insightEvent, steps []string, plan string, window time.Duration, from, to time.Time, breakdown bool) (all []funnelStepAnswer, groups map[string][]funnelStepAnswer) {
	users := map[string][]insightEvent{}
	for _, e := range events {
		if e.user != "" {
			users[e.user] = append(users[e.user], e)
		}
	}
	matches := func(e insightEvent, i int) bool {
		return stepName(steps[i], e.name) && (i != 0 || plan == "" || (e.has && e.plan == plan))
	}
	type run struct {
		times []time.Time
		group string
	}
	var runs []run
	for _, evs := range users {
		sort.Slice(evs, func(a, b int) bool {
			if !evs[a].at.Equal(evs[b].at) {
				return evs[a].at.Before(evs[b].at)
			}
			return evs[a].id < evs[b].id
		})
		var best []int
		var search func(seq []int)
		better := func(a, b []int) bool { // is a better than b
			if len(a) != len(b) {
				return len(a) > len(b)
			}
			for i := range a {
				if a[i] != b[i] {
					return a[i] < b[i]
				}
			}
			return false
		}
		search = func(seq []int) {
			if better(seq, best) {
				best = slices.Clone(seq)
			}
			if len(seq) == len(steps) {
				return
			}
			for k := seq[len(seq)-1] + 1; k < len(evs); k++ {
				if evs[k].at.Sub(evs[seq[0]].at) <= window && matches(evs[k], len(seq)) {
					search(append(seq, k))
				}
			}
		}
		for s, e := range evs {
			if !e.at.Before(from) && !e.at.After(to) && matches(e, 0) {
				search([]int{s})
			}
		}
		if best == nil {
			continue
		}
		r := run{}
		for _, k := range best {
			r.times = append(r.times, evs[k].at)
		}
		if breakdown && evs[best[0]].has {
			r.group = evs[best[0]].plan
		}
		runs = append(runs, r)
	}
	answer := func(rs []run) []funnelStepAnswer {
		out := make([]funnelStepAnswer, len(steps))
		for i := range steps {
			out[i].Event = steps[i]
			var gaps []float64
			for _, r := range rs {
				if len(r.times) > i {
					out[i].Entered++
				}
				if len(r.times) > i+1 {
					out[i].Converted++
					gaps = append(gaps, r.times[i+1].Sub(r.times[i]).Seconds())
				}
			}
			if i == len(steps)-1 {
				out[i].Converted, gaps = out[i].Entered, nil
			}
			if out[i].Entered > 0 {
				out[i].Rate = float64(out[i].Converted) / float64(out[i].Entered)
			}
			if len(gaps) > 0 {
				sort.Float64s(gaps)
				m := gaps[len(gaps)/2]
				if len(gaps)%2 == 0 {
					m = (gaps[len(gaps)/2-1] + gaps[len(gaps)/2]) / 2
				}
				out[i].Median = &m
			}
		}
		return out
	}
	all = answer(runs)
	if breakdown {
		groups = map[string][]funnelStepAnswer{}
		by := map[string][]run{}
		for _, r := range runs {
			by[r.group] = append(by[r.group], r)
		}
		for k, rs := range by {
			groups[k] = answer(rs)
		}
	}
	return all, groups
}

func sameSteps(t *testing.T, what string, got, want []funnelStepAnswer) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d steps, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		medOK := (g.Median == nil) == (w.Median == nil) && (g.Median == nil || math.Abs(*g.Median-*w.Median) < 1e-6)
		if g.Event != w.Event || g.Entered != w.Entered || g.Converted != w.Converted || math.Abs(g.Rate-w.Rate) > 1e-9 || !medOK {
			t.Fatalf("%s: step %d = %+v (median %v), want %+v (median %v)", what, i, g, fmtMedian(g.Median), w, fmtMedian(w.Median))
		}
	}
}

func fmtMedian(m *float64) string {
	if m == nil {
		return "nil"
	}
	return fmt.Sprint(*m)
}

// TestAPIFunnelMatchesBruteForce: funnels answered by the API on both
// backends equal an exhaustive search over the same events.
func TestAPIFunnelMatchesBruteForce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("acme")
		events := seedInsights(t, h, o)
		now := time.Now().UTC()
		cases := []struct {
			name      string
			steps     []string
			plan      string // filter of the first step
			window    time.Duration
			from, to  time.Time
			breakdown bool
		}{
			{"two steps, a day", []string{"signup", "activate"}, "", 24 * time.Hour, now.AddDate(0, 0, -30), now, false},
			{"three steps, a week", []string{"signup", "activate", "purchase"}, "", 7 * 24 * time.Hour, now.AddDate(0, 0, -30), now, false},
			{"repeated step", []string{"activate", "activate", "purchase"}, "", 5 * 24 * time.Hour, now.AddDate(0, 0, -30), now, false},
			{"a prefix step over an exact one", []string{"page.*", "page.view", "activate"}, "", 5 * 24 * time.Hour, now.AddDate(0, 0, -30), now, false},
			{"short window", []string{"signup", "purchase"}, "", 6 * time.Hour, now.AddDate(0, 0, -30), now, false},
			{"part of the range", []string{"page.view", "activate"}, "", 3 * 24 * time.Hour, now.AddDate(0, 0, -14), now.AddDate(0, 0, -5), false},
			{"filtered first step", []string{"signup", "activate"}, "pro", 10 * 24 * time.Hour, now.AddDate(0, 0, -30), now, false},
			{"breakdown by plan", []string{"signup", "activate", "purchase"}, "", 10 * 24 * time.Hour, now.AddDate(0, 0, -30), now, true},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var steps []map[string]any
				for i, s := range c.steps {
					st := map[string]any{"event": s}
					if i == 0 && c.plan != "" {
						st["filter"] = map[string]string{"props.plan": c.plan}
					}
					steps = append(steps, st)
				}
				body := map[string]any{"steps": steps, "window_seconds": int64(c.window / time.Second),
					"from": c.from.Format(time.RFC3339), "to": c.to.Format(time.RFC3339)}
				if c.breakdown {
					body["breakdown"] = "props.plan"
				}
				var got funnelAnswer
				h.doT(t, "POST", "/api/analytics/funnels/query", body, o.h()).want(t, http.StatusOK).decode(t, &got)
				from, _ := time.Parse(time.RFC3339, c.from.Format(time.RFC3339))
				to, _ := time.Parse(time.RFC3339, c.to.Format(time.RFC3339))
				want, groups := bruteFunnel(events, c.steps, c.plan, c.window, from, to, c.breakdown)
				if want[0].Entered == 0 {
					t.Fatalf("the case selects nobody: a weak test")
				}
				sameSteps(t, "funnel", got.Steps, want)
				if len(got.Breakdown) != len(groups) {
					t.Fatalf("%d breakdown groups, want %d", len(got.Breakdown), len(groups))
				}
				for _, g := range got.Breakdown {
					sameSteps(t, "breakdown "+g.Value, g.Steps, groups[g.Value])
				}
			})
		}
		h.noPanic(t)
	})
}

type retentionAnswer struct {
	Period  string `json:"period"`
	Cohorts []struct {
		Start  time.Time `json:"start"`
		Size   int64     `json:"size"`
		Counts []int64   `json:"counts"`
		Rates  []float64 `json:"rates"`
	} `json:"cohorts"`
}

// bruteRetention: per user, the first start event in range fixes the
// cohort; each period counts the user when a return event lies in it
// (after that first start event).
func bruteRetention(events []insightEvent, start, ret, period string, from, to time.Time) map[time.Time][]int64 {
	pstart := func(t time.Time) time.Time {
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		switch period {
		case "week":
			for d.Weekday() != time.Monday {
				d = d.AddDate(0, 0, -1)
			}
		case "month":
			d = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
		return d
	}
	users := map[string][]insightEvent{}
	for _, e := range events {
		if e.user != "" && !e.at.Before(from) && !e.at.After(to) {
			users[e.user] = append(users[e.user], e)
		}
	}
	out := map[time.Time][]int64{} // cohort start → size, then counts per period start index
	for _, evs := range users {
		var first *insightEvent
		for i := range evs {
			e := &evs[i]
			if e.name == start && (first == nil || e.at.Before(first.at) || (e.at.Equal(first.at) && e.id < first.id)) {
				first = e
			}
		}
		if first == nil {
			continue
		}
		c := pstart(first.at)
		if out[c] == nil {
			out[c] = make([]int64, 1, 64)
		}
		out[c][0]++
		counted := map[time.Time]bool{}
		for _, e := range evs {
			after := e.at.After(first.at) || (e.at.Equal(first.at) && e.id > first.id)
			if e.name == ret && after {
				counted[pstart(e.at)] = true
			}
		}
		for p := range counted {
			k := 0
			for q := c; q.Before(p); k++ {
				switch period {
				case "day":
					q = q.AddDate(0, 0, 1)
				case "week":
					q = q.AddDate(0, 0, 7)
				default:
					q = q.AddDate(0, 1, 0)
				}
			}
			for len(out[c]) <= k+1 {
				out[c] = append(out[c], 0)
			}
			out[c][k+1]++
		}
	}
	return out
}

// TestAPIRetentionMatchesBruteForce: the retention triangle answered by
// the API on both backends equals a direct count over the same events.
func TestAPIRetentionMatchesBruteForce(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("acme")
		events := seedInsights(t, h, o)
		now := time.Now().UTC().Truncate(time.Second)
		cases := []struct {
			name, start, ret, period string
			from, to                 time.Time
		}{
			{"daily", "signup", "activate", "day", now.AddDate(0, 0, -21), now},
			{"weekly", "signup", "purchase", "week", now.AddDate(0, 0, -21), now},
			{"monthly, same event", "activate", "activate", "month", now.AddDate(0, 0, -25), now},
			{"part of the range", "page.view", "activate", "day", now.AddDate(0, 0, -12), now.AddDate(0, 0, -3)},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				var got retentionAnswer
				h.doT(t, "POST", "/api/analytics/retention/query", map[string]any{"start_event": c.start, "return_event": c.ret,
					"period": c.period, "from": c.from.Format(time.RFC3339), "to": c.to.Format(time.RFC3339)}, o.h()).
					want(t, http.StatusOK).decode(t, &got)
				want := bruteRetention(events, c.start, c.ret, c.period, c.from, c.to)
				total := int64(0)
				for i, co := range got.Cohorts {
					if len(co.Counts) != len(got.Cohorts)-i || len(co.Rates) != len(co.Counts) {
						t.Fatalf("cohort %d has %d counts of %d periods: not a triangle", i, len(co.Counts), len(got.Cohorts))
					}
					w := want[co.Start]
					delete(want, co.Start)
					size := int64(0)
					if len(w) > 0 {
						size = w[0]
					}
					total += co.Size
					if co.Size != size {
						t.Fatalf("cohort %s: size %d, want %d", co.Start, co.Size, size)
					}
					for k, n := range co.Counts {
						wn := int64(0)
						if k+1 < len(w) {
							wn = w[k+1]
						}
						if n != wn {
							t.Fatalf("cohort %s period %d: %d returned, want %d (all %v, want %v)", co.Start, k, n, wn, co.Counts, w[1:])
						}
						if size > 0 && math.Abs(co.Rates[k]-float64(n)/float64(size)) > 1e-9 {
							t.Fatalf("cohort %s period %d: rate %v", co.Start, k, co.Rates[k])
						}
					}
				}
				if len(want) != 0 {
					t.Fatalf("cohorts missing from the answer: %v", want)
				}
				if total == 0 {
					t.Fatal("no cohort: a weak test")
				}
			})
		}
	})
}

// TestAPIInsightBadInput: malformed or out-of-bounds queries are 400s
// naming the field.
func TestAPIInsightBadInput(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	now := time.Now().UTC()
	from, to := now.AddDate(0, 0, -7).Format(time.RFC3339), now.Format(time.RFC3339)
	two := []map[string]any{{"event": "a"}, {"event": "b"}}
	cases := []struct {
		name, path string
		body       any
		field      string
	}{
		{"one step", "/api/analytics/funnels/query", map[string]any{"steps": two[:1], "window_seconds": 60, "from": from, "to": to}, "steps"},
		{"bad step event", "/api/analytics/funnels/query", map[string]any{"steps": []map[string]any{{"event": "a b"}, {"event": "b"}}, "window_seconds": 60, "from": from, "to": to}, "steps[0].event"},
		{"bad filter key", "/api/analytics/funnels/query", map[string]any{"steps": []map[string]any{{"event": "a", "filter": map[string]string{"plan": "x"}}, {"event": "b"}}, "window_seconds": 60, "from": from, "to": to}, "steps[0].filter[plan]"},
		{"no window", "/api/analytics/funnels/query", map[string]any{"steps": two, "from": from, "to": to}, "window_seconds"},
		{"window too long", "/api/analytics/funnels/query", map[string]any{"steps": two, "window_seconds": 100 * 86400, "from": from, "to": to}, "window_seconds"},
		{"no from", "/api/analytics/funnels/query", map[string]any{"steps": two, "window_seconds": 60, "to": to}, "from"},
		{"range too long", "/api/analytics/funnels/query", map[string]any{"steps": two, "window_seconds": 60, "from": now.AddDate(-2, 0, 0).Format(time.RFC3339), "to": to}, "to"},
		{"bad breakdown", "/api/analytics/funnels/query", map[string]any{"steps": two, "window_seconds": 60, "from": from, "to": to, "breakdown": "plan"}, "breakdown"},
		{"bad period", "/api/analytics/retention/query", map[string]any{"start_event": "a", "return_event": "b", "period": "hour", "from": from, "to": to}, "period"},
		{"too many periods", "/api/analytics/retention/query", map[string]any{"start_event": "a", "return_event": "b", "period": "day", "from": now.AddDate(0, 0, -300).Format(time.RFC3339), "to": to}, "period"},
		{"no return event", "/api/analytics/retention/query", map[string]any{"start_event": "a", "period": "day", "from": from, "to": to}, "return_event"},
		{"unknown field", "/api/analytics/retention/query", map[string]any{"start_event": "a", "return_event": "b", "period": "day", "from": from, "to": to, "cohort": 1}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := wantProblem(t, h.doT(t, "POST", c.path, c.body, o.h()), http.StatusBadRequest)
			if c.field != "" && !p.hasField(c.field) {
				t.Fatalf("problem %+v does not name %s", p, c.field)
			}
		})
	}
}
