package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/tallyhq/tally"
)

// CreateEmbedSecret implements tally.EmbedStore; the cap is counted on
// the single writer, in the insert's transaction.
func (db *DB) CreateEmbedSecret(ctx context.Context, s *tally.EmbedSecret) error {
	s.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM embed_secrets WHERE tenant_id = ? AND revoked_at IS NULL`, s.TenantID).Scan(&n); err != nil {
			return err
		}
		if n >= tally.MaxEmbedSecrets {
			return tally.Invalid("too many embed secrets", tally.FieldError{Field: "name", Message: "a tenant has at most " + strconv.Itoa(tally.MaxEmbedSecrets) + " active embed secrets; revoke one first"})
		}
		return tx.QueryRowContext(ctx, `INSERT INTO embed_secrets (tenant_id, name, secret, created_by, created_at)
			VALUES (?, ?, ?, ?, ?) RETURNING id`, s.TenantID, s.Name, s.Secret, s.CreatedBy, micros(s.CreatedAt)).Scan(&s.ID)
	})
	return wrap(err, "embed secret")
}

func scanEmbedSecret(row interface{ Scan(...any) error }) (*tally.EmbedSecret, error) {
	var s tally.EmbedSecret
	var created int64
	var revoked sql.NullInt64
	if err := row.Scan(&s.ID, &s.TenantID, &s.Name, &s.Secret, &s.CreatedBy, &created, &revoked); err != nil {
		return nil, err
	}
	s.CreatedAt = fromMicros(created)
	if revoked.Valid {
		t := fromMicros(revoked.Int64)
		s.RevokedAt = &t
	}
	return &s, nil
}

const embedSecretCols = `id, tenant_id, name, secret, created_by, created_at, revoked_at`

// EmbedSecrets implements tally.EmbedStore.
func (db *DB) EmbedSecrets(ctx context.Context, tenantID int64) ([]tally.EmbedSecret, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+embedSecretCols+` FROM embed_secrets WHERE tenant_id = ? ORDER BY id DESC`, tenantID)
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
	s, err := scanEmbedSecret(db.r.QueryRowContext(ctx, `SELECT `+embedSecretCols+` FROM embed_secrets WHERE tenant_id = ? AND id = ?`, tenantID, id))
	return s, wrap(err, "embed secret")
}

// RevokeEmbedSecret implements tally.EmbedStore.
func (db *DB) RevokeEmbedSecret(ctx context.Context, tenantID, id int64, at time.Time) error {
	res, err := db.w.ExecContext(ctx, `UPDATE embed_secrets SET revoked_at = ? WHERE tenant_id = ? AND id = ? AND revoked_at IS NULL`,
		micros(at), tenantID, id)
	if err != nil {
		return wrap(err, "embed secret")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "embed secret not found")
	}
	return nil
}

// EmbedSettings implements tally.EmbedStore.
func (db *DB) EmbedSettings(ctx context.Context, tenantID int64) (tally.EmbedSettings, error) {
	var origins, theme string
	e := tally.EmbedSettings{AllowedOrigins: []string{}}
	err := db.r.QueryRowContext(ctx, `SELECT origins, theme FROM embed_settings WHERE tenant_id = ?`, tenantID).Scan(&origins, &theme)
	if err == sql.ErrNoRows {
		return e, nil
	}
	if err != nil {
		return e, wrap(err, "embed settings")
	}
	if origins != "" {
		e.AllowedOrigins = strings.Fields(origins)
	}
	return e, wrap(json.Unmarshal([]byte(theme), &e.Theme), "embed settings")
}

// SetEmbedSettings implements tally.EmbedStore.
func (db *DB) SetEmbedSettings(ctx context.Context, tenantID int64, e tally.EmbedSettings) error {
	theme, err := json.Marshal(e.Theme)
	if err != nil {
		return wrap(err, "embed settings")
	}
	_, err = db.w.ExecContext(ctx, `INSERT INTO embed_settings (tenant_id, origins, theme) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET origins = excluded.origins, theme = excluded.theme`,
		tenantID, strings.Join(e.AllowedOrigins, " "), string(theme))
	return wrap(err, "embed settings")
}
