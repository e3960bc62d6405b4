package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// CreateUser implements tally.UserStore.
func (db *DB) CreateUser(ctx context.Context, u *tally.User, passwordHash string) error {
	u.Email = tally.NormalizeEmail(u.Email)
	u.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	err := db.w.QueryRowContext(ctx,
		`INSERT INTO users (email, name, password_hash, created_at) VALUES (?, ?, ?, ?) RETURNING id`,
		u.Email, u.Name, passwordHash, micros(u.CreatedAt)).Scan(&u.ID)
	return wrap(err, "user with this email")
}

// UserByEmail implements tally.UserStore.
func (db *DB) UserByEmail(ctx context.Context, email string) (*tally.User, string, error) {
	var u tally.User
	var hash string
	var created int64
	err := db.r.QueryRowContext(ctx, `SELECT id, email, name, password_hash, created_at FROM users WHERE email = ?`,
		tally.NormalizeEmail(email)).Scan(&u.ID, &u.Email, &u.Name, &hash, &created)
	if err != nil {
		return nil, "", wrap(err, "user")
	}
	u.CreatedAt = fromMicros(created)
	return &u, hash, nil
}

// UserByID implements tally.UserStore.
func (db *DB) UserByID(ctx context.Context, id int64) (*tally.User, error) {
	var u tally.User
	var created int64
	err := db.r.QueryRowContext(ctx, `SELECT id, email, name, created_at FROM users WHERE id = ?`, id).
		Scan(&u.ID, &u.Email, &u.Name, &created)
	if err != nil {
		return nil, wrap(err, "user")
	}
	u.CreatedAt = fromMicros(created)
	return &u, nil
}

// ListUsers implements tally.UserStore.
func (db *DB) ListUsers(ctx context.Context) ([]tally.User, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id, email, name, created_at FROM users ORDER BY id`)
	if err != nil {
		return nil, wrap(err, "user")
	}
	defer rows.Close()
	out := []tally.User{}
	for rows.Next() {
		var u tally.User
		var created int64
		if err := rows.Scan(&u.ID, &u.Email, &u.Name, &created); err != nil {
			return nil, wrap(err, "user")
		}
		u.CreatedAt = fromMicros(created)
		out = append(out, u)
	}
	return out, wrap(rows.Err(), "user")
}

// SetPassword implements tally.UserStore.
func (db *DB) SetPassword(ctx context.Context, userID int64, passwordHash string) error {
	res, err := db.w.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, userID)
	if err != nil {
		return wrap(err, "user")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "user not found")
	}
	return nil
}

// CreateSession implements tally.SessionStore.
func (db *DB) CreateSession(ctx context.Context, s *tally.Session) error {
	if s.CreatedAt.IsZero() {
		s.CreatedAt = db.now().UTC()
	}
	err := db.w.QueryRowContext(ctx,
		`INSERT INTO sessions (user_id, token_hash, created_at, expires_at) VALUES (?, ?, ?, ?) RETURNING id`,
		s.UserID, s.TokenHash, micros(s.CreatedAt), micros(s.ExpiresAt)).Scan(&s.ID)
	return wrap(err, "session")
}

// SessionByHash implements tally.SessionStore.
func (db *DB) SessionByHash(ctx context.Context, hash []byte, now time.Time) (*tally.Session, error) {
	var s tally.Session
	var created, expires int64
	err := db.r.QueryRowContext(ctx,
		`SELECT id, user_id, token_hash, created_at, expires_at FROM sessions
		 WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?`, hash, micros(now)).
		Scan(&s.ID, &s.UserID, &s.TokenHash, &created, &expires)
	if err != nil {
		return nil, wrap(err, "session")
	}
	s.CreatedAt, s.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &s, nil
}

// RevokeSession implements tally.SessionStore.
func (db *DB) RevokeSession(ctx context.Context, hash []byte) error {
	_, err := db.w.ExecContext(ctx, `UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL`,
		micros(db.now()), hash)
	return wrap(err, "session")
}

const tenantCols = `id, slug, name, allow_signup, timezone, retention_days, webhook_url, webhook_secret, created_at`

func scanTenant(row interface{ Scan(...any) error }) (*tally.Tenant, error) {
	var t tally.Tenant
	var created int64
	if err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.AllowSignup, &t.Timezone, &t.RetentionDays,
		&t.WebhookURL, &t.WebhookSecret, &created); err != nil {
		return nil, err
	}
	t.CreatedAt = fromMicros(created)
	return &t, nil
}

// CreateTenant implements tally.TenantStore.
func (db *DB) CreateTenant(ctx context.Context, t *tally.Tenant, ownerID int64) error {
	t.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	if t.Timezone == "" {
		t.Timezone = "UTC"
	}
	if t.RetentionDays == 0 {
		t.RetentionDays = tally.DefaultRetentionDays
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx,
			`INSERT INTO tenants (slug, name, allow_signup, timezone, retention_days, webhook_url, webhook_secret, created_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			t.Slug, t.Name, t.AllowSignup, t.Timezone, t.RetentionDays, t.WebhookURL, t.WebhookSecret, micros(t.CreatedAt)).Scan(&t.ID)
		if err != nil {
			return wrap(err, "tenant with this slug")
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO members (tenant_id, user_id, role, added_at) VALUES (?, ?, 'owner', ?)`,
			t.ID, ownerID, micros(t.CreatedAt))
		return wrap(err, "member")
	})
	return wrap(err, "tenant with this slug")
}

// TenantBySlug implements tally.TenantStore.
func (db *DB) TenantBySlug(ctx context.Context, slug string) (*tally.Tenant, error) {
	t, err := scanTenant(db.r.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE slug = ?`, slug))
	return t, wrap(err, "tenant")
}

