package server_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// quotaJSON is a quota status as the API shows it.
type quotaJSON struct {
	Metric    string    `json:"metric"`
	Current   int64     `json:"current"`
	Limit     int64     `json:"limit"`
	Remaining int64     `json:"remaining"`
	Exceeded  bool      `json:"exceeded"`
	Enforced  bool      `json:"enforced"`
	Period    string    `json:"period"`
	ResetsAt  time.Time `json:"resets_at"`
}

// usageSeries is the answer of GET /api/analytics/usage.
type usageSeries struct {
	Series []struct {
		Metric string `json:"metric"`
		Points []struct {
			Start time.Time `json:"start"`
			Value int64     `json:"value"`
		} `json:"points"`
	} `json:"series"`
}

func nextUTCMidnight() time.Time {
	return time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

func (h *harness) quota(headers map[string]string, metric string) quotaJSON {
	h.t.Helper()
	r := h.do("GET", "/api/analytics/quotas/"+metric, nil, headers)
	r.want(h.t, http.StatusOK)
	var q quotaJSON
	r.decode(h.t, &q)
	return q
}

// usageToday returns today's (UTC) value of each metric.
func (h *harness) usageToday(headers map[string]string, metrics ...string) map[string]int64 {
	h.t.Helper()
	today := time.Now().UTC().Format(time.DateOnly)
	r := h.do("GET", "/api/analytics/usage?metric="+strings.Join(metrics, ",")+"&from="+today+"&to="+today+"&tz=UTC", nil, headers)
	r.want(h.t, http.StatusOK)
	var u usageSeries
	r.decode(h.t, &u)
	out := map[string]int64{}
	for _, s := range u.Series {
		if len(s.Points) != 1 {
			h.t.Fatalf("one day of %s: %d points", s.Metric, len(s.Points))
		}
		out[s.Metric] = s.Points[0].Value
	}
	return out
}

func TestAPIUsageRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	key := h.createKey(o, "analytics:write")
	post := func(body any) *apiResponse {
		t.Helper()
		return h.do("POST", "/api/analytics/usage", body, hdr(key.Key, ""))
	}
	type answer struct {
		Metric  string `json:"metric"`
		Current int64  `json:"current"`
	}
	for i, tt := range []struct {
		body map[string]any
		want answer
	}{
		{map[string]any{"metric": "builds_daily", "amount": 3, "event_id": "inc-1"}, answer{"builds_daily", 3}},
		{map[string]any{"metric": "builds_daily", "amount": 3, "event_id": "inc-1"}, answer{"builds_daily", 3}}, // deduplicated
		{map[string]any{"metric": "builds_daily", "amount": 5, "event_id": "inc-1"}, answer{"builds_daily", 3}}, // the first wins
		{map[string]any{"metric": "builds_daily"}, answer{"builds_daily", 4}},
		{map[string]any{"metric": "storage_mb", "amount": 1 << 30}, answer{"storage_mb", 1 << 30}},
	} {
		r := post(tt.body)
		r.want(t, http.StatusAccepted)
		var got answer
		r.decode(t, &got)
		if got != tt.want {
			t.Errorf("increment %d: %+v, want %+v", i, got, tt.want)
		}
	}
	for _, tt := range []struct {
		body  any
		field string
	}{
		{map[string]any{"metric": "Builds"}, "metric"},
		{map[string]any{"metric": ""}, "metric"},
		{map[string]any{}, "metric"},
		{map[string]any{"metric": "a-b"}, "metric"},
		{map[string]any{"metric": strings.Repeat("m", 65)}, "metric"},
		{map[string]any{"metric": "builds_daily", "amount": 0}, "amount"},
		{map[string]any{"metric": "builds_daily", "amount": -1}, "amount"},
		{map[string]any{"metric": "builds_daily", "amount": 1.5}, "amount"},
		{map[string]any{"metric": "builds_daily", "amount": "2"}, "amount"},
		{map[string]any{"metric": "builds_daily", "event_id": strings.Repeat("e", 129)}, "event_id"},
		{map[string]any{"metric": "builds_daily", "unit": "x"}, "unit"},
	} {
		r := post(tt.body)
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%s: does not name %s", r, tt.field)
		}
	}

	// The default rules, from events.
	h.send(hdr(key.Key, ""), map[string]any{"batch": []any{
		map[string]any{"event": "builder.generate.completed"},
		map[string]any{"event": "builder.generate.completed"},
		map[string]any{"event": "files.uploaded", "value": 2048},
		map[string]any{"event": "other.thing"},
	}})
	got := h.usageToday(o.h(), "builds_daily", "file_uploads_daily", "storage_mb")
	if got["builds_daily"] != 6 || got["file_uploads_daily"] != 1 || got["storage_mb"] != 1<<30 {
		t.Errorf("usage today %v", got)
	}
	// Every key request is tracked (asynchronously) as tally's own
	// tally.api.request; neither api_requests_daily (the host app's
	// api.request events) nor events_daily counts them.
	eventually(t, "the key's requests tracked as tally.api.request", func() bool {
		return h.ownRequests(o.h()) >= 17
	})
	got = h.usageToday(o.h(), "api_requests_daily", "events_daily")
	if got["api_requests_daily"] != 0 || got["events_daily"] != 4+3 {
		t.Errorf("usage today %v, want no api_requests_daily and the 7 events the host app sent", got)
	}
	h.send(hdr(key.Key, ""), map[string]any{"event": "api.request", "props": map[string]any{"route": "GET /v1/projects"}})
	if got := h.usageToday(o.h(), "api_requests_daily")["api_requests_daily"]; got != 1 {
		t.Errorf("api_requests_daily %d after the host app's api.request, want 1", got)
	}
}

