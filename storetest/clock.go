package storetest

import (
	"testing"
	"time"

	"github.com/tallyhq/tally"
)

// testClock holds a store built with a fixed clock to stamping what it
// creates with that clock, never the wall clock: created_at of users,
// tenants and keys, session creation, member join times, audit entries.
func testClock(t *testing.T, open Open) {
	// Far from today, at microsecond precision, in another zone: the store
	// must use the clock's instant, in UTC.
	fixed := time.Date(2031, 5, 6, 7, 8, 9, 123456000, time.FixedZone("UTC+2", 2*3600))
	want := fixed.UTC()
	s := open(t, func() time.Time { return fixed })
	ctx := t.Context()
	same := func(what string, got time.Time) {
		t.Helper()
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s = %v, want %v (the store's clock, in UTC)", what, got, want)
		}
	}

	u := &tally.User{Email: "clock@example.com"}
	check(t, s.CreateUser(ctx, u, "h"))
	same("CreateUser: CreatedAt", u.CreatedAt)
	gotU, err := s.UserByID(ctx, u.ID)
	check(t, err)
	same("UserByID: CreatedAt", gotU.CreatedAt)

	tn := &tally.Tenant{Slug: "clock", Name: "Clock"}
	check(t, s.CreateTenant(ctx, tn, u.ID))
	same("CreateTenant: CreatedAt", tn.CreatedAt)
	gotT, err := s.TenantByID(ctx, tn.ID)
	check(t, err)
	same("TenantByID: CreatedAt", gotT.CreatedAt)
	members, err := s.ListMembers(ctx, tn.ID)
	check(t, err)
	if len(members) != 1 {
		t.Fatalf("ListMembers = %+v, want the owner", members)
	}
	same("owner's AddedAt", members[0].AddedAt)

	k := &tally.APIKey{TenantID: tn.ID, Name: "k", Prefix: "tly_clock", Hash: []byte("h")}
	check(t, s.CreateKey(ctx, k))
	same("CreateKey: CreatedAt", k.CreatedAt)
	gotK, err := s.KeyByPrefix(ctx, k.Prefix)
	check(t, err)
	same("KeyByPrefix: CreatedAt", gotK.CreatedAt)

	sess := &tally.Session{UserID: u.ID, TokenHash: []byte("clock-token"), ExpiresAt: want.Add(time.Hour)}
	check(t, s.CreateSession(ctx, sess))
	same("CreateSession: CreatedAt", sess.CreatedAt)
	gotS, err := s.SessionByHash(ctx, sess.TokenHash, want)
	check(t, err)
	same("SessionByHash: CreatedAt", gotS.CreatedAt)

	e := &tally.AuditEntry{TenantID: tn.ID, Actor: "user:clock@example.com", Action: "key.create", Target: "k"}
	check(t, s.WriteAudit(ctx, e))
	same("WriteAudit: At", e.At)
	entries, _, err := s.ListAudit(ctx, tn.ID, tally.AuditFilter{Limit: 10})
	check(t, err)
	if len(entries) != 1 {
		t.Fatalf("ListAudit = %+v, want the one entry", entries)
	}
	same("ListAudit: At", entries[0].At)
}
