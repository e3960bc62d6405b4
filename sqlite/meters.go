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

const meterCols = `slug, event, aggregation, value_property, group_by, filter, description, created_at, updated_at`

func scanMeter(row scanner) (tally.MeterDef, error) {
	var m tally.MeterDef
	var groupBy, filter string
	var created, updated int64
	if err := row.Scan(&m.Slug, &m.Event, &m.Aggregation, &m.ValueProperty, &groupBy, &filter, &m.Description, &created, &updated); err != nil {
		return m, err
	}
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := json.Unmarshal([]byte(groupBy), &m.GroupBy); err != nil {
		return m, err
	}
	return m, json.Unmarshal([]byte(filter), &m.Filter)
}

// meterJSON encodes the JSON columns of m.
func meterJSON(m *tally.MeterDef) (groupBy, filter string) {
	if m.GroupBy == nil {
		m.GroupBy = []string{}
	}
	if m.Filter == nil {
		m.Filter = map[string]string{}
	}
	g, _ := json.Marshal(m.GroupBy)
	f, _ := json.Marshal(m.Filter)
	return string(g), string(f)
}

// CreateMeter implements tally.MeterStore; the cap is counted on the single
// writer, in the insert's transaction.
func (db *DB) CreateMeter(ctx context.Context, tenantID int64, m *tally.MeterDef) error {
	m.CreatedAt = db.now().UTC().Truncate(time.Microsecond)
	m.UpdatedAt = m.CreatedAt
	groupBy, filter := meterJSON(m)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM meters WHERE tenant_id = ?`, tenantID).Scan(&n); err != nil {
			return err
		}
		if n >= tally.MaxMetersPerTenant {
			return tally.Invalid("too many meters", tally.FieldError{Field: "slug", Message: "a tenant has at most " + strconv.Itoa(tally.MaxMetersPerTenant) + " meters; delete one first"})
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meters (tenant_id, `+meterCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tenantID, m.Slug, m.Event, m.Aggregation, m.ValueProperty, groupBy, filter, m.Description,
			micros(m.CreatedAt), micros(m.UpdatedAt))
		return err
	})
	return wrap(err, "meter")
}

// Meters implements tally.MeterStore.
func (db *DB) Meters(ctx context.Context, tenantID int64) ([]tally.MeterDef, error) {
	out, err := meters(ctx, db.r, tenantID)
	return out, wrap(err, "meter")
}

func meters(ctx context.Context, qr querier, tenantID int64) ([]tally.MeterDef, error) {
	rows, err := qr.QueryContext(ctx, `SELECT `+meterCols+` FROM meters WHERE tenant_id = ? ORDER BY slug`, tenantID)
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
	m, err := scanMeter(db.r.QueryRowContext(ctx, `SELECT `+meterCols+` FROM meters WHERE tenant_id = ? AND slug = ?`, tenantID, slug))
	if err != nil {
		return nil, wrap(err, "meter")
	}
	return &m, nil
}

// UpdateMeter implements tally.MeterStore; the meter's rollups of the
// old definition go with it.
func (db *DB) UpdateMeter(ctx context.Context, tenantID int64, m *tally.MeterDef) error {
	m.UpdatedAt = db.now().UTC().Truncate(time.Microsecond)
	groupBy, filter := meterJSON(m)
	var created int64
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE meters SET event = ?, aggregation = ?, value_property = ?, group_by = ?,
			filter = ?, description = ?, updated_at = ? WHERE tenant_id = ? AND slug = ? RETURNING created_at`,
			m.Event, m.Aggregation, m.ValueProperty, groupBy, filter, m.Description, micros(m.UpdatedAt),
			tenantID, m.Slug).Scan(&created)
		if err != nil {
			return err
		}
		return dropMeterRollups(ctx, tx, tenantID, m.Slug)
	})
	m.CreatedAt = fromMicros(created)
	return wrap(err, "meter")
}

// DeleteMeter implements tally.MeterStore, with the meter's rollups.
func (db *DB) DeleteMeter(ctx context.Context, tenantID int64, slug string) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM meters WHERE tenant_id = ? AND slug = ?`, tenantID, slug)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return tally.Errorf(tally.ENotFound, "meter not found")
		}
		return dropMeterRollups(ctx, tx, tenantID, slug)
	})
	return wrap(err, "meter")
}

// meterSQL builds the query of a tally.MeterQuery with numbered
// parameters (?N), so a props path given once is used by every expression
// that reads it.
type meterSQL struct {
	args  []any
	paths map[string]string // props path → its parameter
}

func (b *meterSQL) arg(v any) string {
	b.args = append(b.args, v)
	return "?" + strconv.Itoa(len(b.args))
}

// path returns the parameter holding the JSON path of a props path
// ("props.a.b" → `$."a"."b"`).
func (b *meterSQL) path(p string) string {
	if ph, ok := b.paths[p]; ok {
		return ph
	}
	keys := tally.ParsePropPath(p)
	var jp strings.Builder
	jp.WriteString("$")
	for _, k := range keys {
		jp.WriteString(`."` + k + `"`)
	}
	ph := b.arg(jp.String())
	b.paths[p] = ph
	return ph
}

