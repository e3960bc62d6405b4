package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally"
)

// embedLockSpace is the first key of the advisory lock that serialises a
// tenant's embed secret creations (the second is the tenant's key).
const embedLockSpace = 0x656d6264 // "embd"

// CreateEmbedSecret implements tally.EmbedStore. The tenant's advisory
// lock serialises creations, so concurrent ones cannot both pass the cap.
func (db *DB) CreateEmbedSecret(ctx context.Context, s *tally.EmbedSecret) error {
	s.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, embedLockSpace, tenantLockKey(s.TenantID)); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM embed_secrets WHERE tenant_id = $1 AND revoked_at IS NULL`, s.TenantID).Scan(&n); err != nil {
			return err
		}
		if n >= tally.MaxEmbedSecrets {
			return tally.Invalid("too many embed secrets", tally.FieldError{Field: "name", Message: "a tenant has at most " + strconv.Itoa(tally.MaxEmbedSecrets) + " active embed secrets; revoke one first"})
		}
		return tx.QueryRow(ctx, `INSERT INTO embed_secrets (tenant_id, name, secret, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, s.TenantID, s.Name, s.Secret, s.CreatedBy, s.CreatedAt).Scan(&s.ID)
	})
	return wrap(err, "embed secret")
}

const embedSecretCols = `id, tenant_id, name, secret, created_by, created_at, revoked_at`

func scanEmbedSecret(row pgx.Row) (*tally.EmbedSecret, error) {
	var s tally.EmbedSecret
	if err := row.Scan(&s.ID, &s.TenantID, &s.Name, &s.Secret, &s.CreatedBy, &s.CreatedAt, &s.RevokedAt); err != nil {
		return nil, err
	}
	s.CreatedAt = s.CreatedAt.UTC()
	if s.RevokedAt != nil {
		t := s.RevokedAt.UTC()
		s.RevokedAt = &t
	}
	return &s, nil
}

// EmbedSecrets implements tally.EmbedStore.
func (db *DB) EmbedSecrets(ctx context.Context, tenantID int64) ([]tally.EmbedSecret, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+embedSecretCols+` FROM embed_secrets WHERE tenant_id = $1 ORDER BY id DESC`, tenantID)
	if err != nil {
		return nil, wrap(err, "embed secret")
	}
	defer rows.Close()
	out := []tally.EmbedSecret{}
	for rows.Next() {
		s, err := scanEmbedSecret(rows)
		if err != nil {
			return nil, wrap(err, "embed secret")
		}
		s.Secret = ""
		out = append(out, *s)
	}
	return out, wrap(rows.Err(), "embed secret")
}

// EmbedSecret implements tally.EmbedStore.
func (db *DB) EmbedSecret(ctx context.Context, tenantID, id int64) (*tally.EmbedSecret, error) {
	s, err := scanEmbedSecret(db.pool.QueryRow(ctx, `SELECT `+embedSecretCols+` FROM embed_secrets WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	return s, wrap(err, "embed secret")
}

// RevokeEmbedSecret implements tally.EmbedStore.
func (db *DB) RevokeEmbedSecret(ctx context.Context, tenantID, id int64, at time.Time) error {
	tag, err := db.pool.Exec(ctx, `UPDATE embed_secrets SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL`,
		at, tenantID, id)
	if err != nil {
		return wrap(err, "embed secret")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "embed secret not found")
	}
	return nil
}

// EmbedSettings implements tally.EmbedStore.
func (db *DB) EmbedSettings(ctx context.Context, tenantID int64) (tally.EmbedSettings, error) {
	e := tally.EmbedSettings{}
	err := db.pool.QueryRow(ctx, `SELECT origins, theme FROM embed_settings WHERE tenant_id = $1`, tenantID).Scan(&e.AllowedOrigins, &e.Theme)
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if e.AllowedOrigins == nil {
		e.AllowedOrigins = []string{}
	}
	return e, wrap(err, "embed settings")
}

// SetEmbedSettings implements tally.EmbedStore.
func (db *DB) SetEmbedSettings(ctx context.Context, tenantID int64, e tally.EmbedSettings) error {
	origins := e.AllowedOrigins
	if origins == nil {
		origins = []string{}
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO embed_settings (tenant_id, origins, theme) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET origins = excluded.origins, theme = excluded.theme`,
		tenantID, origins, e.Theme)
	return wrap(err, "embed settings")
}
