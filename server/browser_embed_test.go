package server_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/chromedp"

	"github.com/tallyhq/tally"
)

// TestBrowserEmbed shows the embed page in an <iframe> of a host app on
// another origin: the subject's numbers for a good token, a refusal for an
// expired or out-of-scope one.
func TestBrowserEmbed(t *testing.T) {
	t.Parallel()
	f := newEmbedFixture(t)
	h := f.h
	host := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>host app</title></head><body><h1>Your usage</h1>
<iframe id="embed" src="%s" width="900" height="700"></iframe></body></html>`, html.EscapeString(r.URL.Query().Get("src")))
	}))
	t.Cleanup(host.Close)
	h.do("PUT", "/api/analytics/embed/settings", map[string]any{"allowed_origins": []string{host.URL},
		"theme": map[string]any{"primary": "#cc0000"}}, f.o.h()).want(t, http.StatusOK)

	page := func(tok, extra string) string {
		return host.URL + "/?src=" + url.QueryEscape(h.srv.URL+"/embed/usage?token="+url.QueryEscape(tok)+extra)
	}
	alice := f.mint(tally.EmbedClaims{Subject: &tally.EmbedSubject{UserID: "alice"}, Metrics: []string{"file_uploads_daily"}})
	b := newBrowserSession(t, host.URL)

	b.do(chromedp.Navigate(page(alice, "")))
	if got := frameText(b, "#embed-subject"); got != "alice" {
		t.Errorf("embedded subject = %q; want alice", got)
	}
	if got := frameText(b, `.embed-quota[data-metric="file_uploads_daily"] .embed-quota-used`); got != "3 of 10" {
		t.Errorf("embedded quota = %q; want 3 of 10 (alice's uploads, not bob's or the other tenant's)", got)
	}
	if got := frameText(b, `.embed-metric[data-metric="file_uploads_daily"] .embed-total`); got != "3" {
		t.Errorf("embedded 30-day total = %q; want 3", got)
	}
	frameWait(b, `#chart-file_uploads_daily[data-drawn="30"] canvas`)
	// The tenant's theme colours the numbers.
	style := inFrame(b, func(f *chromedp.Node) chromedp.Action[[]*css.ComputedStyleProperty] {
		return chromedp.ComputedStyle(chromedp.CSS(".embed-total"), chromedp.FromNode(f))
	})
	if i := slices.IndexFunc(style, func(p *css.ComputedStyleProperty) bool { return p.Name == "color" }); i < 0 || style[i].Value != "rgb(204, 0, 0)" {
		t.Errorf("the total's colour is not the theme's #cc0000")
	}
	b.wantCleanConsole("embed")

	// Expired: a refusal inside the frame, not a blocked frame.
	now := time.Now().Unix()
	expired, err := tally.SignEmbedToken(f.secret.Secret, tally.EmbedClaims{Tenant: f.o.slug, KeyID: f.secret.ID,
		Subject: &tally.EmbedSubject{UserID: "alice"}, Metrics: []string{"file_uploads_daily"}, IssuedAt: now - 120, ExpiresAt: now - 60})
	check(t, err)
	b.do(chromedp.Navigate(page(expired, "")))
	if got := frameText(b, "#embed-refusal"); !strings.Contains(got, "not available") || !strings.Contains(got, "expired") {
		t.Errorf("expired token's frame = %q; want a refusal that says it expired", got)
	}
	// Out of scope: a metric the token does not name.
	b.do(chromedp.Navigate(page(alice, "&metric=builds_daily")))
	if got := frameText(b, "#embed-refusal"); !strings.Contains(got, "may not read builds_daily") {
		t.Errorf("out-of-scope frame = %q; want a refusal naming the metric", got)
	}
	b.wantCleanConsole("refusals", h.srv.URL+"/embed/usage?token="+url.QueryEscape(expired),
		h.srv.URL+"/embed/usage?token="+url.QueryEscape(alice)+"&metric=builds_daily")
	h.noPanic(t)
}

// inFrame runs a query inside the embed iframe.
func inFrame[T any](b *browserSession, action func(frame *chromedp.Node) chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	frames, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("iframe#embed"), chromedp.NodeReady))
	if err != nil || len(frames) == 0 {
		b.t.Fatalf("no iframe: %v", err)
	}
	v, err := chromedp.Run(ctx, action(frames[0]))
	if err != nil {
		b.t.Fatalf("in the frame: %v", err)
	}
	return v
}

// frameWait waits for sel inside the embed iframe.
func frameWait(b *browserSession, sel string) {
	b.t.Helper()
	inFrame(b, func(f *chromedp.Node) chromedp.Action[chromedp.Void] {
		return chromedp.WaitReady(chromedp.CSS(sel), chromedp.FromNode(f))
	})
}

// frameText returns the text of sel inside the embed iframe.
func frameText(b *browserSession, sel string) string {
	b.t.Helper()
	return strings.TrimSpace(inFrame(b, func(f *chromedp.Node) chromedp.Action[string] {
		return chromedp.TextContent(chromedp.CSS(sel), chromedp.FromNode(f))
	}))
}

