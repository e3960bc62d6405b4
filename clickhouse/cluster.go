package clickhouse

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/tallyhq/tally"
)

// A sharded event log (EVENTS_URL with ?cluster=NAME&shards=…) keeps each
// tenant's events on one shard: the shard at index tenant_id mod N of the
// list, which is where the Distributed table events_all, sharded by
// tenant_id over shards of weight 1, puts them too. Every shard has the
// table events (the same DDL as on one server) and events_all over the
// cluster; tally creates both on each shard itself (ON CLUSTER DDL needs
// ZooKeeper).
//
//   - Inserts go straight to the events table of each tenant's shard, one
//     INSERT per shard a batch touches, in parallel; the batch is answered
//     after every one of them is, so an acknowledged event is on its
//     shard's disk as on one server (nothing waits in a Distributed
//     table's queue).
//   - Reads of one tenant go to its shard's events table, with the SQL of
//     one server: one server answers, however many shards there are.
//   - Reads across tenants (CountAllEvents, the lookups of the dedup
//     sweep) and the counts of a privacy deletion or purge read events_all.
//   - Mutations (privacy deletion, purge) run on every shard that holds
//     matching rows, and are waited for on each.
//
// The shard list is fixed once events are stored: a tenant's events stay
// where tenant_id mod N put them (see docs/SCALING.md for adding shards).

// distributedTable reads every shard's events; created on each shard.
const distributedTable = "events_all"

// shardsParam and clusterParam are EVENTS_URL's query parameters of a
// sharded event log.
const (
	clusterParam = "cluster"
	shardsParam  = "shards"
)

// topology is where a parsed EVENTS_URL keeps the log: one server (shards
// nil), or a cluster's shards, in the order of its remote_servers, each a
// base URL like the server's.
type topology struct {
	cluster string
	shards  []string
}

// parseTopology reads the cluster parameters of EVENTS_URL u, whose
// server's base URL is base: both or neither; the server must be one of
// the shards (it has the Distributed table).
func parseTopology(u *url.URL, scheme, base string) (topology, error) {
	q := u.Query()
	name, list := q.Get(clusterParam), q.Get(shardsParam)
	if name == "" && list == "" {
		return topology{}, nil
	}
	const want = "want ?cluster=NAME&shards=HOST:HTTP_PORT,HOST:HTTP_PORT,… (every shard, in the cluster's order)"
	if name == "" || list == "" {
		return topology{}, fmt.Errorf("EVENTS_URL: %s", want)
	}
	if !databaseName.MatchString(name) {
		return topology{}, fmt.Errorf("EVENTS_URL: cluster %q: want letters, digits and _", name)
	}
	t := topology{cluster: name}
	self := false
	for _, h := range strings.Split(list, ",") {
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			return topology{}, fmt.Errorf("EVENTS_URL: shard %q: %s", h, want)
		}
		b := scheme + "://" + h + "/"
		for _, seen := range t.shards {
			if seen == b {
				return topology{}, fmt.Errorf("EVENTS_URL: shard %s listed twice", h)
			}
		}
		self = self || b == base
		t.shards = append(t.shards, b)
	}
	if !self {
		return topology{}, fmt.Errorf("EVENTS_URL: the server %s is not one of the shards", u.Host)
	}
	return t, nil
}

// shardOf is the index of tenantID's shard among n: what Distributed's
// sharding key tenant_id gives over n shards of weight 1 (tenant ids are
// positive).
func shardOf(tenantID int64, n int) int {
	return int(uint64(tenantID) % uint64(n))
}

// on is the server that holds tenantID's events.
func (s *Store) on(tenantID int64) *client {
	if s.shards == nil {
		return s.ch
	}
	return s.shards[shardOf(tenantID, len(s.shards))]
}

// servers are the servers of the log: the shards, or the one server.
func (s *Store) servers() []*client {
	if s.shards == nil {
		return []*client{s.ch}
	}
	return s.shards
}

// eachServer runs fn on every server of the log at once and joins their
// errors.
func (s *Store) eachServer(fn func(c *client) error) error {
	return s.eachShard(func(_ int, c *client) error { return fn(c) })
}

