package tally

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The account rules. The HTTP API, the command line and the demo seeder all
// go through the Validate methods below, so a rule changes in one place.
const (
	// MinPasswordChars is the shortest password, counted in characters
	// (runes), not bytes.
	MinPasswordChars = 8
	// MaxPasswordBytes bounds a password's length in bytes: the hash's cost
	// must not grow with what a caller sends.
	MaxPasswordBytes = 1024
	// MaxEmailBytes is the longest email address (RFC 5321's path limit).
	MaxEmailBytes = 254
	// MaxNameBytes bounds user display names, tenant names and API key names.
	MaxNameBytes = 200
)

// passwordProblem says what is wrong with a password, or "" when it is
// acceptable.
func passwordProblem(p string) string {
	switch {
	case utf8.RuneCountInString(p) < MinPasswordChars:
		return "must be at least " + strconv.Itoa(MinPasswordChars) + " characters"
	case len(p) > MaxPasswordBytes:
		return "must be at most " + strconv.Itoa(MaxPasswordBytes) + " bytes"
	}
	return ""
}

// ValidEmail reports whether e, already normalized (see NormalizeEmail),
// looks like an email address: something before and after one '@', no
// white space, at most MaxEmailBytes. Whether it receives mail is not
// checked.
func ValidEmail(e string) bool {
	at := strings.IndexByte(e, '@')
	return len(e) <= MaxEmailBytes && at > 0 && at < len(e)-1 && !strings.ContainsAny(e, " \t\r\n")
}

// ValidName reports whether name, already trimmed, is a valid tenant or API
// key name: 1 to MaxNameBytes bytes of text (see NameCheck).
func ValidName(name string) bool { return NameCheck(name) == "" }

// NameCheck says what is wrong with a tenant or API key name, already
// trimmed (invalid UTF-8, NUL, empty or longer than MaxNameBytes), or ""
// when it is fine: the FieldError message of "name".
func NameCheck(name string) string {
	if name == "" || len(name) > MaxNameBytes {
		return NameProblem
	}
	return CheckText(name, MaxNameBytes, NameProblem)
}

// emailCheck says what is wrong with an email field as text (invalid
// UTF-8 or NUL), or "": the address itself is checked by ValidEmail where
// it must be one.
func emailCheck(e string) string { return CheckText(e, len(e), "") }

// slugProblem is the message of an invalid slug.
const slugProblem = "must match " + `^[a-z0-9][a-z0-9-]{1,62}$`

// NameProblem is the FieldError message of a tenant or key name that
// ValidName refuses.
const NameProblem = "must be 1-200 characters"

// RegisterInput is a new user's registration, by the API or the command
// line. Email is normalized and Name trimmed before they are stored.
type RegisterInput struct {
	Email    string
	Password string
	Name     string
	// TenantSlug, when set, signs the user up as a member of that tenant,
	// which must allow sign-up.
	TenantSlug string
}

// Validate checks the email, the password bounds and the name length;
// EInvalid naming every field at fault.
func (in RegisterInput) Validate() error {
	var fields []FieldError
	if msg := emailCheck(in.Email); msg != "" {
		fields = append(fields, FieldError{Field: "email", Message: msg})
	} else if !ValidEmail(NormalizeEmail(in.Email)) {
		fields = append(fields, FieldError{Field: "email", Message: "must be an email address"})
	}
	if msg := passwordProblem(in.Password); msg != "" {
		fields = append(fields, FieldError{Field: "password", Message: msg})
	}
	tooLong := "must be at most " + strconv.Itoa(MaxNameBytes) + " characters"
	msg := CheckText(in.Name, MaxNameBytes, tooLong)
	if msg == "" && len(in.Name) > MaxNameBytes {
		msg = tooLong
	}
	if msg != "" {
		fields = append(fields, FieldError{Field: "name", Message: msg})
	}
	if len(fields) > 0 {
		return Invalid("invalid registration", fields...)
	}
	return nil
}

// LoginInput is a login attempt. Any text is acceptable: wrong credentials
// are EUnauthorized, never EInvalid, so that an attempt learns nothing;
// only an email that is not text is EInvalid (see Validate).
type LoginInput struct {
	Email    string
	Password string
	// TTL is the lifetime of the session a successful login opens.
	TTL time.Duration
	// AuditMeta is written with the audit entries of a failed attempt (the
	// remote address, the request id); never the password.
	AuditMeta map[string]any
}

