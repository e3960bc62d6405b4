package server_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/tallyhq/tally/internal/testenv"
)

// chromiumPath is Debian's Chromium, which CI installs.
const chromiumPath = "/usr/bin/chromium"

// artifactsDir receives the screenshots (git-ignored).
const artifactsDir = "testdata/artifacts"

// reportViolations runs before any script of every page: it turns CSP
// violations into console errors, which the test fails on.
const reportViolations = `document.addEventListener('securitypolicyviolation', function (e) {
  console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber);
});`

// browserSession drives one Chromium tab and collects what the page writes
// to its console.
type browserSession struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

func newBrowserSession(t *testing.T, base string) *browserSession {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Missing(t, "Chromium at "+chromiumPath, "not installed", "apt-get install -y chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.WindowSize(1280, 900),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	s := &browserSession{t: t, ctx: ctx, base: base}
	// Start the browser and the tab, then collect the console.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: reportViolations})
		return err
	})); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			s.mu.Lock()
			s.messages = append(s.messages, m)
			s.mu.Unlock()
		}
	}()
	return s
}

// do runs actions, failing the test on an error.
func (s *browserSession) do(actions ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		s.t.Fatal(err)
	}
}

// browserEval evaluates a JavaScript expression in the page into T.
func browserEval[T any](s *browserSession, expr string) T {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		s.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS waits until the expression is truthy. Errors while a navigation
// replaces the page are retried. (chromedp.Poll compiles the predicate with
// new Function in the page, which the CSP rightly blocks.)
func (s *browserSession) waitJS(what, expr string) {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			s.screenshot("failure")
			s.t.Fatalf("timed out waiting for %s (%s): last error %v", what, expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *browserSession) location() string {
	s.t.Helper()
	return browserEval[string](s, "location.pathname")
}

// guideShots are the screenshots docs/GUIDE.md shows: with
// TALLY_SCREENSHOTS set to a directory (make screenshots), they are also
// written there.
var guideShots = map[string]bool{"analytics-desktop": true, "analytics-phone-events": true, "login-error-phone": true, "forbidden-desktop": true}

// screenshot saves a full-page PNG under artifactsDir.
func (s *browserSession) screenshot(name string) {
	s.t.Helper()
	browserEval[bool](s, `(window.scrollTo(0, 0), true)`) // the sticky header belongs at the top
	s.saveShot(name, chromedp.FullScreenshot(100))
}

// viewportShot saves what the window shows once selector is scrolled to
// the top, under artifactsDir.
func (s *browserSession) viewportShot(name, selector string) {
	s.t.Helper()
	browserEval[bool](s, `(document.querySelector('`+selector+`').scrollIntoView(), window.scrollBy(0, -64), true)`)
	s.saveShot(name, chromedp.CaptureScreenshot())
}

func (s *browserSession) saveShot(name string, shot chromedp.Action[[]byte]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		s.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	dirs := []string{artifactsDir}
	if d := os.Getenv("TALLY_SCREENSHOTS"); d != "" && guideShots[name] {
		dirs = append(dirs, d)
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			s.t.Fatal(err)
		}
		path := filepath.Join(dir, name+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			s.t.Fatal(err)
		}
		s.t.Logf("screenshot: %s", path)
	}
}

// viewport sets the window size; phone also emulates a mobile device.
func (s *browserSession) viewport(w, h int64, phone bool) {
	s.t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if phone {
		opts = []chromedp.EmulateViewportOption{chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch}
	}
	s.do(chromedp.EmulateViewport(w, h, opts...))
}

// drainConsole returns the console messages so far and forgets them. It
// waits a moment for messages still on their way.
func (s *browserSession) drainConsole() []chromedp.ConsoleMessage {
	time.Sleep(200 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.messages
	s.messages = nil
	return out
}

// wantCleanConsole fails on console errors, exceptions and CSP violations
// since the last call. allowed skips the browser's own network errors for
// documents answered with an intended error status (401, 403).
func (s *browserSession) wantCleanConsole(phase string, allowed ...string) {
	s.t.Helper()
	for _, m := range s.drainConsole() {
		if m.Type != chromedp.ConsoleError && m.Type != chromedp.ConsoleException && !strings.Contains(m.Text, "Content Security Policy") {
			continue
		}
		if m.Source == "network" && slices.Contains(allowed, m.URL) {
			continue
		}
		s.t.Errorf("%s: browser console %s (source %q, %s:%d)", phase, m, m.Source, m.URL, m.Line)
	}
}

// loginForm signs in through the login page's form.
func (s *browserSession) loginForm(email, password string) {
	s.t.Helper()
	s.do(
		chromedp.Navigate(s.base+"/ui/login"),
		chromedp.WaitVisible(chromedp.CSS(`#email`)),
		chromedp.SendKeys(chromedp.CSS(`#email`), email),
		chromedp.SendKeys(chromedp.CSS(`#password`), password),
		chromedp.Click(chromedp.CSS(`form[action="/ui/login"] button[type="submit"]`)),
	)
}

type uiKPIReport struct {
	Range string `json:"range"`
	KPIs  map[string]struct {
		Value    int64 `json:"value"`
		Previous int64 `json:"previous"`
	} `json:"kpis"`
}

type uiEventPage struct {
	Events []struct {
		ID    int64  `json:"id"`
		Event string `json:"event"`
	} `json:"events"`
	NextCursor *string `json:"next_cursor"`
}

func (p uiEventPage) ids() []int64 {
	out := make([]int64, len(p.Events))
	for i, e := range p.Events {
		out[i] = e.ID
	}
	return out
}

// pageKPIs reads the numbers the cards show: value and previous.
const pageKPIs = `Object.fromEntries(Array.from(document.querySelectorAll('[data-kpi]')).map(c => [c.dataset.kpi,
  [c.querySelector('[data-value]').textContent, c.querySelector('[data-previous]').textContent].map(t => t.replace(/\D/g, ''))]))`

// pageRowIDs reads the event ids of the table's rows, top to bottom.
const pageRowIDs = `Array.from(document.querySelectorAll('[data-events] tr[data-id]')).map(r => Number(r.dataset.id))`

// coloredPixels counts the pixels of a chart's canvas that have a hue (the
// series), as opposed to the greys of axes and grid or blank.
const coloredPixels = `(sel => {
  const c = document.querySelector(sel + ' canvas');
  if (!c || !c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0 && Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 40) n++;
  }
  return n;
})`

// lowContrast lists the visible texts of the page whose colour has a
// contrast ratio under 4.5:1 (3:1 for large text) with their background,
// per WCAG 2. Backgrounds are the nearest ancestor's background colour
// (translucent ones blended over white); disabled controls are exempt.
const lowContrast = `(() => {
  const rgb = s => (s.match(/[\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const over = (top, [r, g, b]) => { const a = top.length > 3 ? top[3] : 1; return [0, 1, 2].map(i => top[i] * a + [r, g, b][i] * (1 - a)); };
  const background = el => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length > 3 && c[3] === 0) continue;
      layers.push(c);
      if (c.length === 3 || c[3] === 1) break;
    }
    return layers.reverse().reduce((acc, c) => over(c, acc), [255, 255, 255]);
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (!Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    if (el.closest('.visually-hidden, [hidden], option, :disabled') || !el.getClientRects().length) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || Number(st.opacity) === 0) continue;
    const bg = background(el);
    const fg = over(rgb(st.color), bg);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    if (ratio < need) bad.push(el.tagName.toLowerCase() + '.' + el.className + ' "' + el.textContent.trim().slice(0, 30) + '" ' + ratio.toFixed(2));
  }
  return bad;
})()`

// TestBrowserDashboard drives the dashboard in Chromium against a real
// server seeded with a month of demo events.
func TestBrowserDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newUIEnv(t, true)
	token := e.apiToken(t, e.adminEmail)
	e.seedQuotas(t, token)
	s := newBrowserSession(t, e.ts.URL)
	base := e.ts.URL

	// Anonymous: the dashboard sends to the login page.
	s.do(chromedp.Navigate(base + "/ui/analytics"))
	s.do(chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/login"]`)))
	if loc := s.location(); loc != "/ui/login" {
		t.Fatalf("anonymous visit landed on %s, want /ui/login", loc)
	}
	if bad := browserEval[[]string](s, lowContrast); len(bad) > 0 {
		t.Errorf("login page: text with too little contrast:\n%s", strings.Join(bad, "\n"))
	}
	s.wantCleanConsole("login page")

	// A wrong password: the form again, with the error inline.
	s.viewport(390, 844, true)
	s.loginForm(e.adminEmail, "wrong password")
	s.do(chromedp.WaitVisible(chromedp.CSS(`#login-error`)))
	if msg := browserEval[string](s, `document.getElementById('login-error').textContent`); msg != "Invalid email or password." {
		t.Errorf("login error %q", msg)
	}
	s.screenshot("login-error-phone")
	s.wantCleanConsole("failed login", base+"/ui/login")
	s.viewport(1280, 900, false)

	// Log in through the form.
	s.loginForm(e.adminEmail, uiPassword)
	s.do(chromedp.WaitVisible(chromedp.CSS(`#dashboard`)))
	if loc := s.location(); loc != "/ui/analytics" {
		t.Fatalf("after login at %s, want /ui/analytics", loc)
	}
	s.waitJS("KPI cards", `document.querySelector('[data-kpis]').getAttribute('aria-busy') === 'false'`)

	// KPI cards equal the JSON API, for several ranges.
	for _, rng := range []string{"7d", "30d", "today"} {
		if rng != "7d" {
			s.do(chromedp.Click(chromedp.CSS(`button[data-range="` + rng + `"]`)))
		}
		e.wantPageKPIs(t, s, token, rng)
		if got := browserEval[string](s, `new URL(location.href).searchParams.get('range') || '7d'`); got != rng {
			t.Errorf("URL range %q after picking %s", got, rng)
		}
		if n := browserEval[int](s, coloredPixels+`('[data-chart="kpi"]')`); n < 50 {
			t.Errorf("range %s: the KPI chart has %d coloured pixels: not drawn", rng, n)
		}
		s.waitJS("usage chart", coloredPixels+`('[data-chart="usage"]') > 50`)
		// The events table covers the selected range: today, only today's
		// events (in the tenant's zone), as the API lists them from the
		// report's start.
		if rng == "today" {
			var rep struct {
				From string `json:"from"`
			}
			e.apiGet(t, token, "acme", "/api/analytics/metrics?range=today&tz=America%2FNew_York", &rep)
			var api uiEventPage
			e.apiGet(t, token, "acme", "/api/analytics/events?limit=25&from="+url.QueryEscape(rep.From), &api)
			s.waitJS("today's events", `(() => { const ts = Array.from(document.querySelectorAll('[data-events] time'));
				return ts.length > 0 && ts.length <= `+strconv.Itoa(len(api.Events))+` && ts.every(t => new Date(t.dateTime) >= new Date('`+rep.From+`')); })()`)
			if label := browserEval[string](s, `document.querySelector('[data-kpi="events"] [data-previous-label]').textContent`); !strings.HasPrefix(label, "yesterday to ") {
				t.Errorf("today's card compares with %q, want yesterday up to the same time", label)
			}
			if scope := browserEval[string](s, `document.querySelector('[data-events-scope]').textContent`); !strings.Contains(scope, "Today") {
				t.Errorf("events scope %q does not name the range", scope)
			}
		}
	}
	s.do(chromedp.Click(chromedp.CSS(`button[data-range="7d"]`)))
	e.wantPageKPIs(t, s, token, "7d")
	s.waitJS("usage chart", coloredPixels+`('[data-chart="usage"]') > 50`)

	// The hover read-out of the chart shows the point's value.
	box, err := chromedp.Run(s.ctx, chromedp.Dimensions(chromedp.CSS(`[data-chart="kpi"] .u-over`)))
	if err != nil {
		t.Fatal(err)
	}
	q := box.Content
	s.do(chromedp.MouseEvent("mouseMoved", (q[0]+q[2])/2, (q[1]+q[5])/2))
	s.waitJS("hover read-out", `/\d/.test(document.querySelector('[data-chart="kpi"] .u-legend .u-series:nth-child(2) .u-value').textContent)`)

	// Quota bars, coloured at 80 % and 100 %.
	s.waitJS("quota bars", `document.querySelectorAll('[data-quotas] .quota').length === 3`)
	for metric, level := range map[string]string{"api_requests_daily": "ok", "builds_daily": "warn", "file_uploads_daily": "over"} {
		cls := browserEval[string](s, `document.querySelector('[data-quotas] [data-metric="`+metric+`"]').className`)
		if !strings.Contains(cls, level) {
			t.Errorf("quota %s has class %q, want %s", metric, cls, level)
		}
	}
	if note := browserEval[string](s, `document.querySelector('[data-quotas] [data-metric="builds_daily"] .quota-note').textContent`); !strings.Contains(note, "per day") {
		t.Errorf("builds_daily quota note %q does not name its period", note)
	}

	// The events table shows the API's first page, newest first. (The
	// test's own logins are tracked asynchronously: reload until the page
	// and the API were read after them.)
	s.waitJS("events", pageRowIDs+`.length === 25`)
	for deadline := time.Now().Add(15 * time.Second); ; {
		var first uiEventPage
		e.apiGet(t, token, "acme", "/api/analytics/events?limit=25", &first)
		got := browserEval[[]int64](s, pageRowIDs)
		if slices.Equal(got, first.ids()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events table rows %v, API %v", got, first.ids())
		}
		s.do(chromedp.Click(chromedp.CSS(`form[data-filters] button[type="submit"]`)))
		time.Sleep(300 * time.Millisecond)
	}

	if bad := browserEval[[]string](s, lowContrast); len(bad) > 0 {
		t.Errorf("dashboard: text with too little contrast:\n%s", strings.Join(bad, "\n"))
	}

	// Screenshots of the whole dashboard, desktop then phone.
	s.do(chromedp.Click(chromedp.CSS(`[data-events] details summary`)))
	s.screenshot("analytics-desktop")
	s.viewport(390, 844, true)
	s.waitJS("charts resized", `document.querySelector('[data-chart="kpi"] .uplot').offsetWidth <= 390`)
	if w := browserEval[int](s, `document.documentElement.scrollWidth`); w > 390 {
		t.Errorf("phone layout is %d px wide: it scrolls sideways", w)
	}
	// The events table stacks: nothing in it needs sideways scrolling, and
	// each field carries its label.
	if w := browserEval[int](s, `document.querySelector('.table-wrap').scrollWidth - document.querySelector('.table-wrap').clientWidth`); w > 0 {
		t.Errorf("the events table needs %d px of sideways scrolling on a phone", w)
	}
	if n := browserEval[int](s, `Array.from(document.querySelectorAll('[data-events] tr[data-id] td')).filter(td => {
		const r = td.getBoundingClientRect(); return r.right > window.innerWidth + 0.5 || !td.dataset.label ||
			getComputedStyle(td, '::before').content.indexOf(td.dataset.label) < 0; }).length`); n > 0 {
		t.Errorf("%d event cells overflow the phone screen or show no label", n)
	}
	s.screenshot("analytics-phone")
	s.viewportShot("analytics-phone-events", "#events-heading")
	s.viewport(1280, 900, false)

	// The time-zone picker reloads the dashboard in the picked zone, and
	// the tenant's zone stays one pick away.
	browserEval[bool](s, `(() => { const z = document.getElementById('tz-select');
		z.value = 'Asia/Tokyo'; z.dispatchEvent(new Event('change')); return true; })()`)
	s.waitJS("dashboard in Tokyo time", `document.getElementById('dashboard') && document.getElementById('dashboard').dataset.tz === 'Asia/Tokyo'`)
	s.waitJS("KPI cards in Tokyo time", `document.querySelector('[data-kpis]').getAttribute('aria-busy') === 'false'`)
	if label := browserEval[string](s, `document.querySelector('[data-tz-label]').textContent`); label != "Asia/Tokyo" {
		t.Errorf("zone label %q after picking Asia/Tokyo", label)
	}
	if n := browserEval[int](s, `document.querySelectorAll('#tz-select option[value="America/New_York"]').length`); n != 1 {
		t.Errorf("the tenant's zone is offered %d times", n)
	}
	s.do(chromedp.Navigate(base + "/ui/analytics"))
	s.waitJS("dashboard in the tenant's zone", `document.getElementById('dashboard') && document.getElementById('dashboard').dataset.tz === 'America/New_York'`)
	s.waitJS("KPI cards", `document.querySelector('[data-kpis]').getAttribute('aria-busy') === 'false'`)
	s.waitJS("events", pageRowIDs+`.length === 25`)

	// Filter by an event prefix and a date range in the tenant's zone.
	today := time.Now().In(uiZone(t, "America/New_York"))
	from := today.AddDate(0, 0, -3).Format(time.DateOnly)
	s.do(
		chromedp.SendKeys(chromedp.CSS(`#f-event`), "auth.*"),
		chromedp.SetValue(chromedp.CSS(`#f-from`), from),
		chromedp.SetValue(chromedp.CSS(`#f-to`), today.Format(time.DateOnly)),
		chromedp.Click(chromedp.CSS(`form[data-filters] button[type="submit"]`)),
	)
	s.waitJS("filtered export link", `document.querySelector('[data-export]').dataset.href.includes('event=auth.*')`)
	href := browserEval[string](s, `document.querySelector('[data-export]').dataset.href`)
	u, err := url.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	filters := u.Query()
	if filters.Get("from") == "" || filters.Get("to") == "" {
		t.Fatalf("the date filters are missing from %s", href)
	}
	ny := uiZone(t, "America/New_York")
	wantFrom, _ := time.ParseInLocation(time.DateOnly, from, ny)
	if got, err := time.Parse(time.RFC3339Nano, filters.Get("from")); err != nil || !got.Equal(wantFrom) {
		t.Errorf("from %q is not midnight in New York on %s (%s)", filters.Get("from"), from, wantFrom.UTC().Format(time.RFC3339))
	}
	pageQuery := func(cursor string) string {
		q := url.Values{}
		for k, v := range filters {
			q[k] = v
		}
		q.Set("limit", "25")
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		return "/api/analytics/events?" + q.Encode()
	}
	var p1, p2 uiEventPage
	e.apiGet(t, token, "acme", pageQuery(""), &p1)
	if len(p1.Events) == 0 || p1.NextCursor == nil {
		t.Fatalf("the seed has too few auth.* events to page: %+v", p1)
	}
	for _, ev := range p1.Events {
		if !strings.HasPrefix(ev.Event, "auth.") {
			t.Fatalf("API event %q under auth.*", ev.Event)
		}
	}
	e.apiGet(t, token, "acme", pageQuery(*p1.NextCursor), &p2)
	wantRows := func(what string, want []int64) {
		t.Helper()
		ids, _ := json.Marshal(want)
		s.waitJS(what, `JSON.stringify(`+pageRowIDs+`) === '`+string(ids)+`'`)
	}
	wantRows("page 1 of auth.*", p1.ids())
	if got := browserEval[[]string](s, `Array.from(document.querySelectorAll('[data-events] tr[data-id] code')).map(c => c.textContent)`); slices.ContainsFunc(got, func(n string) bool { return !strings.HasPrefix(n, "auth.") }) {
		t.Errorf("filtered table shows %v", got)
	}
	s.do(chromedp.Click(chromedp.CSS(`[data-next]`)))
	wantRows("page 2 of auth.*", p2.ids())
	if got := browserEval[string](s, `document.querySelector('[data-page]').textContent`); got != "Page 2" {
		t.Errorf("pager says %q", got)
	}
	s.do(chromedp.Click(chromedp.CSS(`[data-prev]`)))
	wantRows("page 1 again", p1.ids())
	if browserEval[bool](s, `document.querySelector('[data-prev]').disabled`) == false {
		t.Error("Previous is enabled on the first page")
	}

	// Export downloads the CSV of the filtered rows.
	dir := t.TempDir()
	e.wantExport(t, s, token, dir, filters)

	// A filter that matches nothing shows the empty state.
	s.do(
		chromedp.SetValue(chromedp.CSS(`#f-event`), "no.such.event"),
		chromedp.Click(chromedp.CSS(`form[data-filters] button[type="submit"]`)),
	)
	s.waitJS("empty state", `document.querySelector('[data-events] tr.empty') && /No events match/.test(document.querySelector('[data-events] tr.empty').textContent)`)
	// A malformed filter is caught in the form, not sent.
	s.do(
		chromedp.SetValue(chromedp.CSS(`#f-event`), "auth.*.bad"),
		chromedp.Click(chromedp.CSS(`form[data-filters] button[type="submit"]`)),
	)
	s.waitJS("inline filter error", `!document.querySelector('[data-filter-error]').hidden`)
	s.wantCleanConsole("dashboard")

	// The tenant switcher opens the other tenant.
	browserEval[bool](s, `(() => { const s = document.getElementById('tenant-select'); s.value = 'globex'; s.dispatchEvent(new Event('change')); return true })()`)
	s.waitJS("globex dashboard", `document.getElementById('dashboard') && document.getElementById('dashboard').dataset.tenant === 'globex'`)
	s.waitJS("globex KPI cards", `document.querySelector('[data-kpis]').getAttribute('aria-busy') === 'false'`)
	s.waitJS("globex events", `document.querySelector('[data-events]').getAttribute('aria-busy') === 'false'`)
	var globex uiEventPage
	e.apiGet(t, token, "globex", "/api/analytics/events?limit=25", &globex)
	if got := browserEval[[]int64](s, pageRowIDs); !slices.Equal(got, globex.ids()) {
		t.Errorf("globex rows %v, API %v", got, globex.ids())
	}
	s.wantCleanConsole("second tenant")

	// Log out with the form; then a member gets the 403 page.
	s.do(chromedp.Click(chromedp.CSS(`form.logout button`)))
	s.do(chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/login"]`)))
	s.loginForm(e.memberEmail, uiPassword)
	s.waitJS("the member's landing page", `location.pathname === '/ui/analytics' && document.readyState === 'complete'`)
	if h := browserEval[string](s, `document.querySelector('h1').textContent`); !strings.Contains(h, "don’t have access") {
		t.Errorf("member sees %q, want the 403 page", h)
	}
	if browserEval[bool](s, `!!document.getElementById('dashboard')`) {
		t.Error("the member sees the dashboard")
	}
	if bad := browserEval[[]string](s, lowContrast); len(bad) > 0 {
		t.Errorf("403 page: text with too little contrast:\n%s", strings.Join(bad, "\n"))
	}
	s.screenshot("forbidden-desktop")
	s.wantCleanConsole("403 page", base+"/ui/analytics")
}

// wantPageKPIs waits until the cards show the API's KPIs for rng. The
// page and the API are read at slightly different moments, and the logins
// of the test itself are tracked asynchronously: on a difference the page
// reloads the range, until they agree.
func (e *uiEnv) wantPageKPIs(t *testing.T, s *browserSession, token, rng string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s.waitJS("KPIs of "+rng, `document.querySelector('button[data-range="`+rng+`"]').getAttribute('aria-pressed') === 'true' && document.querySelector('[data-kpis]').getAttribute('aria-busy') === 'false'`)
		var rep uiKPIReport
		e.apiGet(t, token, "acme", "/api/analytics/metrics?range="+rng, &rep)
		shown := browserEval[map[string][2]string](s, pageKPIs)
		var diffs []string
		for _, name := range []string{"signups", "logins", "builds", "api_requests", "file_uploads", "active_users", "events"} {
			k, ok := rep.KPIs[name]
			if !ok {
				t.Fatalf("the API has no KPI %s", name)
			}
			want := [2]string{strconv.FormatInt(k.Value, 10), strconv.FormatInt(k.Previous, 10)}
			if shown[name] != want {
				diffs = append(diffs, fmt.Sprintf("%s: card %v, API %v", name, shown[name], want))
			}
		}
		if len(diffs) == 0 {
			if rep.KPIs["events"].Value == 0 && rng != "today" {
				t.Errorf("range %s: no events in the seeded tenant", rng)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("range %s: KPI cards differ from the API:\n%s", rng, strings.Join(diffs, "\n"))
		}
		time.Sleep(300 * time.Millisecond)
		s.do(chromedp.Click(chromedp.CSS(`button[data-range="` + rng + `"]`)))
	}
}

// wantExport clicks Export and compares the downloaded CSV with the API's
// events for the same filters.
func (e *uiEnv) wantExport(t *testing.T, s *browserSession, token, dir string, filters url.Values) {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir, EventsEnabled: new(true),
	}); err != nil {
		t.Fatal(err)
	}
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	s.do(chromedp.Click(chromedp.CSS(`[data-export]`)))
	var path string
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("waiting for the download: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was canceled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			path = ev.FilePath
			break
		}
	}
	if path == "" {
		path = filepath.Join(dir, "events-acme.csv")
	}
	if filepath.Base(path) != "events-acme.csv" {
		t.Errorf("downloaded %s, want events-acme.csv", filepath.Base(path))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatalf("export is not CSV: %v", err)
	}
	if len(rows) < 2 || strings.Join(rows[0], ",") != "id,timestamp,event,user_id,source,value,props" {
		t.Fatalf("export header/rows: %q", rows[:min(len(rows), 2)])
	}
	var got []int64
	for _, r := range rows[1:] {
		if !strings.HasPrefix(r[2], "auth.") {
			t.Errorf("export row of event %q under auth.*", r[2])
		}
		id, err := strconv.ParseInt(r[0], 10, 64)
		if err != nil {
			t.Fatalf("export id %q", r[0])
		}
		got = append(got, id)
	}
	q := url.Values{}
	for k, v := range filters {
		q[k] = v
	}
	q.Set("limit", "1000")
	var want uiEventPage
	e.apiGet(t, token, "acme", "/api/analytics/events?"+q.Encode(), &want)
	ids := want.ids()
	slices.Reverse(ids) // the export is oldest first
	// Events tracked after the download (none expected) would only extend the list.
	if len(ids) < len(got) || !slices.Equal(ids[:len(got)], got) {
		t.Errorf("export has %d rows %v…, the API %d rows %v…", len(got), got[:min(5, len(got))], len(ids), ids[:min(5, len(ids))])
	}
	if len(got) < 25 {
		t.Errorf("export has only %d rows", len(got))
	}
}

