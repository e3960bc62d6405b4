-- The server's own secret keys, one row per purpose, made on first use and
-- shared by every instance on this database (the key of the per-tenant
-- event ids shown in answers, tally.EventIDs).
CREATE TABLE server_keys (
	name       TEXT        PRIMARY KEY,
	key        BYTEA       NOT NULL,
	created_at timestamptz NOT NULL
);
