package server_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tallyhq/tally/internal/app"
)

func withMetricsToken(token string) harnessOption {
	return func(c *app.Config) { c.Server.MetricsToken = token }
}

// TestAPIOperatorSurfaces checks that the metrics and the cross-tenant
// readiness figures are never anonymous on the public listener: /metrics
// is 404 without METRICS_TOKEN and 401 without the right bearer token,
// while the operator listener serves both, with tenants labelled by slug.
func TestAPIOperatorSurfaces(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("acme")
		k := h.createKey(o, "analytics:read", "analytics:write", "analytics:admin")
		h.send(o.h(), map[string]any{"batch": []map[string]any{{"event": "secret.thing", "source": "web"}}})

		for _, tc := range []struct {
			name    string
			headers map[string]string
			status  int
		}{
			{"anonymous", nil, http.StatusUnauthorized},
			{"wrong token", hdr("operator-metrics-token-for-tesTS", ""), http.StatusUnauthorized},
			{"token prefix", hdr(harnessMetricsToken[:10], ""), http.StatusUnauthorized},
			{"user session", o.h(), http.StatusUnauthorized},
			{"admin API key", hdr(k.Key, ""), http.StatusUnauthorized},
			{"basic scheme", map[string]string{"Authorization": "Basic " + harnessMetricsToken}, http.StatusUnauthorized},
			{"token in a cookie", map[string]string{"Cookie": "tally_session=" + harnessMetricsToken}, http.StatusUnauthorized},
			{"token in the query", nil, http.StatusUnauthorized},
		} {
			t.Run(tc.name, func(t *testing.T) {
				path := "/metrics"
				if tc.name == "token in the query" {
					path += "?token=" + harnessMetricsToken
				}
				r := h.doT(t, "GET", path, nil, tc.headers)
				p := wantProblem(t, r, tc.status)
				if p.Detail == "" {
					t.Errorf("%s: problem without detail", r)
				}
				if strings.Contains(string(r.Body), "secret.thing") {
					t.Errorf("%s shows a tenant's event names", r)
				}
			})
		}
		text := h.metrics()
		if !strings.Contains(text, `tenant="acme"`) || !strings.Contains(text, `event="secret.thing"`) {
			t.Errorf("metrics with the token lack the tenant slug label:\n%.2000s", text)
		}

		// Anonymous readiness: health only, no figure summed over tenants.
		r := h.do("GET", "/readiness", nil, nil).want(t, http.StatusOK)
		if strings.Contains(string(r.Body), "events_today") {
			t.Errorf("anonymous readiness shows events_today: %s", r.Body)
		}
		r = h.do("GET", "/readiness", nil, o.h()).want(t, http.StatusOK)
		if strings.Contains(string(r.Body), "events_today") {
			t.Errorf("a tenant owner's readiness shows events_today: %s", r.Body)
		}
		r = h.do("GET", "/readiness", nil, hdr(harnessMetricsToken, "")).want(t, http.StatusOK)
		if !strings.Contains(string(r.Body), `"events_today":`) {
			t.Errorf("the operator's readiness lacks events_today: %s", r.Body)
		}

		// The operator listener needs no credential, and answers unknown
		// paths as problems.
		op := httptest.NewServer(h.app.OperatorHandler())
		t.Cleanup(op.Close)
		opH := &harness{t: t, srv: op, client: op.Client()}
		r = opH.do("GET", "/metrics", nil, nil).want(t, http.StatusOK)
		if !strings.Contains(string(r.Body), `tenant="acme"`) {
			t.Errorf("operator /metrics lacks tenant=\"acme\"")
		}
		r = opH.do("GET", "/readiness", nil, nil).want(t, http.StatusOK)
		if !strings.Contains(string(r.Body), `"events_today":`) {
			t.Errorf("operator readiness lacks events_today: %s", r.Body)
		}
		opH.do("GET", "/healthz", nil, nil).want(t, http.StatusOK)
		wantProblem(t, opH.do("GET", "/api/auth/me", nil, nil), http.StatusNotFound)
		wantProblem(t, opH.do("POST", "/metrics", nil, nil), http.StatusNotFound)
		h.noPanic(t)
	})

	t.Run("no token configured", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, withMetricsToken(""))
		for _, hd := range []map[string]string{nil, hdr(harnessMetricsToken, ""), hdr("x", "")} {
			wantProblem(t, h.do("GET", "/metrics", nil, hd), http.StatusNotFound)
			r := h.do("GET", "/readiness", nil, hd).want(t, http.StatusOK)
			if strings.Contains(string(r.Body), "events_today") {
				t.Errorf("readiness without METRICS_TOKEN shows events_today: %s", r.Body)
			}
		}
	})
}
