-- Absence alerts: "no {event} for {silence}" per tenant. state and seq
-- are the alert's state machine: a transition is a conditional UPDATE on
-- seq, so of several instances evaluating the alert one wins it.
CREATE TABLE absence_alerts (
	id              INTEGER PRIMARY KEY,
	tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	event           TEXT    NOT NULL,
	silence_seconds INTEGER NOT NULL,
	description     TEXT    NOT NULL,
	state           TEXT    NOT NULL CHECK (state IN ('ok', 'silent')),
	state_since     INTEGER NOT NULL,
	last_seen_at    INTEGER,
	seq             INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	updated_at      INTEGER NOT NULL,
	UNIQUE (tenant_id, event)
);
