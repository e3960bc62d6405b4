-- Usage counters in the database (postgres.Counters): today's usage per
-- tenant, UTC day and metric, shared by every instance on this database, so
-- that several instances are exact without Redis. Like every tally.Counters
-- they are a cache of the event log, rebuilt from it; no foreign key to
-- tenants, as counters never decide what exists.
CREATE TABLE usage_counters (
	tenant_id BIGINT NOT NULL,
	day       DATE   NOT NULL,
	metric    TEXT   COLLATE "C" NOT NULL,
	value     BIGINT NOT NULL,
	PRIMARY KEY (tenant_id, day, metric)
);
CREATE INDEX usage_counters_day ON usage_counters (day);

-- FirstCrossing marks: one row per tenant, day, metric and threshold.
CREATE TABLE usage_crossings (
	tenant_id BIGINT  NOT NULL,
	day       DATE    NOT NULL,
	metric    TEXT    COLLATE "C" NOT NULL,
	threshold INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, day, metric, threshold)
);
CREATE INDEX usage_crossings_day ON usage_crossings (day);

-- The identity of this database's counters: a random value made once, that
-- a cache of these counters (Redis) records beside its keys, so that a Redis
-- holding another database's counters (or none) is detected and rebuilt.
CREATE TABLE counters_epoch (
	one   BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
	epoch TEXT    NOT NULL
);
INSERT INTO counters_epoch (epoch) VALUES (md5(random()::text || clock_timestamp()::text));
