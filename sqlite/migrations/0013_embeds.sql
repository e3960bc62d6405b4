-- Embeds: each tenant's signing secrets for embed tokens and its embed
-- settings. The secret itself is stored (an HMAC key is needed to verify
-- a signature); the API shows it once, at creation. A secret is active
-- while revoked_at is NULL.
CREATE TABLE embed_secrets (
	id         INTEGER PRIMARY KEY,
	tenant_id  INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
	name       TEXT    NOT NULL,
	secret     TEXT    NOT NULL,
	created_by TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	revoked_at INTEGER
);
CREATE INDEX embed_secrets_tenant ON embed_secrets (tenant_id, id);
-- origins: the allowed frame ancestors, space-separated; theme: JSON.
CREATE TABLE embed_settings (
	tenant_id INTEGER PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
	origins   TEXT NOT NULL,
	theme     TEXT NOT NULL
);