// scalar is the text of the scalar at a props path (strings, numbers,
// booleans), NULL for anything else or nothing.
func (b *meterSQL) scalar(p string) string {
	ph := b.path(p)
	return `CASE json_type(e.props, ` + ph + `) WHEN 'text' THEN json_extract(e.props, ` + ph + `)
		WHEN 'integer' THEN CAST(json_extract(e.props, ` + ph + `) AS TEXT) WHEN 'real' THEN CAST(json_extract(e.props, ` + ph + `) AS TEXT)
		WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END`
}

// number is the JSON number at a props path (clamped to ±MaxValue), or
// the event's value, NULL when not a number.
func (b *meterSQL) number(p string) string {
	if p == tally.MeterValueProp {
		return `min(max(e.value, -1e15), 1e15)`
	}
	ph := b.path(p)
	return `CASE WHEN json_type(e.props, ` + ph + `) IN ('integer', 'real') THEN min(max(json_extract(e.props, ` + ph + `), -1e15), 1e15) END`
}

// events is the statement of the events q matches, one row each: w (the
// window), g0… (the group's values), v (the value, as text for
// unique_count when text is set), ts and id.
func (b *meterSQL) events(tenantID int64, q tally.MeterQuery, filter map[string]string, keys []string, text bool) string {
	index, lo, hi := q.Ranges()
	ranges := make([][3]int64, len(index))
	for i := range index {
		ranges[i] = [3]int64{int64(index[i]), micros(lo[i]), micros(hi[i])}
	}
	rj, _ := json.Marshal(ranges)
	var sb strings.Builder
	sb.WriteString(`WITH b(i, lo, hi) AS (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(` + b.arg(string(rj)) + `))
		SELECT b.i AS w`)
	for i, g := range q.GroupBy {
		sb.WriteString(", " + b.scalar(g) + " AS g" + strconv.Itoa(i))
	}
	m := q.Meter
	switch m.Aggregation {
	case tally.AggCount:
		sb.WriteString(", 1 AS v")
	case tally.AggUniqueCount:
		v := "e.value"
		if m.ValueProperty != tally.MeterValueProp {
			v = b.scalar(m.ValueProperty)
		}
		if text {
			v = "CAST(" + v + " AS TEXT)"
		}
		sb.WriteString(", " + v + " AS v")
	default:
		sb.WriteString(", " + b.number(m.ValueProperty) + " AS v")
	}
	// CROSS JOIN keeps the windows the outer loop (SQLite does not reorder
	// it): each window is then one range of an events index, where the
	// planner would otherwise scan every event of the name and every
	// window for each.
	sb.WriteString(`, e.ts AS ts, e.id AS id FROM b CROSS JOIN events e ON e.tenant_id = ` + b.arg(tenantID) + ` AND e.ts >= b.lo AND e.ts < b.hi
		WHERE 1`)
	if lo, hi, prefix := tally.EventPrefixRange(m.Event); !prefix {
		sb.WriteString(" AND e.event = " + b.arg(lo))
	} else if lo != "" {
		sb.WriteString(" AND e.event >= " + b.arg(lo) + " AND e.event < " + b.arg(hi))
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
		case "source", "user_id":
			sb.WriteString(" AND e." + k + " = " + b.arg(filter[k]))
		default:
			sb.WriteString(" AND " + b.scalar(k) + " = " + b.arg(filter[k]))
		}
	}
	return sb.String()
}

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
		agg = "count(*)"
	case tally.AggSum:
		agg = "total(v)" // 0.0, not NULL, without a value
	case tally.AggUniqueCount:
		agg = "count(DISTINCT v)"
	case tally.AggMin:
		agg = "min(v)"
	case tally.AggMax:
		agg = "max(v)"
	case tally.AggAvg:
		agg = "avg(v)"
	case tally.AggLatest:
		// The last event with a value; a group without one keeps its row
		// (value NULL), as for the other aggregations.
		return `SELECT ` + cols + `, v FROM (SELECT x.*, row_number() OVER (PARTITION BY ` + cols + ` ORDER BY v IS NULL, ts DESC, id DESC) AS rn
			FROM (` + inner + `) x) WHERE rn = 1`
	}
	return `SELECT ` + cols + `, ` + agg + ` FROM (` + inner + `) GROUP BY ` + cols
}

// QueryMeter implements tally.MeterStore: one statement on a reader, the
// windows a json_each table joined to the (tenant_id, ts) index.
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
	rows, err := db.r.QueryContext(ctx, query, b.args...)
	if err != nil {
		return wrap(err, "meter")
	}
	defer rows.Close()
	groups := make([]sql.NullString, len(q.GroupBy))
	var w int
	var v sql.NullFloat64
	dest := []any{&w}
	for i := range groups {
		dest = append(dest, &groups[i])
	}
	dest = append(dest, &v)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return wrap(err, "meter")
		}
		r := tally.MeterRow{Window: w, Group: make([]*string, len(groups))}
		for i, g := range groups {
			if g.Valid {
				r.Group[i] = &g.String
			}
		}
		if v.Valid {
			x := v.Float64
			r.Value = &x
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "meter")
}
