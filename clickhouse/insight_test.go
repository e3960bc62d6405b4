package clickhouse_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/clickhouse"
	"github.com/tallyhq/tally/clickhouse/chtest"
	"github.com/tallyhq/tally/insight"
	"github.com/tallyhq/tally/postgres/pgtest"
)

var _ tally.InsightScanner = (*clickhouse.Store)(nil)

// TestInsightScanMatchesExport: funnels and retention computed from
// ClickHouse's InsightScanner equal those computed from the exported
// events, over random events (ties in time, events outside the range,
// own events, anonymous events, linked anonymous ids) and random queries
// (prefix patterns, source, user_id and props filters, breakdowns).
func TestInsightScanMatchesExport(t *testing.T) {
	pgtest.RequireServer(t)
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		insightAgree(t, open(t, time.Now))
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		chtest.RequireCluster(t)
		insightAgree(t, openAt(t, time.Now, chtest.FreshClusterDatabase(t)))
	})
}

func insightAgree(t *testing.T, s *clickhouse.Store) {
	ctx := t.Context()
	tenants := clusterTenants(t, s, 2)
	rng := rand.New(rand.NewPCG(16, 1))
	base := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	names := []string{"signup", "page.view", "page.click", "checkout.start", "checkout.done", "tally.own", "other"}
	users := []string{"", "u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "a0", "a1", "a2", "a3", "a4"}
	props := []string{`{}`, `{"plan":"pro"}`, `{"plan":"free","n":1}`, `{"plan":"pro","n":2.0,"nested":{"k":"x"}}`,
		`{"n":"2","nested":{"k":"y","z":[1,2]}}`, `{"plan":null}`, `{"nested":{"k":"x"},"plan":true}`}
	var events []tally.Event
	for i := range 3000 {
		tn := tenants[i%len(tenants)]
		// Whole minutes over 12 days: many ties in time.
		at := base.Add(time.Duration(rng.IntN(12*24*60)) * time.Minute)
		source := "web"
		if rng.IntN(3) == 0 {
			source = "api"
		}
		events = append(events, tally.Event{TenantID: tn.ID, EventID: fmt.Sprintf("e%d", i), Name: names[rng.IntN(len(names))],
			UserID: users[rng.IntN(len(users))], Source: source, Timestamp: at, ReceivedAt: at,
			Props: json.RawMessage(props[rng.IntN(len(props))])})
	}
	for lo := 0; lo < len(events); lo += 1000 {
		if _, err := s.InsertEvents(ctx, events[lo:lo+1000]); err != nil {
			t.Fatal(err)
		}
	}
	links := []tally.IdentityLink{{AnonymousID: "a0", UserID: "u0"}, {AnonymousID: "a1", UserID: "u5"}, {AnonymousID: "a2", UserID: "zz"}}
	if err := s.LinkIdentities(ctx, tenants[0].ID, links, base); err != nil {
		t.Fatal(err)
	}
	pushed := insight.New(insight.Config{}, s)
	exported := insight.New(insight.Config{Export: true}, s)
	patterns := []string{"signup", "page.*", "page.view", "checkout.*", "*", "tally.own", "t*", "check*", "nothing"}
	filters := []map[string]string{nil, nil, {"source": "web"}, {"user_id": "u0"}, {"user_id": "a0"}, {"props.plan": "pro"},
		{"props.n": "2"}, {"props.nested.k": "x", "source": "api"}, {"props.plan": "true"}, {"props.nested": `{"k":"x"}`}}
	breakdowns := []string{"", "", "props.plan", "props.n", "props.nested"}
	between := func() (time.Time, time.Time) {
		from := base.Add(time.Duration(rng.IntN(6*24)) * time.Hour)
		return from, from.Add(time.Duration(1+rng.IntN(6*24)) * time.Hour)
	}
	var nonEmpty, converted, grouped int
	for i := range 80 {
		tn := tenants[i%len(tenants)]
		var q tally.FunnelQuery
		for range 2 + rng.IntN(4) {
			q.Steps = append(q.Steps, tally.FunnelStep{Event: patterns[rng.IntN(len(patterns))], Filter: filters[rng.IntN(len(filters))]})
		}
		q.WindowSeconds = int64(60 + rng.IntN(3*86400))
		q.From, q.To = between()
		q.Breakdown = breakdowns[rng.IntN(len(breakdowns))]
		got := bothAgree(t, q, func(svc *insight.Service) (*tally.FunnelResult, error) { return svc.Funnel(ctx, tn.ID, q) }, pushed, exported)
		if got.Steps[0].Entered > 0 {
			nonEmpty++
		}
		if got.Steps[1].Converted > 0 {
			converted++
		}
		if len(got.Breakdown) > 1 {
			grouped++
		}
	}
	// The random queries must mostly find something to compare.
	if nonEmpty < 40 || converted < 20 || grouped < 5 {
		t.Fatalf("of 80 funnels %d found users, %d conversions, %d several groups", nonEmpty, converted, grouped)
	}
	t.Logf("of 80 funnels %d found users, %d conversions, %d several groups", nonEmpty, converted, grouped)
	periods := []string{"day", "week", "month"}
	for i := range 30 {
		tn := tenants[i%len(tenants)]
		q := tally.RetentionQuery{StartEvent: patterns[rng.IntN(len(patterns))], ReturnEvent: patterns[rng.IntN(len(patterns))],
			Period: periods[rng.IntN(len(periods))]}
		q.From, q.To = between()
		bothAgree(t, q, func(svc *insight.Service) (*tally.RetentionResult, error) { return svc.Retention(ctx, tn.ID, q) }, pushed, exported)
	}
}

// bothAgree returns the answer of pushed, failing t unless both answer
// and equal answers.
func bothAgree[R any](t *testing.T, q any, answer func(*insight.Service) (R, error), pushed, exported *insight.Service) R {
	t.Helper()
	want, err := answer(exported)
	if err != nil {
		t.Fatal(err)
	}
	got, err := answer(pushed)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Fatalf("%T %+v:\n got %s\nwant %s", q, q, g, w)
	}
	return got
}

