package server_test

import (
	"bytes"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func TestAPITenantCreateAndList(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ada, _ := h.user("ada@example.com")
	bob, _ := h.user("bob@example.com")

	r := h.do("POST", "/api/tenants", map[string]any{"name": "Acme Inc", "slug": "acme", "allow_signup": true}, hdr(ada, ""))
	r.want(t, http.StatusCreated)
	var created struct {
		Tenant struct {
			ID          int64     `json:"id"`
			Slug        string    `json:"slug"`
			Name        string    `json:"name"`
			AllowSignup bool      `json:"allow_signup"`
			CreatedAt   time.Time `json:"created_at"`
		} `json:"tenant"`
	}
	r.decode(t, &created)
	if tn := created.Tenant; tn.ID <= 0 || tn.Slug != "acme" || tn.Name != "Acme Inc" || !tn.AllowSignup || time.Since(tn.CreatedAt) > time.Minute {
		t.Errorf("tenant %+v", tn)
	}
	h.createTenant(ada, "acme-2", false)
	h.createTenant(bob, "bobco", false)

	bad := []string{"", "a", "-acme", "Acme", "acme_inc", "acme inc", "acme.io", "ácme", "a" + strings.Repeat("b", 63), "acme/x"}
	for _, slug := range bad {
		t.Run("bad slug "+strconv.Quote(slug), func(t *testing.T) {
			r := h.doT(t, "POST", "/api/tenants", map[string]any{"name": "X", "slug": slug}, hdr(ada, ""))
			if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField("slug") {
				t.Errorf("%s: does not name slug", r)
			}
		})
	}
	// The longest valid slug is 63 characters.
	h.createTenant(ada, "a"+strings.Repeat("b", 62), false)

	p := wantProblem(t, h.do("POST", "/api/tenants", map[string]any{"name": "", "slug": "noname"}, hdr(ada, "")), http.StatusBadRequest)
	if !p.hasField("name") {
		t.Errorf("empty name: %+v", p)
	}
	wantProblem(t, h.do("POST", "/api/tenants", map[string]any{"name": "Again", "slug": "acme"}, hdr(bob, "")), http.StatusConflict)
	wantProblem(t, h.do("POST", "/api/tenants", map[string]any{"name": "X", "slug": "xx", "plan": "pro"}, hdr(bob, "")), http.StatusBadRequest)
	wantProblem(t, h.do("POST", "/api/tenants", map[string]any{"name": "X", "slug": "xx"}, nil), http.StatusUnauthorized)

	list := func(token string) []string {
		t.Helper()
		r := h.do("GET", "/api/tenants", nil, hdr(token, ""))
		r.want(t, http.StatusOK)
		var v struct {
			Tenants []struct {
				Slug string `json:"slug"`
				Name string `json:"name"`
				Role string `json:"role"`
			} `json:"tenants"`
		}
		r.decode(t, &v)
		var out []string
		for _, m := range v.Tenants {
			if m.Role != "owner" || m.Name == "" {
				t.Errorf("membership %+v", m)
			}
			out = append(out, m.Slug)
		}
		slices.Sort(out)
		return out
	}
	if got, want := list(ada), []string{"a" + strings.Repeat("b", 62), "acme", "acme-2"}; !slices.Equal(got, want) {
		t.Errorf("ada's tenants %v, want %v", got, want)
	}
	if got := list(bob); !slices.Equal(got, []string{"bobco"}) {
		t.Errorf("bob's tenants %v", got)
	}
}

func TestAPITenantUpdate(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	adminTok, _ := h.member(o, "admin")
	memberTok, _ := h.member(o, "member")
	path := "/api/tenants/acme"

	type tenantAnswer struct {
		Tenant struct {
			Slug          string `json:"slug"`
			Name          string `json:"name"`
			AllowSignup   bool   `json:"allow_signup"`
			Timezone      string `json:"timezone"`
			RetentionDays int    `json:"retention_days"`
			WebhookURL    string `json:"webhook_url"`
		} `json:"tenant"`
		WebhookSecret *string `json:"webhook_secret"`
	}
	patch := func(token string, body any) *apiResponse {
		t.Helper()
		return h.do("PATCH", path, body, hdr(token, ""))
	}

	r := patch(adminTok, map[string]any{"name": "Acme GmbH", "timezone": "Europe/Berlin", "allow_signup": true, "retention_days": 90})
	r.want(t, http.StatusOK)
	var a tenantAnswer
	r.decode(t, &a)
	if a.Tenant.Name != "Acme GmbH" || a.Tenant.Timezone != "Europe/Berlin" || !a.Tenant.AllowSignup || a.Tenant.RetentionDays != 90 || a.WebhookSecret != nil {
		t.Errorf("patched %+v", a)
	}

	for _, tt := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"timezone": "Mars/Olympus_Mons"}, "timezone"},
		{map[string]any{"timezone": ""}, "timezone"},
		{map[string]any{"timezone": "Local"}, "timezone"},
		{map[string]any{"retention_days": 0}, "retention_days"},
		{map[string]any{"webhook_url": "ftp://example.com/x"}, "webhook_url"},
		{map[string]any{"webhook_url": "http://127.0.0.1:9/hook"}, "webhook_url"},
		{map[string]any{"webhook_url": "http://localhost/hook"}, "webhook_url"},
		{map[string]any{"webhook_url": "http://169.254.169.254/latest"}, "webhook_url"},
		{map[string]any{"webhook_url": "http://[::1]/hook"}, "webhook_url"},
		{map[string]any{"name": " "}, "name"},
		{map[string]any{"slug": "other"}, "slug"},
	} {
		r := patch(o.token, tt.body)
		if p := wantProblem(t, r, http.StatusBadRequest); !p.hasField(tt.field) {
			t.Errorf("%s: does not name %s", r, tt.field)
		}
	}

	// Setting a webhook URL returns its secret once.
	r = patch(o.token, map[string]any{"webhook_url": "https://hooks.example.com/tally"})
	r.want(t, http.StatusOK)
	r.decode(t, &a)
	if a.WebhookSecret == nil || len(*a.WebhookSecret) < 32 || a.Tenant.WebhookURL != "https://hooks.example.com/tally" {
		t.Fatalf("webhook answer %s", r.Body)
	}
	secret := *a.WebhookSecret
	r = patch(o.token, map[string]any{"name": "Acme AG"})
	r.want(t, http.StatusOK)
	if bytes.Contains(r.Body, []byte(secret)) || bytes.Contains(r.Body, []byte("webhook_secret")) {
		t.Errorf("the webhook secret is shown again: %s", r.Body)
	}
	r = h.do("GET", "/api/analytics/audit", nil, o.h())
	r.want(t, http.StatusOK)
	if bytes.Contains(r.Body, []byte(secret)) {
		t.Errorf("the audit log shows the webhook secret")
	}

	// A member may not change the tenant, nor may a stranger or a key.
	wantProblem(t, patch(memberTok, map[string]any{"name": "Mine"}), http.StatusForbidden)
	stranger, _ := h.user("stranger@example.com")
	wantProblem(t, patch(stranger, map[string]any{"name": "Mine"}), http.StatusForbidden)
	wantProblem(t, h.do("PATCH", "/api/tenants/nope", map[string]any{"name": "Mine"}, hdr(stranger, "")), http.StatusForbidden)
	k := h.createKey(o, "analytics:admin")
	wantProblem(t, patch(k.Key, map[string]any{"name": "Mine"}), http.StatusForbidden)
	wantProblem(t, patch("", map[string]any{"name": "Mine"}), http.StatusUnauthorized)
}

