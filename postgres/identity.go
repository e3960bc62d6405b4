package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/tallyhq/tally"
)

// CreateUser implements tally.UserStore.
func (db *DB) CreateUser(ctx context.Context, u *tally.User, passwordHash string) error {
	u.Email = tally.NormalizeEmail(u.Email)
	u.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	err := db.pool.QueryRow(ctx,
		`INSERT INTO users (email, name, password_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		u.Email, u.Name, passwordHash, u.CreatedAt).Scan(&u.ID)
	return wrap(err, "user with this email")
}

// UserByEmail implements tally.UserStore.
func (db *DB) UserByEmail(ctx context.Context, email string) (*tally.User, string, error) {
	var u tally.User
	var hash string
	err := db.pool.QueryRow(ctx, `SELECT id, email, name, password_hash, created_at FROM users WHERE email = $1`,
		tally.NormalizeEmail(email)).Scan(&u.ID, &u.Email, &u.Name, &hash, &u.CreatedAt)
	if err != nil {
		return nil, "", wrap(err, "user")
	}
	return &u, hash, nil
}

// UserByID implements tally.UserStore.
func (db *DB) UserByID(ctx context.Context, id int64) (*tally.User, error) {
	var u tally.User
	err := db.pool.QueryRow(ctx, `SELECT id, email, name, created_at FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.Email, &u.Name, &u.CreatedAt)
	if err != nil {
		return nil, wrap(err, "user")
	}
	return &u, nil
}

// ListUsers implements tally.UserStore.
func (db *DB) ListUsers(ctx context.Context) ([]tally.User, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, email, name, created_at FROM users ORDER BY id`)
	if err != nil {
		return nil, wrap(err, "user")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.User, error) {
		var u tally.User
		err := row.Scan(&u.ID, &u.Email, &u.Name, &u.CreatedAt)
		u.CreatedAt = u.CreatedAt.UTC()
		return u, err
	})
	if out == nil && err == nil {
		out = []tally.User{}
	}
	return out, wrap(err, "user")
}

// SetPassword implements tally.UserStore.
func (db *DB) SetPassword(ctx context.Context, userID int64, passwordHash string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, passwordHash, userID)
	if err != nil {
		return wrap(err, "user")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "user not found")
	}
	return nil
}

// CreateSession implements tally.SessionStore.
func (db *DB) CreateSession(ctx context.Context, s *tally.Session) error {
	if s.CreatedAt.IsZero() {
		s.CreatedAt = db.now().UTC()
	}
	err := db.pool.QueryRow(ctx,
		`INSERT INTO sessions (user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4) RETURNING id`,
		s.UserID, s.TokenHash, s.CreatedAt, s.ExpiresAt).Scan(&s.ID)
	return wrap(err, "session")
}

// SessionByHash implements tally.SessionStore.
func (db *DB) SessionByHash(ctx context.Context, hash []byte, now time.Time) (*tally.Session, error) {
	var s tally.Session
	err := db.pool.QueryRow(ctx,
		`SELECT id, user_id, token_hash, created_at, expires_at FROM sessions
		 WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2`, hash, now).
		Scan(&s.ID, &s.UserID, &s.TokenHash, &s.CreatedAt, &s.ExpiresAt)
	if err != nil {
		return nil, wrap(err, "session")
	}
	return &s, nil
}

// RevokeSession implements tally.SessionStore.
func (db *DB) RevokeSession(ctx context.Context, hash []byte) error {
	_, err := db.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL`,
		db.now().UTC(), hash)
	return wrap(err, "session")
}

const tenantCols = `id, slug, name, allow_signup, timezone, retention_days, webhook_url, webhook_secret, created_at`

func scanTenant(row pgx.Row) (*tally.Tenant, error) {
	var t tally.Tenant
	if err := row.Scan(&t.ID, &t.Slug, &t.Name, &t.AllowSignup, &t.Timezone, &t.RetentionDays,
		&t.WebhookURL, &t.WebhookSecret, &t.CreatedAt); err != nil {
		return nil, err
	}
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
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO tenants (slug, name, allow_signup, timezone, retention_days, webhook_url, webhook_secret, created_at)
			 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			t.Slug, t.Name, t.AllowSignup, t.Timezone, t.RetentionDays, t.WebhookURL, t.WebhookSecret, t.CreatedAt).Scan(&t.ID)
		if err != nil {
			return wrap(err, "tenant with this slug")
		}
		_, err = tx.Exec(ctx, `INSERT INTO members (tenant_id, user_id, role, added_at) VALUES ($1, $2, 'owner', $3)`,
			t.ID, ownerID, t.CreatedAt)
		return wrap(err, "member")
	})
	return wrap(err, "tenant with this slug")
}

