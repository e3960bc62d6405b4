package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tallyhq/tally"
)

// Counters are tally.Counters in this database (tables usage_counters and
// usage_crossings), shared by every instance on it: several instances on
// PostgreSQL alone are exact without Redis. Every method is one statement
// (Reset one transaction), atomic on the rows it touches:
//
//   - Add is INSERT … ON CONFLICT DO UPDATE SET value = value + n
//     RETURNING value: the row lock orders concurrent adds.
//   - Consume is the same upsert with a WHERE on the conflicting row
//     (value + n <= limit): PostgreSQL evaluates it on the newest row
//     version under the row lock, so concurrent consumers from any
//     instance never together pass the limit.
//   - FirstCrossing is INSERT … ON CONFLICT DO NOTHING: one caller wins.
//
// Days older than Keep are pruned by Prune (the usage reconciler calls it).
type Counters struct {
	db *DB
}

var (
	_ tally.Counters   = (*Counters)(nil)
	_ tally.BatchAdder = (*Counters)(nil)
	_ interface {
		Epoch(context.Context) (string, error)
	} = (*Counters)(nil)
)

// CountersKeep is how long a day's counters are kept after the day starts,
// as MemoryCounters and the Redis counters keep them.
const CountersKeep = 3 * 24 * time.Hour

// Counters returns the usage counters kept in this database.
func (db *DB) Counters() *Counters { return &Counters{db: db} }

// dayOf is the UTC date of day, as PostgreSQL's date input.
func dayOf(day time.Time) string { return tally.DayStart(day).Format(time.DateOnly) }

// Add implements tally.Counters.
func (c *Counters) Add(ctx context.Context, tenantID int64, day time.Time, metric string, n int64) (int64, error) {
	var v int64
	err := c.db.pool.QueryRow(ctx, `INSERT INTO usage_counters (tenant_id, day, metric, value) VALUES ($1, $2::date, $3, $4)
		ON CONFLICT (tenant_id, day, metric) DO UPDATE SET value = usage_counters.value + EXCLUDED.value
		RETURNING value`, tenantID, dayOf(day), metric, n).Scan(&v)
	return v, wrap(err, "counter")
}

// AddBatch implements tally.BatchAdder with one statement over arrays.
// Deltas are merged per counter and sorted first, so that concurrent
// batches take row locks in one order (no deadlock) and one statement
// never updates a row twice.
func (c *Counters) AddBatch(ctx context.Context, deltas []tally.CounterDelta) error {
	deltas = tally.MergeDeltas(deltas)
	if len(deltas) == 0 {
		return nil
	}
	tenants := make([]int64, len(deltas))
	days := make([]string, len(deltas))
	metrics := make([]string, len(deltas))
	ns := make([]int64, len(deltas))
	for i, d := range deltas {
		tenants[i], days[i], metrics[i], ns[i] = d.TenantID, dayOf(d.Day), d.Metric, d.N
	}
	_, err := c.db.pool.Exec(ctx, `INSERT INTO usage_counters (tenant_id, day, metric, value)
		SELECT t, d::date, m, n FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) WITH ORDINALITY AS u(t, d, m, n, i) ORDER BY i
		ON CONFLICT (tenant_id, day, metric) DO UPDATE SET value = usage_counters.value + EXCLUDED.value`,
		tenants, days, metrics, ns)
	return wrap(err, "counter")
}

// Get implements tally.Counters.
func (c *Counters) Get(ctx context.Context, tenantID int64, day time.Time, metric string) (int64, error) {
	var v int64
	err := c.db.pool.QueryRow(ctx, `SELECT value FROM usage_counters WHERE tenant_id = $1 AND day = $2::date AND metric = $3`,
		tenantID, dayOf(day), metric).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, wrap(err, "counter")
}

