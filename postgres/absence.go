package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tallyhq/tally"
)

var _ tally.AbsenceStore = (*DB)(nil)

// absenceLockSpace is the first key of the advisory lock that serialises a
// tenant's absence alert creations (the second is the tenant's key).
const absenceLockSpace = 0x6162736e // "absn"

const absenceCols = `id, tenant_id, event, silence_seconds, description, state, state_since, last_seen_at, seq, created_at, updated_at`

func scanAbsence(row pgx.Row) (*tally.AbsenceAlert, error) {
	var a tally.AbsenceAlert
	var silence int64
	if err := row.Scan(&a.ID, &a.TenantID, &a.Event, &silence, &a.Description, &a.State, &a.StateSince, &a.LastSeenAt,
		&a.Seq, &a.CreatedAt, &a.UpdatedAt); err != nil {
		return nil, err
	}
	a.Silence = time.Duration(silence) * time.Second
	a.StateSince, a.CreatedAt, a.UpdatedAt = a.StateSince.UTC(), a.CreatedAt.UTC(), a.UpdatedAt.UTC()
	if a.LastSeenAt != nil {
		t := a.LastSeenAt.UTC()
		a.LastSeenAt = &t
	}
	return &a, nil
}

// CreateAbsenceAlert implements tally.AbsenceStore. The tenant's advisory
// lock serialises creations, so concurrent ones cannot both pass the cap.
func (db *DB) CreateAbsenceAlert(ctx context.Context, a *tally.AbsenceAlert) error {
	now := db.now().UTC().Truncate(time.Microsecond)
	a.CreatedAt, a.UpdatedAt, a.State, a.StateSince, a.LastSeenAt, a.Seq = now, now, tally.AbsenceOK, now, nil, 1
	if !storable(a.Event) || !storable(a.Description) {
		return tally.Invalid("invalid absence alert", tally.FieldError{Field: "event", Message: "must be valid UTF-8 without NUL"})
	}
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, absenceLockSpace, tenantLockKey(a.TenantID)); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM absence_alerts WHERE tenant_id = $1`, a.TenantID).Scan(&n); err != nil {
			return err
		}
		if n >= tally.MaxAbsenceAlerts {
			return tally.Invalid("too many absence alerts", tally.FieldError{Field: "event",
				Message: "a tenant has at most " + strconv.Itoa(tally.MaxAbsenceAlerts) + " absence alerts; delete one first"})
		}
		return tx.QueryRow(ctx, `INSERT INTO absence_alerts (tenant_id, event, silence_seconds, description, state,
			state_since, seq, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $6, $6) RETURNING id`,
			a.TenantID, a.Event, a.SilenceSeconds(), a.Description, a.State, now, a.Seq).Scan(&a.ID)
	})
	return wrap(err, "absence alert")
}

// AbsenceAlerts implements tally.AbsenceStore.
func (db *DB) AbsenceAlerts(ctx context.Context, tenantID int64) ([]tally.AbsenceAlert, error) {
	return db.absenceAlerts(ctx, `SELECT `+absenceCols+` FROM absence_alerts WHERE tenant_id = $1 ORDER BY id`, tenantID)
}

// AllAbsenceAlerts implements tally.AbsenceStore.
func (db *DB) AllAbsenceAlerts(ctx context.Context) ([]tally.AbsenceAlert, error) {
	return db.absenceAlerts(ctx, `SELECT `+absenceCols+` FROM absence_alerts ORDER BY tenant_id, id`)
}

func (db *DB) absenceAlerts(ctx context.Context, q string, args ...any) ([]tally.AbsenceAlert, error) {
	rows, err := db.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, wrap(err, "absence alert")
	}
	defer rows.Close()
	out := []tally.AbsenceAlert{}
	for rows.Next() {
		a, err := scanAbsence(rows)
		if err != nil {
			return nil, wrap(err, "absence alert")
		}
		out = append(out, *a)
	}
	return out, wrap(rows.Err(), "absence alert")
}

// AbsenceAlert implements tally.AbsenceStore.
func (db *DB) AbsenceAlert(ctx context.Context, tenantID, id int64) (*tally.AbsenceAlert, error) {
	a, err := scanAbsence(db.pool.QueryRow(ctx, `SELECT `+absenceCols+` FROM absence_alerts WHERE tenant_id = $1 AND id = $2`, tenantID, id))
	return a, wrap(err, "absence alert")
}

// UpdateAbsenceAlert implements tally.AbsenceStore.
func (db *DB) UpdateAbsenceAlert(ctx context.Context, a *tally.AbsenceAlert) error {
	if !storable(a.Event) || !storable(a.Description) {
		return tally.Invalid("invalid absence alert", tally.FieldError{Field: "event", Message: "must be valid UTF-8 without NUL"})
	}
	now := db.now().UTC().Truncate(time.Microsecond)
	got, err := scanAbsence(db.pool.QueryRow(ctx, `UPDATE absence_alerts SET event = $1, silence_seconds = $2, description = $3,
		state = 'ok', state_since = $4, last_seen_at = NULL, seq = seq + 1, updated_at = $4
		WHERE tenant_id = $5 AND id = $6 RETURNING `+absenceCols,
		a.Event, a.SilenceSeconds(), a.Description, now, a.TenantID, a.ID))
	if err != nil {
		return wrap(err, "absence alert")
	}
	*a = *got
	return nil
}

// DeleteAbsenceAlert implements tally.AbsenceStore.
func (db *DB) DeleteAbsenceAlert(ctx context.Context, tenantID, id int64) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM absence_alerts WHERE tenant_id = $1 AND id = $2`, tenantID, id)
	if err != nil {
		return wrap(err, "absence alert")
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENotFound, "absence alert not found")
	}
	return nil
}

// TransitionAbsenceAlert implements tally.AbsenceStore: one UPDATE
// conditional on seq. Under READ COMMITTED a second instance's UPDATE
// waits for the first to commit, re-reads the row, finds the next seq and
// updates nothing.
func (db *DB) TransitionAbsenceAlert(ctx context.Context, a *tally.AbsenceAlert, t tally.AbsenceTransition, lastSeen time.Time) (bool, error) {
	var seen *time.Time
	if !lastSeen.IsZero() {
		u := lastSeen.UTC()
		seen = &u
	}
	tag, err := db.pool.Exec(ctx, `UPDATE absence_alerts SET state = $1, state_since = $2, last_seen_at = $3, seq = seq + 1
		WHERE tenant_id = $4 AND id = $5 AND seq = $6`, t.State, t.Since, seen, a.TenantID, a.ID, a.Seq)
	if err != nil {
		return false, wrap(err, "absence alert")
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	a.State, a.StateSince, a.LastSeenAt, a.Seq = t.State, t.Since.UTC(), seen, a.Seq+1
	return true, nil
}

// LastEventAt implements tally.AbsenceStore: max(ts) over the event list's
// filter, which the (tenant_id, event, ts, id) index serves.
func (db *DB) LastEventAt(ctx context.Context, tenantID int64, pattern string, from time.Time) (time.Time, bool, error) {
	q := filter(tenantID, tally.EventFilter{Name: pattern, From: from})
	var at *time.Time
	if err := db.pool.QueryRow(ctx, `SELECT max(ts) FROM events`+q.where(), q.args...).Scan(&at); err != nil {
		return time.Time{}, false, wrap(err, "event")
	}
	if at == nil {
		return time.Time{}, false, nil
	}
	return at.UTC(), true, nil
}