// TenantBySlug implements tally.TenantStore.
func (db *DB) TenantBySlug(ctx context.Context, slug string) (*tally.Tenant, error) {
	t, err := scanTenant(db.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE slug = $1`, slug))
	return t, wrap(err, "tenant")
}

// TenantByID implements tally.TenantStore.
func (db *DB) TenantByID(ctx context.Context, id int64) (*tally.Tenant, error) {
	t, err := scanTenant(db.pool.QueryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = $1`, id))
	return t, wrap(err, "tenant")
}

// UpdateTenant implements tally.TenantStore.
func (db *DB) UpdateTenant(ctx context.Context, t *tally.Tenant) error {
	tag, err := db.pool.Exec(ctx,
		`UPDATE tenants SET name = $1, allow_signup = $2, timezone = $3, retention_days = $4, webhook_url = $5, webhook_secret = $6
		 WHERE id = $7`,
		t.Name, t.AllowSignup, t.Timezone, t.RetentionDays, t.WebhookURL, t.WebhookSecret, t.ID)
	if err != nil {
		return wrap(err, "tenant")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "tenant not found")
	}
	return nil
}

// AllTenants implements tally.TenantStore.
func (db *DB) AllTenants(ctx context.Context) ([]tally.Tenant, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+tenantCols+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, wrap(err, "tenant")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Tenant, error) {
		t, err := scanTenant(row)
		if err != nil {
			return tally.Tenant{}, err
		}
		return *t, nil
	})
	return out, wrap(err, "tenant")
}

// Memberships implements tally.TenantStore.
func (db *DB) Memberships(ctx context.Context, userID int64) ([]tally.Membership, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT t.id, t.slug, t.name, m.role FROM members m JOIN tenants t ON t.id = m.tenant_id
		 WHERE m.user_id = $1 ORDER BY t.slug`, userID)
	if err != nil {
		return nil, wrap(err, "membership")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Membership, error) {
		var m tally.Membership
		err := row.Scan(&m.TenantID, &m.Slug, &m.Name, &m.Role)
		return m, err
	})
	if out == nil {
		out = []tally.Membership{}
	}
	return out, wrap(err, "membership")
}

// MemberRole implements tally.TenantStore.
func (db *DB) MemberRole(ctx context.Context, tenantID, userID int64) (tally.Role, error) {
	var r tally.Role
	err := db.pool.QueryRow(ctx, `SELECT role FROM members WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID).Scan(&r)
	return r, wrap(err, "member")
}

// AddMember implements tally.TenantStore.
func (db *DB) AddMember(ctx context.Context, tenantID, userID int64, role tally.Role) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO members (tenant_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)`,
		tenantID, userID, role, db.now().UTC())
	return wrap(err, "member")
}

// ListMembers implements tally.TenantStore.
func (db *DB) ListMembers(ctx context.Context, tenantID int64) ([]tally.Member, error) {
	rows, err := db.pool.Query(ctx,
		`SELECT u.id, u.email, u.name, m.role, m.added_at FROM members m JOIN users u ON u.id = m.user_id
		 WHERE m.tenant_id = $1 ORDER BY m.added_at, u.id`, tenantID)
	if err != nil {
		return nil, wrap(err, "member")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Member, error) {
		var m tally.Member
		err := row.Scan(&m.UserID, &m.Email, &m.Name, &m.Role, &m.AddedAt)
		return m, err
	})
	if out == nil {
		out = []tally.Member{}
	}
	return out, wrap(err, "member")
}

// RemoveMember implements tally.TenantStore. The transaction locks the
// tenant's row first, so removals and role changes of one tenant take
// turns and each counts the owners the previous one left.
func (db *DB) RemoveMember(ctx context.Context, tenantID, userID int64) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := keepOwner(ctx, tx, tenantID, userID, ""); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM members WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID)
		return wrap(err, "member")
	})
	return wrap(err, "member")
}

// SetMemberRole implements tally.TenantStore, under the tenant's row lock
// as RemoveMember.
func (db *DB) SetMemberRole(ctx context.Context, tenantID, userID int64, role tally.Role) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := keepOwner(ctx, tx, tenantID, userID, role); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE members SET role = $1 WHERE tenant_id = $2 AND user_id = $3`, role, tenantID, userID)
		return wrap(err, "member")
	})
	return wrap(err, "member")
}