// TestInsightScanBounds: the scan in ClickHouse keeps the insight
// service's limits: more events than MaxEvents (counted per step name,
// anonymous ones too) is ETooMany before any row is read, and a query
// past Timeout is EUnavailable.
func TestInsightScanBounds(t *testing.T) {
	pgtest.RequireServer(t)
	t.Parallel()
	s := open(t, time.Now)
	ctx := t.Context()
	tn := clusterTenants(t, s, 1)[0]
	now := time.Now().UTC().Truncate(time.Second)
	var events []tally.Event
	for i := range 10 {
		name, user := "signup", "u"+fmt.Sprint(i/2)
		if i%2 == 1 {
			name = "activate"
		}
		if i == 9 {
			user = "" // anonymous: counted against the bound, not scanned
		}
		events = append(events, tally.Event{TenantID: tn.ID, EventID: fmt.Sprintf("e%d", i), Name: name, UserID: user,
			Timestamp: now.Add(time.Duration(i) * time.Minute), ReceivedAt: now, Props: json.RawMessage(`{}`)})
	}
	if _, err := s.InsertEvents(ctx, events); err != nil {
		t.Fatal(err)
	}
	q := tally.FunnelQuery{Steps: []tally.FunnelStep{{Event: "signup"}, {Event: "activate"}}, WindowSeconds: 3600,
		From: now.Add(-time.Hour), To: now.Add(time.Hour)}
	if _, err := insight.New(insight.Config{MaxEvents: 9}, s).Funnel(ctx, tn.ID, q); tally.ErrorCodeOf(err) != tally.ETooMany {
		t.Fatalf("a scan past the bound: %v, want %s", err, tally.ETooMany)
	}
	res, err := insight.New(insight.Config{MaxEvents: 10}, s).Funnel(ctx, tn.ID, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Steps[0].Entered != 5 || res.Steps[0].Converted != 4 || res.Scanned != 9 {
		t.Fatalf("funnel %+v", res)
	}
	// Patterns that select the same events count them once each.
	overlap := q
	overlap.Steps = []tally.FunnelStep{{Event: "sign*"}, {Event: "signup"}}
	if _, err := insight.New(insight.Config{MaxEvents: 9}, s).Funnel(ctx, tn.ID, overlap); tally.ErrorCodeOf(err) != tally.ETooMany {
		t.Fatalf("overlapping patterns past the bound: %v, want %s", err, tally.ETooMany)
	}
	if res, err := insight.New(insight.Config{MaxEvents: 10}, s).Funnel(ctx, tn.ID, overlap); err != nil || res.Scanned != 5 {
		t.Fatalf("overlapping patterns within the bound: %+v, %v", res, err)
	}
	r := tally.RetentionQuery{StartEvent: "signup", ReturnEvent: "activate", Period: "day", From: now.Add(-time.Hour), To: now.Add(time.Hour)}
	if _, err := insight.New(insight.Config{MaxEvents: 9}, s).Retention(ctx, tn.ID, r); tally.ErrorCodeOf(err) != tally.ETooMany {
		t.Fatalf("retention past the bound: %v", err)
	}
	if _, err := insight.New(insight.Config{Timeout: time.Nanosecond}, s).Funnel(ctx, tn.ID, q); tally.ErrorCodeOf(err) != tally.EUnavailable {
		t.Fatalf("a funnel past its timeout: %v, want %s", err, tally.EUnavailable)
	}
}
