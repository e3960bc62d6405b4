package server

import (
	"bytes"
	"crypto/rand"
	"embed"
	"html/template"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"text/template/parse"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/secret"
)

//go:embed web/templates web/static
var webFS embed.FS

// csp is the dashboard's Content-Security-Policy: no inline script or
// style, nothing from other origins, no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// web renders the dashboard's templates and serves its assets, from the
// binary or (in development) from disk.
type web struct {
	dev      bool
	root     fs.FS // holds templates/ and static/
	mu       sync.Mutex
	tmpl     *template.Template
	rendered map[string]bool // template names rendered, for the coverage test
}

func newWeb(devDir string) (*web, error) {
	w := &web{rendered: map[string]bool{}}
	if devDir != "" {
		w.dev, w.root = true, os.DirFS(devDir)
	} else {
		sub, err := fs.Sub(webFS, "web")
		if err != nil {
			return nil, err
		}
		w.root = sub
	}
	t, err := w.parse()
	if err != nil {
		return nil, err
	}
	w.tmpl = t
	return w, nil
}

func (w *web) parse() (*template.Template, error) {
	return template.New("").ParseFS(w.root, "templates/*.html")
}

// pages lists the template files that are pages: those with content at
// their top level. A file holding only {{define}} blocks (layout.html) is
// a set of partials, exercised through the pages that include them.
func pages(t *template.Template, root fs.FS) ([]string, error) {
	names, err := fs.Glob(root, "templates/*.html")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		name := path.Base(n)
		if p := t.Lookup(name); p != nil && p.Tree != nil && !parse.IsEmptyTree(p.Tree.Root) {
			out = append(out, name)
		}
	}
	return out, nil
}

// render executes the named template into the response with the
// dashboard's security headers.
func (w *web) render(rw http.ResponseWriter, status int, name string, data any) error {
	return w.renderCSP(rw, status, name, data, csp)
}

// renderCSP is render with the page's own Content-Security-Policy.
func (w *web) renderCSP(rw http.ResponseWriter, status int, name string, data any, policy string) error {
	t := w.tmpl
	if w.dev {
		var err error
		if t, err = w.parse(); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		return err
	}
	w.mu.Lock()
	w.rendered[name] = true
	w.mu.Unlock()
	h := rw.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", policy)
	h.Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_, err := rw.Write(buf.Bytes())
	return err
}

// Rendered lists the dashboard pages rendered so far and every page
// template file (partial-only files excluded), for the test that fails
// when a page is never rendered.
func (s *Server) Rendered() (rendered map[string]bool, all []string) {
	s.web.mu.Lock()
	defer s.web.mu.Unlock()
	out := map[string]bool{}
	for k, v := range s.web.rendered {
		out[k] = v
	}
	all, _ = pages(s.web.tmpl, s.web.root)
	return out, all
}

const loginCSRFCookie = "tally_login_csrf"

func (s *Server) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: s.cfg.SecureCookies,
		SameSite: http.SameSiteLaxMode, MaxAge: maxAge})
}

// pageMeta is what the shared layout needs of every page.
type pageMeta struct {
	Title  string // the page's name in the window title
	Charts bool   // load the chart library's stylesheet
	Nav    string // the current page of the top navigation ("analytics", "members", "meters")
}

type loginPage struct {
	pageMeta
	CSRF  string
	Email string
	Error string
}

func (s *Server) handleUILoginForm() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := rand.Text()
		s.setCookie(w, loginCSRFCookie, token, 3600)
		if err := s.web.render(w, http.StatusOK, "login.html", loginPage{pageMeta: pageMeta{Title: "Sign in"}, CSRF: token}); err != nil {
			s.writeError(w, r, tally.Internal(err))
		}
	})
}

func (s *Server) handleUILogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			s.writeError(w, r, tally.Invalid("invalid form"))
			return
		}
		email := r.PostFormValue("email")
		c, err := r.Cookie(loginCSRFCookie)
		if err != nil || c.Value == "" || !secret.Equal([]byte(c.Value), []byte(r.PostFormValue("csrf_token"))) {
			s.renderLoginError(w, r, email, "Your session form expired. Please try again.", http.StatusForbidden)
			return
		}
		res, err := s.login(r, email, r.PostFormValue("password"), "")
		if err != nil {
			status := http.StatusUnauthorized
			msg := "Invalid email or password."
			switch tally.ErrorCodeOf(err) {
			case tally.EUnauthorized:
			case tally.ERateLimited:
				status, msg = http.StatusTooManyRequests, "Too many failed attempts. Please wait a few minutes."
			case tally.EUnavailable:
				status, msg = http.StatusServiceUnavailable, "Too many sign-ins at once. Please try again in a moment."
			case tally.EInvalid:
				status = http.StatusBadRequest
			default:
				status, msg = http.StatusInternalServerError, "Something went wrong. Please try again."
			}
			setRetryAfter(w, err)
			s.renderLoginError(w, r, email, msg, status)
			return
		}
		s.setCookie(w, loginCSRFCookie, "", -1)
		s.setCookie(w, sessionCookie, res.Token, int(s.cfg.SessionTTL.Seconds()))
		http.Redirect(w, r, "/ui/analytics", http.StatusSeeOther)
	})
}

