package rollup_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/rollup"
)

// bruteKPIs computes the report KPIs documents straight from the events,
// one span at a time: the reference the composed reads must equal.
func bruteKPIs(events []tally.Event, rng string, loc *time.Location, now time.Time) *rollup.Report {
	n := map[string]int{"today": 1, "7d": 7, "30d": 30, "90d": 90}[rng]
	y, m, d := now.In(loc).Date()
	from, prevFrom := time.Date(y, m, d+1-n, 0, 0, 0, 0, loc), time.Date(y, m, d+1-2*n, 0, 0, 0, 0, loc)
	var starts []time.Time // hours of today, else days
	for s := from; n == 1 && s.Before(now); s = s.Add(time.Hour) {
		starts = append(starts, s)
	}
	for i := 0; n > 1 && i < n; i++ {
		starts = append(starts, time.Date(y, m, d+1-n+i, 0, 0, 0, 0, loc))
	}
	rules := tally.DefaultUsageRules()
	kpis := func(from, to time.Time) map[string]int64 {
		out := map[string]int64{}
		users := map[string]bool{}
		for i := range events {
			e := &events[i]
			if e.Timestamp.Before(from) || !e.Timestamp.Before(to) {
				continue
			}
			out["events"]++
			switch e.Name {
			case tally.EventRegister:
				out["signups"]++
			case tally.EventLogin:
				out["logins"]++
			}
			for _, a := range rules.Apply(e) {
				switch a.Metric {
				case "builds_daily":
					out["builds"] += a.N
				case "api_requests_daily":
					out["api_requests"] += a.N
				case "file_uploads_daily":
					out["file_uploads"] += a.N
				}
			}
			if e.UserID != "" {
				users[e.UserID] = true
			}
		}
		out["active_users"] = int64(len(users))
		return out
	}
	names := []string{"signups", "logins", "builds", "api_requests", "file_uploads", "active_users", "events"}
	// Today alone is compared with yesterday up to the same time of day.
	prevTo := from
	if n == 1 {
		prevTo = prevFrom.Add(now.Sub(from))
	}
	rep := &rollup.Report{Range: rng, From: from.UTC(), To: now.UTC(), PreviousFrom: prevFrom.UTC(), PreviousTo: prevTo.UTC(),
		KPIs: map[string]rollup.KPI{}, Timeseries: map[string][]tally.MetricPoint{}}
	for i, s := range starts {
		end := now
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		v := kpis(s, end)
		for _, name := range names {
			rep.Timeseries[name] = append(rep.Timeseries[name], tally.MetricPoint{Start: s.UTC(), Metric: name, Value: v[name]})
		}
	}
	cur, prev := kpis(from, now), kpis(prevFrom, prevTo)
	for _, name := range names {
		k := rollup.KPI{Value: cur[name], Previous: prev[name]}
		if k.Previous != 0 {
			x := math.Round(float64(k.Value-k.Previous)/float64(k.Previous)*1000) / 10
			k.ChangePct = &x
		}
		rep.KPIs[name] = k
	}
	return rep
}

