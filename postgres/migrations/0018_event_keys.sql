-- The dedup keys of an event log kept outside PostgreSQL (EVENTS_URL,
-- ClickHouse): one row per stored (tenant, event_id) with the id tally gave
-- the event. A key is pending while the batch that reserved it
-- (event_key_batches, which lists the batch's keys) exists: the writer
-- deletes that one row once the log has the batch, and a key whose
-- batch's lease ran out is settled against the log (its writer died).
-- Unused when PostgreSQL holds the log itself.
CREATE SEQUENCE event_keys_id_seq;
CREATE SEQUENCE event_key_batches_id_seq;
CREATE TABLE event_keys (
    tenant_id bigint      NOT NULL,
    event_id  text        NOT NULL,
    id        bigint      NOT NULL DEFAULT nextval('event_keys_id_seq'),
    ts        timestamptz NOT NULL,
    batch_id  bigint      NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);
-- Keys are written about in time order: a BRIN index bounds the purge of
-- a tenant's old keys for almost nothing per insert.
CREATE INDEX event_keys_ts ON event_keys USING brin (ts);
CREATE TABLE event_key_batches (
    id          bigint      PRIMARY KEY,
    lease_until timestamptz NOT NULL,
    tenant_ids  bigint[]    NOT NULL,
    event_ids   text[]      NOT NULL
);
CREATE INDEX event_key_batches_lease ON event_key_batches (lease_until);
