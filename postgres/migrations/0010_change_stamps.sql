-- Change stamps, so that a rollup can read a tenant's log from a snapshot
-- and write its results in a short transaction afterwards
-- (postgres/rollup.go, InRollupTx): every change to the log draws a new
-- stamp from the sequence; a dirty mark keeps the stamp of the last change
-- to its hour, and a tenant's row the stamp of its last change that leaves
-- no mark (a retention purge, a rollup written).
CREATE SEQUENCE rollup_stamp_seq;

ALTER TABLE rollup_dirty ADD COLUMN seq BIGINT NOT NULL DEFAULT nextval('rollup_stamp_seq');

CREATE TABLE rollup_stamps (
	tenant_id BIGINT PRIMARY KEY,
	seq       BIGINT NOT NULL
);

-- The version of what key authentication reads (keys and tenants): any
-- change to a key but its last use, and any change to a tenant, moves it,
-- so that every instance sees at its next request that its cached keys
-- are stale (tally.KeyStore.AuthVersion).
CREATE TABLE auth_version (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  BIGINT  NOT NULL
);
INSERT INTO auth_version (id, n) VALUES (1, 0);

CREATE FUNCTION auth_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE auth_version SET n = n + 1;
	RETURN NULL;
END $$;

CREATE TRIGGER api_keys_auth_update AFTER UPDATE OF tenant_id, name, prefix, hash, scopes, expires_at, revoked_at ON api_keys
	FOR EACH STATEMENT EXECUTE FUNCTION auth_version_bump();
CREATE TRIGGER api_keys_auth_delete AFTER DELETE ON api_keys
	FOR EACH STATEMENT EXECUTE FUNCTION auth_version_bump();
CREATE TRIGGER tenants_auth_update AFTER UPDATE ON tenants
	FOR EACH STATEMENT EXECUTE FUNCTION auth_version_bump();
CREATE TRIGGER tenants_auth_delete AFTER DELETE ON tenants
	FOR EACH STATEMENT EXECUTE FUNCTION auth_version_bump();
