-- The webhook outbox: one row per quota alert delivery, written when the
-- alert fires and sent by the dispatcher (usage.Dispatcher), so that a
-- delivery survives restarts and, among several instances, is made once.
-- Times are Unix microseconds, as everywhere in this schema.
CREATE TABLE webhook_deliveries (
	id               INTEGER PRIMARY KEY,
	tenant_id        INTEGER NOT NULL,
	webhook_id       TEXT    NOT NULL UNIQUE,
	event_type       TEXT    NOT NULL,
	metric           TEXT    NOT NULL,
	threshold        INTEGER NOT NULL,
	period_start     INTEGER NOT NULL,
	payload          BLOB    NOT NULL,
	status           TEXT    NOT NULL DEFAULT 'pending',
	attempts         INTEGER NOT NULL DEFAULT 0,
	last_status_code INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT    NOT NULL DEFAULT '',
	created_at       INTEGER NOT NULL,
	next_attempt_at  INTEGER NOT NULL,
	delivered_at     INTEGER,
	-- One delivery per crossing, whichever instance saw it first.
	UNIQUE (tenant_id, event_type, metric, threshold, period_start)
);
-- The dispatcher's claim: pending rows by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- The delivery log: a tenant's rows newest first.
CREATE INDEX webhook_deliveries_tenant_created ON webhook_deliveries (tenant_id, created_at, id);