func TestAPIUsageSeries(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	now := time.Now().UTC()
	today := now.Truncate(24 * time.Hour)
	h.send(o.h(), map[string]any{"batch": []any{
		map[string]any{"event": "builder.generate.completed", "timestamp": today.Add(-48 * time.Hour).Add(time.Hour).Format(time.RFC3339)},
		map[string]any{"event": "builder.generate.completed", "timestamp": now.Add(-time.Minute).Format(time.RFC3339)},
		map[string]any{"event": "builder.generate.completed", "timestamp": now.Add(-time.Minute).Format(time.RFC3339)},
	}})
	q := url.Values{"metric": {"builds_daily"}, "from": {today.AddDate(0, 0, -6).Format(time.DateOnly)}, "to": {today.Format(time.DateOnly)}}
	r := h.do("GET", "/api/analytics/usage?"+q.Encode(), nil, o.h())
	r.want(t, http.StatusOK)
	var u usageSeries
	r.decode(t, &u)
	if len(u.Series) != 1 || u.Series[0].Metric != "builds_daily" || len(u.Series[0].Points) != 7 {
		t.Fatalf("series %s", r.Body)
	}
	for i, p := range u.Series[0].Points {
		if want := today.AddDate(0, 0, i-6); !p.Start.Equal(want) {
			t.Errorf("point %d starts %v, want %v", i, p.Start, want)
		}
		want := int64(0)
		switch i {
		case 4:
			want = 1
		case 6:
			want = 2
		}
		if p.Value != want {
			t.Errorf("point %d value %d, want %d", i, p.Value, want)
		}
	}

	// By hour: every hour of the day, zero-filled.
	q.Set("granularity", "hour")
	q.Set("from", today.Format(time.DateOnly))
	r = h.do("GET", "/api/analytics/usage?"+q.Encode(), nil, o.h())
	r.want(t, http.StatusOK)
	r.decode(t, &u)
	if len(u.Series) != 1 || len(u.Series[0].Points) != 24 {
		t.Fatalf("hourly %s", r.Body)
	}
	var sum int64
	for i, p := range u.Series[0].Points {
		if !p.Start.Equal(today.Add(time.Duration(i) * time.Hour)) {
			t.Errorf("hour %d starts %v", i, p.Start)
		}
		sum += p.Value
	}
	if sum != 2 {
		t.Errorf("hourly sum %d", sum)
	}

	// Without metric: every metric of the rules is present.
	r = h.do("GET", "/api/analytics/usage", nil, o.h())
	r.want(t, http.StatusOK)
	r.decode(t, &u)
	var names []string
	for _, s := range u.Series {
		names = append(names, s.Metric)
		if len(s.Points) < 7 {
			t.Errorf("default range of %s: %d points", s.Metric, len(s.Points))
		}
	}
	for _, m := range []string{"api_requests_daily", "builds_daily", "events_daily", "file_uploads_daily"} {
		if !slices.Contains(names, m) {
			t.Errorf("metrics %v lack %s", names, m)
		}
	}

	for _, tt := range []struct{ query, field string }{
		{"granularity=week", "granularity"},
		{"tz=Mars/Base", "tz"},
		{"metric=Bad", "metric"},
		{"from=2026-02-02&to=2026-02-01", "from"},
		{"from=x", "from"},
	} {
		r := h.do("GET", "/api/analytics/usage?"+tt.query, nil, o.h())
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%s: does not name %s", r, tt.field)
		}
	}
}

