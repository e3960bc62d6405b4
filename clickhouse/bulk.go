package clickhouse

import (
	"context"
	"io"
	"strconv"
)

// InsertSelect stores the rows that the SELECT sel computes inside
// ClickHouse (its columns those of cols, a list of the events table's),
// each on its tenant's server: on one server all of them, on a sharded
// log each shard the rows of its tenants (shardOf), every shard at once,
// without the statement timeout. It is for bulk loads that make their
// rows in SQL, such as a bench's prefill, which then records their keys
// on PostgreSQL itself; the rows are taken as they are (no dedup, ids as
// given).
func (s *Store) InsertSelect(ctx context.Context, cols, sel string) error {
	n := len(s.servers())
	return s.eachShard(func(i int, c *client) error {
		sql := "INSERT INTO events (" + cols + ") SELECT " + cols + " FROM (" + sel + ")"
		if n > 1 {
			sql += " WHERE toUInt64(tenant_id) % " + strconv.Itoa(n) + " = " + strconv.Itoa(i)
		}
		rc, err := c.request(ctx, c.database, sql, nil, true)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		return classify(err)
	})
}
