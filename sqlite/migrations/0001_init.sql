-- tally schema for SQLite. Times are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE users (
	id            INTEGER PRIMARY KEY,
	email         TEXT    NOT NULL UNIQUE,
	name          TEXT    NOT NULL DEFAULT '',
	password_hash TEXT    NOT NULL,
	created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
	id         INTEGER PRIMARY KEY,
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	token_hash BLOB    NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	revoked_at INTEGER
);

CREATE TABLE tenants (
	id             INTEGER PRIMARY KEY,
	slug           TEXT    NOT NULL UNIQUE,
	name           TEXT    NOT NULL,
	allow_signup   INTEGER NOT NULL DEFAULT 0,
	timezone       TEXT    NOT NULL DEFAULT 'UTC',
	retention_days INTEGER NOT NULL DEFAULT 400,
	webhook_url    TEXT    NOT NULL DEFAULT '',
	webhook_secret TEXT    NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL
);

CREATE TABLE members (
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	role      TEXT    NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
	added_at  INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX members_user ON members (user_id);

CREATE TABLE api_keys (
	id           INTEGER PRIMARY KEY,
	tenant_id    INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name         TEXT    NOT NULL,
	prefix       TEXT    NOT NULL UNIQUE,
	hash         BLOB    NOT NULL,
	scopes       TEXT    NOT NULL,
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,
	last_used_at INTEGER,
	revoked_at   INTEGER
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE audit_log (
	id        INTEGER PRIMARY KEY,
	tenant_id INTEGER NOT NULL,
	at        INTEGER NOT NULL,
	actor     TEXT    NOT NULL,
	action    TEXT    NOT NULL,
	target    TEXT    NOT NULL DEFAULT '',
	meta      TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_tenant_at ON audit_log (tenant_id, at, id);

-- The event log: the single source of truth. id is the rowid, so the
-- (tenant_id, ts) index also orders by id within a timestamp.
CREATE TABLE events (
	id          INTEGER PRIMARY KEY,
	tenant_id   INTEGER NOT NULL,
	event_id    TEXT    NOT NULL,
	event       TEXT    NOT NULL,
	user_id     TEXT    NOT NULL DEFAULT '',
	source      TEXT    NOT NULL,
	ts          INTEGER NOT NULL,
	received_at INTEGER NOT NULL,
	value       REAL    NOT NULL,
	props       TEXT    NOT NULL DEFAULT '{}',
	metric      TEXT    NOT NULL DEFAULT '',
	UNIQUE (tenant_id, event_id)
);
CREATE INDEX events_tenant_ts ON events (tenant_id, ts);
CREATE INDEX events_tenant_event_ts ON events (tenant_id, event, ts);
CREATE INDEX events_tenant_user_ts ON events (tenant_id, user_id, ts);
CREATE INDEX events_ts ON events (ts); -- readiness: events today across tenants

CREATE TABLE quotas (
	tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	metric    TEXT    NOT NULL,
	lim       INTEGER NOT NULL,
	enforced  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, metric)
);

-- Rollups. hour/day are the bucket start in microseconds.
CREATE TABLE rollup_event_hour (
	tenant_id   INTEGER NOT NULL,
	hour        INTEGER NOT NULL,
	event       TEXT    NOT NULL,
	metric      TEXT    NOT NULL,
	count       INTEGER NOT NULL,
	sum_value   REAL    NOT NULL,
	sum_rounded INTEGER NOT NULL,
	users       INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, hour, event, metric)
) WITHOUT ROWID;

CREATE TABLE rollup_metric_hour (
	tenant_id INTEGER NOT NULL,
	hour      INTEGER NOT NULL,
	metric    TEXT    NOT NULL,
	value     INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, hour, metric)
) WITHOUT ROWID;

CREATE TABLE rollup_event_day (
	tenant_id   INTEGER NOT NULL,
	day         INTEGER NOT NULL,
	event       TEXT    NOT NULL,
	metric      TEXT    NOT NULL,
	count       INTEGER NOT NULL,
	sum_value   REAL    NOT NULL,
	sum_rounded INTEGER NOT NULL,
	users       INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, day, event, metric)
) WITHOUT ROWID;

CREATE TABLE rollup_metric_day (
	tenant_id INTEGER NOT NULL,
	day       INTEGER NOT NULL,
	metric    TEXT    NOT NULL,
	value     INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, day, metric)
) WITHOUT ROWID;

CREATE TABLE rollup_day_users (
	tenant_id INTEGER NOT NULL,
	day       INTEGER NOT NULL,
	users     INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;

-- Hours whose rollup is stale: marked by inserts and deletions.
CREATE TABLE rollup_dirty (
	tenant_id INTEGER NOT NULL,
	hour      INTEGER NOT NULL,
	marked_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, hour)
) WITHOUT ROWID;

CREATE TABLE rollup_runs (
	id          INTEGER PRIMARY KEY,
	kind        TEXT    NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL,
	days        INTEGER NOT NULL,
	rows        INTEGER NOT NULL,
	err         TEXT    NOT NULL DEFAULT ''
);
