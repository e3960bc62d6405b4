package tally

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// Role is a user's role in one tenant: owner > admin > member.
type Role string

// The roles, from most to least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
)

func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleMember:
		return 1
	}
	return 0
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r is as powerful as min or more.
func (r Role) AtLeast(min Role) bool { return r.rank() >= min.rank() && r.Valid() }

// Scope is a permission of an API key.
type Scope string

// The API key scopes.
const (
	ScopeRead   Scope = "analytics:read"   // events, usage, metrics, quotas
	ScopeWrite  Scope = "analytics:write"  // send events, record usage, consume quota
	ScopeExport Scope = "analytics:export" // CSV export
	ScopeAdmin  Scope = "analytics:admin"  // rollup, quota configuration, audit log
)

// AllScopes lists every scope, in a stable order.
var AllScopes = []Scope{ScopeRead, ScopeWrite, ScopeExport, ScopeAdmin}

// Valid reports whether s is a defined scope.
func (s Scope) Valid() bool { return slices.Contains(AllScopes, s) }

// User is a person who logs in to tally (a host app's operator or a tenant
// admin), not an end user of the host app: those are Event.UserID strings.
type User struct {
	ID        int64     `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// NormalizeEmail lower-cases and trims an email address so that lookups and
// uniqueness do not depend on case.
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Tenant is one customer of the host app; all analytics data belongs to one.
type Tenant struct {
	ID            int64     `json:"id"`
	Slug          string    `json:"slug"`
	Name          string    `json:"name"`
	AllowSignup   bool      `json:"allow_signup"`
	Timezone      string    `json:"timezone"`
	RetentionDays int       `json:"retention_days"`
	WebhookURL    string    `json:"webhook_url,omitempty"`
	WebhookSecret string    `json:"-"`
	CreatedAt     time.Time `json:"created_at"`
}

// Changes lists the settable fields that differ from before to t, for the
// audit log: each as {"from": old, "to": new}, by its JSON name. The webhook
// secret is never listed by value, only as "webhook_secret": "rotated"; a
// webhook URL loses its query and fragment, where tokens may hide.
func (t *Tenant) Changes(before *Tenant) map[string]any {
	out := map[string]any{}
	add := func(name string, from, to any) {
		if from != to {
			out[name] = map[string]any{"from": from, "to": to}
		}
	}
	add("name", before.Name, t.Name)
	add("allow_signup", before.AllowSignup, t.AllowSignup)
	add("timezone", before.Timezone, t.Timezone)
	add("retention_days", before.RetentionDays, t.RetentionDays)
	add("webhook_url", urlWithoutQuery(before.WebhookURL), urlWithoutQuery(t.WebhookURL))
	if before.WebhookSecret != t.WebhookSecret {
		out["webhook_secret"] = "rotated"
	}
	return out
}

// urlWithoutQuery is u without its query and fragment.
func urlWithoutQuery(u string) string {
	u, _, _ = strings.Cut(u, "#")
	u, _, _ = strings.Cut(u, "?")
	return u
}

// DefaultRetentionDays is how long raw events are kept unless a tenant says
// otherwise.
const DefaultRetentionDays = 400

// RetentionStart is the start of the oldest UTC day whose raw events the
// tenant keeps at time now: the purge deletes what is older, and rollups
// never rebuild days before it (their aggregates outlive the raw events).
func (t *Tenant) RetentionStart(now time.Time) time.Time {
	days := t.RetentionDays
	if days <= 0 {
		days = DefaultRetentionDays
	}
	return DayStart(now).AddDate(0, 0, -days)
}

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}$`)

// ValidSlug reports whether s is a valid tenant slug.
func ValidSlug(s string) bool { return slugRE.MatchString(s) }

// Membership is a tenant as seen by one of its users.
type Membership struct {
	TenantID int64  `json:"-"`
	Slug     string `json:"slug"`
	Name     string `json:"name"`
	Role     Role   `json:"role"`
}

// Member is a user as seen by a tenant.
type Member struct {
	UserID  int64     `json:"user_id"`
	Email   string    `json:"email"`
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	AddedAt time.Time `json:"added_at"`
}

