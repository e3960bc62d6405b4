// Package clickhouse keeps tally's event log on ClickHouse, for
// deployments past what one PostgreSQL holds: EVENTS_URL=clickhouse://
// HOST:HTTP_PORT/DATABASE next to a PostgreSQL DATABASE_URL, or sharded
// by tenant over a cluster's servers with ?cluster=NAME&shards=… (see
// ParseURL, and docs/SCALING.md for the layout). Store is a
// tally.Store whose event log, and every read of it, is on ClickHouse
// while everything else (identity, keys, quotas, counters, audit, jobs,
// rollups, and the dedup keys of the events) stays on PostgreSQL.
//
// It speaks ClickHouse's HTTP interface with RowBinary rows, and keeps its
// SQL to what ClickHouse 18.16 (Debian bookworm's package) runs and current
// releases still accept: integer timestamps (microseconds since the epoch)
// instead of DateTime64, no codecs, no query parameters.
//
// Dedup by (tenant, event_id) is exact, across instances, through the key
// table on PostgreSQL (postgres.ReserveEventKeys): a batch's keys are
// reserved under a lease, the new events are sent to ClickHouse in one
// INSERT, and the keys confirmed. See docs/SCALING.md for what that costs.
package clickhouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/tallyhq/tally"
	"github.com/tallyhq/tally/postgres"
)

// Store is the tally.Store of the ClickHouse tier: the PostgreSQL store
// for everything but the event log, which is on ClickHouse.
type Store struct {
	*postgres.DB
	ch     *client   // the server of EVENTS_URL: the one server, or the shard that reads across shards
	shards []*client // a cluster's shards, in its order; nil on one server
	all    string    // the table of every tenant's events: events, or the Distributed events_all
	now    func() time.Time
	lease  time.Duration

	sweepMu   sync.Mutex
	lastSweep time.Time
}

// Options configure Open.
type Options struct {
	// StatementTimeout bounds one ClickHouse statement (not an export's
	// stream); zero means postgres.DefaultStatementTimeout.
	StatementTimeout time.Duration
	// Now tells the time (time.Now when nil).
	Now func() time.Time
}

// ParseURL splits EVENTS_URL, clickhouse://HOST:HTTP_PORT/DATABASE, into
// the server's HTTP address and the database, and checks the parameters
// of a sharded log. The database defaults to "tally"; https:// is taken
// when the URL says clickhouses://.
//
// A sharded log adds ?cluster=NAME&shards=HOST:HTTP_PORT,…: NAME is the
// cluster in the servers' remote_servers, shards the HTTP address of each
// of its shards in that order (Open checks it), and HOST:HTTP_PORT one of
// them, which answers the reads across shards.
func ParseURL(raw string) (base, database string, err error) {
	base, database, _, err = parseURL(raw)
	return base, database, err
}

func parseURL(raw string) (base, database string, t topology, err error) {
	fail := func(err error) (string, string, topology, error) { return "", "", topology{}, err }
	u, err := url.Parse(raw)
	if err != nil {
		return fail(fmt.Errorf("EVENTS_URL: %w", err))
	}
	scheme := "http"
	switch u.Scheme {
	case "clickhouse":
	case "clickhouses":
		scheme = "https"
	default:
		return fail(fmt.Errorf("EVENTS_URL: want clickhouse://HOST:HTTP_PORT/DATABASE, got scheme %q", u.Scheme))
	}
	if u.Host == "" {
		return fail(fmt.Errorf("EVENTS_URL: no host in %q", raw))
	}
	database = strings.Trim(u.Path, "/")
	if database == "" {
		database = "tally"
	}
	if !databaseName.MatchString(database) {
		return fail(fmt.Errorf("EVENTS_URL: database %q: want letters, digits and _", database))
	}
	base = scheme + "://" + u.Host + "/"
	if t, err = parseTopology(u, scheme, base); err != nil {
		return fail(err)
	}
	return base, database, t, nil
}

