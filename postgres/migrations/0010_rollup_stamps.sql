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