// keepOwner locks tenantID's row and checks, inside tx, that userID is a
// member of it and that giving it role next ("" for a removal) leaves the
// tenant an owner. Under READ COMMITTED each statement after the lock sees
// what the transactions that held it before committed.
func keepOwner(ctx context.Context, tx pgx.Tx, tenantID, userID int64, next tally.Role) error {
	var id int64
	if err := tx.QueryRow(ctx, `SELECT id FROM tenants WHERE id = $1 FOR UPDATE`, tenantID).Scan(&id); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return tally.Errorf(tally.ENotFound, "member not found")
		}
		return wrap(err, "tenant")
	}
	var role tally.Role
	err := tx.QueryRow(ctx, `SELECT role FROM members WHERE tenant_id = $1 AND user_id = $2`, tenantID, userID).Scan(&role)
	if err != nil {
		return wrap(err, "member")
	}
	if role != tally.RoleOwner || next == tally.RoleOwner {
		return nil
	}
	var owners int
	err = tx.QueryRow(ctx, `SELECT count(*) FROM members WHERE tenant_id = $1 AND role = 'owner'`, tenantID).Scan(&owners)
	if err != nil {
		return wrap(err, "member")
	}
	if owners <= 1 {
		return tally.LastOwnerError()
	}
	return nil
}

// CreateKey implements tally.KeyStore.
func (db *DB) CreateKey(ctx context.Context, k *tally.APIKey) error {
	k.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	scopes := make([]string, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = string(s)
	}
	err := db.pool.QueryRow(ctx,
		`INSERT INTO api_keys (tenant_id, name, prefix, hash, scopes, created_at, expires_at, kind, origins, rate_per_minute, address_rate_per_minute)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
		k.TenantID, k.Name, k.Prefix, k.Hash, scopes, k.CreatedAt, k.ExpiresAt,
		string(k.KindOrSecret()), strings.Join(k.Origins, " "), k.RatePerMinute, k.AddressRatePerMinute).Scan(&k.ID)
	return wrap(err, "key")
}

const keyCols = `id, tenant_id, name, prefix, hash, scopes, created_at, expires_at, last_used_at, revoked_at, kind, origins, rate_per_minute, address_rate_per_minute`

func scanKey(row pgx.Row) (*tally.APIKey, error) {
	var k tally.APIKey
	var scopes []string
	var kind, origins string
	var expires, used, revoked pgtype.Timestamptz
	if err := row.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &k.Hash, &scopes, &k.CreatedAt, &expires, &used, &revoked,
		&kind, &origins, &k.RatePerMinute, &k.AddressRatePerMinute); err != nil {
		return nil, err
	}
	k.Kind, k.Origins = tally.KeyKind(kind), strings.Fields(origins)
	k.Scopes = make([]tally.Scope, len(scopes))
	for i, s := range scopes {
		k.Scopes[i] = tally.Scope(s)
	}
	k.ExpiresAt, k.LastUsedAt, k.RevokedAt = timePtr(expires), timePtr(used), timePtr(revoked)
	return &k, nil
}

// KeyByPrefix implements tally.KeyStore.
func (db *DB) KeyByPrefix(ctx context.Context, prefix string) (*tally.APIKey, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE prefix = $1`, prefix))
	return k, wrap(err, "key")
}

