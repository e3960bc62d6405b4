package client

import (
	"time"

	"github.com/tallyhq/tally"
)

// EmbedClaims are the claims of an embed token (docs/EMBED.md).
type EmbedClaims = tally.EmbedClaims

// EmbedSubject is whose usage an embed token shows.
type EmbedSubject = tally.EmbedSubject

// MintEmbedToken signs an embed token offline, without calling tally:
// secret is the embed secret shown once by POST /api/analytics/embed/secrets
// and claims.KeyID its id. A zero IssuedAt is now; a zero ExpiresAt is
// IssuedAt plus tally.DefaultEmbedTTL. The claims are checked as tally
// will check them (metrics, subject, a lifetime of at most
// tally.MaxEmbedTTL; EInvalid otherwise), so a token minted here is one tally accepts until
// it expires or its secret is revoked.
func MintEmbedToken(secret string, claims EmbedClaims) (string, error) {
	now := time.Now()
	if claims.IssuedAt == 0 {
		claims.IssuedAt = now.Unix()
	}
	if claims.ExpiresAt == 0 {
		claims.ExpiresAt = claims.IssuedAt + int64(tally.DefaultEmbedTTL/time.Second)
	}
	if err := claims.Validate(now); err != nil {
		// The same check tally makes, reported as bad input to the caller.
		return "", tally.Invalid(tally.ErrorMessageOf(err))
	}
	return tally.SignEmbedToken(secret, claims)
}
