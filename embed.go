package tally

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Embeds: a tenant's own customers see their usage inside the host app.
// A tenant admin creates an embed secret; the host app signs short-lived
// tokens with it (an HS256 JWT, so any JWT library, or client.MintEmbedToken,
// mints one offline) naming the tenant, an optional subject and the metrics
// it may read. tally verifies a token against the secret its kid names:
// revoking the secret ends every token it signed at once.

// Limits of embeds.
const (
	MaxEmbedTTL           = 24 * time.Hour // the longest a token may live (exp - iat, and exp - now)
	DefaultEmbedTTL       = time.Hour      // the lifetime of a minted token without ttl_seconds
	MaxEmbedMetrics       = 20             // metrics of one token
	MaxEmbedSecrets       = 10             // active secrets of a tenant
	MaxEmbedOrigins       = 20             // allowed origins of a tenant
	MaxEmbedTokenLen      = 8192           // bytes of a presented token
	EmbedSecretPrefix     = "tly_embed_"   // every embed secret starts with it
	maxEmbedLogoURLLen    = 2048
	maxEmbedSubjectLength = MaxMeterFilterLen
)

// EmbedSecret is one of a tenant's signing secrets. Secret is the HMAC key
// itself: the store keeps it, since verifying a signature needs it, but
// the API shows it only in the answer that creates it.
type EmbedSecret struct {
	ID        int64      `json:"id"`
	TenantID  int64      `json:"-"`
	Name      string     `json:"name"`
	Secret    string     `json:"secret,omitempty"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// Active reports whether the secret is not revoked.
func (s *EmbedSecret) Active() bool { return s.RevokedAt == nil }

// EmbedTheme is how a tenant's embedded pages look. Colours are #rgb or
// #rrggbb; empty fields keep tally's defaults.
type EmbedTheme struct {
	Primary    string `json:"primary"`
	Background string `json:"background"`
	Text       string `json:"text"`
	LogoURL    string `json:"logo_url"`
}

// EmbedSettings are a tenant's embed settings: the origins whose pages may
// frame its embeds (frame-ancestors; none: no page may) and the theme.
type EmbedSettings struct {
	AllowedOrigins []string   `json:"allowed_origins"`
	Theme          EmbedTheme `json:"theme"`
}

var embedColour = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// ValidEmbedColour reports whether s is a theme colour: #rgb or #rrggbb.
func ValidEmbedColour(s string) bool { return embedColour.MatchString(s) }

// Validate checks the settings and names every field at fault.
func (e *EmbedSettings) Validate() error {
	var errs []FieldError
	bad := func(field, msg string) { errs = append(errs, FieldError{Field: field, Message: msg}) }
	if len(e.AllowedOrigins) > MaxEmbedOrigins {
		bad("allowed_origins", fmt.Sprintf("at most %d origins", MaxEmbedOrigins))
	}
	for i, o := range e.AllowedOrigins {
		if !ValidOrigin(o) {
			bad(fmt.Sprintf("allowed_origins[%d]", i), "must be an origin such as https://app.example.com (scheme, host, optional port)")
		} else if slices.Index(e.AllowedOrigins, o) != i {
			bad(fmt.Sprintf("allowed_origins[%d]", i), "is listed twice")
		}
	}
	for _, c := range []struct{ field, v string }{{"theme.primary", e.Theme.Primary}, {"theme.background", e.Theme.Background}, {"theme.text", e.Theme.Text}} {
		if c.v != "" && !embedColour.MatchString(c.v) {
			bad(c.field, "must be a colour such as #1f6feb (#rgb or #rrggbb)")
		}
	}
	if l := e.Theme.LogoURL; l != "" {
		u, err := url.Parse(l)
		if len(l) > maxEmbedLogoURLLen || err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil ||
			strings.ContainsAny(l, " ;'\"<>") {
			bad("theme.logo_url", "must be an https URL of at most 2048 bytes")
		}
	}
	if errs != nil {
		return Invalid("invalid embed settings", errs...)
	}
	return nil
}

// EmbedSubject is whose data a token shows: an end user (UserID) or the
// events whose props path (Path, "props.account") equals Value.
type EmbedSubject struct {
	UserID string `json:"user_id,omitempty"`
	Path   string `json:"path,omitempty"`
	Value  string `json:"value,omitempty"`
}

// Filter returns the meter filter entry that confines a query to the
// subject.
func (s EmbedSubject) Filter() (key, value string) {
	if s.UserID != "" {
		return "user_id", s.UserID
	}
	return s.Path, s.Value
}

// Validate checks the subject: either user_id or a props path and value.
func (s EmbedSubject) Validate() error {
	switch {
	case s.UserID != "" && (s.Path != "" || s.Value != ""):
		return Invalid("invalid subject", FieldError{Field: "subject", Message: "set user_id, or path and value, not both"})
	case s.UserID != "":
		if msg := CheckText(s.UserID, maxEmbedSubjectLength, ""); msg != "" {
			return Invalid("invalid subject", FieldError{Field: "subject.user_id", Message: msg})
		}
	case ParsePropPath(s.Path) == nil:
		return Invalid("invalid subject", FieldError{Field: "subject.path", Message: "must be a props path such as props.account (" + msgPropPath + ")"})
	case s.Value == "":
		return Invalid("invalid subject", FieldError{Field: "subject.value", Message: "is required with path"})
	default:
		if msg := CheckText(s.Value, maxEmbedSubjectLength, ""); msg != "" {
			return Invalid("invalid subject", FieldError{Field: "subject.value", Message: msg})
		}
	}
	return nil
}

// EmbedClaims are the claims of an embed token. Tenant is the tenant's
// slug; KeyID the embed secret's id (also the JWT header's kid); Subject,
// when set, confines every read to one subject; Metrics names the meters
// (built-in usage metrics or the tenant's) the token may read. IssuedAt
// and ExpiresAt are Unix seconds (iat, exp).
type EmbedClaims struct {
	Tenant    string        `json:"tenant"`
	KeyID     int64         `json:"kid"`
	Subject   *EmbedSubject `json:"sub,omitempty"`
	Metrics   []string      `json:"metrics"`
	IssuedAt  int64         `json:"iat"`
	ExpiresAt int64         `json:"exp"`
}

// Validate checks the claims at time now: the shape, the metrics, and that
// the token is live (iat not ahead of now by more than a minute of clock
// skew, exp after now, and a lifetime within MaxEmbedTTL).
func (c *EmbedClaims) Validate(now time.Time) error {
	if c.Tenant == "" || c.KeyID <= 0 {
		return Errorf(EUnauthorized, "embed token lacks tenant or kid")
	}
	if err := ValidEmbedMetrics(c.Metrics); err != nil {
		return Errorf(EUnauthorized, "embed token: %s", ErrorMessageOf(err))
	}
	if c.Subject != nil {
		if err := c.Subject.Validate(); err != nil {
			return Errorf(EUnauthorized, "embed token: invalid subject")
		}
	}
	n := now.Unix()
	switch {
	case c.ExpiresAt <= n:
		return Errorf(EUnauthorized, "embed token expired")
	case c.IssuedAt > n+60:
		return Errorf(EUnauthorized, "embed token issued in the future")
	case c.ExpiresAt-c.IssuedAt > int64(MaxEmbedTTL/time.Second) || c.ExpiresAt-n > int64(MaxEmbedTTL/time.Second):
		return Errorf(EUnauthorized, "embed token lives longer than %s", MaxEmbedTTL)
	}
	return nil
}

// ValidEmbedMetrics checks a token's metric list: 1 to MaxEmbedMetrics
// metric names, none twice.
func ValidEmbedMetrics(metrics []string) error {
	if len(metrics) == 0 || len(metrics) > MaxEmbedMetrics {
		return Invalid("invalid metrics", FieldError{Field: "metrics", Message: fmt.Sprintf("1 to %d metric or meter names", MaxEmbedMetrics)})
	}
	for i, m := range metrics {
		if !ValidMetric(m) {
			return Invalid("invalid metrics", FieldError{Field: fmt.Sprintf("metrics[%d]", i), Message: "must match ^[a-z0-9_]{1,64}$"})
		}
		if slices.Index(metrics, m) != i {
			return Invalid("invalid metrics", FieldError{Field: fmt.Sprintf("metrics[%d]", i), Message: "is listed twice"})
		}
	}
	return nil
}

// Allows reports whether the token may read metric.
func (c *EmbedClaims) Allows(metric string) bool { return slices.Contains(c.Metrics, metric) }

// EmbedTTL checks a requested lifetime in seconds (0: DefaultEmbedTTL).
func EmbedTTL(seconds int64) (time.Duration, error) {
	if seconds == 0 {
		return DefaultEmbedTTL, nil
	}
	if seconds < 1 || seconds > int64(MaxEmbedTTL/time.Second) {
		return 0, Invalid("invalid ttl_seconds", FieldError{Field: "ttl_seconds", Message: "must be 1 to " + strconv.Itoa(int(MaxEmbedTTL/time.Second))})
	}
	return time.Duration(seconds) * time.Second, nil
}

type embedHeader struct {
	Alg string `json:"alg"`
	Typ string `json:"typ,omitempty"`
	Kid string `json:"kid"`
}

var b64 = base64.RawURLEncoding

// SignEmbedToken returns the HS256 JWT of c signed with secret, with the
// secret's id in the header's kid.
func SignEmbedToken(secret string, c EmbedClaims) (string, error) {
	h, err := json.Marshal(embedHeader{Alg: "HS256", Typ: "JWT", Kid: strconv.FormatInt(c.KeyID, 10)})
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(body)
	return input + "." + b64.EncodeToString(embedMAC(secret, input)), nil
}

func embedMAC(secret, input string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(input))
	return m.Sum(nil)
}

// EmbedToken is a parsed, not yet verified, embed token.
type EmbedToken struct {
	Claims EmbedClaims
	input  string
	sig    []byte
}

// ParseEmbedToken decodes a token without trusting it: the header must
// say HS256 (any other alg, "none" included, is refused) and its kid must
// equal the claims' kid. Verify checks the signature. EUnauthorized for
// anything malformed.
func ParseEmbedToken(token string) (*EmbedToken, error) {
	bad := Errorf(EUnauthorized, "invalid embed token")
	if len(token) > MaxEmbedTokenLen {
		return nil, bad
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, bad
	}
	hb, err1 := b64.DecodeString(parts[0])
	cb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || len(sig) != sha256.Size {
		return nil, bad
	}
	var h embedHeader
	if json.Unmarshal(hb, &h) != nil || h.Alg != "HS256" || (h.Typ != "" && h.Typ != "JWT") {
		return nil, bad
	}
	t := &EmbedToken{input: parts[0] + "." + parts[1], sig: sig}
	if json.Unmarshal(cb, &t.Claims) != nil || strconv.FormatInt(t.Claims.KeyID, 10) != h.Kid {
		return nil, bad
	}
	return t, nil
}

// Verify reports whether the token was signed with secret (in constant
// time).
func (t *EmbedToken) Verify(secret string) bool {
	return hmac.Equal(t.sig, embedMAC(secret, t.input))
}

// EmbedStore keeps each tenant's embed secrets and settings.
type EmbedStore interface {
	// CreateEmbedSecret stores s (its Secret included) and sets ID and
	// CreatedAt. The EInvalid of a tenant at MaxEmbedSecrets active
	// secrets, decided in the same transaction as the insert.
	CreateEmbedSecret(ctx context.Context, s *EmbedSecret) error
	// EmbedSecrets lists a tenant's secrets, revoked ones too, newest first,
	// without their Secret.
	EmbedSecrets(ctx context.Context, tenantID int64) ([]EmbedSecret, error)
	// EmbedSecret returns one of a tenant's secrets with its Secret,
	// revoked or not (the caller checks Active); ENotFound when the tenant
	// has none such.
	EmbedSecret(ctx context.Context, tenantID, id int64) (*EmbedSecret, error)
	// RevokeEmbedSecret revokes a tenant's secret at time at; ENotFound
	// when the secret is not the tenant's or already revoked.
	RevokeEmbedSecret(ctx context.Context, tenantID, id int64, at time.Time) error
	// EmbedSettings returns a tenant's settings: the zero value (no
	// origin, default theme) when never set.
	EmbedSettings(ctx context.Context, tenantID int64) (EmbedSettings, error)
	// SetEmbedSettings replaces a tenant's settings.
	SetEmbedSettings(ctx context.Context, tenantID int64, e EmbedSettings) error
}
