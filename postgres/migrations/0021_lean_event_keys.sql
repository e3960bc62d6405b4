-- Leaner dedup keys for an event log kept outside PostgreSQL (0018): the
-- key of (tenant, event_id) is the first 16 bytes of SHA-256 over the
-- tenant id (8 bytes, big-endian) and the event id's bytes, one uuid
-- column and the only index besides the BRIN on ts (postgres.EventKey);
-- a batch lists its keys by that hash. Existing keys and batches are
-- converted here, so a deployment keeps its dedup window.
CREATE TABLE event_keys_lean (
    key       uuid        NOT NULL PRIMARY KEY,
    tenant_id bigint      NOT NULL,
    id        bigint      NOT NULL DEFAULT nextval('event_keys_id_seq'),
    ts        timestamptz NOT NULL,
    batch_id  bigint      NOT NULL
);
INSERT INTO event_keys_lean (key, tenant_id, id, ts, batch_id)
    SELECT encode(substring(sha256(int8send(tenant_id) || convert_to(event_id, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid,
        tenant_id, id, ts, batch_id
    FROM event_keys ORDER BY 1
    ON CONFLICT (key) DO NOTHING;
DROP TABLE event_keys;
ALTER TABLE event_keys_lean RENAME TO event_keys;
ALTER INDEX event_keys_lean_pkey RENAME TO event_keys_pkey;
CREATE INDEX event_keys_ts ON event_keys USING brin (ts);

ALTER TABLE event_key_batches ADD COLUMN keys uuid[];
UPDATE event_key_batches b SET keys = ARRAY(
    SELECT encode(substring(sha256(int8send(t) || convert_to(e, 'UTF8')) FROM 1 FOR 16), 'hex')::uuid
    FROM unnest(b.tenant_ids, b.event_ids) AS u (t, e));
ALTER TABLE event_key_batches ALTER COLUMN keys SET NOT NULL,
    DROP COLUMN tenant_ids, DROP COLUMN event_ids;
