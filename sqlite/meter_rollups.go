package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/userset"
)

// meterEvents streams the events of q (tally.MeterRollupStore.MeterEvents):
// fn's error as is, the store's wrapped as what.
func meterEvents(ctx context.Context, qr querier, tenantID int64, q tally.MeterQuery, what string, fn func(tally.MeterEvent) error) error {
	var fnErr error
	err := streamMeterEvents(ctx, qr, tenantID, q, func(e tally.MeterEvent) error {
		fnErr = fn(e)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return wrap(err, what)
}

func streamMeterEvents(ctx context.Context, qr querier, tenantID int64, q tally.MeterQuery, fn func(tally.MeterEvent) error) error {
	filter, keys, ok, err := q.Plan()
	if !ok || err != nil {
		return err
	}
	if idx, _, _ := q.Ranges(); len(idx) == 0 {
		return nil
	}
	b := &meterSQL{paths: map[string]string{}}
	rows, err := qr.QueryContext(ctx, b.events(tenantID, q, filter, keys, true), b.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	groups := make([]sql.NullString, len(q.GroupBy))
	var (
		ts, id int64
		num    sql.NullFloat64
		text   sql.NullString
		e      tally.MeterEvent
	)
	dest := []any{&e.Window}
	for i := range groups {
		dest = append(dest, &groups[i])
	}
	if q.Meter.Aggregation == tally.AggUniqueCount {
		dest = append(dest, &text)
	} else {
		dest = append(dest, &num)
	}
	dest = append(dest, &ts, &id)
	e.Group = make([]*string, len(groups))
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, g := range groups {
			e.Group[i] = nil
			if g.Valid {
				e.Group[i] = &groups[i].String
			}
		}
		e.Number, e.Text = nil, nil
		if num.Valid {
			e.Number = &num.Float64
		}
		if text.Valid {
			e.Text = &text.String
		}
		e.At, e.ID = fromMicros(ts), id
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// MeterEvents implements tally.MeterRollupStore on a reader.
func (db *DB) MeterEvents(ctx context.Context, tenantID int64, q tally.MeterQuery, fn func(tally.MeterEvent) error) error {
	return meterEvents(ctx, db.r, tenantID, q, "meter", fn)
}

func (t *rollupTx) MeterEvents(ctx context.Context, q tally.MeterQuery, fn func(tally.MeterEvent) error) error {
	return meterEvents(ctx, t.rd, t.tenantID, q, "rollup", fn)
}

func (t *rollupTx) Meters(ctx context.Context) ([]tally.MeterDef, error) {
	out, err := meters(ctx, t.rd, t.tenantID)
	return out, wrap(err, "rollup")
}

func (t *rollupTx) WriteMeterDay(ctx context.Context, m *tally.MeterDef, day time.Time, rows []tally.MeterHourRow) error {
	from, to := micros(day), micros(day.Add(24*time.Hour))
	version := tally.MeterVersion(m)
	return t.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM meter_rollup_hour WHERE tenant_id = ? AND slug = ? AND hour >= ? AND hour < ?`,
			`DELETE FROM meter_rollup_days WHERE tenant_id = ? AND slug = ? AND day >= ? AND day < ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, t.tenantID, m.Slug, from, to); err != nil {
				return err
			}
		}
		ins, err := tx.PrepareContext(ctx, `INSERT INTO meter_rollup_hour (tenant_id, slug, version, hour, grp, cnt, n, sum, min, max, last_v, last_ts, last_id, uniq)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer ins.Close()
		for _, r := range rows {
			if t.stale(r.Hour, time.Hour) {
				continue
			}
			p := &r.Partial
			if _, err := ins.ExecContext(ctx, t.tenantID, m.Slug, version, micros(r.Hour), tally.MeterGroupKey(r.Group),
				p.Count, p.N, p.Sum, p.Min, p.Max, p.Last, micros(p.LastAt), p.LastID, uniqSet(p)); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meter_rollup_days (tenant_id, slug, day, version) VALUES (?, ?, ?, ?)`,
			t.tenantID, m.Slug, from, version)
		return err
	})
}

// uniqSet encodes a partial's distinct values (nil: not a unique_count).
func uniqSet(p *tally.MeterPartial) []byte {
	if p.Uniq == nil {
		return nil
	}
	set := []byte{}
	for v := range p.Uniq {
		set = userset.Append(set, []byte(v))
	}
	return set
}

