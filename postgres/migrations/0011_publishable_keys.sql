-- Publishable keys (browser ingestion): a key's kind, the page origins it
-- is accepted from (space-separated; empty: any) and its rate limit per
-- minute (0: the default), in all and per client address (0: none).
ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'secret';
ALTER TABLE api_keys ADD COLUMN origins TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rate_per_minute INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN address_rate_per_minute INTEGER NOT NULL DEFAULT 0;

-- Identity links: an anonymous id a client used before it knew the user,
-- and that user's id (Segment's identify and alias, PostHog's $identify).
-- The first link of an anonymous id wins. Ids are BYTEA like events.user_id.
CREATE TABLE identity_links (
	tenant_id    BIGINT      NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	anonymous_id BYTEA       NOT NULL,
	user_id      BYTEA       NOT NULL,
	linked_at    TIMESTAMPTZ NOT NULL,
	PRIMARY KEY (tenant_id, anonymous_id)
);
CREATE INDEX identity_links_user ON identity_links (tenant_id, user_id);
