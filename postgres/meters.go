package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally"
)

const meterCols = `slug, event, aggregation, value_property, group_by, filter, description, created_at, updated_at`

func scanMeter(row pgx.Row) (tally.MeterDef, error) {
	var m tally.MeterDef
	err := row.Scan(&m.Slug, &m.Event, &m.Aggregation, &m.ValueProperty, &m.GroupBy, &m.Filter, &m.Description, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// meterDefaults gives m's JSON columns their empty values.
func meterDefaults(m *tally.MeterDef) {
	if m.GroupBy == nil {
		m.GroupBy = []string{}
	}
	if m.Filter == nil {
		m.Filter = map[string]string{}
	}
}

// CreateMeter implements tally.MeterStore. The tenant's meter rows are
// locked (FOR UPDATE) before they are counted, so concurrent creations
// cannot both pass the cap; the first meter of a tenant is serialised by
// the tenant's advisory lock.
func (db *DB) CreateMeter(ctx context.Context, tenantID int64, m *tally.MeterDef) error {
	m.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	m.UpdatedAt = m.CreatedAt
	meterDefaults(m)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, meterLockSpace, tenantLockKey(tenantID)); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM meters WHERE tenant_id = $1`, tenantID).Scan(&n); err != nil {
			return err
		}
		if n >= tally.MaxMetersPerTenant {
			return tally.Invalid("too many meters", tally.FieldError{Field: "slug", Message: "a tenant has at most " + strconv.Itoa(tally.MaxMetersPerTenant) + " meters; delete one first"})
		}
		_, err := tx.Exec(ctx, `INSERT INTO meters (tenant_id, `+meterCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			tenantID, m.Slug, m.Event, m.Aggregation, m.ValueProperty, m.GroupBy, m.Filter, m.Description, m.CreatedAt, m.UpdatedAt)
		return err
	})
	return wrap(err, "meter")
}

// meterLockSpace is the first key of the advisory lock that serialises a
// tenant's meter creations (the second is the tenant's key).
const meterLockSpace = 0x6d657472 // "metr"

// Meters implements tally.MeterStore.
func (db *DB) Meters(ctx context.Context, tenantID int64) ([]tally.MeterDef, error) {
	out, err := meters(ctx, db.pool, tenantID)
	return out, wrap(err, "meter")
}

func meters(ctx context.Context, qr querier, tenantID int64) ([]tally.MeterDef, error) {
	rows, err := qr.Query(ctx, `SELECT `+meterCols+` FROM meters WHERE tenant_id = $1 ORDER BY slug`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tally.MeterDef
	for rows.Next() {
		m, err := scanMeter(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MeterBySlug implements tally.MeterStore.
func (db *DB) MeterBySlug(ctx context.Context, tenantID int64, slug string) (*tally.MeterDef, error) {
	m, err := scanMeter(db.pool.QueryRow(ctx, `SELECT `+meterCols+` FROM meters WHERE tenant_id = $1 AND slug = $2`, tenantID, slug))
	if err != nil {
		return nil, wrap(err, "meter")
	}
	return &m, nil
}

// UpdateMeter implements tally.MeterStore; the meter's rollups of the
// old definition go with it.
func (db *DB) UpdateMeter(ctx context.Context, tenantID int64, m *tally.MeterDef) error {
	m.UpdatedAt = db.now().UTC().Truncate(time.Microsecond)
	meterDefaults(m)
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `UPDATE meters SET event = $1, aggregation = $2, value_property = $3, group_by = $4,
			filter = $5, description = $6, updated_at = $7 WHERE tenant_id = $8 AND slug = $9 RETURNING created_at`,
			m.Event, m.Aggregation, m.ValueProperty, m.GroupBy, m.Filter, m.Description, m.UpdatedAt,
			tenantID, m.Slug).Scan(&m.CreatedAt)
		if err != nil {
			return err
		}
		return dropMeterRollups(ctx, tx, tenantID, m.Slug)
	})
	return wrap(err, "meter")
}

// DeleteMeter implements tally.MeterStore, with the meter's rollups.
func (db *DB) DeleteMeter(ctx context.Context, tenantID int64, slug string) error {
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM meters WHERE tenant_id = $1 AND slug = $2`, tenantID, slug)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return tally.Errorf(tally.ENotFound, "meter not found")
		}
		return dropMeterRollups(ctx, tx, tenantID, slug)
	})
	return wrap(err, "meter")
}

