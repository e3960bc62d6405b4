package postgres

import (
	"context"
	"time"
)

// TryLead implements rollup.Leader with a session-level advisory lock held
// on one pooled connection: several tally instances sharing the database
// elect one to run the scheduled jobs. The lock is per schema, so separate
// deployments in one database do not elect among each other. It never
// waits for the lock; a crashed leader's lock goes with its connection.
func (db *DB) TryLead(ctx context.Context) (release func(), ok bool, err error) {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, lockClassLeader).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, lockClassLeader); err != nil {
			// The session may still hold the lock: drop the connection.
			conn.Conn().Close(uctx)
		}
		conn.Release()
	}, true, nil
}