func (s *Server) renderLoginError(w http.ResponseWriter, r *http.Request, email, msg string, status int) {
	token := rand.Text()
	s.setCookie(w, loginCSRFCookie, token, 3600)
	if err := s.web.render(w, status, "login.html", loginPage{pageMeta: pageMeta{Title: "Sign in"}, CSRF: token, Email: email, Error: msg}); err != nil {
		s.writeError(w, r, tally.Internal(err))
	}
}

func (s *Server) handleUILogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := s.authenticate(r)
		if err == nil {
			err = checkCSRF(r, c)
		}
		if err != nil {
			http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
			return
		}
		if err := s.Accounts.Logout(r.Context(), c.token); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.setCookie(w, sessionCookie, "", -1)
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	})
}

// rangeOption is one button of the range picker.
type rangeOption struct{ Value, Label string }

// kpiCard is one KPI card: the key in /api/analytics/metrics and its label.
type kpiCard struct{ Key, Label string }

// rangeOptions are the range picker's buttons, one per tally.KPIRanges.
func rangeOptions() []rangeOption {
	out := make([]rangeOption, len(tally.KPIRanges))
	for i, r := range tally.KPIRanges {
		out[i] = rangeOption{r.Name, r.Label}
	}
	return out
}

// kpiCards are the dashboard's cards, one per tally.KPIs.
func kpiCards() []kpiCard {
	out := make([]kpiCard, len(tally.KPIs))
	for i, k := range tally.KPIs {
		out[i] = kpiCard{k.Name, k.Label}
	}
	return out
}

type analyticsPage struct {
	pageMeta
	User     *tally.User
	Tenant   tally.Membership
	Timezone string // the charts' and tables' clock: the tz parameter, else the tenant's zone
	// TenantTimezone is the tenant's own IANA zone (UTC when unset).
	TenantTimezone string
	Switchable     []tally.Membership // tenants the user may open here (admin or owner)
	CSRF           string
	Range          string
	Ranges         []rangeOption
	KPIs           []kpiCard
}

type forbiddenPage struct {
	pageMeta
	User         *tally.User
	Requested    string             // the tenant asked for, if any
	AdminTenants []tally.Membership // where the user may go instead
	CSRF         string
}

// handleUIAnalytics serves the analytics dashboard of a tenant
// (uiAdminPage).
func (s *Server) handleUIAnalytics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, tenant, admin := s.uiAdminPage(w, r)
		if tenant == nil {
			return
		}
		q := r.URL.Query()
		t, err := s.Accounts.TenantBySlug(r.Context(), tenant.Slug)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		tz := t.Timezone
		if tz == "" || tz == "Local" {
			tz = "UTC"
		}
		tenantTZ := tz
		if v := q.Get("tz"); v != "" && v != "Local" {
			if _, err := time.LoadLocation(v); err == nil {
				tz = v // the viewer's choice; an unknown zone falls back to the tenant's
			}
		}
		rng := q.Get("range")
		if _, ok := tally.KPIRangeByName(rng); !ok {
			rng = tally.DefaultKPIRange.Name
		}
		page := analyticsPage{pageMeta: pageMeta{Title: "Analytics · " + tenant.Name, Charts: true, Nav: "analytics"}, User: c.p.User,
			Tenant: *tenant, Timezone: tz, TenantTimezone: tenantTZ, Switchable: admin, CSRF: csrfToken(c.token), Range: rng, Ranges: rangeOptions(), KPIs: kpiCards()}
		if err := s.web.render(w, http.StatusOK, "analytics.html", page); err != nil {
			s.writeError(w, r, tally.Internal(err))
		}
	})
}

type metersPage struct {
	pageMeta
	User         *tally.User
	Tenant       tally.Membership
	Timezone     string // the tenant's IANA zone: the chart's default
	CSRF         string
	Aggregations []tally.MeterAggregation
}

// handleUIMeters serves the meters page of a tenant (uiAdminPage): list,
// define, edit and chart meters, through the JSON API.
func (s *Server) handleUIMeters() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, tenant, _ := s.uiAdminPage(w, r)
		if tenant == nil {
			return
		}
		t, err := s.Accounts.TenantBySlug(r.Context(), tenant.Slug)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		tz := t.Timezone
		if tz == "" || tz == "Local" {
			tz = "UTC"
		}
		page := metersPage{pageMeta: pageMeta{Title: "Meters · " + tenant.Name, Charts: true, Nav: "meters"}, User: c.p.User,
			Tenant: *tenant, Timezone: tz, CSRF: csrfToken(c.token), Aggregations: tally.MeterAggregations}
		if err := s.web.render(w, http.StatusOK, "meters.html", page); err != nil {
			s.writeError(w, r, tally.Internal(err))
		}
	})
}

func (s *Server) handleUIStatic() http.Handler {
	static, _ := fs.Sub(s.web.root, "static")
	fsrv := http.StripPrefix("/ui/static/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only files are served: an unknown file or a directory is a
		// 404 problem, not the file server's plain text or listing.
		name := strings.TrimPrefix(r.URL.Path, "/ui/static/")
		if fi, err := fs.Stat(static, name); !fs.ValidPath(name) || err != nil || fi.IsDir() {
			s.writeError(w, r, tally.Errorf(tally.ENotFound, "no such file"))
			return
		}
		if !s.web.dev {
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		fsrv.ServeHTTP(w, r)
	})
}
