-- Quota reservations: allowance held in a quota's counter until it is
-- committed (a usage.increment event), released or expires. day is the
-- UTC day whose counter holds it; resets_at the end of the quota period it
-- was taken in. idem_key is NULL without an idempotency key.
CREATE TABLE quota_reservations (
	id         TEXT        PRIMARY KEY,
	tenant_id  BIGINT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	metric     TEXT        NOT NULL,
	amount     BIGINT      NOT NULL,
	state      TEXT        NOT NULL DEFAULT 'open',
	committed  BIGINT      NOT NULL DEFAULT 0,
	idem_key   TEXT,
	day        date        NOT NULL,
	resets_at  timestamptz NOT NULL,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX quota_reservations_key ON quota_reservations (tenant_id, metric, idem_key);
CREATE INDEX quota_reservations_held ON quota_reservations (tenant_id, day) WHERE state IN ('open', 'committing');
CREATE INDEX quota_reservations_due ON quota_reservations (expires_at) WHERE state = 'open';

-- Quota grants: one-off extra allowance of one quota period (the period
-- that started at period_start), until expires_at (NULL: the end of the
-- period).
CREATE TABLE quota_grants (
	id           BIGSERIAL   PRIMARY KEY,
	tenant_id    BIGINT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	metric       TEXT        NOT NULL,
	amount       BIGINT      NOT NULL,
	reason       TEXT        NOT NULL,
	period_start timestamptz NOT NULL,
	expires_at   timestamptz,
	created_by   TEXT        NOT NULL,
	created_at   timestamptz NOT NULL
);
CREATE INDEX quota_grants_tenant ON quota_grants (tenant_id, metric, id);