// eachShard runs fn on every server of the log at once, with its place in
// the shard list (0 on one server), and joins their errors.
func (s *Store) eachShard(fn func(i int, c *client) error) error {
	servers := s.servers()
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, c := range servers {
		wg.Go(func() { errs[i] = fn(i, c) })
	}
	wg.Wait()
	return firstError(errs)
}

// firstError is the first of errs that is not nil: the caller answers
// with one server's error, as on one server.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// openCluster creates the database, the events table and the Distributed
// table on every shard, and checks that the shards are the cluster's, in
// its order: shard i's server must see itself as the cluster's shard i+1,
// and every shard must weigh 1 (the arithmetic of shardOf).
func (s *Store) openCluster(ctx context.Context, cluster string) error {
	db := s.ch.database
	dist := "CREATE TABLE IF NOT EXISTS " + distributedTable + " AS events ENGINE = Distributed(" +
		cluster + ", " + db + ", events, tenant_id)"
	return s.eachServer(func(c *client) error {
		i := 0
		for s.shards[i] != c {
			i++
		}
		var shard, shards, minWeight, maxWeight uint64
		err := c.query(ctx, "SELECT toUInt64(anyIf(shard_num, is_local = 1)), toUInt64(uniqExact(shard_num)), "+
			"toUInt64(min(shard_weight)), toUInt64(max(shard_weight)) FROM system.clusters WHERE cluster = "+quote(cluster),
			false, func(r *rowReader) error {
				shard, shards, minWeight, maxWeight = r.uint64(), r.uint64(), r.uint64(), r.uint64()
				return nil
			})
		switch {
		case err != nil:
			return fmt.Errorf("clickhouse: shard %s: %w", c.base, err)
		case shards == 0:
			return fmt.Errorf("EVENTS_URL: shard %s knows no cluster %s (remote_servers)", c.base, cluster)
		case int(shards) != len(s.shards):
			return fmt.Errorf("EVENTS_URL: cluster %s has %d shards, shards= lists %d", cluster, shards, len(s.shards))
		case minWeight != 1 || maxWeight != 1:
			return fmt.Errorf("EVENTS_URL: cluster %s: every shard must have weight 1 (tally computes a tenant's shard as tenant_id mod shards)", cluster)
		case shard != uint64(i+1):
			return fmt.Errorf("EVENTS_URL: %s is shard %d of cluster %s, listed as shard %d (list the shards in remote_servers order)",
				c.base, shard, cluster, i+1)
		}
		for _, sql := range []string{eventsTable, dist} {
			if err := c.exec(ctx, db, sql); err != nil {
				return fmt.Errorf("clickhouse: shard %s: %w", c.base, err)
			}
		}
		return nil
	})
}

// shardRows are the RowBinary rows of a batch, one buffer per server.
type shardRows struct {
	s *Store
	w []rowWriter
}

func (s *Store) newRows() *shardRows { return &shardRows{s: s, w: make([]rowWriter, len(s.servers()))} }

// add encodes e for its tenant's server.
func (r *shardRows) add(e *tally.Event) {
	i := 0
	if r.s.shards != nil {
		i = shardOf(e.TenantID, len(r.s.shards))
	}
	appendEvent(&r.w[i], e)
}

// insertRows sends the rows to their servers, one INSERT each, at once;
// it returns when every one has answered. On an error some servers may
// have stored their rows: the keys stay leased and a retry finds them
// (InsertEvents).
func (s *Store) insertRows(ctx context.Context, rows *shardRows) error {
	return s.eachShard(func(i int, c *client) error {
		if len(rows.w[i].b) == 0 {
			return nil
		}
		return c.insert(ctx, "INSERT INTO events ("+insertCols+")", rows.w[i].b)
	})
}

// mutate runs an ALTER TABLE events DELETE WHERE cond on every server
// that holds matching rows (on one server, the caller counted them) and
// waits until each applied it.
func (s *Store) mutate(ctx context.Context, cond string) error {
	return s.eachServer(func(c *client) error {
		if s.shards != nil {
			var n uint64
			err := c.query(ctx, "SELECT count() FROM events WHERE "+cond, false, func(r *rowReader) error {
				n = r.uint64()
				return nil
			})
			if err != nil || n == 0 {
				return err
			}
		}
		return c.mutate(ctx, cond)
	})
}