// ListKeys implements tally.KeyStore.
func (db *DB) ListKeys(ctx context.Context, tenantID int64) ([]tally.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE tenant_id = $1 ORDER BY id DESC`, tenantID)
	if err != nil {
		return nil, wrap(err, "key")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.APIKey, error) {
		k, err := scanKey(row)
		if err != nil {
			return tally.APIKey{}, err
		}
		return *k, nil
	})
	if out == nil {
		out = []tally.APIKey{}
	}
	return out, wrap(err, "key")
}

// RevokeKey implements tally.KeyStore.
func (db *DB) RevokeKey(ctx context.Context, tenantID, id int64, at time.Time) error {
	tag, err := db.pool.Exec(ctx,
		`UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL`, at, tenantID, id)
	if err != nil {
		return wrap(err, "key")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "key not found")
	}
	return nil
}

// AuthVersion implements tally.KeyStore: triggers (migration 0010) move
// it with every change to a key but its last use and to a tenant.
func (db *DB) AuthVersion(ctx context.Context) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT n FROM auth_version WHERE id = 1`).Scan(&n)
	return n, wrap(err, "auth version")
}

// TouchKey implements tally.KeyStore.
func (db *DB) TouchKey(ctx context.Context, tenantID, id int64, at time.Time) error {
	_, err := db.pool.Exec(ctx, `UPDATE api_keys SET last_used_at = $1 WHERE tenant_id = $2 AND id = $3`, at, tenantID, id)
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
	err = db.pool.QueryRow(ctx,
		`INSERT INTO audit_log (tenant_id, at, actor, action, target, meta) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		e.TenantID, e.At, e.Actor, e.Action, e.Target, string(meta)).Scan(&e.ID)
	return wrap(err, "audit entry")
}

// ListAudit implements tally.AuditStore.
func (db *DB) ListAudit(ctx context.Context, tenantID int64, f tally.AuditFilter) ([]tally.AuditEntry, *tally.Cursor, error) {
	if f.Limit < 1 {
		return nil, nil, badLimit("limit")
	}
	var q query
	q.and(`tenant_id = ` + q.arg(tenantID))
	if !f.From.IsZero() {
		q.and(`at >= ` + q.arg(f.From))
	}
	if !f.To.IsZero() {
		q.and(`at <= ` + q.arg(f.To))
	}
	if f.Action != "" {
		q.equal(`action`, f.Action)
	}
	if f.Actor != "" {
		q.equal(`actor`, f.Actor)
	}
	if f.Cursor != nil {
		q.and(`(at, id) < (` + q.arg(f.Cursor.At) + `, ` + q.arg(f.Cursor.ID) + `)`)
	}
	sql := `SELECT id, at, actor, action, target, meta FROM audit_log` + q.where() +
		` ORDER BY at DESC, id DESC LIMIT ` + q.arg(f.Limit+1)
	rows, err := db.pool.Query(ctx, sql, q.args...)
	if err != nil {
		return nil, nil, wrap(err, "audit entry")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.AuditEntry, error) {
		e := tally.AuditEntry{TenantID: tenantID}
		var meta string
		if err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &meta); err != nil {
			return e, err
		}
		_ = json.Unmarshal([]byte(meta), &e.Meta)
		return e, nil
	})
	if err != nil {
		return nil, nil, wrap(err, "audit entry")
	}
	if out == nil {
		out = []tally.AuditEntry{}
	}
	out, next := tally.Page(out, f.Limit, tally.AuditKey)
	return out, next, nil
}

// SetQuota implements tally.QuotaStore.
func (db *DB) SetQuota(ctx context.Context, tenantID int64, q tally.Quota) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO quotas (tenant_id, metric, lim, enforced, period, anchor_day, thresholds) VALUES ($1, $2, $3, $4, $5, $6, $7)
		 ON CONFLICT (tenant_id, metric) DO UPDATE SET lim = excluded.lim, enforced = excluded.enforced,
		 period = excluded.period, anchor_day = excluded.anchor_day, thresholds = excluded.thresholds`,
		tenantID, q.Metric, q.Limit, q.Enforced, q.PeriodOf(), q.AnchorDay, tally.FormatThresholds(q.Thresholds))
	return wrap(err, "quota")
}

