-- Distinct users, fast: the KPI report's active users are distinct counts
-- over buckets and periods, which rollup counts cannot add up to.

-- The (tenant_id, ts) index becomes (tenant_id, ts, id, user_id): the same
-- order (ts, then id, as the listing and export cursors need), and it now
-- covers user_id, so reading the users of a time range (BucketUsers, and
-- RollupDay's user sets) is a range scan of the index alone, with no table
-- lookups. Every plan that used the old index uses this one the same way.
DROP INDEX events_tenant_ts;
CREATE INDEX events_tenant_ts_user ON events (tenant_id, ts, id, user_id);

-- The distinct non-empty user ids of each rolled-up hour, for
-- RollupHourUsers: each id as its length in bytes (a uvarint) and then its
-- bytes; empty for an hour without users. Written by RollupDay for every
-- hour of the day; dropped with the events they came from (DeleteUserEvents,
-- PurgeEvents). Hours rolled up before this table existed have no set and
-- are read from the raw log until their day is rolled up again.
CREATE TABLE rollup_hour_users (
	tenant_id INTEGER NOT NULL,
	hour      INTEGER NOT NULL,
	users     BLOB    NOT NULL,
	PRIMARY KEY (tenant_id, hour)
) WITHOUT ROWID;
