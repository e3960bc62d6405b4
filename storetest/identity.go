package storetest

import (
	"cmp"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

func userCases() []testCase {
	return []testCase{
		{"CreateAndLookUp", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			before := now()
			u := &tally.User{Email: "Alice@Example.com", Name: "Alice"}
			check(t, s.CreateUser(ctx, u, "argon2-hash"))
			if u.ID == 0 {
				t.Fatal("CreateUser did not set ID")
			}
			if u.CreatedAt.Before(before.Add(-time.Second)) || u.CreatedAt.After(now().Add(time.Second)) {
				t.Fatalf("CreatedAt = %v, want about %v", u.CreatedAt, before)
			}
			other := newUser(t, s, "bob@example.com")
			if other.ID == u.ID {
				t.Fatalf("two users share ID %d", u.ID)
			}

			for _, email := range []string{"alice@example.com", "ALICE@EXAMPLE.COM", "  Alice@Example.com "} {
				got, hash, err := s.UserByEmail(ctx, email)
				check(t, err)
				if got.ID != u.ID || got.Name != "Alice" || hash != "argon2-hash" {
					t.Fatalf("UserByEmail(%q) = %+v, %q; want user %d Alice with its hash", email, got, hash, u.ID)
				}
				if tally.NormalizeEmail(got.Email) != "alice@example.com" {
					t.Fatalf("UserByEmail(%q).Email = %q", email, got.Email)
				}
			}
			got, err := s.UserByID(ctx, u.ID)
			check(t, err)
			if got.ID != u.ID || got.Name != "Alice" || tally.NormalizeEmail(got.Email) != "alice@example.com" || !got.CreatedAt.Equal(u.CreatedAt) {
				t.Fatalf("UserByID = %+v, want %+v", got, u)
			}
		}},
		{"DuplicateEmailConflicts", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			first := newUser(t, s, "carol@example.com")
			for _, email := range []string{"carol@example.com", "Carol@Example.COM", " carol@example.com\t"} {
				err := s.CreateUser(ctx, &tally.User{Email: email, Name: "Impostor"}, "other-hash")
				wantCode(t, err, tally.EConflict, "CreateUser("+email+")")
			}
			got, hash, err := s.UserByEmail(ctx, "carol@example.com")
			check(t, err)
			if got.ID != first.ID || hash != "hash-of-carol@example.com" {
				t.Fatalf("after conflicts UserByEmail = %+v, %q; want the first user unchanged", got, hash)
			}
		}},
		{"SetPassword", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			u := newUser(t, s, "heidi@example.com")
			other := newUser(t, s, "ivan@example.com")
			check(t, s.SetPassword(ctx, u.ID, "new-hash"))
			for email, want := range map[string]string{"heidi@example.com": "new-hash", "ivan@example.com": "hash-of-ivan@example.com"} {
				_, hash, err := s.UserByEmail(ctx, email)
				check(t, err)
				if hash != want {
					t.Fatalf("after SetPassword, %s has hash %q, want %q", email, hash, want)
				}
			}
			wantCode(t, s.SetPassword(ctx, other.ID+1000, "x"), tally.ENotFound, "SetPassword(unknown user)")
		}},
		{"ListUsers", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			got, err := s.ListUsers(ctx)
			check(t, err)
			if got == nil || len(got) != 0 {
				t.Fatalf("ListUsers of an empty store = %#v, want an empty list", got)
			}
			a, b := newUser(t, s, "list-a@example.com"), newUser(t, s, "list-b@example.com")
			got, err = s.ListUsers(ctx)
			check(t, err)
			if len(got) != 2 || got[0].ID != a.ID || got[1].ID != b.ID || got[0].Email != a.Email ||
				!got[0].CreatedAt.Equal(a.CreatedAt) || got[0].CreatedAt.Location() != time.UTC {
				t.Fatalf("ListUsers = %+v, want %+v and %+v by id, times in UTC", got, a, b)
			}
		}},
		{"NotFound", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			u := newUser(t, s, "dave@example.com")
			_, _, err := s.UserByEmail(ctx, "nobody@example.com")
			wantCode(t, err, tally.ENotFound, "UserByEmail(unknown)")
			_, err = s.UserByID(ctx, u.ID+1000)
			wantCode(t, err, tally.ENotFound, "UserByID(unknown)")
		}},
	}
}

