-- Publishable keys (browser ingestion): a key's kind, the page origins it
-- is accepted from (space-separated; empty: any) and its rate limit per
-- minute (0: the default).
ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'secret';
ALTER TABLE api_keys ADD COLUMN origins TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN rate_per_minute INTEGER NOT NULL DEFAULT 0;