// Validate refuses only what is not text (invalid UTF-8 or NUL in the
// email) and a password over MaxPasswordBytes (so that it is never
// hashed); EInvalid naming the field. Every other input is a login
// attempt that fails as EUnauthorized.
func (in LoginInput) Validate() error {
	if msg := emailCheck(in.Email); msg != "" {
		return Invalid("invalid login", FieldError{Field: "email", Message: msg})
	}
	if len(in.Password) > MaxPasswordBytes { // checked before the hash, whose cost grows with it
		return Invalid("invalid login", FieldError{Field: "password", Message: "must be at most " + strconv.Itoa(MaxPasswordBytes) + " bytes"})
	}
	return nil
}

// Login is a successful login: the session token (shown once), the session,
// the user and the tenants it belongs to.
type Login struct {
	Token   string
	Session *Session
	User    *User
	Tenants []Membership
}

// ChangePasswordInput replaces the password of the user with Email.
type ChangePasswordInput struct {
	Email    string
	Password string
}

// Validate checks the password bounds; EInvalid naming "password".
func (in ChangePasswordInput) Validate() error {
	if msg := passwordProblem(in.Password); msg != "" {
		return Invalid("invalid password", FieldError{Field: "password", Message: msg})
	}
	return nil
}

// CreateTenantInput is a new tenant; its creator becomes the owner. Name is
// trimmed before it is checked and stored.
type CreateTenantInput struct {
	Slug        string
	Name        string
	AllowSignup bool
	Timezone    string // IANA zone; "" is UTC
}

// Validate checks the name and the slug; EInvalid naming every field at
// fault.
func (in CreateTenantInput) Validate() error {
	var fields []FieldError
	if msg := NameCheck(strings.TrimSpace(in.Name)); msg != "" {
		fields = append(fields, FieldError{Field: "name", Message: msg})
	}
	if !ValidSlug(in.Slug) {
		fields = append(fields, FieldError{Field: "slug", Message: slugProblem})
	}
	if len(fields) > 0 {
		return Invalid("invalid tenant", fields...)
	}
	return nil
}

// AddMemberInput adds an existing user, by email, to a tenant. An empty
// Role means RoleMember.
type AddMemberInput struct {
	Email string
	Role  Role
}

// Validate checks that the email is text and the role; EInvalid naming
// "email" and "role".
func (in AddMemberInput) Validate() error {
	var fields []FieldError
	if msg := emailCheck(in.Email); msg != "" {
		fields = append(fields, FieldError{Field: "email", Message: msg})
	}
	if in.Role != "" && !in.Role.Valid() {
		fields = append(fields, FieldError{Field: "role", Message: "must be owner, admin or member"})
	}
	if len(fields) > 0 {
		return Invalid("invalid member", fields...)
	}
	return nil
}

// CreateKeyInput is a new API key of a tenant. Name is trimmed; ExpiresAt
// nil means the key never expires.
type CreateKeyInput struct {
	Name      string
	Scopes    []Scope
	ExpiresAt *time.Time
	// Kind is KeySecret when empty. A KeyPublishable key carries only
	// ScopeWrite (Scopes may be empty or exactly that); Origins and
	// RatePerMinute apply to publishable keys only.
	Kind                 KeyKind
	Origins              []string
	RatePerMinute        int
	AddressRatePerMinute int
}

// MaxKeyOrigins is the most allowed origins a publishable key may name.
const MaxKeyOrigins = 50

// ValidOrigin reports whether s is a web origin as browsers send it in
// the Origin header: http or https, a host, an optional port, nothing
// else (no path, no trailing slash).
func ValidOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil &&
		u.Path == "" && u.RawQuery == "" && u.Fragment == "" && !strings.HasSuffix(s, "/") &&
		u.Scheme+"://"+u.Host == s
}

