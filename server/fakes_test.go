package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/identity"
	"github.com/tallyhq/tally/ingest"
	"github.com/tallyhq/tally/server"
	"github.com/tallyhq/tally/sqlite/sqlitetest"
)

// fakeRecorder answers the write workflows from fields, so that a handler
// test can pin down how the HTTP layer translates each outcome.
type fakeRecorder struct {
	eventsErr  error
	consumeOK  bool
	consumeSt  tally.QuotaStatus
	incrErr    error
	tracked    []string
	gotConsume string
}

func (f *fakeRecorder) Events(context.Context, *tally.Tenant, []byte) (*ingest.Result, error) {
	return nil, f.eventsErr
}

func (f *fakeRecorder) Foreign(context.Context, *tally.Tenant, *ingest.Foreign) (*ingest.Result, error) {
	return nil, f.eventsErr
}

func (f *fakeRecorder) Increment(context.Context, *tally.Tenant, tally.UsageIncrement) (int64, error) {
	return 0, f.incrErr
}

func (f *fakeRecorder) Consume(_ context.Context, _ *tally.Tenant, in tally.UsageIncrement) (bool, tally.QuotaStatus, error) {
	f.gotConsume = in.Metric
	return f.consumeOK, f.consumeSt, nil
}

func (f *fakeRecorder) Commit(context.Context, *tally.Tenant, string, string, *int64, string) (*tally.QuotaReservation, error) {
	return nil, tally.Errorf(tally.ENotFound, "reservation not found")
}

func (f *fakeRecorder) Track(_ context.Context, _ *tally.Tenant, name, _ string, _ map[string]any) {
	f.tracked = append(f.tracked, name)
}

func (f *fakeRecorder) TrackAPIRequest(*tally.Tenant, ingest.APIRequest, time.Duration) {
	f.tracked = append(f.tracked, tally.EventOwnAPIRequest)
}

// TestHandlersOverFakeRecorder serves the API over a real store and
// accounts but a fake Recorder, and checks the answers for outcomes that
// are hard to provoke for real: a full ingest queue, a refused consume, a
// rate-limited increment.
func TestHandlersOverFakeRecorder(t *testing.T) {
	t.Parallel()
	db, tn := sqlitetest.WithTenant(t)
	now := time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC)
	accounts := identity.New(db, func() time.Time { return now }, nil)
	_, key, err := accounts.CreateKey(t.Context(), tn.ID, tally.CreateKeyInput{Name: "k", Scopes: tally.AllScopes})
	if err != nil {
		t.Fatal(err)
	}
	rec := &fakeRecorder{
		eventsErr: tally.Errorf(tally.EUnavailable, "ingest queue full"),
		consumeSt: tally.NewQuotaStatus(tally.Quota{Metric: "builds_daily", Limit: 3, Enforced: true}, 3, 0, now, nil),
		incrErr:   tally.Errorf(tally.ERateLimited, "quota builds_daily exceeded"),
	}
	srv, err := server.New(server.DefaultConfig(), server.Deps{Store: db, Accounts: accounts, Recorder: rec,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	post := func(path, body string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}

	if res := post("/api/analytics/events", `{"event":"a"}`); res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("full queue: %d, Retry-After %q; want 503 with Retry-After", res.StatusCode, res.Header.Get("Retry-After"))
	}
	res := post("/api/analytics/quotas/builds_daily/consume", `{"amount":1}`)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "43200" ||
		!strings.Contains(res.Header.Get("RateLimit"), "r=0") {
		t.Errorf("refused consume: %d, Retry-After %q, RateLimit %q", res.StatusCode, res.Header.Get("Retry-After"), res.Header.Get("RateLimit"))
	}
	if rec.gotConsume != "builds_daily" {
		t.Errorf("consume reached the recorder for %q", rec.gotConsume)
	}
	if res := post("/api/analytics/usage", `{"metric":"builds_daily"}`); res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Errorf("rate-limited increment: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if len(rec.tracked) != 3 {
		t.Errorf("auto-tracked %v, want one api.request per call", rec.tracked)
	}
}