func sessionCases() []testCase {
	return []testCase{
		{"CreateAndLookUp", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			u := newUser(t, s, "erin@example.com")
			t0 := now()
			sess := &tally.Session{UserID: u.ID, TokenHash: []byte("hash-1"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
			check(t, s.CreateSession(ctx, sess))
			if sess.ID == 0 {
				t.Fatal("CreateSession did not set ID")
			}
			got, err := s.SessionByHash(ctx, []byte("hash-1"), t0.Add(time.Minute))
			check(t, err)
			if got.ID != sess.ID || got.UserID != u.ID || string(got.TokenHash) != "hash-1" || !got.ExpiresAt.Equal(sess.ExpiresAt) {
				t.Fatalf("SessionByHash = %+v, want %+v", got, sess)
			}
			_, err = s.SessionByHash(ctx, []byte("hash-2"), t0)
			wantCode(t, err, tally.ENotFound, "SessionByHash(unknown hash)")
		}},
		{"Expired", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			u := newUser(t, s, "frank@example.com")
			t0 := now()
			check(t, s.CreateSession(ctx, &tally.Session{UserID: u.ID, TokenHash: []byte("h"), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
			_, err := s.SessionByHash(ctx, []byte("h"), t0.Add(time.Hour-time.Second))
			check(t, err)
			_, err = s.SessionByHash(ctx, []byte("h"), t0.Add(time.Hour+time.Second))
			wantCode(t, err, tally.ENotFound, "SessionByHash(after expiry)")
		}},
		{"Revoked", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			u := newUser(t, s, "grace@example.com")
			t0 := now()
			for _, h := range []string{"keep", "revoke"} {
				check(t, s.CreateSession(ctx, &tally.Session{UserID: u.ID, TokenHash: []byte(h), CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
			}
			check(t, s.RevokeSession(ctx, []byte("revoke")))
			_, err := s.SessionByHash(ctx, []byte("revoke"), t0)
			wantCode(t, err, tally.ENotFound, "SessionByHash(revoked)")
			if _, err := s.SessionByHash(ctx, []byte("keep"), t0); err != nil {
				t.Fatalf("revoking one session ended another: %v", err)
			}
		}},
	}
}

func tenantCases() []testCase {
	return []testCase{
		{"CreateMakesOwner", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			owner := newUser(t, s, "owner@example.com")
			want := tally.Tenant{Slug: "acme", Name: "Acme", AllowSignup: true, Timezone: "Europe/Berlin",
				RetentionDays: 30, WebhookURL: "https://hooks.example/acme", WebhookSecret: "s3cret"}
			tn := &tally.Tenant{}
			*tn = want
			check(t, s.CreateTenant(ctx, tn, owner.ID))
			if tn.ID == 0 || tn.CreatedAt.IsZero() {
				t.Fatalf("CreateTenant did not set ID and CreatedAt: %+v", tn)
			}
			want.ID, want.CreatedAt = tn.ID, tn.CreatedAt
			role, err := s.MemberRole(ctx, tn.ID, owner.ID)
			check(t, err)
			if role != tally.RoleOwner {
				t.Fatalf("owner's role = %q, want owner", role)
			}
			ms, err := s.Memberships(ctx, owner.ID)
			check(t, err)
			if len(ms) != 1 || ms[0].TenantID != tn.ID || ms[0].Slug != "acme" || ms[0].Name != "Acme" || ms[0].Role != tally.RoleOwner {
				t.Fatalf("Memberships = %+v, want acme as owner", ms)
			}
			for name, get := range map[string]func() (*tally.Tenant, error){
				"TenantBySlug": func() (*tally.Tenant, error) { return s.TenantBySlug(ctx, "acme") },
				"TenantByID":   func() (*tally.Tenant, error) { return s.TenantByID(ctx, tn.ID) },
			} {
				got, err := get()
				check(t, err)
				if !sameTenant(got, &want) {
					t.Fatalf("%s = %+v, want %+v", name, got, want)
				}
			}
		}},
		{"SlugConflict", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			first := newTenant(t, s, "taken")
			other := newUser(t, s, "other@example.com")
			err := s.CreateTenant(ctx, &tally.Tenant{Slug: "taken", Name: "Second"}, other.ID)
			wantCode(t, err, tally.EConflict, "CreateTenant(taken slug)")
			// Tenant and owner are written in one transaction: the failed
			// create left no membership behind.
			ms, err := s.Memberships(ctx, other.ID)
			check(t, err)
			if len(ms) != 0 {
				t.Fatalf("failed CreateTenant left memberships %+v", ms)
			}
			got, err := s.TenantBySlug(ctx, "taken")
			check(t, err)
			if got.ID != first.ID || got.Name != first.Name {
				t.Fatalf("TenantBySlug(taken) = %+v, want the first tenant", got)
			}
		}},
		{"NotFound", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			tn := newTenant(t, s, "known")
			_, err := s.TenantBySlug(ctx, "unknown")
			wantCode(t, err, tally.ENotFound, "TenantBySlug(unknown)")
			_, err = s.TenantByID(ctx, tn.ID+1000)
			wantCode(t, err, tally.ENotFound, "TenantByID(unknown)")
			err = s.UpdateTenant(ctx, &tally.Tenant{ID: tn.ID + 1000, Slug: "ghost", Name: "Ghost", Timezone: "UTC", RetentionDays: 1})
			wantCode(t, err, tally.ENotFound, "UpdateTenant(unknown)")
		}},
		{"UpdateRoundTrip", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			tn := newTenant(t, s, "mutable")
			other := newTenant(t, s, "bystander")
			cases := []tally.Tenant{
				{Name: "Renamed", AllowSignup: true, Timezone: "America/New_York", RetentionDays: 90,
					WebhookURL: "https://hooks.example/x", WebhookSecret: "whsec_1"},
				{Name: "Back", AllowSignup: false, Timezone: "UTC", RetentionDays: 7, WebhookURL: "", WebhookSecret: ""},
			}
			for _, c := range cases {
				c.ID, c.Slug, c.CreatedAt = tn.ID, tn.Slug, tn.CreatedAt
				check(t, s.UpdateTenant(ctx, &c))
				got, err := s.TenantByID(ctx, tn.ID)
				check(t, err)
				if !sameTenant(got, &c) {
					t.Fatalf("after UpdateTenant, TenantByID = %+v, want %+v", got, c)
				}
			}
			got, err := s.TenantByID(ctx, other.ID)
			check(t, err)
			if !sameTenant(got, other) {
				t.Fatalf("UpdateTenant changed another tenant: %+v, want %+v", got, other)
			}
		}},
		{"AllTenants", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			want := []*tally.Tenant{newTenant(t, s, "one"), newTenant(t, s, "two"), newTenant(t, s, "three")}
			all, err := s.AllTenants(ctx)
			check(t, err)
			if len(all) != len(want) {
				t.Fatalf("AllTenants returned %d tenants, want %d", len(all), len(want))
			}
			for _, w := range want {
				i := slices.IndexFunc(all, func(x tally.Tenant) bool { return x.ID == w.ID })
				if i < 0 || !sameTenant(&all[i], w) {
					t.Fatalf("AllTenants = %+v, missing %+v", all, w)
				}
			}
		}},
		{"Memberships", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			u := newUser(t, s, "multi@example.com")
			zeta := &tally.Tenant{Slug: "zeta", Name: "Zeta"}
			check(t, s.CreateTenant(ctx, zeta, u.ID))
			alpha := newTenant(t, s, "alpha")
			mid := newTenant(t, s, "mid")
			newTenant(t, s, "elsewhere")
			check(t, s.AddMember(ctx, alpha.ID, u.ID, tally.RoleMember))
			check(t, s.AddMember(ctx, mid.ID, u.ID, tally.RoleAdmin))
			ms, err := s.Memberships(ctx, u.ID)
			check(t, err)
			want := []tally.Membership{
				{TenantID: alpha.ID, Slug: "alpha", Name: alpha.Name, Role: tally.RoleMember},
				{TenantID: mid.ID, Slug: "mid", Name: mid.Name, Role: tally.RoleAdmin},
				{TenantID: zeta.ID, Slug: "zeta", Name: "Zeta", Role: tally.RoleOwner},
			}
			if !slices.Equal(ms, want) {
				t.Fatalf("Memberships = %+v, want (by slug) %+v", ms, want)
			}
			loner := newUser(t, s, "loner@example.com")
			ms, err = s.Memberships(ctx, loner.ID)
			check(t, err)
			if len(ms) != 0 {
				t.Fatalf("Memberships of a user in no tenant = %+v", ms)
			}
		}},
		{"Members", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			tn := newTenant(t, s, "team")
			other := newTenant(t, s, "other-team")
			admin := newUser(t, s, "admin@example.com")
			member := newUser(t, s, "member@example.com")
			check(t, s.AddMember(ctx, tn.ID, admin.ID, tally.RoleAdmin))
			check(t, s.AddMember(ctx, tn.ID, member.ID, tally.RoleMember))
			err := s.AddMember(ctx, tn.ID, member.ID, tally.RoleAdmin)
			wantCode(t, err, tally.EConflict, "AddMember(already a member)")
			if role, err := s.MemberRole(ctx, tn.ID, member.ID); err != nil || role != tally.RoleMember {
				t.Fatalf("after a conflicting AddMember, MemberRole = %q, %v; want member", role, err)
			}
			_, err = s.MemberRole(ctx, other.ID, admin.ID)
			wantCode(t, err, tally.ENotFound, "MemberRole(member of another tenant)")

			list, err := s.ListMembers(ctx, tn.ID)
			check(t, err)
			owner, _, err := s.UserByEmail(ctx, "owner@team.example")
			check(t, err)
			type m struct {
				id    int64
				email string
				name  string
				role  tally.Role
			}
			var got []m
			for _, x := range list {
				if x.AddedAt.IsZero() {
					t.Fatalf("ListMembers: member %d has no AddedAt", x.UserID)
				}
				got = append(got, m{x.UserID, tally.NormalizeEmail(x.Email), x.Name, x.Role})
			}
			want := []m{
				{owner.ID, "owner@team.example", owner.Name, tally.RoleOwner},
				{admin.ID, "admin@example.com", admin.Name, tally.RoleAdmin},
				{member.ID, "member@example.com", member.Name, tally.RoleMember},
			}
			if !slices.Equal(got, want) {
				t.Fatalf("ListMembers = %+v, want (by join time) %+v", got, want)
			}

			check(t, s.RemoveMember(ctx, tn.ID, admin.ID))
			_, err = s.MemberRole(ctx, tn.ID, admin.ID)
			wantCode(t, err, tally.ENotFound, "MemberRole(removed member)")
			wantCode(t, s.RemoveMember(ctx, tn.ID, admin.ID), tally.ENotFound, "RemoveMember(removed again)")
			wantCode(t, s.RemoveMember(ctx, other.ID, member.ID), tally.ENotFound, "RemoveMember(member of another tenant)")
			if role, err := s.MemberRole(ctx, tn.ID, member.ID); err != nil || role != tally.RoleMember {
				t.Fatalf("RemoveMember in another tenant removed the member: %q, %v", role, err)
			}
			list, err = s.ListMembers(ctx, tn.ID)
			check(t, err)
			if len(list) != 2 || list[0].UserID != owner.ID || list[1].UserID != member.ID {
				t.Fatalf("after RemoveMember, ListMembers = %+v, want owner and member", list)
			}
			// The member can join again after removal.
			check(t, s.AddMember(ctx, tn.ID, admin.ID, tally.RoleMember))
		}},
	}
}