// meterSQL builds the query of a tally.MeterQuery; props are cast to jsonb
// once per event (the lateral j.p, kept from being inlined into every
// expression by OFFSET 0) and read with #> / #>> by key arrays.
type meterSQL struct {
	args  []any
	paths map[string]string // props path → its parameter
}

func (b *meterSQL) arg(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

func (b *meterSQL) path(p string) string {
	if ph, ok := b.paths[p]; ok {
		return ph
	}
	ph := b.arg(tally.ParsePropPath(p)) + "::text[]"
	b.paths[p] = ph
	return ph
}

// scalar is the text of the scalar at a props path (strings, numbers,
// booleans), NULL for anything else or nothing.
func (b *meterSQL) scalar(p string) string {
	ph := b.path(p)
	return `CASE WHEN jsonb_typeof(j.p #> ` + ph + `) IN ('string', 'number', 'boolean') THEN j.p #>> ` + ph + ` END`
}

// number is the JSON number at a props path (clamped to ±MaxValue), or
// the event's value, NULL when not a number.
func (b *meterSQL) number(p string) string {
	if p == tally.MeterValueProp {
		return `least(greatest(e.value, -1e15), 1e15)`
	}
	ph := b.path(p)
	return `CASE WHEN jsonb_typeof(j.p #> ` + ph + `) = 'number' THEN least(greatest((j.p #>> ` + ph + `)::numeric, -1e15), 1e15)::float8 END`
}

// events is the statement of the events q matches, one row each: w (the
// window), g0… (the group's values), v (the value, as text for
// unique_count when text is set), ts and id.
func (b *meterSQL) events(tenantID int64, q tally.MeterQuery, filter map[string]string, keys []string, text bool) string {
	index, lo, hi := q.Ranges()
	var sb strings.Builder
	sb.WriteString(`SELECT b.i AS w`)
	for i, g := range q.GroupBy {
		sb.WriteString(", " + b.scalar(g) + " AS g" + strconv.Itoa(i))
	}
	m := q.Meter
	switch m.Aggregation {
	case tally.AggCount:
		sb.WriteString(", 1::float8 AS v")
	case tally.AggUniqueCount:
		v := "e.value"
		if m.ValueProperty != tally.MeterValueProp {
			v = b.scalar(m.ValueProperty)
		}
		if text {
			v = "(" + v + ")::text"
		}
		sb.WriteString(", " + v + " AS v")
	default:
		sb.WriteString(", " + b.number(m.ValueProperty) + " AS v")
	}
	var event string
	if lo, hi, prefix := tally.EventPrefixRange(m.Event); !prefix {
		event = " AND e.event = " + b.arg(lo)
	} else if lo != "" {
		event = " AND e.event >= " + b.arg(lo) + " AND e.event < " + b.arg(hi)
	}
	windows := `unnest(` + b.arg(lo) + `::timestamptz[], ` + b.arg(hi) + `::timestamptz[], ` + b.arg(index) + `::int[]) AS b(lo, hi, i)`
	if q.Skip != nil {
		// Windows with gaps between them (the raw parts of a query that
		// reads rollups): one range scan of the (tenant_id, ts) index per
		// window (the name is tested outside, so the planner cannot pick
		// the name's index and scan every event of the name per window),
		// where the whole range below would read every event between them.
		sb.WriteString(`, e.ts AS ts, e.id AS id FROM ` + windows + `
			CROSS JOIN LATERAL (SELECT * FROM events e WHERE e.tenant_id = ` + b.arg(tenantID) + ` AND e.ts >= b.lo AND e.ts < b.hi OFFSET 0) e
			CROSS JOIN LATERAL (SELECT e.props::jsonb AS p OFFSET 0) j
			WHERE true` + event)
	} else {
		sb.WriteString(`, e.ts AS ts, e.id AS id FROM ` + windows + `
			JOIN events e ON e.tenant_id = ` + b.arg(tenantID) + ` AND e.ts >= b.lo AND e.ts < b.hi
			CROSS JOIN LATERAL (SELECT e.props::jsonb AS p OFFSET 0) j
			WHERE e.ts >= ` + b.arg(lo[0]) + ` AND e.ts < ` + b.arg(hi[len(hi)-1]) + event)
		// (The whole range again, so the planner bounds its index scan by
		// time and not only by name.)
	}
	if tally.ExcludesOwn(m.Event, filter["source"]) {
		lo, hi := tally.OwnEventRange()
		sb.WriteString(" AND (e.event < " + b.arg(lo) + " OR e.event >= " + b.arg(hi) + ")")
	}
	if q.SkipMetric != "" {
		sb.WriteString(" AND e.metric <> " + b.arg(q.SkipMetric))
	}
	for _, k := range keys {
		switch k {
		case "source":
			sb.WriteString(" AND e.source = " + b.arg(filter[k]))
		case "user_id":
			sb.WriteString(" AND e.user_id = " + b.arg([]byte(filter[k])))
		default:
			sb.WriteString(" AND " + b.scalar(k) + " = " + b.arg(filter[k]))
		}
	}
	return sb.String()
}

// build is the statement of q's aggregates; q has a window to compute.
func (b *meterSQL) build(tenantID int64, q tally.MeterQuery, filter map[string]string, keys []string) string {
	var groups []string
	for i := range q.GroupBy {
		groups = append(groups, "g"+strconv.Itoa(i))
	}
	m := q.Meter
	inner := b.events(tenantID, q, filter, keys, false)
	cols := strings.Join(append([]string{"w"}, groups...), ", ")
	var agg string
	switch m.Aggregation {
	case tally.AggCount:
		agg = "count(*)::float8"
	case tally.AggSum:
		agg = "coalesce(sum(v), 0)"
	case tally.AggUniqueCount:
		agg = "count(DISTINCT v)::float8"
	case tally.AggMin:
		agg = "min(v)"
	case tally.AggMax:
		agg = "max(v)"
	case tally.AggAvg:
		agg = "avg(v)"
	case tally.AggLatest:
		agg = "(array_agg(v ORDER BY ts DESC, id DESC) FILTER (WHERE v IS NOT NULL))[1]"
	}
	return `SELECT ` + cols + `, ` + agg + ` FROM (` + inner + `) x GROUP BY ` + cols
}

// QueryMeter implements tally.MeterStore: one statement, the windows an
// unnest of bounds joined to the (tenant_id, ts) index.
func (db *DB) QueryMeter(ctx context.Context, tenantID int64, q tally.MeterQuery, fn func(tally.MeterRow) error) error {
	filter, keys, ok, err := q.Plan()
	if !ok || err != nil {
		return err
	}
	if idx, _, _ := q.Ranges(); len(idx) == 0 {
		return nil
	}
	b := &meterSQL{paths: map[string]string{}}
	query := b.build(tenantID, q, filter, keys)
	rows, err := db.pool.Query(ctx, query, b.args...)
	if err != nil {
		return wrap(err, "meter")
	}
	defer rows.Close()
	groups := make([]*string, len(q.GroupBy))
	var w int
	var v *float64
	dest := []any{&w}
	for i := range groups {
		dest = append(dest, &groups[i])
	}
	dest = append(dest, &v)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return wrap(err, "meter")
		}
		// pgx may scan into the memory a pointer already holds: copy.
		r := tally.MeterRow{Window: w, Group: make([]*string, len(groups))}
		for i, g := range groups {
			if g != nil {
				s := *g
				r.Group[i] = &s
			}
		}
		if v != nil {
			x := *v
			r.Value = &x
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "meter")
}
