-- Invitations to tenants: nobody becomes a member without accepting one
-- (or signing up where a tenant allows it). Only the SHA-256 of the token
-- is stored. An invitation is pending while accepted_at and revoked_at are
-- NULL and expires_at is ahead.
CREATE TABLE invitations (
	id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	tenant_id   BIGINT      NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
	email       TEXT        NOT NULL,
	role        TEXT        NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
	token_hash  BYTEA       NOT NULL UNIQUE,
	invited_by  TEXT        NOT NULL,
	created_at  timestamptz NOT NULL,
	expires_at  timestamptz NOT NULL,
	accepted_at timestamptz,
	accepted_by BIGINT REFERENCES users (id) ON DELETE SET NULL,
	revoked_at  timestamptz
);
CREATE INDEX invitations_tenant ON invitations (tenant_id, id);
