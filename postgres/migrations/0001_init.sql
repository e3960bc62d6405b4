-- tally schema for PostgreSQL. Times are timestamptz (microsecond precision,
-- like every backend stores); ids are BIGINT identities.
--
-- Text columns that are compared by range or sorted (event names, metric
-- names) use the "C" collation, so that order is byte order whatever the
-- database's default collation: the event name prefix filter depends on it.
-- End-user ids are BYTEA: they are opaque bytes to the store (the
-- conformance suite stores ids holding NUL, which text cannot hold).
-- Props and audit meta are TEXT holding the JSON as ingestion left it:
-- ingestion keeps the text of numbers, and JSONB would both rewrite them
-- and reject some that ingestion accepts (1e1000000), failing a whole
-- group-commit batch.

CREATE TABLE users (
	id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	email         TEXT        NOT NULL UNIQUE,
	name          TEXT        NOT NULL DEFAULT '',
	password_hash TEXT        NOT NULL,
	created_at    timestamptz NOT NULL
);

CREATE TABLE sessions (
	id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	user_id    BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	token_hash BYTEA       NOT NULL UNIQUE,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL,
	revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE tenants (
	id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	slug           TEXT        NOT NULL UNIQUE,
	name           TEXT        NOT NULL,
	allow_signup   BOOLEAN     NOT NULL DEFAULT false,
	timezone       TEXT        NOT NULL DEFAULT 'UTC',
	retention_days INTEGER     NOT NULL DEFAULT 400,
	webhook_url    TEXT        NOT NULL DEFAULT '',
	webhook_secret TEXT        NOT NULL DEFAULT '',
	created_at     timestamptz NOT NULL
);

CREATE TABLE members (
	tenant_id BIGINT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	user_id   BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	role      TEXT        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
	added_at  timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE api_keys (
	id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id    BIGINT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	name         TEXT        NOT NULL,
	prefix       TEXT        NOT NULL UNIQUE,
	hash         BYTEA       NOT NULL,
	scopes       TEXT[]      NOT NULL DEFAULT '{}',
	created_at   timestamptz NOT NULL,
	expires_at   timestamptz,
	last_used_at timestamptz,
	revoked_at   timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE audit_log (
	id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id BIGINT      NOT NULL,
	at        timestamptz NOT NULL,
	actor     TEXT        NOT NULL,
	action    TEXT        NOT NULL,
	target    TEXT        NOT NULL DEFAULT '',
	meta      TEXT        NOT NULL DEFAULT '{}'
);
-- Keyset pages newest first: (at, id) < (cursor) scanned backwards.
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at, id);
CREATE INDEX audit_log_tenant_action_at ON audit_log (tenant_id, action, at, id);

-- The event log: the single source of truth.
CREATE TABLE events (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id   BIGINT           NOT NULL,
	event_id    TEXT             NOT NULL,
	event       TEXT COLLATE "C" NOT NULL,
	user_id     BYTEA            NOT NULL DEFAULT '',
	source      TEXT             NOT NULL,
	ts          timestamptz      NOT NULL,
	received_at timestamptz      NOT NULL,
	value       DOUBLE PRECISION NOT NULL,
	props       TEXT             NOT NULL DEFAULT '{}',
	metric      TEXT COLLATE "C" NOT NULL DEFAULT '', -- the metric a usage.increment names
	UNIQUE (tenant_id, event_id)
);
-- Listing and export keysets ((ts, id) in either direction), counts and
-- aggregates by time; user_id is included so that the distinct users of a
-- time range (BucketUsers, RollupDay's user sets) are an index-only scan.
CREATE INDEX events_tenant_ts ON events (tenant_id, ts, id) INCLUDE (user_id);
-- The event name filter: exact names and prefix ranges, in (ts, id) order.
CREATE INDEX events_tenant_event_ts ON events (tenant_id, event, ts, id);
-- The user filter and privacy deletions. Partial: anonymous events (often
-- most of them) are never looked up by user.
CREATE INDEX events_tenant_user_ts ON events (tenant_id, user_id, ts, id) WHERE user_id <> '';
-- Readiness counts today's events across tenants. The log is appended in
-- roughly time order, so a BRIN index is tiny and enough.
CREATE INDEX events_ts ON events USING brin (ts);

CREATE TABLE quotas (
	tenant_id BIGINT  NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	metric    TEXT    NOT NULL,
	lim       BIGINT  NOT NULL,
	enforced  BOOLEAN NOT NULL DEFAULT false,
	PRIMARY KEY (tenant_id, metric)
);

-- Rollups: hour and day are bucket starts (UTC).
CREATE TABLE rollup_event_hour (
	tenant_id   BIGINT           NOT NULL,
	hour        timestamptz      NOT NULL,
	event       TEXT COLLATE "C" NOT NULL,
	metric      TEXT COLLATE "C" NOT NULL,
	count       BIGINT           NOT NULL,
	sum_value   DOUBLE PRECISION NOT NULL,
	sum_rounded BIGINT           NOT NULL,
	users       BIGINT           NOT NULL,
	PRIMARY KEY (tenant_id, hour, event, metric)
);

CREATE TABLE rollup_metric_hour (
	tenant_id BIGINT           NOT NULL,
	hour      timestamptz      NOT NULL,
	metric    TEXT COLLATE "C" NOT NULL,
	value     BIGINT           NOT NULL,
	PRIMARY KEY (tenant_id, hour, metric)
);

CREATE TABLE rollup_event_day (
	tenant_id   BIGINT           NOT NULL,
	day         timestamptz      NOT NULL,
	event       TEXT COLLATE "C" NOT NULL,
	metric      TEXT COLLATE "C" NOT NULL,
	count       BIGINT           NOT NULL,
	sum_value   DOUBLE PRECISION NOT NULL,
	sum_rounded BIGINT           NOT NULL,
	users       BIGINT           NOT NULL,
	PRIMARY KEY (tenant_id, day, event, metric)
);

CREATE TABLE rollup_metric_day (
	tenant_id BIGINT           NOT NULL,
	day       timestamptz      NOT NULL,
	metric    TEXT COLLATE "C" NOT NULL,
	value     BIGINT           NOT NULL,
	PRIMARY KEY (tenant_id, day, metric)
);

CREATE TABLE rollup_day_users (
	tenant_id BIGINT      NOT NULL,
	day       timestamptz NOT NULL,
	users     BIGINT      NOT NULL,
	PRIMARY KEY (tenant_id, day)
);

-- The distinct non-empty user ids of each rolled-up hour, for
-- RollupHourUsers: each id as its length in bytes (a uvarint) and then its
-- bytes, the encoding of the SQLite backend; empty for an hour without
-- users. Written by RollupDay for every hour of the day; dropped with the
-- events they came from (DeleteUserEvents, PurgeEvents).
CREATE TABLE rollup_hour_users (
	tenant_id BIGINT      NOT NULL,
	hour      timestamptz NOT NULL,
	users     BYTEA       NOT NULL,
	PRIMARY KEY (tenant_id, hour)
);

-- Hours whose rollup is stale: marked by inserts and deletions.
CREATE TABLE rollup_dirty (
	tenant_id BIGINT      NOT NULL,
	hour      timestamptz NOT NULL,
	marked_at timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, hour)
);

CREATE TABLE rollup_runs (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	kind        TEXT        NOT NULL,
	started_at  timestamptz NOT NULL,
	finished_at timestamptz NOT NULL,
	days        INTEGER     NOT NULL,
	rows        INTEGER     NOT NULL,
	err         TEXT        NOT NULL DEFAULT ''
);
-- LastRollupRun: the newest successful run, without reading the failures.
CREATE INDEX rollup_runs_ok ON rollup_runs (finished_at) WHERE err = '';