// Session is a logged-in user's token; only a hash of the token is stored.
type Session struct {
	ID        int64
	UserID    int64
	TokenHash []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// APIKey authenticates a host app in one tenant with a set of scopes. Only a
// hash of the secret is stored; Prefix identifies the key in lists and logs.
type APIKey struct {
	ID         int64      `json:"id"`
	TenantID   int64      `json:"-"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Hash       []byte     `json:"-"`
	Scopes     []Scope    `json:"scopes"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	// Kind is KeySecret (the zero value, stored as "secret") or
	// KeyPublishable.
	Kind KeyKind `json:"kind"`
	// Origins are the page origins a publishable key is accepted from
	// (scheme://host[:port]); empty means any.
	Origins []string `json:"allowed_origins"`
	// RatePerMinute bounds the requests of a publishable key per minute
	// and instance; 0 means DefaultPublishableRate.
	RatePerMinute int `json:"rate_limit_per_minute"`
	// AddressRatePerMinute bounds the requests of a publishable key from
	// one client address per minute and instance; 0 means no such bound.
	AddressRatePerMinute int `json:"address_rate_limit_per_minute"`
}

// KeyKind is the kind of an API key.
type KeyKind string

// The kinds of API key.
const (
	// KeySecret is a server-side key with the scopes it was given.
	KeySecret KeyKind = "secret"
	// KeyPublishable is a key safe to embed in a web page: it may only
	// send events (the ingestion routes, scope analytics:write), from
	// its allowed origins, within its rate limit.
	KeyPublishable KeyKind = "publishable"
)

// KindOrSecret is k's kind, KeySecret when unset.
func (k *APIKey) KindOrSecret() KeyKind {
	if k.Kind == "" {
		return KeySecret
	}
	return k.Kind
}

// Publishable reports whether k is a publishable key.
func (k *APIKey) Publishable() bool { return k.Kind == KeyPublishable }

// DefaultPublishableRate is the requests per minute a publishable key is
// allowed when it names no limit; MaxPublishableRate the most it may name.
const (
	DefaultPublishableRate = 600
	MaxPublishableRate     = 100000
)

// AllowsOrigin reports whether a publishable key accepts a request from
// the page origin origin (the Origin header): any when k names none.
func (k *APIKey) AllowsOrigin(origin string) bool {
	return len(k.Origins) == 0 || slices.Contains(k.Origins, origin)
}

// HasScope reports whether the key carries s.
func (k *APIKey) HasScope(s Scope) bool { return slices.Contains(k.Scopes, s) }

// Active reports whether the key may be used at time now.
func (k *APIKey) Active(now time.Time) bool {
	return k.RevokedAt == nil && (k.ExpiresAt == nil || now.Before(*k.ExpiresAt))
}

// Refused credentials and denied requests are audited at most once per
// RefusalAuditWindow for the same tenant, presenter (a key prefix, an
// actor) and remote address, and for at most RefusalAuditMax of them per
// window and instance: repeating a refused request cannot flood the audit
// log.
const (
	RefusalAuditWindow = time.Minute
	RefusalAuditMax    = 10000
)

// AuditEntry records who did what in a tenant.
type AuditEntry struct {
	ID       int64          `json:"id"`
	TenantID int64          `json:"-"`
	At       time.Time      `json:"at"`
	Actor    string         `json:"actor"`
	Action   string         `json:"action"`
	Target   string         `json:"target"`
	Meta     map[string]any `json:"meta"`
}

// AuditFilter selects audit entries, newest first.
type AuditFilter struct {
	From, To time.Time
	Action   string // only entries of this action ("": any)
	Actor    string // only entries by this actor ("": any)
	Limit    int
	Cursor   *Cursor
}

// Principal is who makes a request: a user (by session) or an API key, in
// the tenant the request acts in (nil before the tenant is known).
type Principal struct {
	User   *User
	Key    *APIKey
	Tenant *Tenant
	Role   Role // the user's role in Tenant; empty for keys
}

// Actor names the principal in audit entries: "user:ID" or "key:PREFIX".
func (p *Principal) Actor() string {
	switch {
	case p == nil:
		return "system"
	case p.Key != nil:
		return "key:" + p.Key.Prefix
	case p.User != nil:
		return "user:" + p.User.Email
	}
	return "anonymous"
}