// TestBrowserEmbedsPage: an admin creates an embed secret on the embeds
// page (shown once), saves the settings (a bad colour names its field),
// mints a token for a subject and opens the view it links to; revoking
// the secret ends that token.
func TestBrowserEmbedsPage(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newUIEnv(t, true)
	s := newBrowserSession(t, e.ts.URL)
	s.loginForm(e.adminEmail, uiPassword)
	s.waitJS("the analytics page", `location.pathname === '/ui/analytics'`)
	s.do(chromedp.Click(chromedp.CSS(`a[href="/ui/embeds?tenant=acme"]`)))
	s.waitJS("the empty list", `document.querySelector('[data-secrets] tr.empty') && document.querySelector('[data-secrets]').textContent.includes('No secret yet')`)

	s.do(chromedp.SendKeys(chromedp.CSS(`#s-name`), "production"), chromedp.Click(chromedp.CSS(`[data-secret-form] button[type="submit"]`)))
	s.waitJS("the new secret", `!document.querySelector('[data-new-secret]').hidden && document.querySelector('[data-secrets] tr[data-secret]')`)
	if secret := browserEval[string](s, `document.querySelector('[data-secret-value]').textContent`); !strings.HasPrefix(secret, tally.EmbedSecretPrefix) {
		t.Errorf("the secret shown once is %q", secret)
	}
	if row := browserEval[string](s, `document.querySelector('[data-secrets] tr[data-secret]').textContent`); !strings.Contains(row, "production") ||
		!strings.Contains(row, "active") || !strings.Contains(row, e.adminEmail) {
		t.Errorf("the secret's row reads %q", row)
	}
	if n := browserEval[int](s, `fetch('/api/analytics/embed/secrets', {headers: {'X-Tenant-Slug': 'acme'}}).then(r => r.json()).then(a => a.secrets.filter(s => s.secret).length)`); n != 0 {
		t.Errorf("the list shows %d secrets in full", n)
	}

	// Settings: a bad colour names its field; a good one is saved.
	s.do(chromedp.SetValue(chromedp.CSS(`#e-origins`), "https://app.example.com\n"),
		chromedp.SetValue(chromedp.CSS(`#e-primary`), "#12345"), chromedp.Click(chromedp.CSS(`[data-settings-form] button[type="submit"]`)))
	// The browser's own pattern check stops that submit; the API's check
	// is the one that must name the field, so ask it directly too.
	browserEval[bool](s, `document.querySelector('#e-primary').removeAttribute('pattern'), true`)
	s.do(chromedp.Click(chromedp.CSS(`[data-settings-form] button[type="submit"]`)))
	s.waitJS("the settings error", `!document.querySelector('[data-error]').hidden`)
	if msg := browserEval[string](s, `document.querySelector('[data-error]').textContent`); !strings.Contains(msg, "theme.primary") {
		t.Errorf("settings error %q does not name theme.primary", msg)
	}
	s.do(chromedp.SetValue(chromedp.CSS(`#e-primary`), "#cc0000"), chromedp.Click(chromedp.CSS(`[data-settings-form] button[type="submit"]`)))
	s.waitJS("saved", `document.querySelector('[data-settings-saved]').textContent === 'Saved.'`)
	saved := browserEval[string](s, `fetch('/api/analytics/embed/settings', {headers: {'X-Tenant-Slug': 'acme'}}).then(r => r.json()).then(a => a.allowed_origins.join(',') + ' ' + a.theme.primary)`)
	if saved != "https://app.example.com #cc0000" {
		t.Errorf("saved settings %q", saved)
	}

	// A token for a subject opens the view of that subject.
	s.do(chromedp.SendKeys(chromedp.CSS(`#t-user`), "alice"), chromedp.SendKeys(chromedp.CSS(`#t-metrics`), "file_uploads_daily"),
		chromedp.Click(chromedp.CSS(`[data-token-form] button[type="submit"]`)))
	s.waitJS("the link", `!document.querySelector('[data-token-result]').hidden`)
	link := browserEval[string](s, `document.querySelector('[data-token-link]').href`)
	if !strings.HasPrefix(link, e.ts.URL+"/embed/usage?token=") {
		t.Fatalf("the view's link is %q", link)
	}
	s.screenshot("embeds")
	s.wantCleanConsole("embeds page", e.ts.URL+"/api/analytics/embed/settings")
	view := newBrowserSession(t, e.ts.URL)
	view.do(chromedp.Navigate(link))
	view.waitJS("the subject's view", `document.querySelector('#embed-subject') && document.querySelector('#embed-subject').textContent === 'alice'`)

	// Revoking the secret ends the token at once.
	browserEval[bool](s, `(window.confirm = () => true, true)`)
	s.do(chromedp.Click(chromedp.CSS(`[data-revoke]`)))
	s.waitJS("revoked", `document.querySelector('[data-secrets] tr[data-secret]').textContent.includes('revoked') && !document.querySelector('[data-revoke]')`)
	view.do(chromedp.Navigate(link))
	view.waitJS("the refusal", `document.querySelector('#embed-refusal')`)
}
