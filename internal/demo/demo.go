// Package demo seeds a demo tenant with a month of realistic events, so
// that a newcomer's first look at the dashboard shows something real.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
)

// Demo identities.
const (
	Email = "admin@demo.tally.local"
	Slug  = "demo"
	Days  = 30
)

// Result is what Seed made: the login and key to print.
type Result struct {
	TenantSlug string
	Email      string
	Password   string
	Key        string
	Events     int
}

// Seed makes sure the demo tenant exists. On the first run it creates the
// admin, the tenant, quotas and Days days of events before now, and rolls
// them up with roll; on every run it sets a fresh admin password and a
// fresh demo API key (revoking the previous one), so they can be printed.
// Accounts, tenant and keys go through accounts; events and quotas straight
// into store.
func Seed(ctx context.Context, store tally.Store, accounts *identity.Service, roll func(ctx context.Context, tenantID int64, from, to time.Time) error, now time.Time) (*Result, error) {
	password := rand.Text()[:16]
	res := &Result{TenantSlug: Slug, Email: Email, Password: password}
	u, err := accounts.ChangePassword(ctx, tally.ChangePasswordInput{Email: Email, Password: password})
	if tally.ErrorCodeOf(err) == tally.ENotFound {
		u, _, err = accounts.Register(ctx, tally.RegisterInput{Email: Email, Password: password, Name: "Demo Admin"})
	}
	if err != nil {
		return nil, err
	}
	t, err := accounts.TenantBySlug(ctx, Slug)
	fresh := false
	switch tally.ErrorCodeOf(err) {
	case "":
	case tally.ENotFound:
		if t, err = accounts.CreateTenant(ctx, tally.CreateTenantInput{Slug: Slug, Name: "Demo Inc.", Timezone: "UTC"}, u.ID); err != nil {
			return nil, err
		}
		fresh = true
	default:
		return nil, err
	}
	keys, err := accounts.ListKeys(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if k.Name == "demo-key" && k.RevokedAt == nil {
			if err := accounts.RevokeKey(ctx, t.ID, k.ID); err != nil {
				return nil, err
			}
		}
	}
	if _, res.Key, err = accounts.CreateKey(ctx, t.ID, tally.CreateKeyInput{Name: "demo-key", Scopes: tally.AllScopes}); err != nil {
		return nil, err
	}
	if !fresh {
		n, err := store.CountEvents(ctx, t.ID, now.AddDate(0, 0, -Days-1), now.Add(time.Hour))
		res.Events = int(n)
		return res, err
	}
	for _, q := range []tally.Quota{{Metric: "api_requests_daily", Limit: 5000}, {Metric: "builds_daily", Limit: 150}, {Metric: "file_uploads_daily", Limit: 400}} {
		if err := store.SetQuota(ctx, t.ID, q); err != nil {
			return nil, err
		}
	}
	events := Generate(t.ID, now, Days, 42)
	for i := 0; i < len(events); i += 2000 {
		if _, err := store.InsertEvents(ctx, events[i:min(i+2000, len(events))]); err != nil {
			return nil, err
		}
	}
	res.Events = len(events)
	if err := roll(ctx, t.ID, tally.DayStart(now.AddDate(0, 0, -Days)), tally.DayStart(now)); err != nil {
		return nil, err
	}
	return res, nil
}

// Generate makes days of events before now for a SaaS tenant: sign-ups,
// logins, builds, uploads and API calls by a growing set of users, busier
// on weekdays and in working hours. The same seed gives the same events.
func Generate(tenantID int64, now time.Time, days int, seed uint64) []tally.Event {
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	now = now.UTC().Truncate(time.Microsecond)
	start := tally.DayStart(now).AddDate(0, 0, -days)
	var out []tally.Event
	n := 0
	add := func(ts time.Time, name, user, source string, value float64, props map[string]any) {
		if ts.After(now) {
			return
		}
		raw, _ := json.Marshal(props)
		if props == nil {
			raw = []byte("{}")
		}
		n++
		out = append(out, tally.Event{TenantID: tenantID, EventID: fmt.Sprintf("demo-%d", n), Name: name, UserID: user,
			Source: source, Timestamp: ts, ReceivedAt: ts, Value: value, Props: raw})
	}
	users := 12
	routes := []string{"GET /v1/projects", "POST /v1/builds", "GET /v1/builds/{id}", "POST /v1/files", "GET /v1/usage"}
	plans := []string{"free", "team", "business"}
	for d := 0; d <= days; d++ {
		day := start.AddDate(0, 0, d)
		weekday := day.Weekday()
		activity := 1.0
		if weekday == time.Saturday || weekday == time.Sunday {
			activity = 0.35
		}
		activity *= 1 + float64(d)/float64(days) // steady growth
		signups := int(math.Round(activity * (1 + rng.Float64()*2)))
		for range signups {
			users++
			ts := day.Add(time.Duration(8+rng.IntN(10))*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
			add(ts, tally.EventRegister, fmt.Sprintf("user-%d", users), "web", 1, map[string]any{"plan": plans[rng.IntN(len(plans))]})
		}
		active := int(float64(users) * (0.35 + 0.25*rng.Float64()) * min(activity, 1.4))
		for range active {
			user := fmt.Sprintf("user-%d", 1+rng.IntN(users))
			// Working hours, peaking in the afternoon (UTC).
			hour := int(math.Round(14 + rng.NormFloat64()*3.5))
			hour = max(0, min(23, hour))
			ts := day.Add(time.Duration(hour)*time.Hour + time.Duration(rng.IntN(3600))*time.Second)
			add(ts, tally.EventLogin, user, "web", 1, map[string]any{"method": []string{"password", "sso", "password"}[rng.IntN(3)]})
			for b := rng.IntN(4); b > 0; b-- {
				bt := ts.Add(time.Duration(rng.IntN(5400)) * time.Second)
				ms := 800 + rng.IntN(40000)
				add(bt, "builder.generate.started", user, "web", 1, map[string]any{"template": []string{"landing", "blog", "shop", "docs"}[rng.IntN(4)]})
				if rng.IntN(10) > 0 {
					add(bt.Add(time.Duration(ms)*time.Millisecond), "builder.generate.completed", user, "worker", float64(ms), map[string]any{"duration_ms": ms})
				} else {
					add(bt.Add(time.Duration(ms)*time.Millisecond), "builder.generate.failed", user, "worker", 1, map[string]any{"reason": "timeout"})
				}
			}
			for f := rng.IntN(3); f > 0; f-- {
				size := 2000 + rng.IntN(8_000_000)
				add(ts.Add(time.Duration(rng.IntN(7200))*time.Second), "files.uploaded", user, "web", float64(size),
					map[string]any{"content_type": []string{"image/png", "application/pdf", "text/csv"}[rng.IntN(3)], "bytes": size})
			}
			for a := rng.IntN(25); a > 0; a-- {
				status := 200
				if rng.IntN(40) == 0 {
					status = []int{400, 404, 429, 500}[rng.IntN(4)]
				}
				add(ts.Add(time.Duration(rng.IntN(10800))*time.Second), tally.EventAPIRequest, user, "api", 1, map[string]any{
					"route": routes[rng.IntN(len(routes))], "status": status, "duration_ms": 5 + rng.IntN(400)})
			}
		}
	}
	return out
}
