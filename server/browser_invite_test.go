package server_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserInvitations drives the members page and the invitation page
// in Chromium: the admin invites a user through the form and gets the
// link once; the invitation is pending, and the user is no member, until
// the user, signed in, opens the link and joins; a revoke button removes
// an invitation, whose link then no longer works. No console error or CSP
// violation on the way.
func TestBrowserInvitations(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	e := newUIEnv(t, false)
	s := newBrowserSession(t, e.ts.URL)
	base := e.ts.URL
	adminTok := e.apiToken(t, e.adminEmail)
	type invitations struct {
		Invitations []struct {
			ID    int64  `json:"id"`
			Email string `json:"email"`
			Role  string `json:"role"`
		} `json:"invitations"`
	}
	pending := func() invitations {
		var v invitations
		e.apiGet(t, adminTok, "", "/api/tenants/globex/invitations", &v)
		return v
	}

	// The admin invites max (a member of acme only) into globex as admin.
	s.loginForm(e.adminEmail, uiPassword)
	s.do(chromedp.WaitVisible(chromedp.CSS(`#dashboard`)))
	s.do(chromedp.Click(chromedp.CSS(`.topnav a[href="/ui/members?tenant=acme"]`)))
	s.do(chromedp.WaitVisible(chromedp.CSS(`#members`)))
	s.do(chromedp.Navigate(base + "/ui/members?tenant=globex"))
	s.do(chromedp.WaitVisible(chromedp.CSS(`[data-invite-form]`)))
	s.do(
		chromedp.SendKeys(chromedp.CSS(`#invite-email`), e.memberEmail),
		chromedp.SetValue(chromedp.CSS(`#invite-role`), "admin"),
		chromedp.Click(chromedp.CSS(`[data-invite-form] button[type="submit"]`)),
	)
	s.waitJS("the invitation link", `!document.querySelector('[data-invite-result]').hidden`)
	link := browserEval[string](s, `document.querySelector('[data-invite-link]').value`)
	if !strings.HasPrefix(link, base+"/ui/invitation#") || len(link) < len(base)+40 {
		t.Fatalf("invitation link %q", link)
	}
	if n := browserEval[int](s, `document.querySelectorAll('[data-invitations] tr[data-invitation]').length`); n != 1 {
		t.Errorf("%d pending rows after inviting, want 1", n)
	}
	p := pending()
	if len(p.Invitations) != 1 || p.Invitations[0].Email != e.memberEmail || p.Invitations[0].Role != "admin" {
		t.Fatalf("pending after the form: %+v", p)
	}
	// Reloaded, the page lists it, without the token.
	s.do(chromedp.Reload())
	s.do(chromedp.WaitVisible(chromedp.CSS(`[data-invite-form]`)))
	token := link[strings.Index(link, "#")+1:]
	if body := browserEval[string](s, `document.body.innerHTML`); !strings.Contains(body, e.memberEmail) || strings.Contains(body, token) {
		t.Error("the reloaded page does not list the invitation, or shows its token")
	}
	s.wantCleanConsole("invite")

	// A second invitation, revoked with its button.
	s.do(
		chromedp.SendKeys(chromedp.CSS(`#invite-email`), "someone@globex.test"),
		chromedp.Click(chromedp.CSS(`[data-invite-form] button[type="submit"]`)),
	)
	s.waitJS("the second invitation", `document.querySelectorAll('[data-invitations] tr[data-invitation]').length === 2`)
	revokedLink := browserEval[string](s, `document.querySelector('[data-invite-link]').value`)
	var revokeID int64
	for _, i := range pending().Invitations {
		if i.Email == "someone@globex.test" {
			revokeID = i.ID
		}
	}
	s.do(chromedp.Click(chromedp.CSS(`[data-revoke="` + strconv.FormatInt(revokeID, 10) + `"]`)))
	s.waitJS("the revoked row gone", `document.querySelectorAll('[data-invitations] tr[data-invitation]').length === 1`)
	if p := pending(); len(p.Invitations) != 1 || p.Invitations[0].Email != e.memberEmail {
		t.Errorf("pending after the revoke: %+v", p)
	}
	s.screenshot("members")
	s.wantCleanConsole("revoke")

	// Max, signed in, opens the link and joins; before that max is no
	// member of globex.
	s.do(chromedp.Click(chromedp.CSS(`form.logout button`)))
	s.do(chromedp.WaitVisible(chromedp.CSS(`#email`)))
	s.do(chromedp.Navigate(link))
	s.do(chromedp.WaitVisible(chromedp.CSS(`#invitation a[href="/ui/login"]`)))
	s.loginForm(e.memberEmail, uiPassword)
	// Signed in once the form's answer moved the page on (a navigation
	// started before would cancel the sign-in).
	s.waitJS("signed in", `location.pathname !== '/ui/login'`)
	maxTok := e.apiToken(t, e.memberEmail)
	var me struct {
		Tenants []struct{ Slug, Role string } `json:"tenants"`
	}
	e.apiGet(t, maxTok, "", "/api/auth/me", &me)
	for _, m := range me.Tenants {
		if m.Slug == "globex" {
			t.Fatal("max is a member of globex before accepting")
		}
	}
	s.do(chromedp.Navigate(link))
	s.do(chromedp.WaitVisible(chromedp.CSS(`[data-accept]`)))
	s.do(chromedp.Click(chromedp.CSS(`[data-accept]`)))
	s.waitJS("joined", `!document.querySelector('[data-joined]').hidden`)
	if msg := browserEval[string](s, `document.querySelector('[data-joined]').textContent`); !strings.Contains(msg, "You joined Globex as admin") {
		t.Errorf("joined message %q", msg)
	}
	if h := browserEval[string](s, `location.hash`); h != "" {
		t.Errorf("the spent token stays in the address bar: %q", h)
	}
	e.apiGet(t, maxTok, "", "/api/auth/me", &me)
	joined := false
	for _, m := range me.Tenants {
		joined = joined || (m.Slug == "globex" && m.Role == "admin")
	}
	if !joined {
		t.Errorf("after joining, max's tenants are %+v", me.Tenants)
	}
	s.screenshot("invitation-joined")
	s.wantCleanConsole("accept", base+"/ui/analytics") // max administers nothing: the 403 page after login

	// The revoked link answers with the error inline. (From another page:
	// a link that differs in its fragment alone would not load the page.)
	s.do(chromedp.Navigate("about:blank"))
	s.do(chromedp.Navigate(revokedLink))
	s.do(chromedp.WaitVisible(chromedp.CSS(`[data-accept]`)))
	s.do(chromedp.Click(chromedp.CSS(`[data-accept]`)))
	s.waitJS("the error", `!document.querySelector('[data-error]').hidden`)
	if msg := browserEval[string](s, `document.querySelector('[data-error]').textContent`); !strings.Contains(msg, "no pending invitation") {
		t.Errorf("revoked link: error %q", msg)
	}
	if n := len(pending().Invitations); n != 0 {
		t.Errorf("%d invitations still pending", n)
	}
	// The failed accept is a 404 the browser logs as a network error.
	for _, m := range s.drainConsole() {
		if m.Source != "network" {
			t.Errorf("browser console: %s", m)
		}
	}
}
