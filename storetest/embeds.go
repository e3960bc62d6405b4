package storetest

import (
	"slices"
	"sync"
	"testing"

	"github.com/tallyhq/tally"
)

func embedCases() []testCase {
	return []testCase{
		{"SecretsCreateListRevoke", testEmbedSecrets},
		{"SecretCap", testEmbedSecretCap},
		{"Settings", testEmbedSettings},
	}
}

func testEmbedSecrets(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme, other := newTenant(t, s, "acme"), newTenant(t, s, "other")
	a := &tally.EmbedSecret{TenantID: acme.ID, Name: "web", Secret: "tly_embed_a", CreatedBy: "user:1"}
	check(t, s.CreateEmbedSecret(ctx, a))
	if a.ID <= 0 || a.CreatedAt.IsZero() {
		t.Fatalf("created %+v", a)
	}
	b := &tally.EmbedSecret{TenantID: acme.ID, Name: "app", Secret: "tly_embed_b", CreatedBy: "user:1"}
	check(t, s.CreateEmbedSecret(ctx, b))
	o := &tally.EmbedSecret{TenantID: other.ID, Name: "web", Secret: "tly_embed_o", CreatedBy: "user:2"}
	check(t, s.CreateEmbedSecret(ctx, o))

	list, err := s.EmbedSecrets(ctx, acme.ID)
	check(t, err)
	if len(list) != 2 || list[0].ID != b.ID || list[1].ID != a.ID {
		t.Fatalf("secrets of acme = %+v; want b, a", list)
	}
	if got := list[1]; got.Secret != "" || got.Name != "web" || got.CreatedBy != "user:1" || !got.CreatedAt.Equal(a.CreatedAt) || !got.Active() {
		t.Errorf("listed %+v (the list must leave the secret out)", got)
	}
	got, err := s.EmbedSecret(ctx, acme.ID, a.ID)
	check(t, err)
	if got.Secret != "tly_embed_a" || got.TenantID != acme.ID || !got.Active() {
		t.Errorf("EmbedSecret = %+v", got)
	}
	_, err = s.EmbedSecret(ctx, acme.ID, o.ID)
	wantCode(t, err, tally.ENotFound, "read another tenant's secret")

	at := now()
	wantCode(t, s.RevokeEmbedSecret(ctx, acme.ID, o.ID, at), tally.ENotFound, "revoke another tenant's secret")
	check(t, s.RevokeEmbedSecret(ctx, acme.ID, a.ID, at))
	wantCode(t, s.RevokeEmbedSecret(ctx, acme.ID, a.ID, at), tally.ENotFound, "revoke twice")
	got, err = s.EmbedSecret(ctx, acme.ID, a.ID)
	check(t, err)
	if got.Active() || !got.RevokedAt.Equal(at) {
		t.Errorf("revoked secret = %+v; want revoked at %v", got, at)
	}
	if o2, err := s.EmbedSecret(ctx, other.ID, o.ID); err != nil || !o2.Active() {
		t.Errorf("other tenant's secret after acme's revoke = %+v, %v", o2, err)
	}
}

// testEmbedSecretCap creates more secrets than the cap at once: exactly
// MaxEmbedSecrets succeed, and a revoked secret makes room.
func testEmbedSecretCap(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme := newTenant(t, s, "acme")
	var wg sync.WaitGroup
	errs := make([]error, tally.MaxEmbedSecrets+4)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.CreateEmbedSecret(ctx, &tally.EmbedSecret{TenantID: acme.ID, Name: "s", Secret: "x", CreatedBy: "user:1"})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else {
			wantCode(t, err, tally.EInvalid, "create past the cap")
		}
	}
	if ok != tally.MaxEmbedSecrets {
		t.Fatalf("%d of %d concurrent creations succeeded; want %d", ok, len(errs), tally.MaxEmbedSecrets)
	}
	list, err := s.EmbedSecrets(ctx, acme.ID)
	check(t, err)
	check(t, s.RevokeEmbedSecret(ctx, acme.ID, list[0].ID, now()))
	check(t, s.CreateEmbedSecret(ctx, &tally.EmbedSecret{TenantID: acme.ID, Name: "s", Secret: "x", CreatedBy: "user:1"}))
}

func testEmbedSettings(t *testing.T, s tally.Store) {
	ctx := t.Context()
	acme, other := newTenant(t, s, "acme"), newTenant(t, s, "other")
	e, err := s.EmbedSettings(ctx, acme.ID)
	check(t, err)
	if e.AllowedOrigins == nil || len(e.AllowedOrigins) != 0 || e.Theme != (tally.EmbedTheme{}) {
		t.Fatalf("settings never set = %+v; want no origin (an empty list) and the default theme", e)
	}
	want := tally.EmbedSettings{AllowedOrigins: []string{"https://app.example.com", "http://localhost:8080"},
		Theme: tally.EmbedTheme{Primary: "#ff0000", Background: "#fff", Text: "#111111", LogoURL: "https://example.com/logo.png"}}
	check(t, s.SetEmbedSettings(ctx, acme.ID, want))
	got, err := s.EmbedSettings(ctx, acme.ID)
	check(t, err)
	if !slices.Equal(got.AllowedOrigins, want.AllowedOrigins) || got.Theme != want.Theme {
		t.Errorf("settings = %+v; want %+v", got, want)
	}
	check(t, s.SetEmbedSettings(ctx, acme.ID, tally.EmbedSettings{}))
	got, err = s.EmbedSettings(ctx, acme.ID)
	check(t, err)
	if len(got.AllowedOrigins) != 0 || got.Theme != (tally.EmbedTheme{}) {
		t.Errorf("settings after reset = %+v", got)
	}
	if o, err := s.EmbedSettings(ctx, other.ID); err != nil || len(o.AllowedOrigins) != 0 {
		t.Errorf("other tenant's settings = %+v, %v", o, err)
	}
}