// TenantByID implements tally.TenantStore.
func (db *DB) TenantByID(ctx context.Context, id int64) (*tally.Tenant, error) {
	t, err := scanTenant(db.r.QueryRowContext(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	return t, wrap(err, "tenant")
}

// UpdateTenant implements tally.TenantStore.
func (db *DB) UpdateTenant(ctx context.Context, t *tally.Tenant) error {
	res, err := db.w.ExecContext(ctx,
		`UPDATE tenants SET name = ?, allow_signup = ?, timezone = ?, retention_days = ?, webhook_url = ?, webhook_secret = ? WHERE id = ?`,
		t.Name, t.AllowSignup, t.Timezone, t.RetentionDays, t.WebhookURL, t.WebhookSecret, t.ID)
	if err != nil {
		return wrap(err, "tenant")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "tenant not found")
	}
	return nil
}

// AllTenants implements tally.TenantStore.
func (db *DB) AllTenants(ctx context.Context) ([]tally.Tenant, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, wrap(err, "tenant")
	}
	defer rows.Close()
	var out []tally.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, wrap(err, "tenant")
		}
		out = append(out, *t)
	}
	return out, wrap(rows.Err(), "tenant")
}

// Memberships implements tally.TenantStore.
func (db *DB) Memberships(ctx context.Context, userID int64) ([]tally.Membership, error) {
	rows, err := db.r.QueryContext(ctx,
		`SELECT t.id, t.slug, t.name, m.role FROM members m JOIN tenants t ON t.id = m.tenant_id
		 WHERE m.user_id = ? ORDER BY t.slug`, userID)
	if err != nil {
		return nil, wrap(err, "membership")
	}
	defer rows.Close()
	out := []tally.Membership{}
	for rows.Next() {
		var m tally.Membership
		if err := rows.Scan(&m.TenantID, &m.Slug, &m.Name, &m.Role); err != nil {
			return nil, wrap(err, "membership")
		}
		out = append(out, m)
	}
	return out, wrap(rows.Err(), "membership")
}

// MemberRole implements tally.TenantStore.
func (db *DB) MemberRole(ctx context.Context, tenantID, userID int64) (tally.Role, error) {
	var r tally.Role
	err := db.r.QueryRowContext(ctx, `SELECT role FROM members WHERE tenant_id = ? AND user_id = ?`, tenantID, userID).Scan(&r)
	return r, wrap(err, "member")
}

// AddMember implements tally.TenantStore.
func (db *DB) AddMember(ctx context.Context, tenantID, userID int64, role tally.Role) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO members (tenant_id, user_id, role, added_at) VALUES (?, ?, ?, ?)`,
		tenantID, userID, role, micros(db.now()))
	return wrap(err, "member")
}

// ListMembers implements tally.TenantStore.
func (db *DB) ListMembers(ctx context.Context, tenantID int64) ([]tally.Member, error) {
	rows, err := db.r.QueryContext(ctx,
		`SELECT u.id, u.email, u.name, m.role, m.added_at FROM members m JOIN users u ON u.id = m.user_id
		 WHERE m.tenant_id = ? ORDER BY m.added_at, u.id`, tenantID)
	if err != nil {
		return nil, wrap(err, "member")
	}
	defer rows.Close()
	out := []tally.Member{}
	for rows.Next() {
		var m tally.Member
		var added int64
		if err := rows.Scan(&m.UserID, &m.Email, &m.Name, &m.Role, &added); err != nil {
			return nil, wrap(err, "member")
		}
		m.AddedAt = fromMicros(added)
		out = append(out, m)
	}
	return out, wrap(rows.Err(), "member")
}

// RemoveMember implements tally.TenantStore. The writer's transactions
// begin IMMEDIATE on its one connection, so the owner count and the delete
// see no other write between them.
func (db *DB) RemoveMember(ctx context.Context, tenantID, userID int64) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := keepOwner(ctx, tx, tenantID, userID, ""); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM members WHERE tenant_id = ? AND user_id = ?`, tenantID, userID)
		return wrap(err, "member")
	})
	return wrap(err, "member")
}