// parseUniq decodes uniqSet into p.
func parseUniq(p *tally.MeterPartial, set []byte) error {
	if set == nil {
		return nil
	}
	vals, err := userset.Split(set, nil)
	if err != nil {
		return err
	}
	p.Uniq = make(map[string]struct{}, len(vals))
	for _, v := range vals {
		p.Uniq[string(v)] = struct{}{}
	}
	return nil
}

// MeterRollupDays implements tally.MeterRollupStore.
func (db *DB) MeterRollupDays(ctx context.Context, tenantID int64, m *tally.MeterDef, from, to time.Time) ([]time.Time, error) {
	days, err := meterDays(ctx, db.r, tenantID, m, from, to)
	return days, wrap(err, "meter")
}

func meterDays(ctx context.Context, qr querier, tenantID int64, m *tally.MeterDef, from, to time.Time) ([]time.Time, error) {
	rows, err := qr.QueryContext(ctx, `SELECT day FROM meter_rollup_days WHERE tenant_id = ? AND slug = ? AND version = ? AND day >= ? AND day < ? ORDER BY day`,
		tenantID, m.Slug, tally.MeterVersion(m), micros(from), micros(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, fromMicros(d))
	}
	return out, rows.Err()
}

// MeterRollups implements tally.MeterRollupStore in one read transaction.
func (db *DB) MeterRollups(ctx context.Context, tenantID int64, m *tally.MeterDef, from, to time.Time) (*tally.MeterRollups, error) {
	tx, err := db.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, wrap(err, "meter")
	}
	defer tx.Rollback()
	out := &tally.MeterRollups{}
	if out.Days, err = meterDays(ctx, tx, tenantID, m, tally.DayStart(from), to); err != nil || len(out.Days) == 0 {
		return out, wrap(err, "meter")
	}
	dirty, err := tx.QueryContext(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = ? AND hour >= ? AND hour < ?`, tenantID, micros(from), micros(to))
	if err != nil {
		return nil, wrap(err, "meter")
	}
	defer dirty.Close()
	for dirty.Next() {
		var h int64
		if err := dirty.Scan(&h); err != nil {
			return nil, wrap(err, "meter")
		}
		out.Dirty = append(out.Dirty, fromMicros(h))
	}
	if err := dirty.Err(); err != nil {
		return nil, wrap(err, "meter")
	}
	rows, err := tx.QueryContext(ctx, `SELECT hour, grp, cnt, n, sum, min, max, last_v, last_ts, last_id, uniq FROM meter_rollup_hour
		WHERE tenant_id = ? AND slug = ? AND hour >= ? AND hour < ? AND version = ?`,
		tenantID, m.Slug, micros(from), micros(to), tally.MeterVersion(m))
	if err != nil {
		return nil, wrap(err, "meter")
	}
	defer rows.Close()
	keys := tally.MeterGroupKeys{}
	for rows.Next() {
		var (
			r          tally.MeterHourRow
			hour, last int64
			grp        string
			uniq       []byte
			p          = &r.Partial
		)
		if err := rows.Scan(&hour, &grp, &p.Count, &p.N, &p.Sum, &p.Min, &p.Max, &p.Last, &last, &p.LastID, &uniq); err != nil {
			return nil, wrap(err, "meter")
		}
		r.Hour, p.LastAt = fromMicros(hour), fromMicros(last)
		if r.Group, err = keys.Parse(grp); err != nil {
			return nil, wrap(fmt.Errorf("sqlite: meter %s group %q: %w", m.Slug, grp, err), "meter")
		}
		if err := parseUniq(p, uniq); err != nil {
			return nil, wrap(fmt.Errorf("sqlite: meter %s hour %d: %w", m.Slug, hour, err), "meter")
		}
		out.Rows = append(out.Rows, r)
	}
	return out, wrap(rows.Err(), "meter")
}

// dropMeterRollups deletes every rollup of one of a tenant's meters.
func dropMeterRollups(ctx context.Context, tx *sql.Tx, tenantID int64, slug string) error {
	for _, q := range []string{`DELETE FROM meter_rollup_hour WHERE tenant_id = ? AND slug = ?`, `DELETE FROM meter_rollup_days WHERE tenant_id = ? AND slug = ?`} {
		if _, err := tx.ExecContext(ctx, q, tenantID, slug); err != nil {
			return err
		}
	}
	return nil
}
