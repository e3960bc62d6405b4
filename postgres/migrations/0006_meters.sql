-- Meters: what each tenant measures (tally.MeterDef), computed from the
-- event log at query time. group_by and filter are JSON.
CREATE TABLE meters (
	tenant_id      BIGINT      NOT NULL,
	slug           TEXT        NOT NULL,
	event          TEXT        NOT NULL,
	aggregation    TEXT        NOT NULL,
	value_property TEXT        NOT NULL DEFAULT '',
	group_by       JSONB       NOT NULL DEFAULT '[]',
	filter         JSONB       NOT NULL DEFAULT '{}',
	description    TEXT        NOT NULL DEFAULT '',
	created_at     timestamptz NOT NULL,
	updated_at     timestamptz NOT NULL,
	PRIMARY KEY (tenant_id, slug)
);
