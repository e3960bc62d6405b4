package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
)

// embedSecret is the answer of POST /api/analytics/embed/secrets.
type embedSecret struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Secret string `json:"secret"`
}

// embedUsageAnswer is the answer of GET /api/embed/usage.
type embedUsageAnswer struct {
	Usage []struct {
		Metric string  `json:"metric"`
		Total  float64 `json:"total"`
	} `json:"usage"`
}

func (a embedUsageAnswer) total(metric string) float64 {
	for _, u := range a.Usage {
		if u.Metric == metric {
			return u.Total
		}
	}
	return -1
}

// embedFixture is a tenant with an embed secret, a quota on file uploads
// and uploads by alice (3), bob (2) and, in another tenant, alice again (7).
type embedFixture struct {
	h      *harness
	o      owner
	other  owner
	secret embedSecret
}

func newEmbedFixture(t *testing.T, opts ...harnessOption) *embedFixture {
	h := newHarness(t, opts...)
	f := &embedFixture{h: h, o: h.newTenant(h.uniq("acme")), other: h.newTenant(h.uniq("other"))}
	r := h.do("POST", "/api/analytics/embed/secrets", map[string]any{"name": "web app"}, f.o.h())
	r.want(t, http.StatusCreated)
	r.decode(t, &f.secret)
	if !strings.HasPrefix(f.secret.Secret, tally.EmbedSecretPrefix) || f.secret.ID <= 0 {
		t.Fatalf("created secret %+v", f.secret)
	}
	now := time.Now().UTC()
	var events []tally.Event
	add := func(user string, n int, props string) {
		for range n {
			events = append(events, tally.Event{EventID: h.uniq("e"), Name: "files.uploaded", UserID: user, Source: "app", Timestamp: now, Props: json.RawMessage(props)})
		}
	}
	add("alice", 3, `{"account":"a-1"}`)
	add("bob", 2, `{"account":"b-2"}`)
	events = append(events, tally.Event{EventID: h.uniq("e"), Name: "builder.generate.completed", UserID: "alice", Source: "app", Timestamp: now})
	sendMeterEvents(h, f.o.h(), events)
	var others []tally.Event
	for range 7 {
		others = append(others, tally.Event{EventID: h.uniq("e"), Name: "files.uploaded", UserID: "alice", Source: "app", Timestamp: now})
	}
	sendMeterEvents(h, f.other.h(), others)
	h.do("PUT", "/api/analytics/quotas/file_uploads_daily", map[string]any{"limit": 10}, f.o.h()).want(t, http.StatusOK)
	return f
}

