-- Meter rollups: per-meter hourly partial aggregates by group, written by
-- the rollup job with the other rollups of a day (tally.MeterPartial), so
-- a meter query reads them for hours fully rolled up and the raw log for
-- the rest. version is the meter's updated_at: rows of an older
-- definition are never read. A row of meter_rollup_days says the meter's
-- hours of that UTC day were rolled up under that version (the hours
-- without a row had no matching event); the dirty marks still decide
-- which of those hours are exact.
CREATE TABLE meter_rollup_hour (
	tenant_id INTEGER NOT NULL,
	slug      TEXT    NOT NULL,
	version   INTEGER NOT NULL,
	hour      INTEGER NOT NULL,
	grp       TEXT    NOT NULL, -- JSON array of the meter's group_by values
	cnt       INTEGER NOT NULL, -- matching events
	n         INTEGER NOT NULL, -- of them with a numeric value
	sum       REAL    NOT NULL,
	min       REAL    NOT NULL,
	max       REAL    NOT NULL,
	last_v    REAL    NOT NULL,
	last_ts   INTEGER NOT NULL,
	last_id   INTEGER NOT NULL,
	uniq      BLOB,             -- unique_count: the distinct values (internal/userset encoding)
	PRIMARY KEY (tenant_id, slug, hour, grp)
) WITHOUT ROWID;

CREATE TABLE meter_rollup_days (
	tenant_id INTEGER NOT NULL,
	slug      TEXT    NOT NULL,
	day       INTEGER NOT NULL,
	version   INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, slug, day)
) WITHOUT ROWID;
