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

-- tally's own events (auto-tracking) were recorded with the host app's
-- names and the account as user id, so they counted in its KPIs, usage
-- and active users. They get names of their own under "tally.", the
-- account moves to props.account, and their hours are marked for the next
-- rollup, which rebuilds the aggregates and user sets without them.
INSERT INTO rollup_dirty (tenant_id, hour, marked_at)
	SELECT DISTINCT tenant_id, ts - (ts % 3600000000), CAST(strftime('%s', 'now') AS INTEGER) * 1000000
	FROM events
	WHERE source = 'tally' AND event IN ('api.request', 'auth.user.login', 'auth.user.register', 'tenant.created')
	ON CONFLICT (tenant_id, hour) DO NOTHING;
UPDATE events SET
	event = CASE event
		WHEN 'api.request' THEN 'tally.api.request'
		WHEN 'auth.user.login' THEN 'tally.auth.login'
		WHEN 'auth.user.register' THEN 'tally.auth.register'
		ELSE 'tally.tenant.created' END,
	props = CASE WHEN user_id <> '' AND json_type(props) = 'object' THEN json_set(props, '$.account', user_id) ELSE props END,
	user_id = ''
WHERE source = 'tally' AND event IN ('api.request', 'auth.user.login', 'auth.user.register', 'tenant.created');
