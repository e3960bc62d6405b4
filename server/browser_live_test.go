package server_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserLivePanel: the dashboard's Live panel shows an event sent
// after the page opened, without a reload, and only the page's tenant's.
func TestBrowserLivePanel(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newUIEnv(t, false)
	token := e.apiToken(t, e.adminEmail)
	s := newBrowserSession(t, e.ts.URL)
	s.loginForm(e.adminEmail, uiPassword)
	s.do(chromedp.WaitVisible(chromedp.CSS(`#dashboard`)))
	s.do(chromedp.Navigate(e.ts.URL + "/ui/analytics?tenant=acme"))
	s.waitJS("the Live panel connected", `document.querySelector('[data-live-panel]').dataset.state === 'open'`)

	e.apiDo(t, token, "globex", "POST", "/api/analytics/events", `{"event":"deploy.finished","event_id":"other-tenant-1"}`, nil)
	e.apiDo(t, token, "acme", "POST", "/api/analytics/events", `{"event":"deploy.finished","event_id":"live-1","user_id":"u-42","value":3}`, nil)
	s.waitJS("the event sent after the page opened", `document.querySelector('[data-live] tr[data-event-id="live-1"]')`)
	row := browserEval[[]string](s, `Array.from(document.querySelectorAll('[data-live] tr[data-event-id="live-1"] td')).map((td) => td.textContent)`)
	if len(row) != 5 || row[1] != "deploy.finished" || row[2] != "u-42" || row[4] != "3" {
		t.Fatalf("Live row %q", row)
	}
	if browserEval[bool](s, `!!document.querySelector('[data-live] tr[data-event-id="other-tenant-1"]')`) {
		t.Fatal("the Live panel of acme shows globex's event")
	}
	s.wantCleanConsole("live panel")
}

// TestBrowserInsightsPage: the funnel and retention tables of the
// dashboard show the API's numbers for the same query, and draw charts.
func TestBrowserInsightsPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newUIEnv(t, false)
	token := e.apiToken(t, e.adminEmail)
	now := time.Now().UTC()
	var batch []string
	for u := range 12 {
		at := now.Add(-time.Duration(u*20+5) * time.Hour)
		user := fmt.Sprintf("user-%d", u)
		batch = append(batch, fmt.Sprintf(`{"event":"signup","user_id":%q,"event_id":"s-%d","timestamp":%q}`, user, u, at.Format(time.RFC3339)))
		if u%3 != 0 {
			batch = append(batch, fmt.Sprintf(`{"event":"activate","user_id":%q,"event_id":"a-%d","timestamp":%q}`, user, u, at.Add(time.Duration(u+1)*time.Hour).Format(time.RFC3339)))
		}
		if u%4 == 1 {
			batch = append(batch, fmt.Sprintf(`{"event":"activate","user_id":%q,"event_id":"b-%d","timestamp":%q}`, user, u, at.Add(30*time.Hour).Format(time.RFC3339)))
		}
	}
	e.apiDo(t, token, "acme", "POST", "/api/analytics/events", `{"batch":[`+strings.Join(batch, ",")+`]}`, nil)

	s := newBrowserSession(t, e.ts.URL)
	s.loginForm(e.adminEmail, uiPassword)
	s.do(chromedp.WaitVisible(chromedp.CSS(`#dashboard`)))
	s.do(chromedp.Navigate(e.ts.URL+"/ui/insights?tenant=acme"), chromedp.WaitVisible(chromedp.CSS(`[data-funnel-form]`)))

	// The page asks for the last 30 days up to its own now; the API is
	// asked for the same range, which holds every seeded event either way.
	s.do(
		chromedp.SetValue(chromedp.CSS(`#funnel-steps`), "signup, activate"),
		chromedp.SetValue(chromedp.CSS(`#funnel-window`), "24"),
		chromedp.Click(chromedp.CSS(`[data-funnel-form] button[type="submit"]`)),
	)
	s.waitJS("the funnel answer", `document.getElementById('insights').dataset.funnelDone === '1'`)
	var funnel struct {
		Steps []struct {
			Entered, Converted int64
			Rate               float64  `json:"conversion_rate"`
			Median             *float64 `json:"median_seconds_to_convert"`
		} `json:"steps"`
	}
	from, to := now.AddDate(0, 0, -30).Format(time.RFC3339), time.Now().UTC().Add(time.Minute).Format(time.RFC3339)
	e.apiDo(t, token, "acme", "POST", "/api/analytics/funnels/query",
		`{"steps":[{"event":"signup"},{"event":"activate"}],"window_seconds":86400,"from":"`+from+`","to":"`+to+`"}`, &funnel)
	rows := browserEval[[][]string](s, `Array.from(document.querySelectorAll('[data-funnel-table] tr')).map((tr) => [tr.dataset.entered, tr.dataset.converted, tr.dataset.rate, tr.dataset.median])`)
	if len(rows) != 2 || funnel.Steps[0].Entered != 12 {
		t.Fatalf("funnel rows %q, API %+v", rows, funnel)
	}
	for i, st := range funnel.Steps {
		med := ""
		if st.Median != nil {
			med = strconv.FormatFloat(*st.Median, 'f', -1, 64)
		}
		want := []string{strconv.FormatInt(st.Entered, 10), strconv.FormatInt(st.Converted, 10), strconv.FormatFloat(st.Rate, 'f', -1, 64), med}
		if !slices.Equal(rows[i], want) {
			t.Fatalf("funnel step %d: page %q, API %q", i, rows[i], want)
		}
	}
	if !browserEval[bool](s, `!!document.querySelector('[data-funnel-chart] .uplot')`) {
		t.Error("no funnel chart")
	}

	s.do(
		chromedp.SetValue(chromedp.CSS(`#ret-start`), "signup"),
		chromedp.SetValue(chromedp.CSS(`#ret-return`), "activate"),
		chromedp.SetValue(chromedp.CSS(`#ret-period`), "day"),
		chromedp.SetValue(chromedp.CSS(`#ret-days`), "14"),
		chromedp.Click(chromedp.CSS(`[data-retention-form] button[type="submit"]`)),
	)
	s.waitJS("the retention answer", `document.getElementById('insights').dataset.retentionDone === '1'`)
	var ret struct {
		Cohorts []struct {
			Start  time.Time `json:"start"`
			Size   int64     `json:"size"`
			Counts []int64   `json:"counts"`
		} `json:"cohorts"`
	}
	e.apiDo(t, token, "acme", "POST", "/api/analytics/retention/query",
		`{"start_event":"signup","return_event":"activate","period":"day","from":"`+now.AddDate(0, 0, -14).Format(time.RFC3339)+`","to":"`+to+`"}`, &ret)
	got := browserEval[[][]string](s, `Array.from(document.querySelectorAll('[data-retention-table] tr')).map((tr) => [tr.dataset.start.slice(0, 10), tr.dataset.size, tr.dataset.counts])`)
	var want [][]string
	total := int64(0)
	for _, c := range ret.Cohorts {
		counts := make([]string, len(c.Counts))
		for i, n := range c.Counts {
			counts[i] = strconv.FormatInt(n, 10)
		}
		total += c.Size
		want = append(want, []string{c.Start.Format("2006-01-02"), strconv.FormatInt(c.Size, 10), strings.Join(counts, ",")})
	}
	if total != 12 || !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("retention: page %q, API %q", got, want)
	}
	if !browserEval[bool](s, `!!document.querySelector('[data-retention-chart] .uplot')`) {
		t.Error("no retention chart")
	}
	s.wantCleanConsole("insights page")
}
