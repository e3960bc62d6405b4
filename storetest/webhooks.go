package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func webhookCases() []testCase {
	return []testCase{
		{"EnqueueOncePerCrossing", testEnqueueWebhookOnce},
		{"ClaimRecordList", testClaimWebhooks},
		{"ConcurrentClaims", testConcurrentWebhookClaims},
	}
}

func delivery(tenantID int64, metric string, threshold int, period, at time.Time) *tally.WebhookDelivery {
	return &tally.WebhookDelivery{TenantID: tenantID, WebhookID: tally.NewWebhookID(), EventType: "quota.threshold",
		Metric: metric, Threshold: threshold, PeriodStart: period, Payload: []byte(`{"metric":"` + metric + `"}`),
		CreatedAt: at, NextAttemptAt: at}
}

// testEnqueueWebhookOnce enqueues the same crossing from several
// goroutines (as several instances would): one row wins.
func testEnqueueWebhookOnce(t *testing.T, s tally.Store) {
	a, b := newTenant(t, s, "wh-a"), newTenant(t, s, "wh-b")
	at, period := now(), pastDay()
	var wg sync.WaitGroup
	created := make([]bool, 8)
	for i := range created {
		wg.Go(func() {
			var err error
			created[i], err = s.EnqueueWebhook(t.Context(), delivery(a.ID, "builds_daily", 80, period, at))
			check(t, err)
		})
	}
	wg.Wait()
	n := 0
	for _, c := range created {
		if c {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d of %d enqueues of one crossing created a delivery, want 1", n, len(created))
	}
	// Another threshold, period, metric or tenant is another delivery.
	for _, d := range []*tally.WebhookDelivery{
		delivery(a.ID, "builds_daily", 100, period, at),
		delivery(a.ID, "builds_daily", 80, period.AddDate(0, 0, 1), at),
		delivery(a.ID, "events_daily", 80, period, at),
		delivery(b.ID, "builds_daily", 80, period, at),
	} {
		ok, err := s.EnqueueWebhook(t.Context(), d)
		check(t, err)
		if !ok || d.ID == 0 {
			t.Fatalf("delivery %+v not created", d)
		}
	}
	list, _, err := s.ListWebhooks(t.Context(), a.ID, tally.WebhookFilter{Limit: 10})
	check(t, err)
	if len(list) != 4 {
		t.Fatalf("tenant a lists %d deliveries, want 4", len(list))
	}
	for _, d := range list {
		if d.TenantID != a.ID || d.Status != tally.WebhookPending || d.Attempts != 0 || d.Payload != nil {
			t.Errorf("listed %+v", d)
		}
	}
}

// testClaimWebhooks claims due deliveries, records outcomes and reads the
// log back, newest first and by pages.
func testClaimWebhooks(t *testing.T, s tally.Store) {
	a, b := newTenant(t, s, "wh-a"), newTenant(t, s, "wh-b")
	base, period := now().Add(-time.Hour), pastDay()
	var ds []*tally.WebhookDelivery
	for i := range 5 {
		d := delivery(a.ID, fmt.Sprintf("m%d", i), 80, period, base.Add(time.Duration(i)*time.Minute))
		if _, err := s.EnqueueWebhook(t.Context(), d); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	later := delivery(b.ID, "m", 80, period, base)
	later.NextAttemptAt = base.Add(time.Hour + time.Minute) // not due yet
	check2(t, s, later)

	claimAt := base.Add(2*time.Minute + time.Second) // m0, m1, m2 are due
	lease := claimAt.Add(time.Minute)
	got, err := s.ClaimWebhooks(t.Context(), claimAt, lease, 10)
	check(t, err)
	if len(got) != 3 || got[0].ID != ds[0].ID || got[2].ID != ds[2].ID {
		t.Fatalf("claimed %d deliveries %+v, want m0-m2", len(got), got)
	}
	if g := got[0]; g.Attempts != 1 || !g.NextAttemptAt.Equal(lease) || string(g.Payload) != `{"metric":"m0"}` ||
		g.WebhookID != ds[0].WebhookID || !g.PeriodStart.Equal(period) || g.EventType != "quota.threshold" {
		t.Errorf("claimed %+v", g)
	}
	// Leased: not claimed again before the lease ends; claimed after it.
	if again, err := s.ClaimWebhooks(t.Context(), claimAt, lease, 10); err != nil || len(again) != 0 {
		t.Fatalf("claimed %d leased deliveries (err %v)", len(again), err)
	}
	check(t, s.RecordWebhookAttempt(t.Context(), a.ID, ds[0].ID, tally.WebhookAttempt{
		Status: tally.WebhookDelivered, StatusCode: 204, At: claimAt}))
	check(t, s.RecordWebhookAttempt(t.Context(), a.ID, ds[1].ID, tally.WebhookAttempt{
		Status: tally.WebhookFailed, StatusCode: 500, Error: "webhook answered 500", At: claimAt}))
	retry := claimAt.Add(30 * time.Second)
	check(t, s.RecordWebhookAttempt(t.Context(), a.ID, ds[2].ID, tally.WebhookAttempt{
		Status: tally.WebhookPending, Error: "connection refused", At: claimAt, NextAttemptAt: retry}))
	wantCode(t, s.RecordWebhookAttempt(t.Context(), b.ID, ds[3].ID, tally.WebhookAttempt{Status: tally.WebhookFailed, At: claimAt}),
		tally.ENotFound, "recording another tenant's delivery")

	got, err = s.ClaimWebhooks(t.Context(), retry, retry.Add(time.Minute), 1)
	check(t, err)
	if len(got) != 1 || got[0].ID != ds[2].ID || got[0].Attempts != 2 {
		t.Fatalf("claim after the retry time: %+v, want m2 at its second attempt", got)
	}
	// The lease of a claimer that stopped ends: the delivery is due again.
	got, err = s.ClaimWebhooks(t.Context(), retry.Add(2*time.Minute), retry.Add(3*time.Minute), 10)
	check(t, err)
	if len(got) != 3 || got[0].ID != ds[2].ID || got[0].Attempts != 3 {
		t.Fatalf("claim after the lease: %+v, want m2 (third attempt), m3, m4", got)
	}

	var all []tally.WebhookDelivery
	f := tally.WebhookFilter{Limit: 2}
	for range 10 {
		page, next, err := s.ListWebhooks(t.Context(), a.ID, f)
		check(t, err)
		all = append(all, page...)
		if next == nil {
			break
		}
		f.Cursor = reparse(t, next)
	}
	if len(all) != 5 || all[0].ID != ds[4].ID || all[4].ID != ds[0].ID {
		t.Fatalf("listed %+v, want m4..m0", all)
	}
	byID := map[int64]tally.WebhookDelivery{}
	for _, d := range all {
		byID[d.ID] = d
	}
	if d := byID[ds[0].ID]; d.Status != tally.WebhookDelivered || d.LastStatusCode != 204 || d.DeliveredAt == nil || !d.DeliveredAt.Equal(claimAt) {
		t.Errorf("delivered: %+v", d)
	}
	if d := byID[ds[1].ID]; d.Status != tally.WebhookFailed || d.LastStatusCode != 500 || d.LastError != "webhook answered 500" || d.DeliveredAt != nil {
		t.Errorf("failed: %+v", d)
	}
	if d := byID[ds[4].ID]; !d.CreatedAt.Equal(base.Add(4*time.Minute)) || d.Metric != "m4" || d.Threshold != 80 {
		t.Errorf("m4: %+v", d)
	}
	if bs, _, err := s.ListWebhooks(t.Context(), b.ID, tally.WebhookFilter{Limit: 10}); err != nil || len(bs) != 1 || bs[0].ID != later.ID {
		t.Errorf("tenant b lists %+v (err %v)", bs, err)
	}
	_, _, err = s.ListWebhooks(t.Context(), a.ID, tally.WebhookFilter{})
	wantCode(t, err, tally.EInvalid, "ListWebhooks without a limit")
}

func check2(t *testing.T, s tally.Store, d *tally.WebhookDelivery) {
	t.Helper()
	ok, err := s.EnqueueWebhook(t.Context(), d)
	check(t, err)
	if !ok {
		t.Fatalf("delivery %+v not created", d)
	}
}

// testConcurrentWebhookClaims races claimers over many due deliveries:
// each is claimed exactly once.
func testConcurrentWebhookClaims(t *testing.T, s tally.Store) {
	a := newTenant(t, s, "wh-a")
	at, period := now().Add(-time.Minute), pastDay()
	const n = 40
	for i := range n {
		check2(t, s, delivery(a.ID, fmt.Sprintf("m%d", i), 80, period, at))
	}
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				got, err := s.ClaimWebhooks(t.Context(), now(), now().Add(time.Hour), 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d deliveries claimed, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("delivery %d claimed %d times", id, c)
		}
	}
}
