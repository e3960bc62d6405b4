package tally_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// invalidFields returns the fields an EInvalid error names, in order; nil
// for a nil error. Any other error fails the test.
func invalidFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *tally.Error
	if !errors.As(err, &e) || e.Code != tally.EInvalid {
		t.Fatalf("error %v is not an EInvalid *tally.Error", err)
	}
	var out []string
	for _, f := range e.Fields {
		out = append(out, f.Field)
	}
	return out
}

func TestRegisterInputValidate(t *testing.T) {
	t.Parallel()
	const ok = "abcdefgh"
	for _, tc := range []struct {
		name string
		in   tally.RegisterInput
		want []string
	}{
		{"valid", tally.RegisterInput{Email: "a@b.example", Password: ok, Name: "Ada"}, nil},
		{"no name", tally.RegisterInput{Email: "a@b.example", Password: ok}, nil},
		{"email case and space", tally.RegisterInput{Email: "  Ada@Example.COM ", Password: ok}, nil},
		{"7 characters", tally.RegisterInput{Email: "a@b.example", Password: "abcdefg"}, []string{"password"}},
		{"8 characters", tally.RegisterInput{Email: "a@b.example", Password: "abcdefgh"}, nil},
		{"7 runes in 14 bytes", tally.RegisterInput{Email: "a@b.example", Password: "ééééééé"}, []string{"password"}},
		{"8 runes in 16 bytes", tally.RegisterInput{Email: "a@b.example", Password: "éééééééé"}, nil},
		{"4 runes in 16 bytes", tally.RegisterInput{Email: "a@b.example", Password: "🔑🔑🔑🔑"}, []string{"password"}},
		{"1024 bytes", tally.RegisterInput{Email: "a@b.example", Password: strings.Repeat("x", 1024)}, nil},
		{"1025 bytes", tally.RegisterInput{Email: "a@b.example", Password: strings.Repeat("x", 1025)}, []string{"password"}},
		{"1026 bytes of 2-byte runes", tally.RegisterInput{Email: "a@b.example", Password: strings.Repeat("é", 513)}, []string{"password"}},
		{"empty password", tally.RegisterInput{Email: "a@b.example"}, []string{"password"}},
		{"name 200 bytes", tally.RegisterInput{Email: "a@b.example", Password: ok, Name: strings.Repeat("n", 200)}, nil},
		{"name 201 bytes", tally.RegisterInput{Email: "a@b.example", Password: ok, Name: strings.Repeat("n", 201)}, []string{"name"}},
		{"everything wrong", tally.RegisterInput{Email: "nope", Password: "short", Name: strings.Repeat("n", 201)}, []string{"email", "password", "name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.in.Validate()
			if got := invalidFields(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("Validate(%+v) fields = %v, want %v (%v)", tc.in, got, tc.want, err)
			}
			if err != nil && tally.ErrorMessageOf(err) != "invalid registration" {
				t.Fatalf("message %q, want %q", tally.ErrorMessageOf(err), "invalid registration")
			}
		})
	}
}

func TestValidEmail(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 254-len("@b.example")) + "@b.example"
	for _, tc := range []struct {
		email string
		want  bool
	}{
		{"a@b", true},
		{"ada@example.com", true},
		{long, true},
		{"a" + long, false},
		{"", false},
		{"@", false},
		{"@example.com", false},
		{"ada@", false},
		{"ada example.com", false},
		{"ada @example.com", false},
		{"ada@exa\tmple.com", false},
		{"ada@example.com\n", false},
	} {
		if got := tally.ValidEmail(tc.email); got != tc.want {
			t.Errorf("ValidEmail(%q) = %v, want %v", tc.email, got, tc.want)
		}
	}
}

func TestChangePasswordInputValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		password string
		valid    bool
	}{
		{"abcdefg", false},
		{"abcdefgh", true},
		{"ééééééé", false},
		{"éééééééé", true},
		{strings.Repeat("x", 1024), true},
		{strings.Repeat("x", 1025), false},
	} {
		err := tally.ChangePasswordInput{Email: "a@b.example", Password: tc.password}.Validate()
		if got := invalidFields(t, err); tc.valid != (got == nil) || (!tc.valid && !slices.Equal(got, []string{"password"})) {
			t.Errorf("Validate(password of %d bytes) = %v, want valid %v", len(tc.password), err, tc.valid)
		}
	}
}

func TestCreateTenantInputValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   tally.CreateTenantInput
		want []string
	}{
		{"valid", tally.CreateTenantInput{Slug: "acme", Name: "Acme"}, nil},
		{"shortest slug", tally.CreateTenantInput{Slug: "ab", Name: "Acme"}, nil},
		{"one-character slug", tally.CreateTenantInput{Slug: "a", Name: "Acme"}, []string{"slug"}},
		{"63-character slug", tally.CreateTenantInput{Slug: strings.Repeat("a", 63), Name: "Acme"}, nil},
		{"64-character slug", tally.CreateTenantInput{Slug: strings.Repeat("a", 64), Name: "Acme"}, []string{"slug"}},
		{"digit first", tally.CreateTenantInput{Slug: "9lives", Name: "Acme"}, nil},
		{"dash first", tally.CreateTenantInput{Slug: "-acme", Name: "Acme"}, []string{"slug"}},
		{"dash last", tally.CreateTenantInput{Slug: "acme-", Name: "Acme"}, nil},
		{"upper case", tally.CreateTenantInput{Slug: "Acme", Name: "Acme"}, []string{"slug"}},
		{"underscore", tally.CreateTenantInput{Slug: "ac_me", Name: "Acme"}, []string{"slug"}},
		{"empty slug", tally.CreateTenantInput{Name: "Acme"}, []string{"slug"}},
		{"blank name", tally.CreateTenantInput{Slug: "acme", Name: "   "}, []string{"name"}},
		{"name 200 bytes", tally.CreateTenantInput{Slug: "acme", Name: strings.Repeat("n", 200)}, nil},
		{"name 201 bytes", tally.CreateTenantInput{Slug: "acme", Name: strings.Repeat("n", 201)}, []string{"name"}},
		{"name trimmed to 200", tally.CreateTenantInput{Slug: "acme", Name: " " + strings.Repeat("n", 200) + " "}, nil},
		{"both", tally.CreateTenantInput{}, []string{"name", "slug"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := invalidFields(t, tc.in.Validate()); !slices.Equal(got, tc.want) {
				t.Fatalf("Validate(%+v) fields = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestAddMemberInputValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		role  tally.Role
		valid bool
	}{
		{"", true}, {tally.RoleOwner, true}, {tally.RoleAdmin, true}, {tally.RoleMember, true},
		{"root", false}, {"Owner", false},
	} {
		err := tally.AddMemberInput{Email: "a@b.example", Role: tc.role}.Validate()
		if got := invalidFields(t, err); tc.valid != (got == nil) || (!tc.valid && !slices.Equal(got, []string{"role"})) {
			t.Errorf("Validate(role %q) = %v, want valid %v", tc.role, err, tc.valid)
		}
	}
}

func TestCreateKeyInputValidate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	later, earlier := now.Add(time.Second), now
	all := []tally.Scope{tally.ScopeRead}
	for _, tc := range []struct {
		name string
		in   tally.CreateKeyInput
		want []string
	}{
		{"valid", tally.CreateKeyInput{Name: "ci", Scopes: all}, nil},
		{"every scope", tally.CreateKeyInput{Name: "ci", Scopes: tally.AllScopes}, nil},
		{"expires later", tally.CreateKeyInput{Name: "ci", Scopes: all, ExpiresAt: &later}, nil},
		{"expires now", tally.CreateKeyInput{Name: "ci", Scopes: all, ExpiresAt: &earlier}, []string{"expires_at"}},
		{"blank name", tally.CreateKeyInput{Name: " ", Scopes: all}, []string{"name"}},
		{"name 200 bytes", tally.CreateKeyInput{Name: strings.Repeat("k", 200), Scopes: all}, nil},
		{"name 201 bytes", tally.CreateKeyInput{Name: strings.Repeat("k", 201), Scopes: all}, []string{"name"}},
		{"no scopes", tally.CreateKeyInput{Name: "ci"}, []string{"scopes"}},
		{"unknown scopes", tally.CreateKeyInput{Name: "ci", Scopes: []tally.Scope{"a", tally.ScopeRead, "b"}}, []string{"scopes", "scopes"}},
		{"everything wrong", tally.CreateKeyInput{ExpiresAt: &earlier}, []string{"name", "scopes", "expires_at"}},
		{"publishable", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, Origins: []string{"https://a.example", "http://localhost:3000"}, RatePerMinute: 60}, nil},
		{"publishable, write scope", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, Scopes: []tally.Scope{tally.ScopeWrite}}, nil},
		{"publishable, read scope", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, Scopes: []tally.Scope{tally.ScopeRead}}, []string{"scopes"}},
		{"publishable, bad origins", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, Origins: []string{"https://a.example/"}}, []string{"allowed_origins"}},
		{"publishable, path in origin", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, Origins: []string{"https://a.example/x"}}, []string{"allowed_origins"}},
		{"publishable, ftp origin", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, Origins: []string{"ftp://a.example"}}, []string{"allowed_origins"}},
		{"publishable, negative rate", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, RatePerMinute: -1}, []string{"rate_limit_per_minute"}},
		{"secret with origins", tally.CreateKeyInput{Name: "ci", Scopes: all, Origins: []string{"https://a.example"}}, []string{"kind"}},
		{"publishable, negative address rate", tally.CreateKeyInput{Name: "site", Kind: tally.KeyPublishable, AddressRatePerMinute: -1}, []string{"address_rate_limit_per_minute"}},
		{"unknown kind", tally.CreateKeyInput{Name: "ci", Scopes: all, Kind: "other"}, []string{"kind"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := invalidFields(t, tc.in.Validate(now)); !slices.Equal(got, tc.want) {
				t.Fatalf("Validate(%+v) fields = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestNameProblemStatesTheBound(t *testing.T) {
	t.Parallel()
	if want := "must be 1-" + strconv.Itoa(tally.MaxNameBytes) + " characters"; tally.NameProblem != want {
		t.Fatalf("NameProblem = %q, want %q", tally.NameProblem, want)
	}
}

// TestAccountInputsRefuseNonText: NUL and invalid UTF-8 in any account
// text field is EInvalid naming the field, whoever calls Validate (the
// API, the command line, the demo seeder).
func TestAccountInputsRefuseNonText(t *testing.T) {
	now := time.Now()
	for _, bad := range []string{"\x00", "a\x00b", "\xff", "ok\xc3\x28"} {
		for _, tt := range []struct {
			name, field string
			err         error
		}{
			{"register email", "email", tally.RegisterInput{Email: bad + "a@b.c", Password: "long-enough-pw"}.Validate()},
			{"register name", "name", tally.RegisterInput{Email: "a@b.c", Password: "long-enough-pw", Name: bad}.Validate()},
			{"login email", "email", tally.LoginInput{Email: "a@b.c" + bad}.Validate()},
			{"tenant name", "name", tally.CreateTenantInput{Name: "T" + bad, Slug: "tenant"}.Validate()},
			{"member email", "email", tally.AddMemberInput{Email: bad}.Validate()},
			{"key name", "name", tally.CreateKeyInput{Name: "k" + bad, Scopes: []tally.Scope{tally.ScopeRead}}.Validate(now)},
		} {
			var te *tally.Error
			if !errors.As(tt.err, &te) || te.Code != tally.EInvalid || len(te.Fields) != 1 || te.Fields[0].Field != tt.field {
				t.Errorf("%s %q: %v, want EInvalid naming only %s", tt.name, bad, tt.err, tt.field)
			}
		}
		if tally.ValidName("T" + bad) {
			t.Errorf("ValidName(%q) is true", "T"+bad)
		}
	}
	if err := (tally.LoginInput{Email: "not an email"}).Validate(); err != nil {
		t.Errorf("login with any text email: %v, want nil (a failed login, not EInvalid)", err)
	}
}