// sameTenant compares every stored field of two tenants.
func sameTenant(a, b *tally.Tenant) bool {
	return a.ID == b.ID && a.Slug == b.Slug && a.Name == b.Name && a.AllowSignup == b.AllowSignup &&
		a.Timezone == b.Timezone && a.RetentionDays == b.RetentionDays && a.WebhookURL == b.WebhookURL &&
		a.WebhookSecret == b.WebhookSecret && a.CreatedAt.Equal(b.CreatedAt)
}

func keyCases() []testCase {
	return []testCase{
		{"CreateAndLookUp", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			tn := newTenant(t, s, "keys")
			exp := now().Add(24 * time.Hour)
			cases := []tally.APIKey{
				{Name: "no scopes", Prefix: "tly_none", Hash: []byte{0, 1, 2}},
				{Name: "one scope", Prefix: "tly_one", Hash: []byte("h1"), Scopes: []tally.Scope{tally.ScopeWrite}},
				{Name: "all scopes", Prefix: "tly_all", Hash: []byte("h2"), Scopes: tally.AllScopes, ExpiresAt: &exp},
			}
			for _, k := range cases {
				k.TenantID = tn.ID
				check(t, s.CreateKey(ctx, &k))
				if k.ID == 0 || k.CreatedAt.IsZero() {
					t.Fatalf("CreateKey did not set ID and CreatedAt: %+v", k)
				}
				got, err := s.KeyByPrefix(ctx, k.Prefix)
				check(t, err)
				if !sameKey(got, &k) {
					t.Fatalf("KeyByPrefix(%q) = %+v, want %+v", k.Prefix, got, k)
				}
				if !got.Active(now()) {
					t.Fatalf("new key %q is not active", k.Prefix)
				}
			}
			_, err := s.KeyByPrefix(ctx, "tly_unknown")
			wantCode(t, err, tally.ENotFound, "KeyByPrefix(unknown)")
		}},
		{"PublishableKeyFields", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			tn := newTenant(t, s, "pub")
			pub := &tally.APIKey{TenantID: tn.ID, Name: "site", Prefix: "tly_pub", Hash: []byte("p"), Scopes: []tally.Scope{tally.ScopeWrite},
				Kind: tally.KeyPublishable, Origins: []string{"https://a.example", "http://localhost:3000"}, RatePerMinute: 120, AddressRatePerMinute: 30}
			check(t, s.CreateKey(ctx, pub))
			sec := &tally.APIKey{TenantID: tn.ID, Name: "server", Prefix: "tly_sec", Hash: []byte("s"), Scopes: []tally.Scope{tally.ScopeRead}}
			check(t, s.CreateKey(ctx, sec))
			got, err := s.KeyByPrefix(ctx, "tly_pub")
			check(t, err)
			if !got.Publishable() || !slices.Equal(got.Origins, pub.Origins) || got.RatePerMinute != 120 || got.AddressRatePerMinute != 30 {
				t.Fatalf("publishable key read back as %+v", got)
			}
			got, err = s.KeyByPrefix(ctx, "tly_sec")
			check(t, err)
			if got.Kind != tally.KeySecret || got.Publishable() || len(got.Origins) != 0 || got.RatePerMinute != 0 || got.AddressRatePerMinute != 0 {
				t.Fatalf("a key of no kind read back as %+v, want a secret key", got)
			}
			list, err := s.ListKeys(ctx, tn.ID)
			check(t, err)
			if len(list) != 2 || !list[1].Publishable() || !slices.Equal(list[1].Origins, pub.Origins) {
				t.Fatalf("ListKeys = %+v", list)
			}
		}},
		{"ExpiredKeyIsReturned", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			tn := newTenant(t, s, "expired")
			past := now().Add(-time.Hour)
			k := &tally.APIKey{TenantID: tn.ID, Name: "old", Prefix: "tly_old", Hash: []byte("h"), ExpiresAt: &past}
			check(t, s.CreateKey(ctx, k))
			got, err := s.KeyByPrefix(ctx, "tly_old")
			check(t, err)
			if got.Active(now()) || !sameTime(got.ExpiresAt, &past) {
				t.Fatalf("expired key = %+v, want ExpiresAt %v and not active", got, past)
			}
		}},
		{"PrefixConflict", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			check(t, s.CreateKey(ctx, &tally.APIKey{TenantID: a.ID, Name: "k", Prefix: "tly_same", Hash: []byte("a")}))
			err := s.CreateKey(ctx, &tally.APIKey{TenantID: b.ID, Name: "k", Prefix: "tly_same", Hash: []byte("b")})
			wantCode(t, err, tally.EConflict, "CreateKey(prefix taken in another tenant)")
			got, err := s.KeyByPrefix(ctx, "tly_same")
			check(t, err)
			if got.TenantID != a.ID || string(got.Hash) != "a" {
				t.Fatalf("KeyByPrefix after conflict = %+v, want tenant a's key", got)
			}
		}},
		{"ListOnlyOwnNewestFirst", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			var wantA []int64
			for i, p := range []string{"tly_a1", "tly_b1", "tly_a2", "tly_a3", "tly_b2"} {
				tid := a.ID
				if p[4] == 'b' {
					tid = b.ID
				}
				k := &tally.APIKey{TenantID: tid, Name: p, Prefix: p, Hash: []byte{byte(i)}, Scopes: []tally.Scope{tally.ScopeRead}}
				check(t, s.CreateKey(ctx, k))
				if tid == a.ID {
					wantA = append([]int64{k.ID}, wantA...)
				}
			}
			list, err := s.ListKeys(ctx, a.ID)
			check(t, err)
			var got []int64
			for _, k := range list {
				if k.TenantID != a.ID {
					t.Fatalf("ListKeys(a) returned key %q of tenant %d", k.Prefix, k.TenantID)
				}
				got = append(got, k.ID)
			}
			if !slices.Equal(got, wantA) {
				t.Fatalf("ListKeys(a) ids = %v, want newest first %v", got, wantA)
			}
			empty := newTenant(t, s, "no-keys")
			list, err = s.ListKeys(ctx, empty.ID)
			check(t, err)
			if len(list) != 0 {
				t.Fatalf("ListKeys of a tenant without keys = %+v", list)
			}
		}},
		{"RevokeOnlyInOwnTenant", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			k := &tally.APIKey{TenantID: a.ID, Name: "k", Prefix: "tly_k", Hash: []byte("h"), Scopes: []tally.Scope{tally.ScopeRead}}
			check(t, s.CreateKey(ctx, k))
			at := now()
			wantCode(t, s.RevokeKey(ctx, b.ID, k.ID, at), tally.ENotFound, "RevokeKey(another tenant's key)")
			got, err := s.KeyByPrefix(ctx, "tly_k")
			check(t, err)
			if got.RevokedAt != nil || !got.Active(at) {
				t.Fatalf("another tenant revoked the key: %+v", got)
			}
			wantCode(t, s.RevokeKey(ctx, a.ID, k.ID+1000, at), tally.ENotFound, "RevokeKey(unknown id)")

			check(t, s.RevokeKey(ctx, a.ID, k.ID, at))
			got, err = s.KeyByPrefix(ctx, "tly_k")
			check(t, err)
			if !sameTime(got.RevokedAt, &at) || got.Active(at) {
				t.Fatalf("revoked key = %+v, want RevokedAt %v and not active", got, at)
			}
			wantCode(t, s.RevokeKey(ctx, a.ID, k.ID, at.Add(time.Minute)), tally.ENotFound, "RevokeKey(already revoked)")
			got, err = s.KeyByPrefix(ctx, "tly_k")
			check(t, err)
			if !sameTime(got.RevokedAt, &at) {
				t.Fatalf("revoking again moved RevokedAt to %v, want %v", got.RevokedAt, at)
			}
			list, err := s.ListKeys(ctx, a.ID)
			check(t, err)
			if len(list) != 1 || !sameTime(list[0].RevokedAt, &at) {
				t.Fatalf("ListKeys after revoke = %+v, want the revoked key", list)
			}
		}},
		{"Touch", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			k := &tally.APIKey{TenantID: a.ID, Name: "k", Prefix: "tly_k", Hash: []byte("h")}
			check(t, s.CreateKey(ctx, k))
			t1 := now()
			// Touching through another tenant must not reach the key; the
			// contract leaves open whether it reports an error.
			_ = s.TouchKey(ctx, b.ID, k.ID, t1)
			got, err := s.KeyByPrefix(ctx, "tly_k")
			check(t, err)
			if got.LastUsedAt != nil {
				t.Fatalf("TouchKey in another tenant set LastUsedAt %v", got.LastUsedAt)
			}
			for _, at := range []time.Time{t1, t1.Add(time.Minute)} {
				check(t, s.TouchKey(ctx, a.ID, k.ID, at))
				got, err := s.KeyByPrefix(ctx, "tly_k")
				check(t, err)
				if !sameTime(got.LastUsedAt, &at) {
					t.Fatalf("after TouchKey(%v), LastUsedAt = %v", at, got.LastUsedAt)
				}
			}
		}},
	}
}

