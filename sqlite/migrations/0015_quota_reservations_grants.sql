-- Quota reservations: allowance held in a quota's counter until it is
-- committed (a usage.increment event), released or expires. day is the
-- UTC day (micros) whose counter holds it; resets_at the end of the quota
-- period it was taken in. idem_key is NULL without an idempotency key.
CREATE TABLE quota_reservations (
	id         TEXT    PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	metric     TEXT    NOT NULL,
	amount     INTEGER NOT NULL,
	state      TEXT    NOT NULL DEFAULT 'open',
	committed  INTEGER NOT NULL DEFAULT 0,
	idem_key   TEXT,
	day        INTEGER NOT NULL,
	resets_at  INTEGER NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX quota_reservations_key ON quota_reservations (tenant_id, metric, idem_key);
CREATE INDEX quota_reservations_held ON quota_reservations (tenant_id, day) WHERE state IN ('open', 'committing');
CREATE INDEX quota_reservations_due ON quota_reservations (expires_at) WHERE state = 'open';

-- Quota grants: one-off extra allowance of one quota period (the period
-- that started at period_start, micros), until expires_at (NULL: the end
-- of the period).
CREATE TABLE quota_grants (
	id           INTEGER PRIMARY KEY,
	tenant_id    INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	metric       TEXT    NOT NULL,
	amount       INTEGER NOT NULL,
	reason       TEXT    NOT NULL,
	period_start INTEGER NOT NULL,
	expires_at   INTEGER,
	created_by   TEXT    NOT NULL,
	created_at   INTEGER NOT NULL
);
CREATE INDEX quota_grants_tenant ON quota_grants (tenant_id, metric, id);
