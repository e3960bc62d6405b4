package client_test

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/client"
)

// TestMintEmbedTokenIsStandardJWT checks both ways against a JWT library:
// what MintEmbedToken signs verifies there, and what a host app mints
// with it is accepted by tally's parser.
func TestMintEmbedTokenIsStandardJWT(t *testing.T) {
	t.Parallel()
	const secret = "tly_embed_test"
	tok, err := client.MintEmbedToken(secret, client.EmbedClaims{Tenant: "acme", KeyID: 3,
		Subject: &client.EmbedSubject{UserID: "u1"}, Metrics: []string{"api_calls"}})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil || !parsed.Valid || parsed.Header["kid"] != "3" {
		t.Fatalf("the JWT library refuses the minted token: %v (%+v)", err, parsed)
	}
	claims := parsed.Claims.(jwt.MapClaims)
	if claims["tenant"] != "acme" || claims["sub"].(map[string]any)["user_id"] != "u1" {
		t.Errorf("claims = %v", claims)
	}

	now := time.Now()
	other := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"tenant": "acme", "kid": 3, "metrics": []string{"api_calls"},
		"sub": map[string]any{"path": "props.account", "value": "a-1"}, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	other.Header["kid"] = "3"
	s, err := other.SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	p, err := tally.ParseEmbedToken(s)
	if err != nil || !p.Verify(secret) || p.Claims.Validate(now) != nil || p.Claims.Subject.Value != "a-1" {
		t.Fatalf("tally refuses the library's token: %v %+v", err, p)
	}

	// Claims tally would refuse are refused when minting.
	if _, err := client.MintEmbedToken(secret, client.EmbedClaims{Tenant: "acme", KeyID: 3, Metrics: []string{"api_calls"},
		ExpiresAt: now.Add(48 * time.Hour).Unix()}); tally.ErrorCodeOf(err) != tally.EInvalid {
		t.Errorf("a 48-hour token was minted: %v", err)
	}
}