func TestAPIMembers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("acme")
	members := "/api/tenants/acme/members"
	h.register("carol@example.com", nil)
	h.register("dave@example.com", nil)
	carol := h.login("carol@example.com")
	dave := h.login("dave@example.com")

	// Members are no longer added directly: the old route is gone and
	// adds nobody.
	p := wantProblem(t, h.do("POST", members, map[string]string{"email": "dave@example.com", "role": "member"}, o.h()), http.StatusGone)
	if !strings.Contains(p.Detail, "/invitations") {
		t.Errorf("the 410 does not point at invitations: %+v", p)
	}
	wantProblem(t, h.do("POST", members, map[string]string{"email": "dave@example.com"}, hdr(dave, "")), http.StatusForbidden)
	wantProblem(t, h.do("POST", members, map[string]string{"email": "dave@example.com"}, nil), http.StatusUnauthorized)

	// The owner invites carol as admin (in any case); she accepts.
	inv := h.invite(o, "Carol@Example.com", "admin")
	if inv.Invitation.Email != "carol@example.com" || inv.Invitation.Role != "admin" {
		t.Errorf("invitation %+v", inv.Invitation)
	}
	h.accept(carol, inv.Token).want(t, http.StatusOK)
	// The admin invites a member.
	h.join(owner{token: carol, slug: "acme"}, "dave@example.com", "member", dave)

	invitations := "/api/tenants/acme/invitations"
	for _, tt := range []struct {
		name   string
		token  string
		body   map[string]string
		status int
	}{
		{"bad role", o.token, map[string]string{"email": "dave@example.com", "role": "boss"}, http.StatusBadRequest},
		{"bad email", o.token, map[string]string{"email": "dave", "role": "member"}, http.StatusBadRequest},
		{"member invites", dave, map[string]string{"email": "ghost@example.com", "role": "member"}, http.StatusForbidden},
		{"admin invites an owner", carol, map[string]string{"email": "dave@example.com", "role": "owner"}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantProblem(t, h.doT(t, "POST", invitations, tt.body, hdr(tt.token, "")), tt.status)
		})
	}

	type memberList struct {
		Members []struct {
			UserID int64  `json:"user_id"`
			Email  string `json:"email"`
			Role   string `json:"role"`
		} `json:"members"`
	}
	r := h.do("GET", members, nil, o.h())
	r.want(t, http.StatusOK)
	var ml memberList
	r.decode(t, &ml)
	roles := map[string]string{}
	ids := map[string]int64{}
	for _, m := range ml.Members {
		roles[m.Email], ids[m.Email] = m.Role, m.UserID
	}
	if len(roles) != 3 || roles[o.email] != "owner" || roles["carol@example.com"] != "admin" || roles["dave@example.com"] != "member" {
		t.Errorf("members %v", roles)
	}
	wantProblem(t, h.do("GET", members, nil, hdr(dave, "")), http.StatusForbidden)

	// Removing: the last owner stays; a member cannot remove; an admin can.
	wantProblem(t, h.do("DELETE", members+"/"+strconv.FormatInt(o.id, 10), nil, o.h()), http.StatusConflict)
	wantProblem(t, h.do("DELETE", members+"/"+strconv.FormatInt(o.id, 10), nil, hdr(carol, "")), http.StatusForbidden)
	wantProblem(t, h.do("DELETE", members+"/"+strconv.FormatInt(ids["carol@example.com"], 10), nil, hdr(dave, "")), http.StatusForbidden)
	wantProblem(t, h.do("DELETE", members+"/999999", nil, o.h()), http.StatusNotFound)
	wantProblem(t, h.do("DELETE", members+"/abc", nil, o.h()), http.StatusNotFound)
	h.do("DELETE", members+"/"+strconv.FormatInt(ids["dave@example.com"], 10), nil, hdr(carol, "")).want(t, http.StatusNoContent)
	wantProblem(t, h.do("GET", "/api/analytics/events?limit=1", nil, hdr(dave, "acme")), http.StatusForbidden)
	wantProblem(t, h.do("POST", "/api/analytics/events", map[string]string{"event": "x.y"}, hdr(dave, "acme")), http.StatusForbidden)

	// With a second owner the first may leave.
	h.join(o, "dave@example.com", "owner", dave)
	h.do("DELETE", members+"/"+strconv.FormatInt(o.id, 10), nil, o.h()).want(t, http.StatusNoContent)
	wantProblem(t, h.do("GET", members, nil, o.h()), http.StatusForbidden)

	// Membership changes are audited.
	r = h.do("GET", "/api/analytics/audit?action=invitation.accepted", nil, hdr(dave, "acme"))
	r.want(t, http.StatusOK)
	var audit struct {
		Entries []struct {
			Action string `json:"action"`
			Target string `json:"target"`
		} `json:"entries"`
	}
	r.decode(t, &audit)
	if len(audit.Entries) < 3 {
		t.Errorf("invitation.accepted entries: %s", r.Body)
	}
}