// SetMemberRole implements tally.TenantStore, in one write transaction as
// RemoveMember.
func (db *DB) SetMemberRole(ctx context.Context, tenantID, userID int64, role tally.Role) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := keepOwner(ctx, tx, tenantID, userID, role); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE members SET role = ? WHERE tenant_id = ? AND user_id = ?`, role, tenantID, userID)
		return wrap(err, "member")
	})
	return wrap(err, "member")
}

// keepOwner checks, inside tx, that userID is a member of tenantID and that
// giving it role next ("" for a removal) leaves the tenant an owner.
func keepOwner(ctx context.Context, tx *sql.Tx, tenantID, userID int64, next tally.Role) error {
	var role tally.Role
	err := tx.QueryRowContext(ctx, `SELECT role FROM members WHERE tenant_id = ? AND user_id = ?`, tenantID, userID).Scan(&role)
	if err != nil {
		return wrap(err, "member")
	}
	if role != tally.RoleOwner || next == tally.RoleOwner {
		return nil
	}
	var owners int
	err = tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE tenant_id = ? AND role = 'owner'`, tenantID).Scan(&owners)
	if err != nil {
		return wrap(err, "member")
	}
	if owners <= 1 {
		return tally.LastOwnerError()
	}
	return nil
}

func joinScopes(s []tally.Scope) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = string(x)
	}
	return strings.Join(parts, " ")
}

func splitScopes(s string) []tally.Scope {
	out := []tally.Scope{}
	for _, f := range strings.Fields(s) {
		out = append(out, tally.Scope(f))
	}
	return out
}

// CreateKey implements tally.KeyStore.
func (db *DB) CreateKey(ctx context.Context, k *tally.APIKey) error {
	k.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	err := db.w.QueryRowContext(ctx,
		`INSERT INTO api_keys (tenant_id, name, prefix, hash, scopes, created_at, expires_at, kind, origins, rate_per_minute, address_rate_per_minute)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		k.TenantID, k.Name, k.Prefix, k.Hash, joinScopes(k.Scopes), micros(k.CreatedAt), nullMicros(k.ExpiresAt),
		string(k.KindOrSecret()), strings.Join(k.Origins, " "), k.RatePerMinute, k.AddressRatePerMinute).Scan(&k.ID)
	return wrap(err, "key")
}

const keyCols = `id, tenant_id, name, prefix, hash, scopes, created_at, expires_at, last_used_at, revoked_at, kind, origins, rate_per_minute, address_rate_per_minute`

func scanKey(row interface{ Scan(...any) error }) (*tally.APIKey, error) {
	var k tally.APIKey
	var scopes, kind, origins string
	var created int64
	var expires, used, revoked sql.NullInt64
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &k.Hash, &scopes, &created, &expires, &used, &revoked,
		&kind, &origins, &k.RatePerMinute, &k.AddressRatePerMinute); err != nil {
		return nil, err
	}
	k.Kind, k.Origins = tally.KeyKind(kind), strings.Fields(origins)
	k.Scopes = splitScopes(scopes)
	k.CreatedAt = fromMicros(created)
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt = timePtr(expires), timePtr(used), timePtr(revoked)
	return &k, nil
}

// KeyByPrefix implements tally.KeyStore.
func (db *DB) KeyByPrefix(ctx context.Context, prefix string) (*tally.APIKey, error) {
	k, err := scanKey(db.r.QueryRowContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE prefix = ?`, prefix))
	return k, wrap(err, "key")
}