func TestAPIQuotas(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withQuotaDefaults(map[string]int64{"builds_daily": 10, "api_requests_daily": 1000}))
	o := h.newTenant("acme")
	build := map[string]string{"event": "builder.generate.completed"}

	r := h.do("GET", "/api/analytics/quotas", nil, o.h())
	r.want(t, http.StatusOK)
	var list struct {
		Quotas []quotaJSON `json:"quotas"`
	}
	r.decode(t, &list)
	midnight := nextUTCMidnight()
	want := []quotaJSON{
		{Metric: "api_requests_daily", Limit: 1000, Remaining: 1000, Period: "day", ResetsAt: midnight},
		{Metric: "builds_daily", Limit: 10, Remaining: 10, Period: "day", ResetsAt: midnight},
	}
	if len(list.Quotas) != 2 {
		t.Fatalf("quotas %s", r.Body)
	}
	for i := range want {
		if got := list.Quotas[i]; got.Metric != want[i].Metric || got.Limit != want[i].Limit || got.Current != 0 || got.Remaining != want[i].Remaining ||
			got.Exceeded || got.Enforced || got.Period != "day" || !got.ResetsAt.Equal(midnight) {
			t.Errorf("quota %d: %+v, want %+v", i, got, want[i])
		}
	}

	// Soft by default: tracking never fails, the quota reports the excess.
	for range 12 {
		h.send(o.h(), build)
	}
	q := h.quota(o.h(), "builds_daily")
	if q.Current != 12 || q.Remaining != 0 || !q.Exceeded || q.Enforced {
		t.Errorf("soft quota after 12 builds: %+v", q)
	}
	eventually(t, "quota.threshold audit entries at 80% and 100%", func() bool {
		r := h.do("GET", "/api/analytics/audit?action=quota.threshold", nil, o.h())
		return strings.Count(string(r.Body), `"threshold"`) == 2
	})
	metrics := h.metrics()
	if !regexp.MustCompile(`(?m)^sbh_quota_exceeded_total\{[^}]*metric="builds_daily"[^}]*\} 1$`).MatchString(metrics) {
		t.Errorf("sbh_quota_exceeded_total for builds_daily is not 1")
	}

	// An override, enforced.
	r = h.do("PUT", "/api/analytics/quotas/builds_daily", map[string]any{"limit": 14, "enforced": true}, o.h())
	r.want(t, http.StatusOK)
	r.decode(t, &q)
	if q.Metric != "builds_daily" || q.Limit != 14 || !q.Enforced || q.Current != 12 || q.Remaining != 2 || q.Exceeded {
		t.Errorf("override %+v", q)
	}
	if got := h.quota(o.h(), "builds_daily"); got != q {
		t.Errorf("GET after PUT %+v, want %+v", got, q)
	}
	// 3 builds, 2 fit: the third is rejected by the quota.
	res := h.send(o.h(), map[string]any{"batch": []any{build, map[string]string{"event": "not.metered"}, build, build}})
	if res.Accepted != 3 || len(res.Rejected) != 1 || res.Rejected[0].Index != 3 {
		t.Errorf("batch over the enforced quota: %+v", res)
	}
	// Every event over: 429 with Retry-After until the reset.
	for _, body := range []any{build, map[string]any{"batch": []any{build, build}}} {
		r = h.do("POST", "/api/analytics/events", body, o.h())
		wantProblem(t, r, http.StatusTooManyRequests)
		wantRetryAfterMidnight(t, r)
	}
	r = h.do("POST", "/api/analytics/usage", map[string]any{"metric": "builds_daily"}, o.h())
	wantProblem(t, r, http.StatusTooManyRequests)
	wantRetryAfterMidnight(t, r)
	h.send(o.h(), map[string]string{"event": "not.metered"}) // other events pass
	if q := h.quota(o.h(), "builds_daily"); q.Current != 14 || !q.Exceeded || q.Remaining != 0 {
		t.Errorf("enforced quota after the rejections: %+v", q)
	}

	// A quota for a metric without default; then the list has three.
	h.do("PUT", "/api/analytics/quotas/custom_daily", map[string]any{"limit": 3}, o.h()).want(t, http.StatusOK)
	r = h.do("GET", "/api/analytics/quotas", nil, o.h())
	r.decode(t, &list)
	var names []string
	for _, q := range list.Quotas {
		names = append(names, q.Metric)
	}
	if !slices.Equal(names, []string{"api_requests_daily", "builds_daily", "custom_daily"}) {
		t.Errorf("quota metrics %v", names)
	}

	wantProblem(t, h.do("GET", "/api/analytics/quotas/no_quota_here", nil, o.h()), http.StatusNotFound)
	wantProblem(t, h.do("GET", "/api/analytics/quotas/Not-A-Metric", nil, o.h()), http.StatusNotFound)
	for _, tt := range []struct {
		path  string
		body  any
		field string
	}{
		{"builds_daily", map[string]any{"limit": -1}, "limit"},
		{"builds_daily", map[string]any{"enforced": true}, "limit"},
		{"builds_daily", map[string]any{"limit": "10"}, "limit"},
		{"builds_daily", map[string]any{"limit": 10, "period": "fortnight"}, "period"},
		{"builds_daily", map[string]any{"limit": 10, "period": "billing"}, "anchor_day"},
		{"builds_daily", map[string]any{"limit": 10, "period": "billing", "anchor_day": 32}, "anchor_day"},
		{"builds_daily", map[string]any{"limit": 10, "period": "month", "anchor_day": 3}, "anchor_day"},
		{"Bad-Metric", map[string]any{"limit": 10}, "metric"},
	} {
		r := h.do("PUT", "/api/analytics/quotas/"+tt.path, tt.body, o.h())
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%s: does not name %s", r, tt.field)
		}
	}
	r = h.do("GET", "/api/analytics/audit?action=quota.set", nil, o.h())
	if strings.Count(string(r.Body), `"quota.set"`) != 2 {
		t.Errorf("quota.set audit %s", r.Body)
	}
}

