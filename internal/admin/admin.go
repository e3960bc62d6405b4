// Package admin holds the operator actions that the command line, the demo
// seeder and the HTTP API share: creating users and API keys.
package admin

import (
	"context"
	"strings"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/secret"
)

// CreateUser creates a user with a hashed password.
func CreateUser(ctx context.Context, s tally.UserStore, email, password, name string) (*tally.User, error) {
	if len(password) < 8 {
		return nil, tally.Invalid("password must be at least 8 characters", tally.FieldError{Field: "password", Message: "must be at least 8 characters"})
	}
	u := &tally.User{Email: tally.NormalizeEmail(email), Name: strings.TrimSpace(name)}
	if err := s.CreateUser(ctx, u, secret.HashPassword(password)); err != nil {
		return nil, err
	}
	return u, nil
}

// CreateKey mints an API key for a tenant and stores its hash. The
// returned secret is the only time the full key exists outside the caller.
func CreateKey(ctx context.Context, s tally.KeyStore, tenantID int64, name string, scopes []tally.Scope, expires *time.Time) (*tally.APIKey, string, error) {
	key, prefix := secret.NewKey()
	if expires != nil {
		t := expires.UTC().Truncate(time.Microsecond)
		expires = &t
	}
	k := &tally.APIKey{TenantID: tenantID, Name: name, Prefix: prefix, Hash: secret.HashToken(key), Scopes: scopes, ExpiresAt: expires}
	if err := s.CreateKey(ctx, k); err != nil {
		return nil, "", err
	}
	return k, key, nil
}
