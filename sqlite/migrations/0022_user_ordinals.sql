-- Exact distinct users from per-tenant user ordinals and bitmaps.
--
-- user_ordinals gives each end user id of a tenant a small integer, dense
-- per tenant from 0, handed out by the rollup (RollupTx.UserOrdinals) the
-- first time it meets the id; user_ordinal_next is the tenant's next one,
-- so an ordinal is never handed out twice, even after its user is deleted.
-- DeleteUserEvents deletes the user's row with its events (no user id is
-- kept past them); the retention purge keeps the rows of users whose events
-- are all gone: they hold no event data and keep an ordinal's meaning.
CREATE TABLE user_ordinals (
	tenant_id INTEGER NOT NULL,
	user_id   TEXT    NOT NULL,
	ordinal   INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, user_id),
	UNIQUE (tenant_id, ordinal)
) WITHOUT ROWID;

CREATE TABLE user_ordinal_next (
	tenant_id INTEGER PRIMARY KEY,
	next      INTEGER NOT NULL
);

-- The user sets of hours (rollup_hour_users) and now of UTC days
-- (rollup_day_users, which held a count nobody read) become roaring
-- bitmaps (github.com/RoaringBitmap/roaring, portable format) of ordinals.
-- The sets of the old format (user ids) cannot be read as bitmaps and
-- naming ordinals for them here would need Go, so they are dropped and
-- their hours marked dirty: until the next rollup rewrites them those
-- hours are read from the raw log, exactly as an hour without a set always
-- was. The marks take stamp 0, so no rollup snapshot takes them for
-- changes it did not see.
INSERT INTO rollup_dirty (tenant_id, hour, marked_at, seq)
	SELECT tenant_id, hour, CAST(strftime('%s', 'now') AS INTEGER) * 1000000, 0 FROM rollup_hour_users WHERE true
	ON CONFLICT (tenant_id, hour) DO NOTHING;
DELETE FROM rollup_hour_users;

DROP TABLE rollup_day_users;
CREATE TABLE rollup_day_users (
	tenant_id INTEGER NOT NULL,
	day       INTEGER NOT NULL,
	users     BLOB    NOT NULL,
	PRIMARY KEY (tenant_id, day)
) WITHOUT ROWID;
