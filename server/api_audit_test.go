package server_test

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// auditEntry is an entry of GET /api/analytics/audit.
type auditEntry struct {
	ID     int64          `json:"id"`
	Actor  string         `json:"actor"`
	Action string         `json:"action"`
	Target string         `json:"target"`
	Meta   map[string]any `json:"meta"`
}

// auditList reads one page of the audit log with query.
func (h *harness) auditList(t *testing.T, headers map[string]string, query url.Values) []auditEntry {
	t.Helper()
	r := h.do("GET", "/api/analytics/audit?"+query.Encode(), nil, headers).want(t, http.StatusOK)
	var page struct {
		Entries []auditEntry `json:"entries"`
	}
	r.decode(t, &page)
	return page.Entries
}

// TestAPIAuditActions performs every audited action over HTTP and checks
// its entry: action, actor and target, found by the action and actor
// filters, with no secret (password, session token, API key) in the log or
// its CSV export.
func TestAPIAuditActions(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		defer h.noPanic(t)
		o := h.newTenant(h.uniq("audit"))
		ownerActor := "user:" + o.email

		memberEmail := h.uniq("member") + "@example.com"
		memberToken, memberID := h.user(memberEmail)
		h.join(o, memberEmail, "member", memberToken)
		h.do("GET", "/api/analytics/audit", nil, hdr(memberToken, o.slug)).want(t, http.StatusForbidden)
		h.do("DELETE", fmt.Sprintf("/api/tenants/%s/members/%d", o.slug, memberID), nil, o.h()).want(t, http.StatusNoContent)

		h.do("PATCH", "/api/tenants/"+o.slug, map[string]any{"name": "Renamed", "retention_days": 30}, o.h()).
			want(t, http.StatusOK)
		key := h.createKey(o, "analytics:write")
		h.do("DELETE", fmt.Sprintf("/api/keys/%d", key.ID), nil, o.h()).want(t, http.StatusNoContent)
		h.do("POST", "/api/analytics/events", map[string]any{"event": "x.y"}, hdr(key.Key, "")).
			want(t, http.StatusUnauthorized)
		const wrongPassword = "wrong-password-for-audit"
		h.do("POST", "/api/auth/login", map[string]any{"email": o.email, "password": wrongPassword}, nil).
			want(t, http.StatusUnauthorized)
		h.do("PUT", "/api/analytics/quotas/api_calls", map[string]any{"limit": 10, "enforced": true}, o.h()).
			want(t, http.StatusOK)
		h.send(o.h(), map[string]any{"event": "app.opened", "user_id": "u_gone"})
		h.do("DELETE", "/api/analytics/users/u_gone/events", nil, o.h()).want(t, http.StatusOK)
		h.do("GET", "/api/analytics/export.csv", nil, o.h()).want(t, http.StatusOK)
		h.do("POST", "/api/analytics/rollup", nil, o.h()).want(t, http.StatusOK)
		exp := h.do("GET", "/api/analytics/audit/export.csv", nil, o.h()).want(t, http.StatusOK)

		for _, tc := range []struct{ action, actor, target string }{
			{"tenant.created", ownerActor, o.slug},
			{"invitation.created", ownerActor, memberEmail},
			{"invitation.accepted", "user:" + memberEmail, memberEmail},
			{"access.denied", "user:" + memberEmail, "GET /api/analytics/audit"},
			{"member.removed", ownerActor, fmt.Sprintf("user:%d", memberID)},
			{"tenant.updated", ownerActor, o.slug},
			{"key.created", ownerActor, key.Prefix},
			{"key.revoked", ownerActor, fmt.Sprintf("key:%d", key.ID)},
			{"auth.key_failed", "system", key.Prefix},
			{"auth.login_failed", "system", o.email},
			{"quota.set", ownerActor, "api_calls"},
			{"events.user_deleted", ownerActor, "u_gone"},
			{"events.exported", ownerActor, "export.csv"},
			{"rollup.run", ownerActor, "manual"},
			{"audit.exported", ownerActor, "audit.csv"},
		} {
			got := h.auditList(t, o.h(), url.Values{"action": {tc.action}})
			if len(got) == 0 {
				t.Errorf("%s: no audit entry", tc.action)
				continue
			}
			e := got[0]
			if e.Action != tc.action || e.Actor != tc.actor || e.Target != tc.target {
				t.Errorf("%s: entry %+v, want actor %q target %q", tc.action, e, tc.actor, tc.target)
			}
			// The actor filter finds it too, and only that actor's entries.
			for _, f := range h.auditList(t, o.h(), url.Values{"action": {tc.action}, "actor": {tc.actor}}) {
				if f.Actor != tc.actor || f.Action != tc.action {
					t.Errorf("filter actor=%s action=%s gave %+v", tc.actor, tc.action, f)
				}
			}
		}
		// The member's own entries: joining, then the refusal (newest first).
		if got := h.auditList(t, o.h(), url.Values{"actor": {"user:" + memberEmail}}); len(got) != 2 ||
			got[0].Action != "access.denied" || got[1].Action != "invitation.accepted" {
			t.Errorf("the member's entries: %+v", got)
		}
		upd := h.auditList(t, o.h(), url.Values{"action": {"tenant.updated"}})[0]
		if ch := fmt.Sprint(upd.Meta["changes"]); !strings.Contains(ch, "Renamed") || !strings.Contains(ch, "30") {
			t.Errorf("tenant.updated changes %v", upd.Meta)
		}

		// An open range is stored as "to": null, not as the zero time.
		ex := h.auditList(t, o.h(), url.Values{"action": {"events.exported"}})[0]
		if f, ok := ex.Meta["filters"].(map[string]any); !ok || f["to"] != nil || f["from"] == nil {
			t.Errorf("events.exported filters %v, want a from and \"to\": null", ex.Meta)
		}

		all := h.do("GET", "/api/analytics/audit?limit=1000", nil, o.h()).want(t, http.StatusOK)
		for _, secret := range []string{harnessPassword, wrongPassword, o.token, memberToken, key.Key} {
			if strings.Contains(string(all.Body), secret) || strings.Contains(string(exp.Body), secret) {
				t.Errorf("a secret (%.6s…) is in the audit log", secret)
			}
		}

		// The CSV export has the list's entries, newest first, under its
		// header row (the audit.exported entry of that export came after).
		rows, err := csv.NewReader(strings.NewReader(string(exp.Body))).ReadAll()
		if err != nil {
			t.Fatalf("audit CSV: %v\n%s", err, exp.Body)
		}
		if ct := exp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("Content-Type %q", ct)
		}
		if strings.Join(rows[0], ",") != "id,at,actor,action,target,meta" {
			t.Fatalf("header %v", rows[0])
		}
		list := h.auditList(t, o.h(), url.Values{"limit": {"1000"}})
		if len(rows)-1 != len(list)-1 { // the list also holds audit.exported
			t.Fatalf("%d CSV rows, %d entries listed", len(rows)-1, len(list))
		}
		for i, row := range rows[1:] {
			e := list[i+1]
			if row[0] != fmt.Sprint(e.ID) || row[2] != e.Actor || row[3] != e.Action || row[4] != e.Target {
				t.Errorf("CSV row %d %v, entry %+v", i, row, e)
			}
		}
		h.do("GET", "/api/analytics/audit/export.csv?limit=2&action=key.created", nil, o.h()).want(t, http.StatusOK)
		lim := h.do("GET", "/api/analytics/audit/export.csv?limit=2", nil, o.h()).want(t, http.StatusOK)
		if lim.Header.Get("X-Export-Truncated") != "true" || strings.Count(string(lim.Body), "\n") != 3 {
			t.Errorf("limit=2 export: truncated %q\n%s", lim.Header.Get("X-Export-Truncated"), lim.Body)
		}
		h.do("GET", "/api/analytics/audit/export.csv?limit=0", nil, o.h()).want(t, http.StatusBadRequest)
	})
}
