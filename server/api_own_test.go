package server_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// ownAccount returns the tally account an event of tally's own is about
// (props.account).
func ownAccount(t testing.TB, e apiEvent) string {
	t.Helper()
	var p struct {
		Account string `json:"account"`
	}
	if err := json.Unmarshal(e.Props, &p); err != nil {
		t.Fatalf("props %s: %v", e.Props, err)
	}
	return p.Account
}

// TestAPIOwnActivityKeptApart uses a tenant as a host app and its admin
// would: the host app sends its sign-ups, logins and API requests while the
// admin logs in and the app calls tally's API with its key. tally's own
// activity stays in the log (source tally, names tally.*) but out of the
// default event list, the export, the KPIs, the usage rules and the
// meters; the "API requests" KPI counts the host app's api.request events;
// the admin is not an active user. Before and after a rollup, on both
// backends.
func TestAPIOwnActivityKeptApart(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("hostapp")
		key := h.createKey(o, "analytics:write", "analytics:read")
		app := hdr(key.Key, "")
		h.send(app, map[string]any{"batch": []any{
			map[string]any{"event": "auth.user.register", "user_id": "bob"},
			map[string]any{"event": "auth.user.login", "user_id": "alice"},
			map[string]any{"event": "api.request", "user_id": "alice", "props": map[string]any{"route": "GET /v1/projects"}},
			map[string]any{"event": "api.request", "user_id": "alice", "props": map[string]any{"route": "POST /v1/builds"}},
		}})
		h.login(o.email) // tally.auth.login of the admin's account
		for range 5 {
			h.do("GET", "/api/analytics/events?limit=1", nil, app).want(t, http.StatusOK)
		}
		// Every key request above is tracked: the send and the five reads.
		eventually(t, "tally's own events stored", func() bool {
			return h.ownRequests(o.h()) >= 6 && len(h.allEvents(o.h(), url.Values{"source": {tally.OwnSource}})) >= 3 // + login + tenant.created
		})

		// The default list shows the host app's events only; asking by
		// source or by name shows tally's.
		for _, tt := range []struct {
			q    url.Values
			want int
		}{{url.Values{}, 4}, {url.Values{"event": {"*"}}, 4}, {url.Values{"event": {"t*"}}, 0}, {url.Values{"event": {"tally*"}}, 0},
			{url.Values{"source": {"api"}}, 4}, {url.Values{"event": {"api.*"}}, 2}} {
			q := tt.q
			evs := h.allEvents(o.h(), q)
			if len(evs) != tt.want {
				t.Errorf("list %v: %d events, want %d of the host app", q, len(evs), tt.want)
			}
			for _, e := range evs {
				if tally.IsOwnEvent(e.Event) || e.Source == tally.OwnSource {
					t.Errorf("list %v shows tally's own %+v", q, e)
				}
			}
		}
		own := h.allEvents(o.h(), url.Values{"event": {"tally.*"}})
		bySource := h.allEvents(o.h(), url.Values{"source": {tally.OwnSource}})
		if len(own) < 3 || len(own) != len(bySource) {
			t.Fatalf("tally's own events: %d by name, %d by source", len(own), len(bySource))
		}
		names := map[string]int{} // events by name, requests for tally.api.request
		for _, e := range own {
			if e.Event == tally.EventOwnAPIRequest {
				names[e.Event] += int(e.Value)
			} else {
				names[e.Event]++
			}
			if e.UserID != "" || e.Source != tally.OwnSource {
				t.Errorf("own event with a user id or another source: %+v", e)
			}
		}
		if names[tally.EventOwnLogin] < 1 || names[tally.EventOwnAPIRequest] < 6 || names[tally.EventOwnTenantCreated] != 1 {
			t.Errorf("own events by name %v", names)
		}
		if _, rows := h.export(t, o.h(), ""); len(rows) != 4 {
			t.Errorf("export: %d rows, want the host app's 4", len(rows))
		}
		if _, rows := h.export(t, o.h(), "source=tally"); len(rows) != len(own) {
			t.Errorf("export of source tally: %d rows, want %d", len(rows), len(own))
		}

		// A client cannot write into tally's namespace.
		r := h.do("POST", "/api/analytics/events", map[string]any{"event": "tally.api.request"}, app)
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("event") || !strings.Contains(r.String(), "reserved") {
			t.Errorf("own name from a client: %s", r)
		}

		check := func(when string) {
			t.Helper()
			var rep struct {
				KPIs map[string]struct {
					Value int64 `json:"value"`
				} `json:"kpis"`
			}
			h.do("GET", "/api/analytics/metrics?range=today", nil, o.h()).want(t, http.StatusOK).decode(t, &rep)
			want := map[string]int64{"signups": 1, "logins": 1, "active_users": 2, "api_requests": 2, "events": 4}
			for k, v := range want {
				if rep.KPIs[k].Value != v {
					t.Errorf("%s: KPI %s = %d, want %d (the host app's only)", when, k, rep.KPIs[k].Value, v)
				}
			}
			usage := h.usageToday(o.h(), "api_requests_daily", "events_daily")
			if usage["api_requests_daily"] != 2 || usage["events_daily"] != 4 {
				t.Errorf("%s: usage %v", when, usage)
			}
			day := time.Now().UTC().Truncate(24 * time.Hour)
			in := tally.MeterQueryInput{From: day, To: day.Add(24 * time.Hour), Loc: time.UTC}
			var m tally.MeterResult
			h.do("GET", meterQueryURL("events_daily", in), nil, o.h()).want(t, http.StatusOK).decode(t, &m)
			if len(m.Data) != 1 || m.Data[0].Value == nil || *m.Data[0].Value != 4 {
				t.Errorf("%s: built-in meter events_daily %+v, want 4", when, m.Data)
			}
		}
		check("before the rollup")
		h.do("POST", "/api/analytics/rollup", nil, o.h()).want(t, http.StatusOK)
		check("after the rollup")

		// A meter that names tally's events counts them: the sum of their
		// values is the number of requests.
		h.do("POST", "/api/analytics/meters", map[string]any{"slug": "tally_calls", "event": "tally.api.request", "aggregation": "sum", "value_property": "value"}, o.h()).
			want(t, http.StatusCreated)
		day := time.Now().UTC().Truncate(24 * time.Hour)
		var m tally.MeterResult
		h.do("GET", meterQueryURL("tally_calls", tally.MeterQueryInput{From: day, To: day.Add(24 * time.Hour), Loc: time.UTC}), nil, o.h()).
			want(t, http.StatusOK).decode(t, &m)
		if len(m.Data) != 1 || m.Data[0].Value == nil || *m.Data[0].Value < 6 {
			t.Errorf("meter on tally.api.request %+v", m.Data)
		}
	})
}
