package server_test

import (
	"net/http"
	"testing"
	"time"
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

// TestCompatClockSkew: a client whose clock runs an hour ahead sends
// Segment's timestamp and sentAt, PostHog's timestamp and sent_at, by its
// clock; tally stores the times corrected by received_at - sentAt.
func TestCompatClockSkew(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	o := h.newTenant("skew")
	k := h.createKey(o, "analytics:write")
	ahead := time.Now().Add(time.Hour).UTC()
	at := ahead.Add(-10 * time.Minute) // ten minutes before sending, by the client's clock
	ts := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	h.do("POST", "/v1/batch", `{"sentAt":"`+ts(ahead)+`","batch":[{"type":"track","messageId":"skew-seg","userId":"u","event":"E","timestamp":"`+ts(at)+`"}]}`,
		hdr(k.Key, "")).want(t, http.StatusOK)
	h.do("POST", "/batch/", `{"api_key":"`+k.Key+`","sent_at":"`+ts(ahead)+`","batch":[{"event":"e","uuid":"skew-ph","distinct_id":"u","timestamp":"`+ts(at)+`"}]}`,
		nil).want(t, http.StatusOK)
	for source, id := range map[string]string{"segment": "skew-seg", "posthog": "skew-ph"} {
		e, ok := eventsOf(t, h, o, source)[id]
		if !ok {
			t.Fatalf("%s not stored", id)
		}
		// The event happened ten minutes before it was received.
		if d := e.ReceivedAt.Sub(e.Timestamp); d < 10*time.Minute-time.Second || d > 10*time.Minute+time.Second {
			t.Errorf("%s: timestamp %s is %s before received_at %s, want 10m", id, e.Timestamp, d, e.ReceivedAt)
		}
	}
}

// TestInsightsUseIdentityLinks: funnels and retention count an anonymous
// id linked to a user as that user, for the events stored before the
// link too: a visitor who viewed the pricing page anonymously, then signed
// up and identified, converts in one funnel and returns in one cohort.
func TestInsightsUseIdentityLinks(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, opts ...harnessOption) {
		h := newHarness(t, opts...)
		o := h.newTenant("links")
		k := h.createKey(o, "analytics:write")
		day := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)
		at := func(d time.Duration) string { return day.Add(d).Format(time.RFC3339) }
		seg := func(path, body string) {
			t.Helper()
			h.do("POST", path, body, hdr(k.Key, "")).want(t, http.StatusOK)
		}
		seg("/v1/track", `{"messageId":"a1","anonymousId":"anon-1","event":"pricing.viewed","timestamp":"`+at(0)+`"}`)
		seg("/v1/track", `{"messageId":"a2","anonymousId":"anon-2","event":"pricing.viewed","timestamp":"`+at(time.Minute)+`"}`)
		seg("/v1/identify", `{"messageId":"l1","anonymousId":"anon-1","userId":"u1","timestamp":"`+at(2*time.Minute)+`"}`)
		seg("/v1/track", `{"messageId":"s1","userId":"u1","event":"signup","timestamp":"`+at(3*time.Minute)+`"}`)
		seg("/v1/track", `{"messageId":"r1","userId":"u1","event":"pricing.viewed","timestamp":"`+at(25*time.Hour)+`"}`)

		if got := eventsOf(t, h, o, "segment")["a1"].UserID; got != "anon-1" {
			t.Fatalf("the event before the link is stored for %q, want anon-1", got)
		}
		var f funnelAnswer
		h.doT(t, "POST", "/api/analytics/funnels/query", map[string]any{
			"steps":          []map[string]any{{"event": "pricing.viewed"}, {"event": "signup"}},
			"window_seconds": 3600, "from": at(-time.Hour), "to": at(time.Hour),
		}, o.h()).want(t, http.StatusOK).decode(t, &f)
		if f.Steps[0].Entered != 2 || f.Steps[1].Entered != 1 {
			t.Fatalf("funnel %+v: want 2 visitors entering (anon-1 as u1, anon-2) and u1 converting", f.Steps)
		}
		var r retentionAnswer
		h.doT(t, "POST", "/api/analytics/retention/query", map[string]any{
			"start_event": "pricing.viewed", "return_event": "pricing.viewed", "period": "day",
			"from": day.Truncate(24 * time.Hour).Format(time.RFC3339), "to": at(26 * time.Hour),
		}, o.h()).want(t, http.StatusOK).decode(t, &r)
		if len(r.Cohorts) < 2 || r.Cohorts[0].Size != 2 || r.Cohorts[0].Counts[1] != 1 {
			t.Fatalf("retention %+v: want a first-day cohort of 2 (u1, anon-2) with u1 back the next day", r.Cohorts)
		}
		h.noPanic(t)
	})
}
