-- Change stamps, so that a rollup can read a tenant's log from a snapshot
-- and write its results in a short transaction afterwards (sqlite/rollup.go):
-- every change to the log takes the next stamp of the counter (tenant_id 0);
-- a dirty mark keeps the stamp of the last change to its hour, and a
-- tenant's row the stamp of its last change that leaves no mark (a
-- retention purge, a rollup written).
ALTER TABLE rollup_dirty ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE rollup_stamps (
	tenant_id INTEGER PRIMARY KEY,
	seq       INTEGER NOT NULL
);
