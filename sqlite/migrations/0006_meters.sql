-- Meters: what each tenant measures (tally.MeterDef), computed from the
-- event log at query time. group_by and filter are JSON text. Times are
-- Unix microseconds, as everywhere in this schema.
CREATE TABLE meters (
	tenant_id      INTEGER NOT NULL,
	slug           TEXT    NOT NULL,
	event          TEXT    NOT NULL,
	aggregation    TEXT    NOT NULL,
	value_property TEXT    NOT NULL DEFAULT '',
	group_by       TEXT    NOT NULL DEFAULT '[]',
	filter         TEXT    NOT NULL DEFAULT '{}',
	description    TEXT    NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, slug)
);