var databaseName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Open opens the event log at eventsURL (creating its database and tables
// when missing, on every shard of a sharded log) over the PostgreSQL store
// db, which it then owns: Close closes both.
func Open(ctx context.Context, eventsURL string, db *postgres.DB, opt Options) (*Store, error) {
	base, database, topo, err := parseURL(eventsURL)
	if err != nil {
		return nil, err
	}
	timeout := opt.StatementTimeout
	if timeout <= 0 {
		timeout = postgres.DefaultStatementTimeout
	}
	s := &Store{DB: db, ch: newClient(base, database, timeout), all: "events", now: opt.Now,
		lease: 2*timeout + 5*time.Second}
	if s.now == nil {
		s.now = time.Now
	}
	for _, b := range topo.shards {
		c := s.ch
		if b != base {
			c = newClient(b, database, timeout)
		}
		s.shards = append(s.shards, c)
	}
	if err := s.eachServer(func(c *client) error { return c.exec(ctx, "", "CREATE DATABASE IF NOT EXISTS "+database) }); err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if s.shards != nil {
		if err := s.openCluster(ctx, topo.cluster); err != nil {
			return nil, err
		}
		s.all = distributedTable
	} else if err := s.ch.exec(ctx, database, eventsTable); err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if err := s.upgradeEvents(ctx); err != nil {
		return nil, fmt.Errorf("clickhouse: %w", err)
	}
	if err := db.AdvanceEventKeyIDs(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// eventsTable is the event log. Timestamps are microseconds since the
// Unix epoch in Int64 (DateTime64 came after 18.16); partitions are
// months, so retention past every tenant's window drops whole
// partitions; the ordering key starts with the tenant, then the time,
// which is how every read selects. A plain MergeTree: the key table makes
// every row unique (a writer's insert is bounded by max_execution_time,
// well inside its lease, so no retaken key is written twice), and a
// second copy would show in every count rather than hide until a merge.
//
// Two columns hold less than their text (18.16 has no codecs): an event
// id that is a lowercase UUID is kept in event_uuid's 16 bytes (event_id
// then empty; eventIDCol reads either), and the receive time as
// received_after, microseconds after ts (receivedCol). received_at holds
// the receive time of rows written before received_after existed
// (upgradeEvents), 0 since.
const eventsTable = `CREATE TABLE IF NOT EXISTS events (
	tenant_id Int64,
	ts Int64,
	id Int64,
	event_uuid FixedString(16),
	event_id String,
	event String,
	user_id String,
	source String,
	received_at Int64,
	received_after Int64 DEFAULT received_at - ts,
	value Float64,
	props String,
	metric String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(intDiv(ts, 1000000)))
ORDER BY (tenant_id, ts, id)`

// upgradeEvents adds to an events table made before event_uuid and
// received_after (tally before 0021's release) those columns: an ALTER of
// the table's metadata, instant, after which the old rows read as before
// (event_uuid all zeros, received_after computed from received_at until
// a merge writes it). On a sharded log it alters every shard's table and
// the Distributed table over them.
func (s *Store) upgradeEvents(ctx context.Context) error {
	tables := []string{"events"}
	if s.all != "events" {
		tables = append(tables, s.all)
	}
	return s.eachServer(func(c *client) error {
		for _, table := range tables {
			var n uint64
			err := c.query(ctx, "SELECT count() FROM system.columns WHERE database = "+quote(c.database)+
				" AND table = "+quote(table)+" AND name = 'event_uuid'", false, func(r *rowReader) error {
				n = r.uint64()
				return nil
			})
			if err != nil {
				return err
			}
			if n > 0 {
				continue
			}
			if err := c.exec(ctx, c.database, "ALTER TABLE "+table+` ADD COLUMN event_uuid FixedString(16) AFTER id,
				ADD COLUMN received_after Int64 DEFAULT received_at - ts AFTER received_at`); err != nil {
				return err
			}
		}
		return nil
	})
}

// Postgres is the store of everything but the event log.
func (s *Store) Postgres() *postgres.DB { return s.DB }

// Ping checks that PostgreSQL and ClickHouse (every shard) answer.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.DB.Ping(ctx); err != nil {
		return err
	}
	return s.eachServer(func(c *client) error { return c.exec(ctx, c.database, "SELECT 1") })
}

// DropDatabase drops the event log's database (on every shard): for
// tests.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.eachServer(func(c *client) error { return c.exec(ctx, "", "DROP DATABASE IF EXISTS "+c.database) })
}

// RandomDatabase returns a fresh database name with the given prefix.
func RandomDatabase(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

var _ tally.Store = (*Store)(nil)

// ProbeWrite checks that PostgreSQL takes writes and ClickHouse (every
// shard) answers (readiness).
func (s *Store) ProbeWrite(ctx context.Context) error {
	if err := s.DB.ProbeWrite(ctx); err != nil {
		return err
	}
	return s.eachServer(func(c *client) error { return c.exec(ctx, c.database, "SELECT 1") })
}

// DiskUsage is what the event log's active parts hold (on every shard
// together): rows and bytes on disk (compressed, with the primary index
// and marks), from system.parts.
func (s *Store) DiskUsage(ctx context.Context) (rows, bytes int64, err error) {
	for _, c := range s.servers() {
		err = c.query(ctx, "SELECT toInt64(sum(rows)), toInt64(sum(bytes_on_disk)) FROM system.parts WHERE active AND database = "+
			quote(c.database)+" AND table = 'events'", false, func(r *rowReader) error {
			rows += r.int64()
			bytes += r.int64()
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return rows, bytes, nil
}

// ColumnUsage is what each column of the event log takes on disk,
// compressed, from system.columns, in the table's column order.
func (s *Store) ColumnUsage(ctx context.Context) (names []string, bytes []int64, err error) {
	err = s.ch.query(ctx, "SELECT name, toInt64(data_compressed_bytes) FROM system.columns WHERE database = "+
		quote(s.ch.database)+" AND table = 'events'", false, func(r *rowReader) error {
		names, bytes = append(names, r.string()), append(bytes, r.int64())
		return nil
	})
	return names, bytes, err
}

// Optimize merges the event log's parts as far as ClickHouse will
// (OPTIMIZE … FINAL, on every shard): what the disk converges to once
// merges catch up.
func (s *Store) Optimize(ctx context.Context) error {
	return s.eachServer(func(c *client) error {
		long := *c
		long.timeout = 10 * time.Minute
		return long.exec(ctx, c.database, "OPTIMIZE TABLE events FINAL")
	})
}