// sameKey compares every stored field of two keys.
func sameKey(a, b *tally.APIKey) bool {
	return a.ID == b.ID && a.TenantID == b.TenantID && a.Name == b.Name && a.Prefix == b.Prefix &&
		string(a.Hash) == string(b.Hash) && slices.Equal(a.Scopes, b.Scopes) && a.CreatedAt.Equal(b.CreatedAt) &&
		sameTime(a.ExpiresAt, b.ExpiresAt) && sameTime(a.LastUsedAt, b.LastUsedAt) && sameTime(a.RevokedAt, b.RevokedAt)
}

func quotaCases() []testCase {
	return []testCase{
		{"Upsert", func(t *testing.T, s tally.Store) {
			ctx := t.Context()
			a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
			got, err := s.Quotas(ctx, a.ID)
			check(t, err)
			if len(got) != 0 {
				t.Fatalf("Quotas of a fresh tenant = %+v", got)
			}
			check(t, s.SetQuota(ctx, a.ID, tally.Quota{Metric: "builds_daily", Limit: 10}))
			check(t, s.SetQuota(ctx, a.ID, tally.Quota{Metric: "api_requests_daily", Limit: 1000, Enforced: true}))
			check(t, s.SetQuota(ctx, b.ID, tally.Quota{Metric: "builds_daily", Limit: 99, Enforced: true}))
			check(t, s.SetQuota(ctx, a.ID, tally.Quota{Metric: "builds_daily", Limit: 20, Enforced: true}))
			check(t, s.SetQuota(ctx, a.ID, tally.Quota{Metric: "api_requests_daily", Limit: 500, Enforced: false}))
			check(t, s.SetQuota(ctx, b.ID, tally.Quota{Metric: "seats", Limit: 3, Period: tally.PeriodBilling, AnchorDay: 31, Thresholds: []int{50, 90, 100}}))
			check(t, s.SetQuota(ctx, b.ID, tally.Quota{Metric: "weekly", Limit: 3, Period: tally.PeriodWeek}))

			// An unset period is stored as day; period and anchor day
			// are kept.
			for _, c := range []struct {
				tenant int64
				want   []tally.Quota
			}{
				{a.ID, []tally.Quota{{Metric: "api_requests_daily", Limit: 500, Period: "day"}, {Metric: "builds_daily", Limit: 20, Enforced: true, Period: "day"}}},
				{b.ID, []tally.Quota{{Metric: "builds_daily", Limit: 99, Enforced: true, Period: "day"},
					{Metric: "seats", Limit: 3, Period: "billing", AnchorDay: 31, Thresholds: []int{50, 90, 100}}, {Metric: "weekly", Limit: 3, Period: "week"}}},
			} {
				got, err := s.Quotas(ctx, c.tenant)
				check(t, err)
				slices.SortFunc(got, func(x, y tally.Quota) int { return cmp.Compare(x.Metric, y.Metric) })
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("Quotas(%d) = %+v, want %+v", c.tenant, got, c.want)
				}
			}

			// DeleteQuota removes one tenant's override only.
			wantCode(t, s.DeleteQuota(ctx, a.ID, "nope_daily"), tally.ENotFound, "DeleteQuota(no override)")
			check(t, s.DeleteQuota(ctx, a.ID, "builds_daily"))
			wantCode(t, s.DeleteQuota(ctx, a.ID, "builds_daily"), tally.ENotFound, "DeleteQuota twice")
			got, err = s.Quotas(ctx, a.ID)
			check(t, err)
			if len(got) != 1 || got[0].Metric != "api_requests_daily" {
				t.Fatalf("after DeleteQuota, Quotas(a) = %+v", got)
			}
			if got, _ = s.Quotas(ctx, b.ID); len(got) != 3 || got[0].Metric != "builds_daily" {
				t.Fatalf("DeleteQuota of tenant a touched tenant b: %+v", got)
			}
		}},
	}
}
