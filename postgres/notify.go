package postgres

import (
	"context"
	"strconv"
	"strings"
)

// liveChannel is the NOTIFY channel of the live tail. Its payloads are
// "schema:tenant_id", so deployments in separate schemas of one database
// hear only their own.
const liveChannel = "tally_events"

// Publish implements live.Broker: one NOTIFY per tenant, in one statement.
// Only tenant ids travel; listeners read the rows from the log.
func (db *DB) Publish(ctx context.Context, tenants []int64) error {
	if len(tenants) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, `SELECT pg_notify('`+liveChannel+`', current_schema() || ':' || t) FROM unnest($1::bigint[]) AS t`, tenants)
	if err != nil {
		return wrap(err, "notification")
	}
	return nil
}

// Listen implements live.Broker on a connection of its own (taken out of
// the pool, closed when Listen returns).
func (db *DB) Listen(ctx context.Context, wake func(tenantID int64)) error {
	pc, err := db.pool.Acquire(ctx)
	if err != nil {
		return wrap(err, "notification")
	}
	conn := pc.Hijack()
	defer conn.Close(context.Background())
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return wrap(err, "notification")
	}
	if _, err := conn.Exec(ctx, `LISTEN `+liveChannel); err != nil {
		return wrap(err, "notification")
	}
	prefix := schema + ":"
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return wrap(err, "notification")
		}
		rest, ok := strings.CutPrefix(n.Payload, prefix)
		if !ok {
			continue
		}
		if id, err := strconv.ParseInt(rest, 10, 64); err == nil {
			wake(id)
		}
	}
}
