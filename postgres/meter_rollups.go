package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/internal/userset"
)

// meterEvents streams the events of q (tally.MeterRollupStore.MeterEvents):
// fn's error as is, the store's wrapped as what.
func meterEvents(ctx context.Context, qr querier, tenantID int64, q tally.MeterQuery, what string, fn func(tally.MeterEvent) error) error {
	filter, keys, ok, err := q.Plan()
	if !ok || err != nil {
		return err
	}
	if idx, _, _ := q.Ranges(); len(idx) == 0 {
		return nil
	}
	b := &meterSQL{paths: map[string]string{}}
	rows, err := qr.Query(ctx, b.events(tenantID, q, filter, keys, true), b.args...)
	if err != nil {
		return wrap(err, what)
	}
	defer rows.Close()
	groups := make([]*string, len(q.GroupBy))
	var (
		id   int64
		num  *float64
		text *string
		e    tally.MeterEvent
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
	dest = append(dest, &e.At, &id)
	e.Group = make([]*string, len(groups))
	for rows.Next() {
		groups = groups[:len(q.GroupBy)]
		for i := range groups {
			groups[i] = nil
		}
		num, text = nil, nil
		if err := rows.Scan(dest...); err != nil {
			return wrap(err, what)
		}
		copy(e.Group, groups)
		e.Number, e.Text, e.ID = num, text, id
		e.At = e.At.UTC()
		if err := fn(e); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), what)
}

// MeterEvents implements tally.MeterRollupStore.
func (db *DB) MeterEvents(ctx context.Context, tenantID int64, q tally.MeterQuery, fn func(tally.MeterEvent) error) error {
	return meterEvents(ctx, db.pool, tenantID, q, "meter", fn)
}

func (t *rollupTx) MeterEvents(ctx context.Context, q tally.MeterQuery, fn func(tally.MeterEvent) error) error {
	if err := t.flush(ctx); err != nil {
		return err
	}
	return meterEvents(ctx, t.tx, t.tenantID, q, "rollup", fn)
}

func (t *rollupTx) Meters(ctx context.Context) ([]tally.MeterDef, error) {
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	out, err := meters(ctx, t.tx, t.tenantID)
	return out, wrap(err, "rollup")
}