// mint signs claims offline with the fixture's secret, filling tenant and kid.
func (f *embedFixture) mint(c tally.EmbedClaims) string {
	f.h.t.Helper()
	if c.Tenant == "" {
		c.Tenant = f.o.slug
	}
	if c.KeyID == 0 {
		c.KeyID = f.secret.ID
	}
	tok, err := client.MintEmbedToken(f.secret.Secret, c)
	if err != nil {
		f.h.t.Fatal(err)
	}
	return tok
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestEmbedScope(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		f := newEmbedFixture(t, opts...)
		h := f.h
		defer h.noPanic(t)
		alice := f.mint(tally.EmbedClaims{Subject: &tally.EmbedSubject{UserID: "alice"}, Metrics: []string{"file_uploads_daily"}})

		var u embedUsageAnswer
		h.do("GET", "/api/embed/usage", nil, bearer(alice)).want(t, http.StatusOK).decode(t, &u)
		if got := u.total("file_uploads_daily"); got != 3 {
			t.Errorf("alice's uploads = %v; want 3 (not bob's, not the other tenant's)", got)
		}
		// A host page of any origin may send the token as Authorization.
		pre := h.do("OPTIONS", "/api/embed/usage", nil, map[string]string{"Origin": "https://app.example.com",
			"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
		if pre.Status != http.StatusNoContent || pre.Header.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight = %d %v", pre.Status, pre.Header)
		}
		// ?token= works as well as the header.
		h.do("GET", "/api/embed/usage?token="+url.QueryEscape(alice), nil, nil).want(t, http.StatusOK)

		// A props subject: the account's events only.
		acct := f.mint(tally.EmbedClaims{Subject: &tally.EmbedSubject{Path: "props.account", Value: "b-2"}, Metrics: []string{"file_uploads_daily"}})
		h.do("GET", "/api/embed/usage", nil, bearer(acct)).want(t, http.StatusOK).decode(t, &u)
		if got := u.total("file_uploads_daily"); got != 2 {
			t.Errorf("account b-2's uploads = %v; want 2", got)
		}
		// No subject: the tenant's whole use of the metric.
		all := f.mint(tally.EmbedClaims{Metrics: []string{"file_uploads_daily"}})
		h.do("GET", "/api/embed/usage", nil, bearer(all)).want(t, http.StatusOK).decode(t, &u)
		if got := u.total("file_uploads_daily"); got != 5 {
			t.Errorf("tenant's uploads = %v; want 5", got)
		}

		// The subject is forced into a meter query: asking for another
		// subject is refused, never answered with bob's data.
		wantProblem(t, h.do("GET", "/api/embed/meters/file_uploads_daily/query?user_id=bob&filter[user_id]=bob", nil, bearer(alice)), http.StatusBadRequest)
		var m tally.MeterResult
		h.do("GET", "/api/embed/meters/file_uploads_daily/query", nil, bearer(alice)).want(t, http.StatusOK).decode(t, &m)
		if len(m.Data) != 1 || m.Data[0].Value == nil || *m.Data[0].Value != 3 {
			t.Errorf("alice's meter query = %+v; want alice's 3", m.Data)
		}

		// Quotas: alice's use against the tenant's limit.
		var q struct {
			Quotas []tally.QuotaStatus `json:"quotas"`
		}
		h.do("GET", "/api/embed/quotas", nil, bearer(alice)).want(t, http.StatusOK).decode(t, &q)
		if len(q.Quotas) != 1 || q.Quotas[0].Metric != "file_uploads_daily" || q.Quotas[0].Current != 3 || q.Quotas[0].Limit != 10 {
			t.Errorf("alice's quotas = %+v; want file_uploads_daily 3 of 10", q.Quotas)
		}

		// Beyond its metrics: 403.
		wantProblem(t, h.do("GET", "/api/embed/usage?metric=builds_daily", nil, bearer(alice)), http.StatusForbidden)
		wantProblem(t, h.do("GET", "/api/embed/meters/builds_daily/query", nil, bearer(alice)), http.StatusForbidden)
		// Beyond the embed routes: an embed token is no API credential.
		wantProblem(t, h.do("GET", "/api/analytics/usage", nil, hdr(alice, f.o.slug)), http.StatusUnauthorized)
		wantProblem(t, h.do("GET", "/api/embed/usage", nil, nil), http.StatusUnauthorized)

		// Beyond its tenant: the claims name the other tenant, signed with
		// acme's secret (whose id the other tenant does not have).
		cross := f.mint(tally.EmbedClaims{Tenant: f.other.slug, Subject: &tally.EmbedSubject{UserID: "alice"}, Metrics: []string{"file_uploads_daily"}})
		wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(cross)), http.StatusUnauthorized)

		// Beyond its expiry, or a lifetime past the cap.
		now := time.Now().Unix()
		expired, err := tally.SignEmbedToken(f.secret.Secret, tally.EmbedClaims{Tenant: f.o.slug, KeyID: f.secret.ID,
			Metrics: []string{"file_uploads_daily"}, IssuedAt: now - 120, ExpiresAt: now - 60})
		check(t, err)
		if p := wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(expired)), http.StatusUnauthorized); !strings.Contains(p.Detail, "expired") {
			t.Errorf("expired token: %+v", p)
		}
		long, err := tally.SignEmbedToken(f.secret.Secret, tally.EmbedClaims{Tenant: f.o.slug, KeyID: f.secret.ID,
			Metrics: []string{"file_uploads_daily"}, IssuedAt: now, ExpiresAt: now + 2*86400})
		check(t, err)
		wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(long)), http.StatusUnauthorized)

		// Tampered: another subject under alice's signature; alg none.
		parts := strings.Split(alice, ".")
		claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"alice"`, `"bob"`, 1))) + "." + parts[2]
		wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(forged)), http.StatusUnauthorized)
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT","kid":"`+itoa(f.secret.ID)+`"}`)) + "." + parts[1] + "."
		wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(none)), http.StatusUnauthorized)

		// A token minted by the API reads the same.
		var minted struct {
			Token string `json:"token"`
			URL   string `json:"url"`
		}
		h.do("POST", "/api/analytics/embed/tokens", map[string]any{"subject": map[string]any{"user_id": "alice"},
			"metrics": []string{"file_uploads_daily"}, "ttl_seconds": 600}, f.o.h()).want(t, http.StatusCreated).decode(t, &minted)
		if !strings.Contains(minted.URL, "/embed/usage?token=") {
			t.Errorf("minted url %q", minted.URL)
		}
		h.do("GET", "/api/embed/usage", nil, bearer(minted.Token)).want(t, http.StatusOK).decode(t, &u)
		if got := u.total("file_uploads_daily"); got != 3 {
			t.Errorf("minted token: alice's uploads = %v; want 3", got)
		}
		for _, body := range []string{`{"metrics":[]}`, `{"metrics":["file_uploads_daily"],"ttl_seconds":999999}`,
			`{"metrics":["file_uploads_daily"],"subject":{"user_id":"a","path":"props.x","value":"y"}}`} {
			wantProblem(t, h.do("POST", "/api/analytics/embed/tokens", body, f.o.h()), http.StatusBadRequest)
		}

		// The secret is shown once; revoking it ends every token at once.
		r := h.do("GET", "/api/analytics/embed/secrets", nil, f.o.h()).want(t, http.StatusOK)
		if strings.Contains(string(r.Body), f.secret.Secret) {
			t.Errorf("the list shows the secret: %s", r)
		}
		h.do("DELETE", "/api/analytics/embed/secrets/"+itoa(f.secret.ID), nil, f.other.h()).want(t, http.StatusNotFound)
		var second embedSecret
		h.do("POST", "/api/analytics/embed/secrets", map[string]any{"name": "rotation"}, f.o.h()).want(t, http.StatusCreated).decode(t, &second)
		rotated, err := client.MintEmbedToken(second.Secret, tally.EmbedClaims{Tenant: f.o.slug, KeyID: second.ID,
			Subject: &tally.EmbedSubject{UserID: "alice"}, Metrics: []string{"file_uploads_daily"}})
		check(t, err)
		// A token naming one secret's id but signed with another is refused.
		wrongKey, err := client.MintEmbedToken(second.Secret, tally.EmbedClaims{Tenant: f.o.slug, KeyID: f.secret.ID,
			Metrics: []string{"file_uploads_daily"}})
		check(t, err)
		wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(wrongKey)), http.StatusUnauthorized)
		h.do("DELETE", "/api/analytics/embed/secrets/"+itoa(f.secret.ID), nil, f.o.h()).want(t, http.StatusNoContent)
		for _, tok := range []string{alice, all, minted.Token} {
			wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(tok)), http.StatusUnauthorized)
		}
		// Another secret's tokens live on.
		h.do("GET", "/api/embed/usage", nil, bearer(rotated)).want(t, http.StatusOK)
		h.do("DELETE", "/api/analytics/embed/secrets/"+itoa(second.ID), nil, f.o.h()).want(t, http.StatusNoContent)
		wantProblem(t, h.do("GET", "/api/embed/usage", nil, bearer(rotated)), http.StatusUnauthorized)
		wantProblem(t, h.do("POST", "/api/analytics/embed/tokens", map[string]any{"metrics": []string{"file_uploads_daily"}}, f.o.h()), http.StatusBadRequest)
		audit := h.do("GET", "/api/analytics/audit", nil, f.o.h()).want(t, http.StatusOK).Body
		for _, action := range []string{"embed_secret.created", "embed_secret.revoked"} {
			if !strings.Contains(string(audit), action) {
				t.Errorf("audit lacks %s", action)
			}
		}
	})
}