// ListKeys implements tally.KeyStore.
func (db *DB) ListKeys(ctx context.Context, tenantID int64) ([]tally.APIKey, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = ? ORDER BY id DESC`, tenantID)
	if err != nil {
		return nil, wrap(err, "key")
	}
	defer rows.Close()
	out := []tally.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, wrap(err, "key")
		}
		out = append(out, *k)
	}
	return out, wrap(rows.Err(), "key")
}

// RevokeKey implements tally.KeyStore.
func (db *DB) RevokeKey(ctx context.Context, tenantID, id int64, at time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL`,
		micros(at), tenantID, id)
	if err != nil {
		return wrap(err, "key")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "key not found")
	}
	return nil
}

// AuthVersion implements tally.KeyStore: triggers (migration 0010) move
// it with every change to a key but its last use and to a tenant.
func (db *DB) AuthVersion(ctx context.Context) (int64, error) {
	var n int64
	st, err := db.hotR.get(ctx, `SELECT n FROM auth_version WHERE id = 1`)
	if err == nil {
		err = st.QueryRowContext(ctx).Scan(&n)
	}
	return n, wrap(err, "auth version")
}

// TouchKey implements tally.KeyStore.
func (db *DB) TouchKey(ctx context.Context, tenantID, id int64, at time.Time) error {
	_, err := db.w.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE tenant_id = ? AND id = ?`, micros(at), tenantID, id)
	return wrap(err, "key")
}

// WriteAudit implements tally.AuditStore.
func (db *DB) WriteAudit(ctx context.Context, e *tally.AuditEntry) error {
	if e.At.IsZero() {
		e.At = db.now().UTC().Truncate(time.Microsecond)
	}
	meta, err := json.Marshal(e.Meta)
	if err != nil || e.Meta == nil {
		meta = []byte("{}")
	}
	err = db.w.QueryRowContext(ctx,
		`INSERT INTO audit_log (tenant_id, at, actor, action, target, meta) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		e.TenantID, micros(e.At), e.Actor, e.Action, e.Target, string(meta)).Scan(&e.ID)
	return wrap(err, "audit entry")
}

// ListAudit implements tally.AuditStore.
func (db *DB) ListAudit(ctx context.Context, tenantID int64, f tally.AuditFilter) ([]tally.AuditEntry, *tally.Cursor, error) {
	if f.Limit < 1 {
		return nil, nil, badLimit("limit")
	}
	q := `SELECT id, at, actor, action, target, meta FROM audit_log WHERE tenant_id = ?`
	args := []any{tenantID}
	if !f.From.IsZero() {
		q += ` AND at >= ?`
		args = append(args, micros(f.From))
	}
	if !f.To.IsZero() {
		q += ` AND at <= ?`
		args = append(args, micros(f.To))
	}
	if f.Action != "" {
		q += ` AND action = ?`
		args = append(args, f.Action)
	}
	if f.Actor != "" {
		q += ` AND actor = ?`
		args = append(args, f.Actor)
	}
	if f.Cursor != nil {
		q += ` AND (at, id) < (?, ?)`
		args = append(args, micros(f.Cursor.At), f.Cursor.ID)
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	args = append(args, f.Limit+1)
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, wrap(err, "audit entry")
	}
	defer rows.Close()
	out := []tally.AuditEntry{}
	for rows.Next() {
		var e tally.AuditEntry
		var at int64
		var meta string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Target, &meta); err != nil {
			return nil, nil, wrap(err, "audit entry")
		}
		e.TenantID, e.At = tenantID, fromMicros(at)
		_ = json.Unmarshal([]byte(meta), &e.Meta)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, wrap(err, "audit entry")
	}
	out, next := tally.Page(out, f.Limit, tally.AuditKey)
	return out, next, nil
}

// SetQuota implements tally.QuotaStore.
func (db *DB) SetQuota(ctx context.Context, tenantID int64, q tally.Quota) error {
	_, err := db.w.ExecContext(ctx,
		`INSERT INTO quotas (tenant_id, metric, lim, enforced, period, anchor_day, thresholds) VALUES (?, ?, ?, ?, ?, ?, ?)
		 ON CONFLICT (tenant_id, metric) DO UPDATE SET lim = excluded.lim, enforced = excluded.enforced,
		 period = excluded.period, anchor_day = excluded.anchor_day, thresholds = excluded.thresholds`,
		tenantID, q.Metric, q.Limit, q.Enforced, q.PeriodOf(), q.AnchorDay, tally.FormatThresholds(q.Thresholds))
	return wrap(err, "quota")
}