func TestAPISignupIntoTenant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	open := h.newTenant("open")
	h.do("PATCH", "/api/tenants/open", map[string]any{"allow_signup": true}, open.h()).want(t, http.StatusOK)
	h.newTenant("closed")

	id := h.register("eve@example.com", hdr("", "open"))
	r := h.do("POST", "/api/auth/login", map[string]string{"email": "eve@example.com", "password": harnessPassword}, nil)
	r.want(t, http.StatusOK)
	var login struct {
		Tenants []struct {
			Slug string `json:"slug"`
			Role string `json:"role"`
		} `json:"tenants"`
	}
	r.decode(t, &login)
	if len(login.Tenants) != 1 || login.Tenants[0].Slug != "open" || login.Tenants[0].Role != "member" {
		t.Errorf("eve's tenants %+v", login.Tenants)
	}

	// The registration is tracked in that tenant (asynchronously) as
	// tally's own event, naming eve's account in props, not as a user.
	user := "user:" + strconv.FormatInt(id, 10)
	q := url.Values{"event": {tally.EventOwnRegister}}.Encode()
	eventually(t, "tally.auth.register of eve in tenant open", func() bool {
		evs := h.listEvents(open.h(), q).Events
		return len(evs) == 1 && evs[0].UserID == "" && evs[0].Source == tally.OwnSource && ownAccount(t, evs[0]) == user
	})

	// A tenant that does not allow sign-up, and one that does not exist,
	// refuse the same way; nobody is created.
	closed := h.do("POST", "/api/auth/register", map[string]string{"email": "mallory@example.com", "password": harnessPassword}, hdr("", "closed"))
	wantProblem(t, closed, http.StatusForbidden)
	missing := h.do("POST", "/api/auth/register", map[string]string{"email": "mallory@example.com", "password": harnessPassword}, hdr("", "no-such-tenant"))
	wantProblem(t, missing, http.StatusForbidden)
	if !bytes.Equal(closed.Body, missing.Body) {
		t.Errorf("closed and missing tenants differ:\n%s\n%s", closed.Body, missing.Body)
	}
	wantProblem(t, h.do("POST", "/api/auth/login", map[string]string{"email": "mallory@example.com", "password": harnessPassword}, nil), http.StatusUnauthorized)
}

