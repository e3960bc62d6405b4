package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/app"
	"github.com/tallyhq/tally/internal/demo"
	"github.com/tallyhq/tally/server"
)

// seedDays of demo events: two 7-day periods and a little more, so that
// the 7d KPIs have a previous period.
const seedDays = 16

// uiPassword is the password of every user a uiEnv creates.
const uiPassword = "correct horse battery"

// uiEnv is the whole tally app (internal/app: SQLite file, ingest,
// usage, rollups) behind an httptest server, with an admin of two tenants
// and a member of the first.
type uiEnv struct {
	app    *app.App
	srv    *server.Server
	ts     *httptest.Server
	tenant *tally.Tenant // "acme": the admin owns it, the member is a member
	other  *tally.Tenant // "globex": the admin owns it too (tenant switcher)

	adminEmail, memberEmail string
}

// newUIEnv starts the app. With seed, acme holds seedDays days of demo
// events before now, rolled up, and the usage counters are rebuilt.
func newUIEnv(t *testing.T, seed bool) *uiEnv {
	t.Helper()
	ctx := context.Background()
	a, err := app.New(ctx, app.Config{
		SQLitePath:       filepath.Join(t.TempDir(), "tally.db"),
		SQLiteSync:       "NORMAL",
		AnalyticsEnabled: true,
		QuotasEnabled:    true,
		Server:           server.DefaultConfig(),
	})
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Close(sctx); err != nil {
			t.Errorf("close app: %v", err)
		}
	})
	store := a.Store

	e := &uiEnv{app: a, srv: a.Server, adminEmail: "ada@acme.test", memberEmail: "max@acme.test"}
	adm, _, err := a.Accounts.Register(ctx, tally.RegisterInput{Email: e.adminEmail, Password: uiPassword, Name: "Ada Admin"})
	if err != nil {
		t.Fatal(err)
	}
	member, _, err := a.Accounts.Register(ctx, tally.RegisterInput{Email: e.memberEmail, Password: uiPassword, Name: "Max Member"})
	if err != nil {
		t.Fatal(err)
	}
	// A zone with daylight saving and a non-zero offset, so that axes and
	// day boundaries in the tenant's zone are exercised.
	e.tenant = &tally.Tenant{Slug: "acme", Name: "Acme Corp", Timezone: "America/New_York"}
	e.other = &tally.Tenant{Slug: "globex", Name: "Globex", Timezone: "UTC"}
	for _, tn := range []*tally.Tenant{e.tenant, e.other} {
		if err := store.CreateTenant(ctx, tn, adm.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.AddMember(ctx, e.tenant.ID, member.ID, tally.RoleMember); err != nil {
		t.Fatal(err)
	}
	if seed {
		now := time.Now()
		events := demo.Generate(e.tenant.ID, now, seedDays, 7)
		for i := 0; i < len(events); i += 2000 {
			if _, err := store.InsertEvents(ctx, events[i:min(i+2000, len(events))]); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.Rollup.RunDays(ctx, e.tenant.ID, tally.DayStart(now.AddDate(0, 0, -seedDays-1)), tally.DayStart(now), "manual", ""); err != nil {
			t.Fatal(err)
		}
		if err := a.RebuildCounters(ctx); err != nil {
			t.Fatal(err)
		}
	}
	e.ts = httptest.NewServer(a.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

// client is a browser-like client with a cookie jar that does not follow
// redirects, so that tests see them.
func (e *uiEnv) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// apiToken logs in through the JSON API and returns a Bearer session token.
func (e *uiEnv) apiToken(t *testing.T, email string) string {
	t.Helper()
	body := strings.NewReader(`{"email":` + uiJSON(email) + `,"password":` + uiJSON(uiPassword) + `}`)
	res, err := http.Post(e.ts.URL+"/api/auth/login", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("POST /api/auth/login: %d %s", res.StatusCode, b)
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Token
}

// apiGet calls the JSON API with a Bearer token in tenant slug and decodes
// the answer into out (when not nil); it returns the raw body.
func (e *uiEnv) apiGet(t *testing.T, token, slug, path string, out any) []byte {
	t.Helper()
	return e.apiDo(t, token, slug, http.MethodGet, path, "", out)
}

func (e *uiEnv) apiDo(t *testing.T, token, slug, method, path, body string, out any) []byte {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Tenant-Slug", slug)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return b
}

func uiJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type htmlPage struct {
	status int
	header http.Header
	body   string
	res    *http.Response
}

func uiGet(t *testing.T, c *http.Client, u string) htmlPage {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	return uiRead(t, res)
}

func uiPost(t *testing.T, c *http.Client, u string, form url.Values) htmlPage {
	t.Helper()
	res, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	return uiRead(t, res)
}

func uiRead(t *testing.T, res *http.Response) htmlPage {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return htmlPage{status: res.StatusCode, header: res.Header, body: string(b), res: res}
}

var uiCSRFField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func uiCSRF(t *testing.T, p htmlPage) string {
	t.Helper()
	m := uiCSRFField.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no csrf_token field in:\n%s", p.body)
	}
	return m[1]
}

// uiLogin signs in through the form and returns the answer to the POST.
func uiLogin(t *testing.T, c *http.Client, base, email, password string) htmlPage {
	t.Helper()
	form := uiGet(t, c, base+"/ui/login")
	return uiPost(t, c, base+"/ui/login", url.Values{"email": {email}, "password": {password}, "csrf_token": {uiCSRF(t, form)}})
}

func wantUIStatus(t *testing.T, p htmlPage, status int) {
	t.Helper()
	if p.status != status {
		t.Fatalf("status %d, want %d; body:\n%s", p.status, status, p.body)
	}
}

func wantUIRedirect(t *testing.T, p htmlPage, to string) {
	t.Helper()
	if p.status != http.StatusSeeOther {
		t.Fatalf("status %d, want 303 to %s; body:\n%s", p.status, to, p.body)
	}
	if loc := p.header.Get("Location"); loc != to {
		t.Fatalf("Location %q, want %q", loc, to)
	}
}

func wantUIContains(t *testing.T, p htmlPage, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if !strings.Contains(p.body, s) {
			t.Errorf("page lacks %q; body:\n%s", s, p.body)
		}
	}
}

// wantPageHeaders checks the security headers every dashboard page carries.
func wantPageHeaders(t *testing.T, p htmlPage) {
	t.Helper()
	h := p.header
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("Content-Security-Policy %q allows inline code", csp)
	}
	if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", got)
	}
	if got := h.Get("Referrer-Policy"); got == "" {
		t.Error("no Referrer-Policy")
	}
	if got := h.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
}

// uiInlineCode finds what the CSP would block in a page: style elements or
// attributes, event handler attributes and javascript: URLs. Scripts are
// checked by wantNoInlineCode.
var (
	uiInlineCode = regexp.MustCompile(`(?i)<style[\s>]|\sstyle\s*=|\son[a-z]+\s*=|javascript:`)
	uiScriptTag  = regexp.MustCompile(`(?is)<script([^>]*)>(.*?)</script>`)
)

func wantNoInlineCode(t *testing.T, p htmlPage) {
	t.Helper()
	if m := uiInlineCode.FindString(p.body); m != "" {
		t.Errorf("page has inline code the CSP blocks: %q", m)
	}
	for _, m := range uiScriptTag.FindAllStringSubmatch(p.body, -1) {
		if !strings.Contains(m[1], "src=") || strings.TrimSpace(m[2]) != "" {
			t.Errorf("page has an inline script: %q", m[0])
		}
	}
}

func uiSessionCookie(p htmlPage) *http.Cookie {
	for _, c := range p.res.Cookies() {
		if c.Name == "tally_session" {
			return c
		}
	}
	return nil
}

// TestUI drives the dashboard's pages over HTTP. Its subtests share one
// server and run in order; the last one fails when a page template was
// never rendered, so it must stay the one test that renders every page.
func TestUI(t *testing.T) {
	e := newUIEnv(t, false)
	base := e.ts.URL

	t.Run("AnonymousRedirectsToLogin", func(t *testing.T) {
		c := e.client(t)
		wantUIRedirect(t, uiGet(t, c, base+"/ui/analytics"), "/ui/login")
		wantUIRedirect(t, uiGet(t, c, base+"/ui/analytics?tenant=acme&range=30d"), "/ui/login")
		// A Bearer token is not a dashboard session.
		req, _ := http.NewRequest(http.MethodGet, base+"/ui/analytics", nil)
		req.Header.Set("Authorization", "Bearer "+e.apiToken(t, e.adminEmail))
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		wantUIRedirect(t, uiRead(t, res), "/ui/login")
	})

	t.Run("LoginForm", func(t *testing.T) {
		c := e.client(t)
		p := uiGet(t, c, base+"/ui/login")
		wantUIStatus(t, p, http.StatusOK)
		wantPageHeaders(t, p)
		wantNoInlineCode(t, p)
		wantUIContains(t, p, `<label for="email">`, `<label for="password">`, `id="email" name="email" type="email"`,
			`id="password" name="password" type="password"`, `action="/ui/login"`, `href="/ui/static/app.css"`)
		if strings.Contains(p.body, `role="alert"`) {
			t.Error("a fresh login form shows an error")
		}
	})

	t.Run("BadLoginShowsInlineError", func(t *testing.T) {
		for name, pw := range map[string]string{"wrong password": "not the password", "empty password": ""} {
			c := e.client(t)
			p := uiLogin(t, c, base, e.adminEmail, pw)
			wantUIStatus(t, p, http.StatusUnauthorized)
			wantPageHeaders(t, p)
			wantUIContains(t, p, `role="alert"`, "Invalid email or password.", `value="`+e.adminEmail+`"`, `aria-invalid="true"`)
			if uiSessionCookie(p) != nil {
				t.Errorf("%s: a failed login set a session cookie", name)
			}
		}
		// Unknown email: the same answer.
		p := uiLogin(t, e.client(t), base, "nobody@acme.test", uiPassword)
		wantUIStatus(t, p, http.StatusUnauthorized)
		wantUIContains(t, p, "Invalid email or password.")
	})

	t.Run("LoginNeedsFormToken", func(t *testing.T) {
		c := e.client(t)
		uiGet(t, c, base+"/ui/login")
		p := uiPost(t, c, base+"/ui/login", url.Values{"email": {e.adminEmail}, "password": {uiPassword}, "csrf_token": {"forged"}})
		wantUIStatus(t, p, http.StatusForbidden)
		wantUIContains(t, p, `role="alert"`)
		if uiSessionCookie(p) != nil {
			t.Error("a login without the form token set a session cookie")
		}
	})

	t.Run("GoodLoginSetsSessionCookie", func(t *testing.T) {
		c := e.client(t)
		p := uiLogin(t, c, base, e.adminEmail, uiPassword)
		wantUIRedirect(t, p, "/ui/analytics")
		ck := uiSessionCookie(p)
		if ck == nil {
			t.Fatal("no tally_session cookie")
		}
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Value == "" {
			t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/", ck)
		}
		if ck.Secure {
			t.Error("session cookie Secure without TLS configured")
		}
	})

	t.Run("AnalyticsPage", func(t *testing.T) {
		c := e.client(t)
		uiLogin(t, c, base, e.adminEmail, uiPassword)
		p := uiGet(t, c, base+"/ui/analytics")
		wantUIStatus(t, p, http.StatusOK)
		wantPageHeaders(t, p)
		wantNoInlineCode(t, p)
		wantUIContains(t, p,
			`data-tenant="acme"`, `data-tz="America/New_York"`, `data-range="7d"`, `data-csrf="`,
			`<select id="tenant-select" name="tenant"`, `<option value="globex">Globex</option>`,
			`action="/ui/logout"`, `data-kpi="signups"`, `data-kpi="active_users"`, `data-kpi="events"`,
			`data-chart="kpi"`, `data-chart="usage"`, `data-quotas`, `data-events`, `data-export`,
			`<label for="f-event">`, `<script src="/ui/static/app.js" defer></script>`,
			`<script src="/ui/static/vendor/uplot/uPlot.iife.min.js" defer></script>`,
		)
		for _, r := range []string{"today", "7d", "30d", "90d"} {
			wantUIContains(t, p, `data-range="`+r+`"`)
		}
		if p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q", p.header.Get("Cache-Control"))
		}

		// Another tenant of the user, a range, and a bad range.
		p = uiGet(t, c, base+"/ui/analytics?tenant=globex&range=30d")
		wantUIStatus(t, p, http.StatusOK)
		wantUIContains(t, p, `data-tenant="globex"`, `data-tz="UTC"`, `data-range="30d" aria-pressed="true"`)
		p = uiGet(t, c, base+"/ui/analytics?range=1y")
		wantUIContains(t, p, `data-range="7d" aria-pressed="true"`)
	})

	t.Run("MemberGetsForbiddenPage", func(t *testing.T) {
		c := e.client(t)
		wantUIRedirect(t, uiLogin(t, c, base, e.memberEmail, uiPassword), "/ui/analytics")
		for _, u := range []string{"/ui/analytics", "/ui/analytics?tenant=acme"} {
			p := uiGet(t, c, base+u)
			wantUIStatus(t, p, http.StatusForbidden)
			wantPageHeaders(t, p)
			wantNoInlineCode(t, p)
			wantUIContains(t, p, "don’t have access", e.memberEmail, `action="/ui/logout"`, `name="csrf_token"`)
			if strings.Contains(p.body, "data-tenant=") {
				t.Error("the 403 page carries the dashboard")
			}
		}
		// An admin asking for a tenant they are not in: 403, with the way back.
		ca := e.client(t)
		uiLogin(t, ca, base, e.adminEmail, uiPassword)
		p := uiGet(t, ca, base+"/ui/analytics?tenant=initech")
		wantUIStatus(t, p, http.StatusForbidden)
		wantUIContains(t, p, `href="/ui/analytics?tenant=acme"`, `href="/ui/analytics?tenant=globex"`)
	})

	t.Run("LogoutNeedsCSRFToken", func(t *testing.T) {
		c := e.client(t)
		uiLogin(t, c, base, e.adminEmail, uiPassword)
		p := uiGet(t, c, base+"/ui/analytics")
		wantUIStatus(t, p, http.StatusOK)
		token := uiCSRF(t, p)
		u, _ := url.Parse(base)
		var session string
		for _, ck := range c.Jar.Cookies(u) {
			if ck.Name == "tally_session" {
				session = ck.Value
			}
		}

		for _, bad := range []url.Values{{}, {"csrf_token": {"forged"}}} {
			p = uiPost(t, c, base+"/ui/logout", bad)
			wantUIRedirect(t, p, "/ui/login")
			wantUIStatus(t, uiGet(t, c, base+"/ui/analytics"), http.StatusOK) // still logged in
		}
		p = uiPost(t, c, base+"/ui/logout", url.Values{"csrf_token": {token}})
		wantUIRedirect(t, p, "/ui/login")
		if ck := uiSessionCookie(p); ck == nil || ck.MaxAge >= 0 {
			t.Errorf("logout did not clear the session cookie: %+v", ck)
		}
		// The session is revoked on the server, not just dropped by this client.
		c2 := e.client(t)
		c2.Jar.SetCookies(u, []*http.Cookie{{Name: "tally_session", Value: session}})
		wantUIRedirect(t, uiGet(t, c2, base+"/ui/analytics"), "/ui/login")
	})

	t.Run("StaticAssets", func(t *testing.T) {
		c := e.client(t)
		for path, ctype := range map[string]string{
			"/ui/static/app.js":                          "text/javascript",
			"/ui/static/app.css":                         "text/css",
			"/ui/static/favicon.svg":                     "image/svg+xml",
			"/ui/static/vendor/uplot/uPlot.iife.min.js":  "text/javascript",
			"/ui/static/vendor/uplot/uPlot.min.css":      "text/css",
			"/ui/static/vendor/uplot/LICENSE":            "",
			"/ui/static/../templates/analytics.html":     "-",
			"/ui/static/vendor/uplot/does-not-exist.js":  "-",
			"/ui/static/%2e%2e/templates/analytics.html": "-",
		} {
			p := uiGet(t, c, base+path)
			if ctype == "-" {
				if p.status == http.StatusOK && strings.Contains(p.body, "{{") {
					t.Errorf("%s: served a template", path)
				}
				continue
			}
			wantUIStatus(t, p, http.StatusOK)
			if got := p.header.Get("Content-Type"); !strings.HasPrefix(got, ctype) {
				t.Errorf("%s: Content-Type %q, want %s", path, got, ctype)
			}
			if p.header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("%s: no nosniff", path)
			}
		}
	})

	t.Run("MembersAndInvitationPages", func(t *testing.T) {
		anon := e.client(t)
		wantUIRedirect(t, uiGet(t, anon, base+"/ui/members?tenant=acme"), "/ui/login")
		p := uiGet(t, anon, base+"/ui/invitation")
		wantUIStatus(t, p, http.StatusOK)
		wantPageHeaders(t, p)
		wantNoInlineCode(t, p)
		wantUIContains(t, p, `href="/ui/login"`, "open the invitation link again")

		// The admin sees members, pending invitations and the invite form,
		// with every role (an owner invites owners too).
		admin := e.client(t)
		uiLogin(t, admin, base, e.adminEmail, uiPassword)
		tok := e.apiToken(t, e.adminEmail)
		e.apiDo(t, tok, "", "POST", "/api/tenants/acme/invitations", `{"email":"pending-<x>@acme.test","role":"admin"}`, nil)
		p = uiGet(t, admin, base+"/ui/members?tenant=acme")
		wantUIStatus(t, p, http.StatusOK)
		wantPageHeaders(t, p)
		wantNoInlineCode(t, p)
		wantUIContains(t, p, "<h1>Members</h1>", e.adminEmail, e.memberEmail, "pending-&lt;x&gt;@acme.test",
			`data-invite-form`, `<option value="owner">`, `data-revoke="`, `src="/ui/static/members.js"`, `data-csrf="`)
		if strings.Contains(p.body, "pending-<x>") {
			t.Error("an invitation's email is not escaped")
		}
		p = uiGet(t, admin, base+"/ui/analytics?tenant=acme")
		wantUIContains(t, p, `href="/ui/members?tenant=acme"`, `href="/ui/insights?tenant=acme"`)
		p = uiGet(t, admin, base+"/ui/insights?tenant=acme")
		wantUIStatus(t, p, http.StatusOK)
		wantPageHeaders(t, p)
		wantNoInlineCode(t, p)
		wantUIContains(t, p, "<h1>Funnels and retention</h1>", `data-funnel-form`, `data-retention-form`, `src="/ui/static/insights.js"`)
		p = uiGet(t, admin, base+"/ui/embeds?tenant=acme")
		wantUIStatus(t, p, http.StatusOK)
		wantPageHeaders(t, p)
		wantNoInlineCode(t, p)
		wantUIContains(t, p, "<h1>Embeds</h1>", `data-secret-form`, `data-settings-form`, `data-token-form`, `src="/ui/static/embed-admin.js"`, `aria-current="page">Embeds`)
		p = uiGet(t, admin, base+"/ui/invitation")
		wantUIStatus(t, p, http.StatusOK)
		wantUIContains(t, p, e.adminEmail, `data-accept`, `data-csrf="`)

		// A member of acme is no admin: the 403 page.
		member := e.client(t)
		uiLogin(t, member, base, e.memberEmail, uiPassword)
		p = uiGet(t, member, base+"/ui/members?tenant=acme")
		wantUIStatus(t, p, http.StatusForbidden)
		wantUIStatus(t, uiGet(t, member, base+"/ui/embeds?tenant=acme"), http.StatusForbidden)
		if strings.Contains(p.body, "pending-") {
			t.Error("the 403 page shows invitations")
		}
	})

	t.Run("LoginThrottledPage", func(t *testing.T) {
		// An email guessed from one address: 5 free failures, the 6th
		// blocks it there; the form says so, with Retry-After.
		c := e.client(t)
		for range 6 {
			wantUIStatus(t, uiLogin(t, c, base, "guessed@acme.test", "not the password"), http.StatusUnauthorized)
		}
		p := uiLogin(t, c, base, "guessed@acme.test", "not the password")
		wantUIStatus(t, p, http.StatusTooManyRequests)
		wantUIContains(t, p, `role="alert"`, "Too many failed attempts.")
		if p.header.Get("Retry-After") == "" {
			t.Error("the throttled login page has no Retry-After")
		}
	})

	t.Run("MetersPage", func(t *testing.T) {
		c := e.client(t)
		wantUIRedirect(t, uiGet(t, c, base+"/ui/meters"), "/ui/login")
		uiLogin(t, c, base, e.adminEmail, uiPassword)
		p := uiGet(t, c, base+"/ui/meters?tenant=acme")
		wantUIStatus(t, p, http.StatusOK)
		wantPageHeaders(t, p)
		wantNoInlineCode(t, p)
		wantUIContains(t, p, `id="meters"`, `data-tenant="acme"`, `data-tz="America/New_York"`, `data-csrf="`,
			`data-meter-form`, `data-chart="meter"`, `<option value="unique_count">`, `<label for="m-slug">`,
			`<script src="/ui/static/meters.js" defer></script>`, `href="/ui/analytics?tenant=acme"`, `href="/ui/meters?tenant=acme" aria-current="page"`)
		m := e.client(t)
		uiLogin(t, m, base, e.memberEmail, uiPassword)
		wantUIStatus(t, uiGet(t, m, base+"/ui/meters?tenant=acme"), http.StatusForbidden)
	})

	t.Run("EmbedRefusesBadToken", func(t *testing.T) {
		p := uiGet(t, e.client(t), base+"/embed/usage?token=not-a-token")
		wantUIStatus(t, p, http.StatusUnauthorized)
		wantUIContains(t, p, `id="embed-refusal"`, "This usage view is not available")
	})

	// Keep this last: it checks what the subtests above rendered.
	t.Run("EveryTemplateRendered", func(t *testing.T) {
		rendered, all := e.srv.Rendered()
		if len(all) < 3 {
			t.Fatalf("only %d page templates found: %v", len(all), all)
		}
		for _, name := range all {
			if !rendered[name] {
				t.Errorf("template %s is never rendered by a test: render it in TestUI", name)
			}
		}
	})
}