// Quotas implements tally.QuotaStore.
func (db *DB) Quotas(ctx context.Context, tenantID int64) ([]tally.Quota, error) {
	rows, err := db.pool.Query(ctx, `SELECT metric, lim, enforced, period, anchor_day, thresholds FROM quotas WHERE tenant_id = $1 ORDER BY metric`, tenantID)
	if err != nil {
		return nil, wrap(err, "quota")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Quota, error) {
		var q tally.Quota
		var th string
		if err := row.Scan(&q.Metric, &q.Limit, &q.Enforced, &q.Period, &q.AnchorDay, &th); err != nil {
			return q, err
		}
		t, err := tally.ParseThresholds(th)
		if err != nil {
			return q, tally.Internal(err)
		}
		q.Thresholds = t
		return q, nil
	})
	return out, wrap(err, "quota")
}

// DeleteQuota implements tally.QuotaStore.
func (db *DB) DeleteQuota(ctx context.Context, tenantID int64, metric string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM quotas WHERE tenant_id = $1 AND metric = $2`, tenantID, metric)
	if err != nil {
		return wrap(err, "quota")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "no quota override for metric %q", metric)
	}
	return nil
}

const invitationCols = `id, tenant_id, email, role, token_hash, invited_by, created_at, expires_at`

func scanInvitation(row pgx.Row) (*tally.Invitation, error) {
	var inv tally.Invitation
	if err := row.Scan(&inv.ID, &inv.TenantID, &inv.Email, &inv.Role, &inv.TokenHash, &inv.InvitedBy, &inv.CreatedAt, &inv.ExpiresAt); err != nil {
		return nil, err
	}
	inv.CreatedAt, inv.ExpiresAt = inv.CreatedAt.UTC(), inv.ExpiresAt.UTC()
	return &inv, nil
}

// CreateInvitation implements tally.InvitationStore.
func (db *DB) CreateInvitation(ctx context.Context, inv *tally.Invitation) error {
	inv.Email = tally.NormalizeEmail(inv.Email)
	inv.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	inv.ExpiresAt = inv.ExpiresAt.UTC().Truncate(time.Microsecond)
	err := db.pool.QueryRow(ctx,
		`INSERT INTO invitations (tenant_id, email, role, token_hash, invited_by, created_at, expires_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id`,
		inv.TenantID, inv.Email, inv.Role, inv.TokenHash, inv.InvitedBy, inv.CreatedAt, inv.ExpiresAt).Scan(&inv.ID)
	return wrap(err, "invitation")
}

// ListInvitations implements tally.InvitationStore.
func (db *DB) ListInvitations(ctx context.Context, tenantID int64, now time.Time) ([]tally.Invitation, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+invitationCols+` FROM invitations
		WHERE tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY id DESC`,
		tenantID, now)
	if err != nil {
		return nil, wrap(err, "invitation")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Invitation, error) {
		inv, err := scanInvitation(row)
		if err != nil {
			return tally.Invitation{}, err
		}
		return *inv, nil
	})
	if out == nil {
		out = []tally.Invitation{}
	}
	return out, wrap(err, "invitation")
}

// RevokeInvitation implements tally.InvitationStore.
func (db *DB) RevokeInvitation(ctx context.Context, tenantID, id int64, at time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE invitations SET revoked_at = $1
		WHERE tenant_id = $2 AND id = $3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1`,
		at, tenantID, id)
	if err != nil {
		return wrap(err, "invitation")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "invitation not found")
	}
	return nil
}

// AcceptInvitation implements tally.InvitationStore. The UPDATE locks the
// invitation's row: a concurrent accept waits for this transaction and then
// no longer finds the invitation pending.
func (db *DB) AcceptInvitation(ctx context.Context, hash []byte, email string, userID int64, now time.Time) (*tally.Invitation, error) {
	var inv *tally.Invitation
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		inv, err = scanInvitation(tx.QueryRow(ctx, `UPDATE invitations SET accepted_at = $1, accepted_by = $2
			WHERE token_hash = $3 AND email = $4 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1
			RETURNING `+invitationCols, now, userID, hash, tally.NormalizeEmail(email)))
		if err != nil {
			return wrap(err, "invitation")
		}
		_, err = tx.Exec(ctx, `INSERT INTO members (tenant_id, user_id, role, added_at) VALUES ($1, $2, $3, $4)`,
			inv.TenantID, userID, inv.Role, now)
		return wrap(err, "member")
	})
	if err != nil {
		return nil, wrap(err, "invitation")
	}
	return inv, nil
}