// wantRetryAfterMidnight checks that Retry-After is the number of seconds
// until the next UTC midnight (±2s).
func wantRetryAfterMidnight(t testing.TB, r *apiResponse) {
	t.Helper()
	n, err := strconv.Atoi(r.Header.Get("Retry-After"))
	want := time.Until(nextUTCMidnight()).Seconds()
	if err != nil || float64(n) < want-2 || float64(n) > want+2 {
		t.Errorf("%s: Retry-After %q, want about %.0f", r, r.Header.Get("Retry-After"), want)
	}
}

func TestAPIQuotaConsume(t *testing.T) {
	t.Parallel()
	h := newHarness(t, withQuotaDefaults(map[string]int64{"gen_daily": 50}))
	o := h.newTenant("acme")
	key := h.createKey(o, "analytics:write")

	const callers = 64
	var (
		wg        sync.WaitGroup
		start     = make(chan struct{})
		responses = make([]*apiResponse, callers)
	)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			responses[i] = h.doT(t, "POST", "/api/analytics/quotas/gen_daily/consume", map[string]any{"amount": 1}, hdr(key.Key, ""))
		}()
	}
	close(start)
	wg.Wait()

	var allowed, denied int
	remaining := map[int64]bool{}
	for _, r := range responses {
		var body struct {
			Allowed *bool `json:"allowed"`
			quotaJSON
		}
		r.decode(t, &body)
		if body.Allowed == nil || body.Metric != "gen_daily" || body.Limit != 50 || body.Period != "day" {
			t.Errorf("consume answer %s", r)
			continue
		}
		policy, limit := r.Header.Get("RateLimit-Policy"), r.Header.Get("RateLimit")
		if policy != `"gen_daily";q=50;w=86400` || !regexp.MustCompile(`^"gen_daily";r=\d+;t=\d+$`).MatchString(limit) {
			t.Errorf("%s: RateLimit-Policy %q, RateLimit %q", r, policy, limit)
		}
		switch r.Status {
		case http.StatusOK:
			if !*body.Allowed {
				t.Errorf("200 with allowed false: %s", r)
			}
			allowed++
			if remaining[body.Remaining] {
				t.Errorf("two allowed consumes saw remaining %d", body.Remaining)
			}
			remaining[body.Remaining] = true
			if !strings.Contains(limit, fmt.Sprintf(";r=%d;", body.Remaining)) {
				t.Errorf("RateLimit %q does not carry remaining %d", limit, body.Remaining)
			}
		case http.StatusTooManyRequests:
			if *body.Allowed || body.Remaining != 0 || !body.Exceeded || body.Current != 50 {
				t.Errorf("429 body %s", r)
			}
			denied++
			assertProblem(t, r)
			wantRetryAfterMidnight(t, r)
			if !strings.HasPrefix(limit, `"gen_daily";r=0;`) {
				t.Errorf("429 RateLimit %q", limit)
			}
		default:
			t.Errorf("consume: %s", r)
		}
	}
	if allowed != 50 || denied != callers-50 {
		t.Errorf("%d allowed and %d denied of %d consumers with a limit of 50", allowed, denied, callers)
	}
	if q := h.quota(o.h(), "gen_daily"); q.Current != 50 || q.Remaining != 0 || !q.Exceeded {
		t.Errorf("quota after consuming %+v", q)
	}
	// Each allowed consume is a durable usage.increment event.
	if n := len(h.allEvents(o.h(), url.Values{"event": {"usage.increment"}, "limit": {"1000"}})); n != 50 {
		t.Errorf("%d usage.increment events, want 50", n)
	}

	wantProblem(t, h.do("POST", "/api/analytics/quotas/no_quota/consume", nil, hdr(key.Key, "")), http.StatusNotFound)
	r := h.do("POST", "/api/analytics/quotas/gen_daily/consume", map[string]any{"amount": 0}, hdr(key.Key, ""))
	if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("amount") {
		t.Errorf("%s: does not name amount", r)
	}
	// A consume larger than what is left is denied whole.
	h.do("PUT", "/api/analytics/quotas/gen_daily", map[string]any{"limit": 55}, o.h()).want(t, http.StatusOK)
	r = h.do("POST", "/api/analytics/quotas/gen_daily/consume", map[string]any{"amount": 6}, hdr(key.Key, ""))
	wantProblem(t, r, http.StatusTooManyRequests)
	r = h.do("POST", "/api/analytics/quotas/gen_daily/consume", map[string]any{"amount": 5}, hdr(key.Key, ""))
	r.want(t, http.StatusOK)
	r = h.do("POST", "/api/analytics/quotas/gen_daily/consume", nil, hdr(key.Key, ""))
	wantProblem(t, r, http.StatusTooManyRequests)
}

