package tally

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func TestEmbedToken(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	c := EmbedClaims{Tenant: "acme", KeyID: 7, Subject: &EmbedSubject{UserID: "u1"}, Metrics: []string{"api_calls"},
		IssuedAt: now.Unix(), ExpiresAt: now.Add(time.Hour).Unix()}
	tok, err := SignEmbedToken("s3cret", c)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseEmbedToken(tok)
	if err != nil || !p.Verify("s3cret") || p.Verify("other") || p.Claims.Subject.UserID != "u1" {
		t.Fatalf("parse %v, claims %+v", err, p)
	}
	if err := p.Claims.Validate(now); err != nil {
		t.Errorf("valid claims: %v", err)
	}
	if err := p.Claims.Validate(now.Add(time.Hour)); ErrorCodeOf(err) != EUnauthorized {
		t.Errorf("at exp: %v; want unauthorized", err)
	}
	long := c
	long.ExpiresAt = now.Add(MaxEmbedTTL + time.Second).Unix()
	if err := long.Validate(now); ErrorCodeOf(err) != EUnauthorized {
		t.Errorf("ttl past the cap: %v", err)
	}
	parts := strings.Split(tok, ".")
	for name, bad := range map[string]string{
		"alg none":     base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"7"}`)) + "." + parts[1] + ".",
		"alg HS512":    base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS512","kid":"7"}`)) + "." + parts[1] + "." + parts[2],
		"kid mismatch": base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"8"}`)) + "." + parts[1] + "." + parts[2],
		"two parts":    parts[0] + "." + parts[1],
		"bad base64":   parts[0] + ".!!." + parts[2],
	} {
		if _, err := ParseEmbedToken(bad); ErrorCodeOf(err) != EUnauthorized {
			t.Errorf("%s: %v; want unauthorized", name, err)
		}
	}
	// A changed claim keeps the old signature, which no longer matches.
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"tenant":"acme","kid":7,"metrics":["api_calls"],"iat":1,"exp":9999999999}`)) + "." + parts[2]
	if p, err := ParseEmbedToken(forged); err != nil || p.Verify("s3cret") {
		t.Errorf("forged claims verified (%v)", err)
	}
}

func TestEmbedSettingsValidate(t *testing.T) {
	t.Parallel()
	ok := EmbedSettings{AllowedOrigins: []string{"https://app.example.com", "http://127.0.0.1:8080"},
		Theme: EmbedTheme{Primary: "#abc", Background: "#ffffff", LogoURL: "https://cdn.example.com/l.png"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]EmbedSettings{
		"path":       {AllowedOrigins: []string{"https://app.example.com/x"}},
		"wildcard":   {AllowedOrigins: []string{"*"}},
		"csp inject": {AllowedOrigins: []string{"https://a.com; script-src *"}},
		"twice":      {AllowedOrigins: []string{"https://a.com", "https://a.com"}},
		"colour":     {Theme: EmbedTheme{Primary: "red; x"}},
		"logo http":  {Theme: EmbedTheme{LogoURL: "http://example.com/l.png"}},
		"logo js":    {Theme: EmbedTheme{LogoURL: "javascript:alert(1)"}},
	} {
		if err := e.Validate(); ErrorCodeOf(err) != EInvalid {
			t.Errorf("%s: %v; want invalid", name, err)
		}
	}
}
