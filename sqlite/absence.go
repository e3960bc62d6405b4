package sqlite

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/tallyhq/tally"
)

var _ tally.AbsenceStore = (*DB)(nil)

const absenceCols = `id, tenant_id, event, silence_seconds, description, state, state_since, last_seen_at, seq, created_at, updated_at`

func scanAbsence(row scanner) (*tally.AbsenceAlert, error) {
	var a tally.AbsenceAlert
	var silence, since, created, updated int64
	var seen sql.NullInt64
	if err := row.Scan(&a.ID, &a.TenantID, &a.Event, &silence, &a.Description, &a.State, &since, &seen, &a.Seq,
		&created, &updated); err != nil {
		return nil, err
	}
	a.Silence = time.Duration(silence) * time.Second
	a.StateSince, a.CreatedAt, a.UpdatedAt = fromMicros(since), fromMicros(created), fromMicros(updated)
	a.LastSeenAt = timePtr(seen)
	return &a, nil
}

// CreateAbsenceAlert implements tally.AbsenceStore; the cap is counted on
// the single writer, in the insert's transaction.
func (db *DB) CreateAbsenceAlert(ctx context.Context, a *tally.AbsenceAlert) error {
	now := db.now().UTC().Truncate(time.Microsecond)
	a.CreatedAt, a.UpdatedAt, a.State, a.StateSince, a.LastSeenAt, a.Seq = now, now, tally.AbsenceOK, now, nil, 1
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM absence_alerts WHERE tenant_id = ?`, a.TenantID).Scan(&n); err != nil {
			return err
		}
		if n >= tally.MaxAbsenceAlerts {
			return tooManyAbsenceAlerts()
		}
		return tx.QueryRowContext(ctx, `INSERT INTO absence_alerts (tenant_id, event, silence_seconds, description, state,
			state_since, seq, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			a.TenantID, a.Event, a.SilenceSeconds(), a.Description, a.State, micros(now), a.Seq, micros(now), micros(now)).Scan(&a.ID)
	})
	return wrap(err, "absence alert")
}

func tooManyAbsenceAlerts() error {
	return tally.Invalid("too many absence alerts", tally.FieldError{Field: "event",
		Message: "a tenant has at most " + strconv.Itoa(tally.MaxAbsenceAlerts) + " absence alerts; delete one first"})
}

// AbsenceAlerts implements tally.AbsenceStore.
func (db *DB) AbsenceAlerts(ctx context.Context, tenantID int64) ([]tally.AbsenceAlert, error) {
	return db.absenceAlerts(ctx, `SELECT `+absenceCols+` FROM absence_alerts WHERE tenant_id = ? ORDER BY id`, tenantID)
}

// AllAbsenceAlerts implements tally.AbsenceStore.
func (db *DB) AllAbsenceAlerts(ctx context.Context) ([]tally.AbsenceAlert, error) {
	return db.absenceAlerts(ctx, `SELECT `+absenceCols+` FROM absence_alerts ORDER BY tenant_id, id`)
}

func (db *DB) absenceAlerts(ctx context.Context, q string, args ...any) ([]tally.AbsenceAlert, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
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
	a, err := scanAbsence(db.r.QueryRowContext(ctx, `SELECT `+absenceCols+` FROM absence_alerts WHERE tenant_id = ? AND id = ?`, tenantID, id))
	return a, wrap(err, "absence alert")
}

// UpdateAbsenceAlert implements tally.AbsenceStore.
func (db *DB) UpdateAbsenceAlert(ctx context.Context, a *tally.AbsenceAlert) error {
	now := db.now().UTC().Truncate(time.Microsecond)
	got, err := scanAbsence(db.w.QueryRowContext(ctx, `UPDATE absence_alerts SET event = ?, silence_seconds = ?, description = ?,
		state = 'ok', state_since = ?, last_seen_at = NULL, seq = seq + 1, updated_at = ?
		WHERE tenant_id = ? AND id = ? RETURNING `+absenceCols,
		a.Event, a.SilenceSeconds(), a.Description, micros(now), micros(now), a.TenantID, a.ID))
	if err != nil {
		return wrap(err, "absence alert")
	}
	*a = *got
	return nil
}

// DeleteAbsenceAlert implements tally.AbsenceStore.
func (db *DB) DeleteAbsenceAlert(ctx context.Context, tenantID, id int64) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM absence_alerts WHERE tenant_id = ? AND id = ?`, tenantID, id)
	if err != nil {
		return wrap(err, "absence alert")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return tally.Errorf(tally.ENotFound, "absence alert not found")
	}
	return nil
}

// TransitionAbsenceAlert implements tally.AbsenceStore: one UPDATE
// conditional on seq, on the single writer.
func (db *DB) TransitionAbsenceAlert(ctx context.Context, a *tally.AbsenceAlert, t tally.AbsenceTransition, lastSeen time.Time) (bool, error) {
	var seen sql.NullInt64
	if !lastSeen.IsZero() {
		seen = sql.NullInt64{Int64: micros(lastSeen), Valid: true}
	}
	res, err := db.w.ExecContext(ctx, `UPDATE absence_alerts SET state = ?, state_since = ?, last_seen_at = ?, seq = seq + 1
		WHERE tenant_id = ? AND id = ? AND seq = ?`, t.State, micros(t.Since), seen, a.TenantID, a.ID, a.Seq)
	if err != nil {
		return false, wrap(err, "absence alert")
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	a.State, a.StateSince, a.LastSeenAt, a.Seq = t.State, t.Since.UTC(), timePtr(seen), a.Seq+1
	return true, nil
}

// LastEventAt implements tally.AbsenceStore: max(ts) over the event list's
// filter, which the (tenant_id, event, ts) index serves.
func (db *DB) LastEventAt(ctx context.Context, tenantID int64, pattern string, from time.Time) (time.Time, bool, error) {
	where, args := filterSQL(tenantID, tally.EventFilter{Name: pattern, From: from})
	var at sql.NullInt64
	if err := db.r.QueryRowContext(ctx, `SELECT max(ts) FROM events`+where, args...).Scan(&at); err != nil {
		return time.Time{}, false, wrap(err, "event")
	}
	if !at.Valid {
		return time.Time{}, false, nil
	}
	return fromMicros(at.Int64), true, nil
}
