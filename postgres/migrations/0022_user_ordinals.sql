-- Exact distinct users from per-tenant user ordinals and bitmaps (the same
-- change as SQLite's 0022).
--
-- user_ordinals gives each end user id of a tenant a small integer, dense
-- per tenant from 0, handed out by the rollup (RollupTx.UserOrdinals) the
-- first time it meets the id; user_ordinal_next is the tenant's next one,
-- so an ordinal is never handed out twice, even after its user is deleted.
-- Rollups of one tenant apply their writes one at a time under the
-- tenant's exclusive lock, after checking that no other rollup applied
-- since their snapshot (see InRollupTx), so the counter row is read and
-- moved by one rollup at a time; the unique constraint on the ordinal is a
-- guard. DeleteUserEvents deletes the user's row with its events (no user
-- id is kept past them); the retention purge keeps the rows of users whose
-- events are all gone: they hold no event data and keep an ordinal's
-- meaning.
CREATE TABLE user_ordinals (
	tenant_id BIGINT  NOT NULL,
	user_id   BYTEA   NOT NULL,
	ordinal   INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, user_id),
	UNIQUE (tenant_id, ordinal)
);

CREATE TABLE user_ordinal_next (
	tenant_id BIGINT  PRIMARY KEY,
	next      INTEGER NOT NULL
);

-- The user sets of hours (rollup_hour_users) and now of UTC days
-- (rollup_day_users, which held a count nobody read) become roaring
-- bitmaps (github.com/RoaringBitmap/roaring, portable format) of ordinals.
-- The sets of the old format (user ids) cannot be read as bitmaps, so they
-- are dropped and their hours marked dirty: until the next rollup rewrites
-- them those hours are read from the raw log, exactly as an hour without a
-- set always was.
INSERT INTO rollup_dirty (tenant_id, hour, marked_at)
	SELECT tenant_id, hour, now() FROM rollup_hour_users
	ON CONFLICT (tenant_id, hour) DO NOTHING;
DELETE FROM rollup_hour_users;

DROP TABLE rollup_day_users;
CREATE TABLE rollup_day_users (
	tenant_id BIGINT      NOT NULL,
	day       timestamptz NOT NULL,
	users     BYTEA       NOT NULL,
	PRIMARY KEY (tenant_id, day)
);