func TestAPIRollupAndMetrics(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	now := time.Now().UTC()
	yesterday := now.Truncate(24 * time.Hour).Add(-12 * time.Hour)
	h.send(o.h(), map[string]any{"batch": []any{
		map[string]any{"event": "builder.generate.completed", "user_id": "u1", "timestamp": yesterday.Format(time.RFC3339)},
		map[string]any{"event": "builder.generate.completed", "user_id": "u2"},
		map[string]any{"event": "builder.generate.completed", "user_id": "u2"},
		map[string]any{"event": "files.uploaded", "user_id": "u3"},
	}})

	type rollupResult struct {
		Days       *int   `json:"days"`
		Rows       *int   `json:"rows"`
		DurationMS *int64 `json:"duration_ms"`
	}
	run := func(body any) rollupResult {
		t.Helper()
		r := h.do("POST", "/api/analytics/rollup", body, o.h())
		r.want(t, http.StatusOK)
		var res rollupResult
		r.decode(t, &res)
		if res.Days == nil || res.Rows == nil || res.DurationMS == nil || *res.DurationMS < 0 {
			t.Fatalf("rollup answer %s", r.Body)
		}
		return res
	}
	kpis := func() []byte {
		t.Helper()
		r := h.do("GET", "/api/analytics/metrics?range=7d", nil, o.h())
		r.want(t, http.StatusOK)
		return r.Body
	}
	before := h.usageToday(o.h(), "builds_daily")
	first := run(nil)
	if *first.Days < 1 || *first.Rows < 1 {
		t.Errorf("first rollup %+v", first)
	}
	kpiAfterFirst := kpis()
	for range 2 {
		if again := run(map[string]any{}); *again.Rows != *first.Rows || *again.Days != *first.Days {
			t.Errorf("rollup is not idempotent: %d rows then %d", *first.Rows, *again.Rows)
		}
	}
	if after := h.usageToday(o.h(), "builds_daily"); after["builds_daily"] != before["builds_daily"] || after["builds_daily"] != 2 {
		t.Errorf("usage before %v, after rollups %v", before, after)
	}
	// Only "to" (now) may differ.
	stripTo := func(b []byte) string { return regexp.MustCompile(`"to":"[^"]*"`).ReplaceAllString(string(b), "") }
	if k := kpis(); stripTo(k) != stripTo(kpiAfterFirst) {
		t.Errorf("KPIs changed by a repeated rollup:\n%s\n%s", kpiAfterFirst, k)
	}
	days := now.Truncate(24 * time.Hour)
	res := run(map[string]string{"from": days.AddDate(0, 0, -2).Format(time.DateOnly), "to": days.Format(time.DateOnly)})
	if *res.Days != 3 {
		t.Errorf("rollup of three days: %+v", res)
	}
	for _, tt := range []struct {
		body  any
		field string
	}{
		{map[string]string{"from": "yesterday"}, "from"},
		{map[string]string{"to": "2026-02-30"}, "to"},
		{map[string]string{"from": "2026-02-02", "to": "2026-02-01"}, "from"},
		{map[string]string{"day": "2026-02-02"}, "day"},
	} {
		r := h.do("POST", "/api/analytics/rollup", tt.body, o.h())
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%s: does not name %s", r, tt.field)
		}
	}

	// The KPI report.
	var rep struct {
		Range      string                      `json:"range"`
		From       time.Time                   `json:"from"`
		To         time.Time                   `json:"to"`
		KPIs       map[string]map[string]any   `json:"kpis"`
		Timeseries map[string][]map[string]any `json:"timeseries"`
	}
	for _, rng := range []string{"", "today", "7d", "30d", "90d"} {
		r := h.do("GET", "/api/analytics/metrics?range="+rng, nil, o.h())
		r.want(t, http.StatusOK)
		r.decode(t, &rep)
		wantRange := rng
		if rng == "" {
			wantRange = "7d"
		}
		if rep.Range != wantRange || !rep.From.Before(rep.To) || rep.To.After(time.Now().Add(time.Minute)) {
			t.Errorf("range %q: %s", rng, r.Body)
		}
		for _, name := range []string{"signups", "logins", "builds", "api_requests", "file_uploads", "active_users", "events"} {
			k, ok := rep.KPIs[name]
			if !ok {
				t.Errorf("range %q lacks KPI %s", rng, name)
				continue
			}
			for _, f := range []string{"value", "previous", "change_pct"} {
				if _, ok := k[f]; !ok {
					t.Errorf("KPI %s lacks %s: %v", name, f, k)
				}
			}
			if ts := rep.Timeseries[name]; len(ts) == 0 {
				t.Errorf("range %q: no time series for %s", rng, name)
			}
		}
		if rng == "7d" {
			if b := rep.KPIs["builds"]; b["value"] != float64(3) || b["previous"] != float64(0) || b["change_pct"] != nil {
				t.Errorf("builds KPI %v", b)
			}
			if u := rep.KPIs["active_users"]; u["value"].(float64) < 3 {
				t.Errorf("active_users KPI %v", u)
			}
			if f := rep.KPIs["file_uploads"]; f["value"] != float64(1) {
				t.Errorf("file_uploads KPI %v", f)
			}
			if n := len(rep.Timeseries["builds"]); n != 7 {
				t.Errorf("7d series of %d points", n)
			}
		}
	}
	for _, q := range []string{"range=1y", "tz=Nowhere/City"} {
		wantProblem(t, h.do("GET", "/api/analytics/metrics?"+q, nil, o.h()), http.StatusBadRequest)
	}
}