// All implements tally.Counters with one query, a snapshot of the day.
func (c *Counters) All(ctx context.Context, tenantID int64, day time.Time) (map[string]int64, error) {
	rows, err := c.db.pool.Query(ctx, `SELECT metric, value FROM usage_counters WHERE tenant_id = $1 AND day = $2::date`,
		tenantID, dayOf(day))
	if err != nil {
		return nil, wrap(err, "counter")
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var m string
		var v int64
		if err := rows.Scan(&m, &v); err != nil {
			return nil, wrap(err, "counter")
		}
		out[m] = v
	}
	return out, wrap(rows.Err(), "counter")
}

// Consume implements tally.Counters with one conditional upsert: a fresh
// counter is inserted with n when n fits the limit; an existing one is
// updated only when value + n stays at most limit. A refused call writes
// nothing and reads the value it was refused at.
func (c *Counters) Consume(ctx context.Context, tenantID int64, day time.Time, metric string, n, limit int64) (bool, int64, error) {
	var v int64
	err := c.db.pool.QueryRow(ctx, `INSERT INTO usage_counters (tenant_id, day, metric, value)
		SELECT $1::bigint, $2::date, $3::text, $4::bigint WHERE $4::bigint <= $5::bigint
		ON CONFLICT (tenant_id, day, metric) DO UPDATE SET value = usage_counters.value + EXCLUDED.value
			WHERE usage_counters.value + EXCLUDED.value <= $5::bigint
		RETURNING value`, tenantID, dayOf(day), metric, n, limit).Scan(&v)
	if err == nil {
		return true, v, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, 0, wrap(err, "counter")
	}
	v, err = c.Get(ctx, tenantID, day, metric)
	return false, v, err
}

// Reset implements tally.Counters in one transaction: readers see the day
// before or after, never half replaced.
func (c *Counters) Reset(ctx context.Context, tenantID int64, day time.Time, values map[string]int64) error {
	metrics := make([]string, 0, len(values))
	ns := make([]int64, 0, len(values))
	for m, v := range values {
		metrics, ns = append(metrics, m), append(ns, v)
	}
	return c.db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM usage_counters WHERE tenant_id = $1 AND day = $2::date`, tenantID, dayOf(day)); err != nil {
			return wrap(err, "counter")
		}
		if len(metrics) == 0 {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO usage_counters (tenant_id, day, metric, value)
			SELECT $1, $2::date, m, n FROM unnest($3::text[], $4::bigint[]) AS u(m, n)
			ON CONFLICT (tenant_id, day, metric) DO UPDATE SET value = EXCLUDED.value`, tenantID, dayOf(day), metrics, ns)
		return wrap(err, "counter")
	})
}

// FirstCrossing implements tally.Counters.
func (c *Counters) FirstCrossing(ctx context.Context, tenantID int64, day time.Time, metric string, threshold int) (bool, error) {
	tag, err := c.db.pool.Exec(ctx, `INSERT INTO usage_crossings (tenant_id, day, metric, threshold) VALUES ($1, $2::date, $3, $4)
		ON CONFLICT DO NOTHING`, tenantID, dayOf(day), metric, threshold)
	if err != nil {
		return false, wrap(err, "counter")
	}
	return tag.RowsAffected() == 1, nil
}

// Prune deletes the counters and marks of days that started more than
// CountersKeep before now.
func (c *Counters) Prune(ctx context.Context, now time.Time) error {
	before := dayOf(now.Add(-CountersKeep))
	if _, err := c.db.pool.Exec(ctx, `DELETE FROM usage_counters WHERE day < $1::date`, before); err != nil {
		return wrap(err, "counter")
	}
	_, err := c.db.pool.Exec(ctx, `DELETE FROM usage_crossings WHERE day < $1::date`, before)
	return wrap(err, "counter")
}

// Epoch returns the identity of this database's counters: a random value
// made by the migration that created them. A cache of the counters records
// it to detect that it holds another database's values.
func (c *Counters) Epoch(ctx context.Context) (string, error) {
	var e string
	err := c.db.pool.QueryRow(ctx, `SELECT epoch FROM counters_epoch`).Scan(&e)
	if err != nil {
		return "", fmt.Errorf("postgres: read the counters epoch: %w", wrap(err, "counter"))
	}
	return e, nil
}
