-- Meter rollups: per-meter hourly partial aggregates by group, written by
-- the rollup job with the other rollups of a day (tally.MeterPartial), so
-- a meter query reads them for hours fully rolled up and the raw log for
-- the rest. version is the meter's updated_at in Unix microseconds: rows
-- of an older definition are never read. A row of meter_rollup_days says
-- the meter's hours of that UTC day were rolled up under that version (the
-- hours without a row had no matching event); the dirty marks still
-- decide which of those hours are exact.
CREATE TABLE meter_rollup_hour (
	tenant_id BIGINT           NOT NULL,
	slug      TEXT             NOT NULL,
	version   BIGINT           NOT NULL,
	hour      timestamptz      NOT NULL,
	grp       TEXT             NOT NULL, -- JSON array of the meter's group_by values
	cnt       BIGINT           NOT NULL, -- matching events
	n         BIGINT           NOT NULL, -- of them with a numeric value
	sum       DOUBLE PRECISION NOT NULL,
	min       DOUBLE PRECISION NOT NULL,
	max       DOUBLE PRECISION NOT NULL,
	last_v    DOUBLE PRECISION NOT NULL,
	last_ts   timestamptz      NOT NULL,
	last_id   BIGINT           NOT NULL,
	uniq      BYTEA,                     -- unique_count: the distinct values (internal/userset encoding)
	PRIMARY KEY (tenant_id, slug, hour, grp)
);

CREATE TABLE meter_rollup_days (
	tenant_id BIGINT      NOT NULL,
	slug      TEXT        NOT NULL,
	day       timestamptz NOT NULL,
	version   BIGINT      NOT NULL,
	PRIMARY KEY (tenant_id, slug, day)
);