// TestKPIsMatchBruteForce checks whole reports against bruteKPIs on random
// events, in zones with whole-hour, half-hour and 45-minute offsets and
// across daylight-saving changes (Lord Howe's is 30 minutes): with every
// hour dirty, with all but the last days rolled up, after a user's events
// are deleted, and with hours whose user sets are gone (purged).
func TestKPIsMatchBruteForce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, tn := newStore(t)
	zones := []string{"UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"}
	locs := make([]*time.Location, len(zones))
	for i, z := range zones {
		var err error
		if locs[i], err = time.LoadLocation(z); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 4, 6, 15, 47, 13, 250, time.UTC) // NY changed on March 8, Lord Howe on April 5
	first := now.AddDate(0, 0, -64)
	rng := rand.New(rand.NewPCG(3, 5))
	names := []string{tally.EventRegister, tally.EventLogin, tally.EventAPIRequest, tally.EventAPIRequest,
		"builder.generate.completed", "files.uploaded", "page.view", tally.EventUsageIncrement}
	// A few frequent users and many rare ones (a handful of events each),
	// so that distinct counts depend on the edges of every bucket.
	users := []string{"", "", "ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo"}
	user := func() string {
		if rng.IntN(3) == 0 {
			return fmt.Sprintf("rare%d", rng.IntN(400))
		}
		return users[rng.IntN(len(users))]
	}
	var events []tally.Event
	add := func(at time.Time) {
		e := event(tn, names[rng.IntN(len(names))], user(), at)
		e.Value = float64(rng.IntN(7)) / 2
		if e.Name == tally.EventUsageIncrement {
			e.Props = json.RawMessage(fmt.Sprintf(`{"metric":%q}`, []string{"builds_daily", "file_uploads_daily", "seats"}[rng.IntN(3)]))
		}
		events = append(events, e)
	}
	for range 4000 {
		add(first.Add(time.Duration(rng.Int64N(int64(66*24*time.Hour/time.Microsecond))) * time.Microsecond))
	}
	for _, loc := range locs { // on and just before every local midnight and around now
		y, m, d := first.In(loc).Date()
		for i := range 66 {
			mid := time.Date(y, m, d+i, 0, 0, 0, 0, loc)
			add(mid)
			add(mid.Add(-time.Microsecond))
		}
	}
	add(now)
	add(now.Add(-time.Microsecond))
	// The purge below cuts 40 minutes before the UTC midnight that starts
	// the 7-day period: users seen only just after the cut, in an hour whose
	// user set the purge drops, end the 7 days before and fall inside the 30.
	cut := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC).Add(-40 * time.Minute)
	for i := range 20 {
		events = append(events, event(tn, tally.EventAPIRequest, fmt.Sprintf("burst%d", i), cut.Add(time.Duration(i)*time.Minute)))
	}
	insert(t, db, events...)

	r := rollup.New(rollup.Config{Now: fixed(now)}, db, nil)
	q := rollup.NewReports(rollup.ReportsConfig{}, db)
	rollUp := func() {
		t.Helper()
		if _, err := r.RunDays(ctx, tn, first.AddDate(0, 0, -1), now.AddDate(0, 0, -2), "", ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, state := range []string{"raw", "rolled up", "user deleted", "rolled up again, purged"} {
		onlyUsers := false // compare only active users
		switch state {
		case "rolled up":
			rollUp()
		case "user deleted": // its hours are dirty, their user sets dropped
			if _, err := db.DeleteUserEvents(ctx, tn, "bob"); err != nil {
				t.Fatal(err)
			}
			events = slices.DeleteFunc(events, func(e tally.Event) bool { return e.UserID == "bob" })
		case "rolled up again, purged": // the purged hours' user sets are gone, their rows stay
			rollUp()
			if _, err := db.PurgeEvents(ctx, tn, cut); err != nil {
				t.Fatal(err)
			}
			events = slices.DeleteFunc(events, func(e tally.Event) bool { return e.Timestamp.Before(cut) })
			onlyUsers = true
		}
		for i, loc := range locs {
			for _, rg := range []string{"today", "7d", "30d"} {
				got, err := q.KPIs(ctx, tn, rg, loc, now)
				if err != nil {
					t.Fatal(err)
				}
				want := bruteKPIs(events, rg, loc, now)
				if _, off := now.In(loc).Zone(); onlyUsers || state != "raw" && off%3600 != 0 {
					// Rolled-up hours are composed into local days
					// approximately in these zones (ARCHITECTURE.md), and
					// rollups outlive purges; the active users stay exact.
					got, want = activeOnly(got), activeOnly(want)
				}
				if !reflect.DeepEqual(got, want) {
					gj, _ := json.Marshal(got)
					wj, _ := json.Marshal(want)
					t.Errorf("%s, %s, %s:\n got %s\nwant %s", state, zones[i], rg, gj, wj)
				}
			}
		}
	}
}

// activeOnly returns rep with only its active users.
func activeOnly(rep *rollup.Report) *rollup.Report {
	return &rollup.Report{Range: rep.Range, From: rep.From, To: rep.To, PreviousFrom: rep.PreviousFrom, PreviousTo: rep.PreviousTo,
		KPIs:       map[string]rollup.KPI{"active_users": rep.KPIs["active_users"]},
		Timeseries: map[string][]tally.MetricPoint{"active_users": rep.Timeseries["active_users"]}}
}
