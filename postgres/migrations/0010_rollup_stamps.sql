-- Change stamps (see sqlite/rollup.go, where a rollup reads a tenant's log
-- from a snapshot and writes its results in a short transaction): a dirty
-- mark's stamp and a tenant's last unmarked change. PostgreSQL rolls up
-- under the tenant's lock (postgres/rollup.go) and leaves them at zero for
-- now; the columns keep both schemas one.
ALTER TABLE rollup_dirty ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE rollup_stamps (
	tenant_id BIGINT PRIMARY KEY,
	seq       BIGINT NOT NULL
);