// Validate checks the name, that there is at least one scope and each is
// known, and that ExpiresAt is after now; EInvalid naming every field at
// fault.
func (in CreateKeyInput) Validate(now time.Time) error {
	var fields []FieldError
	if msg := NameCheck(strings.TrimSpace(in.Name)); msg != "" {
		fields = append(fields, FieldError{Field: "name", Message: msg})
	}
	switch in.Kind {
	case "", KeySecret:
		if len(in.Scopes) == 0 {
			fields = append(fields, FieldError{Field: "scopes", Message: "must name at least one scope"})
		}
		if len(in.Origins) > 0 || in.RatePerMinute != 0 || in.AddressRatePerMinute != 0 {
			fields = append(fields, FieldError{Field: "kind", Message: "allowed_origins and rate_limit_per_minute are for publishable keys"})
		}
	case KeyPublishable:
		for _, sc := range in.Scopes {
			if sc != ScopeWrite {
				fields = append(fields, FieldError{Field: "scopes", Message: "a publishable key carries analytics:write only"})
				break
			}
		}
		if len(in.Origins) > MaxKeyOrigins {
			fields = append(fields, FieldError{Field: "allowed_origins", Message: fmt.Sprintf("must name at most %d origins", MaxKeyOrigins)})
		}
		for _, o := range in.Origins {
			if !ValidOrigin(o) {
				fields = append(fields, FieldError{Field: "allowed_origins", Message: "must be origins such as https://app.example.com, not " + strconv.Quote(o)})
				break
			}
		}
		if in.RatePerMinute < 0 || in.RatePerMinute > MaxPublishableRate {
			fields = append(fields, FieldError{Field: "rate_limit_per_minute", Message: fmt.Sprintf("must be from 1 to %d (0: the default %d)", MaxPublishableRate, DefaultPublishableRate)})
		}
		if in.AddressRatePerMinute < 0 || in.AddressRatePerMinute > MaxPublishableRate {
			fields = append(fields, FieldError{Field: "address_rate_limit_per_minute", Message: fmt.Sprintf("must be from 1 to %d (0: none)", MaxPublishableRate)})
		}
	default:
		fields = append(fields, FieldError{Field: "kind", Message: "must be secret or publishable"})
	}
	for _, sc := range in.Scopes {
		if !sc.Valid() {
			fields = append(fields, FieldError{Field: "scopes", Message: "unknown scope " + strconv.Quote(string(sc))})
		}
	}
	if in.ExpiresAt != nil && !in.ExpiresAt.After(now) {
		fields = append(fields, FieldError{Field: "expires_at", Message: "must be in the future"})
	}
	if len(fields) > 0 {
		return Invalid("invalid API key", fields...)
	}
	return nil
}

// LastOwnerError is the error of a removal or demotion that would leave a
// tenant without an owner.
func LastOwnerError() *Error {
	return Errorf(EConflict, "a tenant keeps at least one owner")
}

// TenantUpdate is a change of a tenant's settings (PATCH /api/tenants/{slug},
// `tally tenant update`): nil fields stay as they are. The webhook URL,
// which needs a network check and mints a secret, is the server's.
type TenantUpdate struct {
	Name          *string
	AllowSignup   *bool
	Timezone      *string
	RetentionDays *int
}

// MaxRetentionDays is the longest raw-event retention a tenant may set.
const MaxRetentionDays = 3650

// Apply validates the update and writes it into t. A broken rule is an
// EInvalid *Error naming every bad field; t is then unchanged.
func (u TenantUpdate) Apply(t *Tenant) error {
	next := *t
	var bad []FieldError
	if u.Name != nil {
		if n := strings.TrimSpace(*u.Name); !ValidName(n) {
			bad = append(bad, FieldError{Field: "name", Message: NameCheck(n)})
		} else {
			next.Name = n
		}
	}
	if u.AllowSignup != nil {
		next.AllowSignup = *u.AllowSignup
	}
	if u.Timezone != nil {
		if _, err := time.LoadLocation(*u.Timezone); err != nil || *u.Timezone == "" || *u.Timezone == "Local" {
			bad = append(bad, FieldError{Field: "timezone", Message: "must be an IANA time zone name"})
		} else {
			next.Timezone = *u.Timezone
		}
	}
	if u.RetentionDays != nil {
		if *u.RetentionDays < 1 || *u.RetentionDays > MaxRetentionDays {
			bad = append(bad, FieldError{Field: "retention_days", Message: fmt.Sprintf("must be 1-%d", MaxRetentionDays)})
		} else {
			next.RetentionDays = *u.RetentionDays
		}
	}
	if bad != nil {
		return Invalid("invalid tenant settings", bad...)
	}
	*t = next
	return nil
}