func (t *rollupTx) WriteMeterDay(_ context.Context, m *tally.MeterDef, day time.Time, rows []tally.MeterHourRow) error {
	from, to := day, day.Add(24*time.Hour)
	version := tally.MeterVersion(m)
	slug := m.Slug
	t.write(func(b *pgx.Batch) {
		b.Queue(`DELETE FROM meter_rollup_hour WHERE tenant_id = $1 AND slug = $2 AND hour >= $3 AND hour < $4`, t.tenantID, slug, from, to)
		b.Queue(`DELETE FROM meter_rollup_days WHERE tenant_id = $1 AND slug = $2 AND day >= $3 AND day < $4`, t.tenantID, slug, from, to)
		for _, r := range rows {
			if t.stale(r.Hour, time.Hour) {
				continue
			}
			p := &r.Partial
			b.Queue(`INSERT INTO meter_rollup_hour (tenant_id, slug, version, hour, grp, cnt, n, sum, min, max, last_v, last_ts, last_id, uniq)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
				t.tenantID, slug, version, r.Hour, tally.MeterGroupKey(r.Group), p.Count, p.N, p.Sum, p.Min, p.Max, p.Last, p.LastAt, p.LastID, uniqSet(p))
		}
		b.Queue(`INSERT INTO meter_rollup_days (tenant_id, slug, day, version) VALUES ($1, $2, $3, $4)`, t.tenantID, slug, from, version)
	})
	return nil
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

// MeterRollupDays implements tally.MeterRollupStore.
func (db *DB) MeterRollupDays(ctx context.Context, tenantID int64, m *tally.MeterDef, from, to time.Time) ([]time.Time, error) {
	days, err := meterDays(ctx, db.pool, tenantID, m, from, to)
	return days, wrap(err, "meter")
}

func meterDays(ctx context.Context, qr querier, tenantID int64, m *tally.MeterDef, from, to time.Time) ([]time.Time, error) {
	rows, err := qr.Query(ctx, `SELECT day FROM meter_rollup_days WHERE tenant_id = $1 AND slug = $2 AND version = $3 AND day >= $4 AND day < $5 ORDER BY day`,
		tenantID, m.Slug, tally.MeterVersion(m), from, to)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (time.Time, error) {
		var d time.Time
		err := row.Scan(&d)
		return d.UTC(), err
	})
}

// MeterRollups implements tally.MeterRollupStore in one REPEATABLE READ
// transaction.
func (db *DB) MeterRollups(ctx context.Context, tenantID int64, m *tally.MeterDef, from, to time.Time) (*tally.MeterRollups, error) {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, unavailable(err)
	}
	defer tx.Rollback(ctx)
	out := &tally.MeterRollups{}
	if out.Days, err = meterDays(ctx, tx, tenantID, m, tally.DayStart(from), to); err != nil || len(out.Days) == 0 {
		return out, wrap(err, "meter")
	}
	dirty, err := tx.Query(ctx, `SELECT hour FROM rollup_dirty WHERE tenant_id = $1 AND hour >= $2 AND hour < $3`, tenantID, from, to)
	if err != nil {
		return nil, wrap(err, "meter")
	}
	if out.Dirty, err = pgx.CollectRows(dirty, func(row pgx.CollectableRow) (time.Time, error) {
		var h time.Time
		err := row.Scan(&h)
		return h.UTC(), err
	}); err != nil {
		return nil, wrap(err, "meter")
	}
	rows, err := tx.Query(ctx, `SELECT hour, grp, cnt, n, sum, min, max, last_v, last_ts, last_id, uniq FROM meter_rollup_hour
		WHERE tenant_id = $1 AND slug = $2 AND hour >= $3 AND hour < $4 AND version = $5`,
		tenantID, m.Slug, from, to, tally.MeterVersion(m))
	if err != nil {
		return nil, wrap(err, "meter")
	}
	defer rows.Close()
	keys := tally.MeterGroupKeys{}
	for rows.Next() {
		var (
			r    tally.MeterHourRow
			grp  string
			uniq []byte
			p    = &r.Partial
		)
		if err := rows.Scan(&r.Hour, &grp, &p.Count, &p.N, &p.Sum, &p.Min, &p.Max, &p.Last, &p.LastAt, &p.LastID, &uniq); err != nil {
			return nil, wrap(err, "meter")
		}
		r.Hour, p.LastAt = r.Hour.UTC(), p.LastAt.UTC()
		if r.Group, err = keys.Parse(grp); err != nil {
			return nil, wrap(fmt.Errorf("postgres: meter %s group %q: %w", m.Slug, grp, err), "meter")
		}
		if uniq != nil {
			vals, err := userset.Split(uniq, nil)
			if err != nil {
				return nil, wrap(fmt.Errorf("postgres: meter %s hour %v: %w", m.Slug, r.Hour, err), "meter")
			}
			p.Uniq = make(map[string]struct{}, len(vals))
			for _, v := range vals {
				p.Uniq[string(v)] = struct{}{}
			}
		}
		out.Rows = append(out.Rows, r)
	}
	return out, wrap(rows.Err(), "meter")
}

// dropMeterRollups deletes every rollup of one of a tenant's meters.
func dropMeterRollups(ctx context.Context, tx pgx.Tx, tenantID int64, slug string) error {
	for _, q := range []string{`DELETE FROM meter_rollup_hour WHERE tenant_id = $1 AND slug = $2`, `DELETE FROM meter_rollup_days WHERE tenant_id = $1 AND slug = $2`} {
		if _, err := tx.Exec(ctx, q, tenantID, slug); err != nil {
			return err
		}
	}
	return nil
}