// Quotas implements tally.QuotaStore.
func (db *DB) Quotas(ctx context.Context, tenantID int64) ([]tally.Quota, error) {
	st, err := db.hotR.get(ctx, `SELECT metric, lim, enforced, period, anchor_day, thresholds FROM quotas WHERE tenant_id = ? ORDER BY metric`)
	if err != nil {
		return nil, wrap(err, "quota")
	}
	rows, err := st.QueryContext(ctx, tenantID)
	if err != nil {
		return nil, wrap(err, "quota")
	}
	defer rows.Close()
	var out []tally.Quota
	for rows.Next() {
		var q tally.Quota
		var th string
		if err := rows.Scan(&q.Metric, &q.Limit, &q.Enforced, &q.Period, &q.AnchorDay, &th); err != nil {
			return nil, wrap(err, "quota")
		}
		if q.Thresholds, err = tally.ParseThresholds(th); err != nil {
			return nil, tally.Internal(err)
		}
		out = append(out, q)
	}
	return out, wrap(rows.Err(), "quota")
}

// DeleteQuota implements tally.QuotaStore.
func (db *DB) DeleteQuota(ctx context.Context, tenantID int64, metric string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM quotas WHERE tenant_id = ? AND metric = ?`, tenantID, metric)
	if err != nil {
		return wrap(err, "quota")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "no quota override for metric %q", metric)
	}
	return nil
}

const invitationCols = `id, tenant_id, email, role, token_hash, invited_by, created_at, expires_at`

func scanInvitation(row interface{ Scan(...any) error }) (*tally.Invitation, error) {
	var inv tally.Invitation
	var created, expires int64
	if err := row.Scan(&inv.ID, &inv.TenantID, &inv.Email, &inv.Role, &inv.TokenHash, &inv.InvitedBy, &created, &expires); err != nil {
		return nil, err
	}
	inv.CreatedAt, inv.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &inv, nil
}

// CreateInvitation implements tally.InvitationStore.
func (db *DB) CreateInvitation(ctx context.Context, inv *tally.Invitation) error {
	inv.Email = tally.NormalizeEmail(inv.Email)
	inv.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	inv.ExpiresAt = inv.ExpiresAt.UTC().Truncate(time.Microsecond)
	err := db.w.QueryRowContext(ctx,
		`INSERT INTO invitations (tenant_id, email, role, token_hash, invited_by, created_at, expires_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		inv.TenantID, inv.Email, inv.Role, inv.TokenHash, inv.InvitedBy, micros(inv.CreatedAt), micros(inv.ExpiresAt)).Scan(&inv.ID)
	return wrap(err, "invitation")
}

// ListInvitations implements tally.InvitationStore.
func (db *DB) ListInvitations(ctx context.Context, tenantID int64, now time.Time) ([]tally.Invitation, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+invitationCols+` FROM invitations
		WHERE tenant_id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ? ORDER BY id DESC`,
		tenantID, micros(now))
	if err != nil {
		return nil, wrap(err, "invitation")
	}
	defer rows.Close()
	out := []tally.Invitation{}
	for rows.Next() {
		inv, err := scanInvitation(rows)
		if err != nil {
			return nil, wrap(err, "invitation")
		}
		out = append(out, *inv)
	}
	return out, wrap(rows.Err(), "invitation")
}

// RevokeInvitation implements tally.InvitationStore.
func (db *DB) RevokeInvitation(ctx context.Context, tenantID, id int64, at time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE invitations SET revoked_at = ?
		WHERE tenant_id = ? AND id = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?`,
		micros(at), tenantID, id, micros(at))
	if err != nil {
		return wrap(err, "invitation")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "invitation not found")
	}
	return nil
}

// AcceptInvitation implements tally.InvitationStore. The writer's
// transactions begin IMMEDIATE on its one connection, so no other accept
// runs between the check and the update.
func (db *DB) AcceptInvitation(ctx context.Context, hash []byte, email string, userID int64, now time.Time) (*tally.Invitation, error) {
	var inv *tally.Invitation
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		inv, err = scanInvitation(tx.QueryRowContext(ctx, `UPDATE invitations SET accepted_at = ?, accepted_by = ?
			WHERE token_hash = ? AND email = ? AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ?
			RETURNING `+invitationCols, micros(now), userID, hash, tally.NormalizeEmail(email), micros(now)))
		if err != nil {
			return wrap(err, "invitation")
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO members (tenant_id, user_id, role, added_at) VALUES (?, ?, ?, ?)`,
			inv.TenantID, userID, inv.Role, micros(now))
		return wrap(err, "member")
	})
	if err != nil {
		return nil, wrap(err, "invitation")
	}
	return inv, nil
}
