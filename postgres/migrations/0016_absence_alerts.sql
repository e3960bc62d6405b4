-- Absence alerts: "no {event} for {silence}" per tenant. state and seq
-- are the alert's state machine: a transition is a conditional UPDATE on
-- seq, so of several instances evaluating the alert one wins it.
CREATE TABLE absence_alerts (
	id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id       BIGINT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	event           TEXT        COLLATE "C" NOT NULL,
	silence_seconds BIGINT      NOT NULL,
	description     TEXT        NOT NULL,
	state           TEXT        NOT NULL CHECK (state IN ('ok', 'silent')),
	state_since     timestamptz NOT NULL,
	last_seen_at    timestamptz,
	seq             BIGINT      NOT NULL,
	created_at      timestamptz NOT NULL,
	updated_at      timestamptz NOT NULL,
	UNIQUE (tenant_id, event)
);