// TestAPIOwnersRemoveEachOther has a tenant's two owners remove each other
// at the same time, several times over: one removal wins, the other is
// refused (the last owner stays, or the loser is no longer a member), and
// the tenant keeps one owner.
func TestAPIOwnersRemoveEachOther(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for round := range 10 {
		o := h.newTenant("pair-" + strconv.Itoa(round))
		second, secondID := h.member(o, "owner")
		members := "/api/tenants/" + o.slug + "/members/"
		var wg sync.WaitGroup
		statuses := make([]int, 2)
		for i, req := range []struct {
			token  string
			target int64
		}{{o.token, secondID}, {second, o.id}} {
			wg.Go(func() {
				statuses[i] = h.do("DELETE", members+strconv.FormatInt(req.target, 10), nil, hdr(req.token, "")).Status
			})
		}
		wg.Wait()
		slices.Sort(statuses)
		if statuses[0] != http.StatusNoContent || (statuses[1] != http.StatusConflict && statuses[1] != http.StatusForbidden) {
			t.Fatalf("round %d: statuses %v, want one 204 and one 409 or 403", round, statuses)
		}
		var list struct {
			Members []struct {
				Role string `json:"role"`
			} `json:"members"`
		}
		winner := o.token
		if h.do("GET", "/api/tenants/"+o.slug+"/members", nil, hdr(winner, "")).Status != http.StatusOK {
			winner = second
		}
		h.do("GET", "/api/tenants/"+o.slug+"/members", nil, hdr(winner, "")).want(t, http.StatusOK).decode(t, &list)
		if len(list.Members) != 1 || list.Members[0].Role != "owner" {
			t.Fatalf("round %d: members after the race %+v, want one owner", round, list.Members)
		}
	}
}