func TestAPIAuditPagination(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	for range 7 {
		h.createKey(o, "analytics:read")
	}
	type entry struct {
		ID     int64          `json:"id"`
		At     time.Time      `json:"at"`
		Actor  string         `json:"actor"`
		Action string         `json:"action"`
		Target string         `json:"target"`
		Meta   map[string]any `json:"meta"`
	}
	var all []entry
	q := url.Values{"action": {"key.created"}, "limit": {"3"}}
	for page := 0; ; page++ {
		r := h.do("GET", "/api/analytics/audit?"+q.Encode(), nil, o.h())
		r.want(t, http.StatusOK)
		var p struct {
			Entries    []entry `json:"entries"`
			NextCursor *string `json:"next_cursor"`
		}
		r.decode(t, &p)
		if want := []int{3, 3, 1}[min(page, 2)]; len(p.Entries) != want {
			t.Errorf("page %d: %d entries, want %d", page, len(p.Entries), want)
		}
		// Between pages, new entries arrive; they are newer and not seen.
		h.createKey(o, "analytics:read")
		all = append(all, p.Entries...)
		if p.NextCursor == nil {
			break
		}
		if page > 5 {
			t.Fatal("audit pagination does not end")
		}
		q.Set("cursor", *p.NextCursor)
	}
	if len(all) != 7 {
		t.Fatalf("%d entries over all pages, want 7", len(all))
	}
	seen := map[int64]bool{}
	for i, e := range all {
		if seen[e.ID] {
			t.Errorf("entry %d repeated", e.ID)
		}
		seen[e.ID] = true
		if e.Action != "key.created" || !strings.HasPrefix(e.Target, "tk_") || !strings.Contains(e.Actor, o.email) || e.Meta["scopes"] == nil {
			t.Errorf("entry %+v", e)
		}
		// Ties in time follow the store's order, which the opaque ids do
		// not show.
		if i > 0 && e.At.After(all[i-1].At) {
			t.Errorf("entries not newest first at %d", i)
		}
	}
	for _, bad := range []string{"limit=0", "limit=1001", "cursor=zz", "from=2026-02-02&to=2026-02-01", "from=x"} {
		wantProblem(t, h.do("GET", "/api/analytics/audit?"+bad, nil, o.h()), http.StatusBadRequest)
	}
	// A time range selects entries.
	r := h.do("GET", "/api/analytics/audit?to=2000-01-01", nil, o.h())
	r.want(t, http.StatusOK)
	if !strings.Contains(string(r.Body), `"entries":[]`) {
		t.Errorf("audit before 2000: %s", r.Body)
	}
}
