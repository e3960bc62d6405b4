package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/secret"
)

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	b := Backoff{Free: 2, Base: time.Second, Max: 10 * time.Second, Window: time.Minute}
	for n, want := range map[int64]time.Duration{1: 0, 2: 0, 3: time.Second, 4: 2 * time.Second, 5: 4 * time.Second,
		6: 8 * time.Second, 7: 10 * time.Second, 100: 10 * time.Second} {
		if got := b.delay(n); got != want {
			t.Errorf("delay(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestMemoryFailures(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m := newMemoryFailures(func() time.Time { return now })
	ctx := t.Context()
	for want := int64(1); want <= 3; want++ {
		if n, _ := m.Fail(ctx, "k", time.Minute); n != want {
			t.Fatalf("failure %d counted as %d", want, n)
		}
	}
	now = now.Add(61 * time.Second)
	if n, _ := m.Fail(ctx, "k", time.Minute); n != 1 {
		t.Fatalf("after a quiet window: count %d, want 1", n)
	}
	_ = m.Block(ctx, "k", 5*time.Second)
	if d, _ := m.Blocked(ctx, "k"); d != 5*time.Second {
		t.Fatalf("blocked %s, want 5s", d)
	}
	if d, _ := m.Blocked(ctx, "other"); d != 0 {
		t.Fatalf("another key blocked %s", d)
	}
	now = now.Add(5 * time.Second)
	if d, _ := m.Blocked(ctx, "k"); d != 0 {
		t.Fatalf("after the block: %s", d)
	}
	_ = m.Reset(ctx, "k")
	if n, _ := m.Fail(ctx, "k", time.Minute); n != 1 {
		t.Fatalf("after a reset: count %d", n)
	}
}

// heldAccounts is Accounts whose Login and Register hold until released,
// as a password hash would: what fills the hash slots.
type heldAccounts struct {
	Accounts // not called
	entered  chan struct{}
	release  chan struct{}
}

func (a *heldAccounts) Login(ctx context.Context, in tally.LoginInput) (*tally.Login, error) {
	a.entered <- struct{}{}
	<-a.release
	return nil, tally.Errorf(tally.EUnauthorized, "invalid email or password")
}

func (a *heldAccounts) Register(ctx context.Context, in tally.RegisterInput) (*tally.User, *tally.Tenant, error) {
	a.entered <- struct{}{}
	<-a.release
	return nil, nil, tally.Errorf(tally.EConflict, "taken")
}

// TestLoginHashSlots fills the password hash slots sized from memory (two
// hashes' worth) and checks that one more login or registration is
// refused with 503 and Retry-After (after the wait), without reaching the hash,
// that the slots never hold more than their number, and that a password
// over the limit is refused before any slot.
func TestLoginHashSlots(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.LoginLimits.HashMemory = 2*secret.PasswordHashMemory + secret.PasswordHashMemory/2
	cfg.LoginLimits.HashWait = 50 * time.Millisecond // the held slots never free within it
	acc := &heldAccounts{entered: make(chan struct{}, 8), release: make(chan struct{})}
	s, err := New(cfg, Deps{Accounts: acc})
	if err != nil {
		t.Fatal(err)
	}
	if n := cfg.LoginLimits.HashSlots(); n != 2 {
		t.Fatalf("%d slots from 2.5 hashes of memory, want 2", n)
	}
	post := func(path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	login := `{"email":"a@example.com","password":"whatever-it-is"}`
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() { codes[i] = post("/api/auth/login", login).Code })
	}
	<-acc.entered
	<-acc.entered
	for _, req := range []struct{ path, body string }{
		{"/api/auth/login", login},
		{"/api/auth/register", `{"email":"b@example.com","password":"long-enough-1"}`},
	} {
		w := post(req.path, req.body)
		if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
			!strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
			t.Errorf("%s with every slot busy: %d %v %s", req.path, w.Code, w.Header(), w.Body)
		}
	}
	if got := s.logins.slots.inFlight.Load(); got != 2 {
		t.Errorf("%d hashes in flight, want 2", got)
	}
	close(acc.release)
	wg.Wait()
	if codes[0] != http.StatusUnauthorized || codes[1] != http.StatusUnauthorized {
		t.Errorf("the held logins answered %v", codes)
	}
	if len(acc.entered) != 0 {
		t.Error("a refused request reached the hash")
	}
	if p := s.logins.slots.peak.Load(); p != 2 {
		t.Errorf("peak %d hashes at once, want 2", p)
	}
	// Too long a password is refused before a slot: reaching Login would
	// leave a mark in entered.
	long := `{"email":"a@example.com","password":"` + strings.Repeat("x", tally.MaxPasswordBytes+1) + `"}`
	if w := post("/api/auth/login", long); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"password"`) {
		t.Errorf("a %d-byte password: %d %s", tally.MaxPasswordBytes+1, w.Code, w.Body)
	}
	if len(acc.entered) != 0 {
		t.Error("a too long password reached the hash")
	}
}
