-- The dedup keys of an event log kept outside PostgreSQL (EVENTS_URL,
-- ClickHouse): one row per stored (tenant, event_id) with the id tally gave
-- the event. lease_until is set while the event is being written to the
-- log (a key whose writer died is taken over once it passes) and NULL once
-- the log has it. Unused when PostgreSQL holds the log itself.
CREATE SEQUENCE event_keys_id_seq;
CREATE TABLE event_keys (
    tenant_id   bigint      NOT NULL,
    event_id    text        NOT NULL,
    id          bigint      NOT NULL DEFAULT nextval('event_keys_id_seq'),
    ts          timestamptz NOT NULL,
    lease_until timestamptz,
    PRIMARY KEY (tenant_id, event_id)
);
CREATE INDEX event_keys_tenant_ts ON event_keys (tenant_id, ts);
CREATE INDEX event_keys_leased ON event_keys (lease_until) WHERE lease_until IS NOT NULL;
