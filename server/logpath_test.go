package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tallyhq/tally"
)

// noSessions is Accounts that knows no session.
type noSessions struct{ Accounts }

func (noSessions) SessionUser(context.Context, string) (*tally.User, error) {
	return nil, tally.Errorf(tally.EUnauthorized, "missing or invalid credentials")
}

// TestRequestLogRedactsInvitationToken checks that the request log shows
// an invitation's path without its token.
func TestRequestLogRedactsInvitationToken(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s, err := New(DefaultConfig(), Deps{Accounts: noSessions{}, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	const token = "SECRETINVITATIONTOKEN"
	r := httptest.NewRequest("POST", "/api/invitations/"+token+"/accept", nil)
	r.Header.Set("Authorization", "Bearer not-a-session")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d", w.Code)
	}
	if !strings.Contains(logs.String(), `"path":"/api/invitations/[redacted]/accept"`) || strings.Contains(logs.String(), token) {
		t.Errorf("request log:\n%s", logs.String())
	}
}
