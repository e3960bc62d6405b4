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

-- tally's own events (auto-tracking) were recorded with the host app's
-- names and the account as user id, so they counted in its KPIs, usage
-- and active users. They get names of their own under "tally.", the
-- account moves to props.account, and their hours are marked for the next
-- rollup, which rebuilds the aggregates and user sets without them. The
-- rewrite scans the log once: no statement timeout for it.
SET LOCAL statement_timeout = 0;
INSERT INTO rollup_dirty (tenant_id, hour, marked_at)
	SELECT DISTINCT tenant_id, date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', now()
	FROM events
	WHERE source = 'tally' AND event IN ('api.request', 'auth.user.login', 'auth.user.register', 'tenant.created')
	ON CONFLICT (tenant_id, hour) DO NOTHING;
UPDATE events SET
	event = CASE event
		WHEN 'api.request' THEN 'tally.api.request'
		WHEN 'auth.user.login' THEN 'tally.auth.login'
		WHEN 'auth.user.register' THEN 'tally.auth.register'
		ELSE 'tally.tenant.created' END,
	props = CASE WHEN user_id <> ''::bytea AND jsonb_typeof(props::jsonb) = 'object'
		THEN (props::jsonb || jsonb_build_object('account', convert_from(user_id, 'UTF8')))::text ELSE props END,
	user_id = ''::bytea
WHERE source = 'tally' AND event IN ('api.request', 'auth.user.login', 'auth.user.register', 'tenant.created');
