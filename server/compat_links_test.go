package server_test

import (
	"net/http"
	"testing"
)

// TestIdentityLinks: once identify (or alias, or PostHog's $identify)
// links an anonymous id to a user id, later events of the anonymous id are
// stored as the user's, so the person counts once in active users from
// then on; events from before the link keep the anonymous id.
func TestIdentityLinks(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("links")
		k := h.createKey(o, "analytics:write")
		seg := func(path, body string) {
			t.Helper()
			h.do("POST", path, body, hdr(k.Key, "")).want(t, http.StatusOK)
		}
		seg("/v1/page", `{"messageId":"before","anonymousId":"anon-7","name":"Home"}`)
		seg("/v1/identify", `{"messageId":"link","anonymousId":"anon-7","userId":"u7","traits":{"plan":"pro"}}`)
		seg("/v1/track", `{"messageId":"after","anonymousId":"anon-7","event":"Clicked"}`)
		seg("/v1/alias", `{"messageId":"alias","previousId":"anon-8","userId":"u7"}`)
		seg("/v1/batch", `{"batch":[{"type":"track","messageId":"after-alias","anonymousId":"anon-8","event":"Clicked"}]}`)
		// PostHog: $identify names the anonymous distinct id.
		ph := func(body string) {
			t.Helper()
			h.do("POST", "/capture/", body, nil).want(t, http.StatusOK)
		}
		ph(`{"api_key":"` + k.Key + `","event":"$identify","uuid":"ph-link","distinct_id":"u9","properties":{"$anon_distinct_id":"ph-anon"}}`)
		ph(`{"api_key":"` + k.Key + `","event":"$pageview","uuid":"ph-after","distinct_id":"ph-anon"}`)

		evs := eventsOf(t, h, o, "segment")
		for id, user := range map[string]string{"before": "anon-7", "link": "u7", "after": "u7", "alias": "u7", "after-alias": "u7"} {
			if got := evs[id].UserID; got != user {
				t.Errorf("%s stored for %q, want %q", id, got, user)
			}
		}
		if got := eventsOf(t, h, o, "posthog")["ph-after"].UserID; got != "u9" {
			t.Errorf("the PostHog event after $identify is stored for %q, want u9", got)
		}
		// anon-7 (before the link), u7 and u9.
		wantActiveUsers(t, h, o, 3)
		h.noPanic(t)
	})
}