// seedQuotas gives acme three quotas: one well within its limit, one at
// 80-99 % and one over, so that the bars show each colour.
func (e *uiEnv) seedQuotas(t *testing.T, token string) {
	t.Helper()
	current := func(metric string) int64 {
		var qs struct {
			Quotas []struct {
				Metric  string `json:"metric"`
				Current int64  `json:"current"`
			} `json:"quotas"`
		}
		e.apiGet(t, token, "acme", "/api/analytics/quotas", &qs)
		for _, q := range qs.Quotas {
			if q.Metric == metric {
				return q.Current
			}
		}
		return 0
	}
	put := func(metric string, limit int64) {
		e.apiDo(t, token, "acme", "PUT", "/api/analytics/quotas/"+metric, fmt.Sprintf(`{"limit":%d}`, limit), nil)
	}
	atLeast := func(metric string, n int64) int64 {
		put(metric, 1<<40) // make it listed
		if c := current(metric); c < n {
			e.apiDo(t, token, "acme", "POST", "/api/analytics/usage", fmt.Sprintf(`{"metric":%q,"amount":%d}`, metric, n-c), nil)
		}
		return current(metric)
	}
	c := atLeast("api_requests_daily", 10)
	put("api_requests_daily", c*3+100)
	c = atLeast("builds_daily", 9)
	put("builds_daily", c*10/9) // 90 % or a little more, below 100 %
	c = atLeast("file_uploads_daily", 5)
	put("file_uploads_daily", c-2) // over
}

func uiZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestBrowserMeters defines, charts, edits and deletes a meter on the
// meters page in Chromium, over the seeded demo events.
func TestBrowserMeters(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newUIEnv(t, true)
	s := newBrowserSession(t, e.ts.URL)
	base := e.ts.URL
	s.loginForm(e.adminEmail, uiPassword)
	s.waitJS("the analytics page", `location.pathname === '/ui/analytics'`)
	s.do(chromedp.Click(chromedp.CSS(`a[href="/ui/meters?tenant=acme"]`)))
	s.waitJS("the meters list", `document.querySelector('[data-meters] tr[data-meter="events_daily"]')`)
	s.waitJS("the built-in meter's chart", `document.querySelector('[data-chart="meter"] .uplot')`)

	// A bad definition names its field.
	s.do(
		chromedp.SendKeys(chromedp.CSS(`#m-slug`), "all_events"),
		chromedp.SendKeys(chromedp.CSS(`#m-event`), "*"),
		chromedp.SetValue(chromedp.CSS(`#m-agg`), "sum"),
		chromedp.Click(chromedp.CSS(`[data-meter-submit]`)),
	)
	s.waitJS("the form error", `!document.querySelector('[data-form-error]').hidden`)
	if msg := browserEval[string](s, `document.querySelector('[data-form-error]').textContent`); !strings.Contains(msg, "value_property") {
		t.Errorf("form error %q does not name value_property", msg)
	}
	s.do(
		chromedp.SetValue(chromedp.CSS(`#m-agg`), "count"),
		chromedp.SendKeys(chromedp.CSS(`#m-group`), "props.route"),
		chromedp.Click(chromedp.CSS(`[data-meter-submit]`)),
	)
	s.waitJS("the new meter listed", `document.querySelector('[data-meters] tr[data-meter="all_events"]')`)
	s.waitJS("its chart", `document.querySelector('#c-meter').value === 'all_events' && document.querySelector('[data-chart="meter"] .uplot')`)
	if n := browserEval[int](s, `Number(document.querySelector('[data-chart="meter"]').dataset.points)`); n < 30 || n > 31 {
		t.Errorf("30 days by day: %d points, want 30 or 31", n)
	}
	total := browserEval[float64](s, `fetch('/api/analytics/meters/all_events/query?tz=UTC&from='+new Date(Date.now()-400*86400e3).toISOString(),
		{headers: {'X-Tenant-Slug': 'acme'}, credentials: 'same-origin'}).then(r => r.json()).then(a => a.data[0].value)`)
	if total == 0 {
		t.Error("the meter over the seeded events counts nothing")
	}

	// Group by, then edit and delete.
	s.do(chromedp.SetValue(chromedp.CSS(`#c-group`), "props.route"), chromedp.Click(chromedp.CSS(`[data-chart-form] button[type="submit"]`)))
	s.waitJS("the grouped chart", `document.querySelector('[data-chart="meter"] .uplot')`)
	s.do(chromedp.Click(chromedp.CSS(`[data-edit="all_events"]`)))
	s.do(chromedp.SendKeys(chromedp.CSS(`#m-desc`), "every event"), chromedp.Click(chromedp.CSS(`[data-meter-submit]`)))
	s.waitJS("the edited description", `document.querySelector('[data-meters] tr[data-meter="all_events"]').textContent.includes('every event')`)
	s.screenshot("meters")
	s.do(chromedp.Click(chromedp.CSS(`[data-delete="all_events"]`)))
	s.waitJS("the meter gone", `!document.querySelector('[data-meters] tr[data-meter="all_events"]') && document.querySelector('[data-meters] tr')`)
	s.wantCleanConsole("meters page", base+"/api/analytics/meters")
}

// TestGuideScreenshots checks that docs/GUIDE.md shows exactly the
// screenshots the browser test refreshes (make screenshots), and that each
// is in docs/images.
func TestGuideScreenshots(t *testing.T) {
	t.Parallel()
	guide, err := os.ReadFile(filepath.Join("..", "docs", "GUIDE.md"))
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, m := range regexp.MustCompile(`\]\(images/([a-z-]+)\.png\)`).FindAllStringSubmatch(string(guide), -1) {
		shown[m[1]] = true
		if !guideShots[m[1]] {
			t.Errorf("the guide shows %s.png, which the browser test does not take", m[1])
		}
		if _, err := os.Stat(filepath.Join("..", "docs", "images", m[1]+".png")); err != nil {
			t.Errorf("docs/images/%s.png: %v (run make screenshots)", m[1], err)
		}
	}
	for name := range guideShots {
		if !shown[name] {
			t.Errorf("screenshot %s is taken for the guide but not shown in it", name)
		}
	}
}