func TestEmbedSettingsAndPage(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		f := newEmbedFixture(t, opts...)
		h := f.h
		defer h.noPanic(t)
		for _, body := range []string{`{"allowed_origins":["https://a.com/path"]}`, `{"allowed_origins":["*"]}`,
			`{"theme":{"primary":"red;}"}}`, `{"theme":{"logo_url":"javascript:alert(1)"}}`} {
			p := wantProblem(t, h.do("PUT", "/api/analytics/embed/settings", body, f.o.h()), http.StatusBadRequest)
			if len(p.Errors) == 0 {
				t.Errorf("%s: no field named: %+v", body, p)
			}
		}
		// No origin allowed yet: no page may frame the view.
		alice := f.mint(tally.EmbedClaims{Subject: &tally.EmbedSubject{UserID: "alice"}, Metrics: []string{"file_uploads_daily"}})
		r := h.do("GET", "/embed/usage?token="+url.QueryEscape(alice), nil, nil).want(t, http.StatusOK)
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("CSP %q without allowed origins; want frame-ancestors 'none'", csp)
		}
		settings := map[string]any{"allowed_origins": []string{"http://127.0.0.1:9999"}, "theme": map[string]any{"primary": "#ff0000"}}
		h.do("PUT", "/api/analytics/embed/settings", settings, f.o.h()).want(t, http.StatusOK)
		got := h.do("GET", "/api/analytics/embed/settings", nil, f.o.h()).want(t, http.StatusOK).Body
		if !strings.Contains(string(got), "http://127.0.0.1:9999") || !strings.Contains(string(got), "#ff0000") {
			t.Errorf("settings = %s", got)
		}
		if audit := h.do("GET", "/api/analytics/audit", nil, f.o.h()).want(t, http.StatusOK).Body; !strings.Contains(string(audit), "embed_settings.set") {
			t.Error("audit lacks embed_settings.set")
		}

		r = h.do("GET", "/embed/usage?token="+url.QueryEscape(alice), nil, nil).want(t, http.StatusOK)
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors http://127.0.0.1:9999") {
			t.Errorf("CSP %q lacks the tenant's frame-ancestors", csp)
		}
		if xfo := r.Header.Get("X-Frame-Options"); xfo != "" {
			t.Errorf("X-Frame-Options %q on the embed page", xfo)
		}
		body := string(r.Body)
		for _, want := range []string{`id="embed-subject">alice<`, "3 of 10", "--primary:#ff0000"} {
			if !strings.Contains(body, want) {
				t.Errorf("page lacks %q", want)
			}
		}
		r = h.do("GET", "/embed/usage?token="+url.QueryEscape(alice)+"&metric=builds_daily", nil, nil).want(t, http.StatusForbidden)
		if !strings.Contains(string(r.Body), `id="embed-refusal"`) {
			t.Errorf("out-of-scope page: %s", r)
		}
		h.do("GET", "/embed/usage?token=nonsense", nil, nil).want(t, http.StatusUnauthorized)
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
