package server

import (
	"crypto/rand"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// embedPage is the data of embed.html: the scope's usage over the last 30
// days and its quotas, or a refusal.
type embedPage struct {
	pageMeta
	Refusal string // why the token is refused; the rest is empty then
	Subject string
	Theme   tally.EmbedTheme
	Style   template.CSS // the theme's custom properties (validated colours)
	Nonce   string
	Usage   []embedUsage
	Quotas  []tally.QuotaStatus
	Data    any // the charts' series, for embed.js
}

// embedPolicy is the embed page's Content-Security-Policy: the
// dashboard's, but framable by the tenant's allowed origins only, the
// theme's one inline style by nonce and its logo's origin as an image.
func embedPolicy(ancestors []string, nonce, logo string) string {
	fa := "'none'"
	if len(ancestors) > 0 {
		fa = strings.Join(ancestors, " ")
	}
	img := "'self' data:"
	if u, err := url.Parse(logo); logo != "" && err == nil {
		img += " " + u.Scheme + "://" + u.Host
	}
	return "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-" + nonce + "'; img-src " + img +
		"; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors " + fa
}

// handleEmbedPage serves /embed/usage?token=…: the subject's usage and
// quota bars and charts, themed per tenant. A refused token gets a page
// saying why (401 or 403); that page shows no data and may be framed by
// any page, so a host sees the refusal rather than a blocked frame.
func (s *Server) handleEmbedPage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Del("X-Frame-Options") // frame-ancestors decides instead
		nonce := rand.Text()
		page := embedPage{pageMeta: pageMeta{Title: "Usage", Charts: true}, Nonce: nonce}
		refuse := func(err error) {
			p := s.errorAnswer(w, r, err)
			page.Refusal = p.Detail
			policy := strings.Replace(embedPolicy(nil, nonce, ""), "frame-ancestors 'none'", "frame-ancestors *", 1)
			if err := s.web.renderCSP(w, p.Status, "embed.html", page, policy); err != nil {
				s.log.ErrorContext(r.Context(), "render embed", "err", err)
			}
		}
		if !s.cfg.AnalyticsEnabled {
			refuse(tally.Errorf(tally.EUnavailable, "analytics disabled"))
			return
		}
		ctx := r.Context()
		e, err := s.verifyEmbed(ctx, r.URL.Query().Get("token"))
		if err != nil {
			refuse(err)
			return
		}
		settings, err := s.Store.EmbedSettings(ctx, e.Tenant.ID)
		if err != nil {
			refuse(err)
			return
		}
		loc, err := location(url.Values{}, e.Tenant)
		if err != nil {
			refuse(err)
			return
		}
		now := s.now().In(loc)
		y, m, d := now.Date()
		from, to := time.Date(y, m, d-29, 0, 0, 0, 0, loc), time.Date(y, m, d+1, 0, 0, 0, 0, loc)
		if page.Usage, err = s.embedUsageOf(ctx, e, embedMetrics(r.URL.Query(), e), from, to, loc); err != nil {
			refuse(err)
			return
		}
		if page.Quotas, err = s.embedQuotas(ctx, e); err != nil {
			refuse(err)
			return
		}
		if sub := e.Claims.Subject; sub != nil {
			_, page.Subject = sub.Filter()
		}
		page.Theme = settings.Theme
		page.Style = template.CSS(themeStyle(settings.Theme))
		page.Data = page.Usage
		if err := s.web.renderCSP(w, http.StatusOK, "embed.html", page, embedPolicy(settings.AllowedOrigins, nonce, settings.Theme.LogoURL)); err != nil {
			s.log.ErrorContext(ctx, "render embed", "err", err)
		}
	})
}

// themeStyle is the CSS of a theme: custom properties for the colours
// set. Colours are validated (#rgb or #rrggbb), so nothing else can be in
// them.
func themeStyle(t tally.EmbedTheme) string {
	var b strings.Builder
	b.WriteString(":root{")
	for _, c := range []struct{ name, v string }{{"--primary", t.Primary}, {"--bg", t.Background}, {"--text", t.Text}} {
		if c.v != "" && tally.ValidEmbedColour(c.v) {
			b.WriteString(c.name + ":" + c.v + ";")
		}
	}
	b.WriteString("}")
	return b.String()
}
