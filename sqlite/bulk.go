package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// DeferEventIndexes drops the events table's secondary indexes (every
// index but the unique (tenant_id, event_id) key that dedups) and returns
// a function that creates them again, as they were. Loading a large log
// without them and building each once at the end is several times faster
// than keeping seven B-trees current row by row; tally bench -dataset does
// it. Nothing may read the log between the two calls: queries would scan
// the table. Restore runs outside the statement timeout, since building an
// index over millions of rows takes longer than any one write.
func (db *DB) DeferEventIndexes(ctx context.Context) (restore func(context.Context) error, err error) {
	rows, err := db.w.QueryContext(ctx, `SELECT name, sql FROM sqlite_master
		WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'
		ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list event indexes: %w", err)
	}
	var names, defs []string
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			rows.Close()
			return nil, fmt.Errorf("sqlite: list event indexes: %w", err)
		}
		names, defs = append(names, name), append(defs, def)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("sqlite: list event indexes: %w", err)
	}
	if err := execAll(ctx, db.w, names, func(n string) string { return `DROP INDEX "` + n + `"` }); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		return execAll(ctx, db.w, defs, func(d string) string { return d })
	}, nil
}

// execAll runs the statement stmt makes of each item, in one transaction.
func execAll(ctx context.Context, w *sql.DB, items []string, stmt func(string) string) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	defer tx.Rollback()
	for _, it := range items {
		if _, err := tx.ExecContext(ctx, stmt(it)); err != nil {
			return fmt.Errorf("sqlite: %s: %w", stmt(it), err)
		}
	}
	return tx.Commit()
}
