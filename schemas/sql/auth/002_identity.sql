-- Identity (schemas/auth.md): tenants, users and their memberships, sessions
-- (refresh-token families) and their rotated tokens, invites, password resets,
-- API keys, the audit log and the revocation feed the edges poll.

-- RFC 3339 UTC text of a timestamp, as every API answer shows it.
CREATE FUNCTION rfc3339 (ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT to_char (ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- Raises error code (an auth.md error code) with message as its detail unless ok:
-- aborts the transaction it is in. The service reads both back from the error.
CREATE FUNCTION require (ok boolean, code text, message text DEFAULT '') RETURNS boolean
LANGUAGE plpgsql AS
$$ BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'CH001', MESSAGE = code, DETAIL = message;
    END IF;
    RETURN true;
END $$;

-- Microseconds since the epoch of a timestamp, exactly (list ordering).
CREATE FUNCTION ts_us (ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (extract (epoch FROM ts) * 1000000)::bigint $$;

-- Opaque list cursor of a row: its creation time and id, hex-encoded; a page
-- after a cursor holds the rows with (ts_us (created_at), id) below both parts.
CREATE FUNCTION cursor_of (ts timestamptz, id uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT encode (convert_to (auth.ts_us (ts)::text || '/' || id::text, 'UTF8'), 'hex') $$;

CREATE FUNCTION cursor_ts (cursor text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 1)::bigint $$;

CREATE FUNCTION cursor_id (cursor text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 2)::uuid $$;

CREATE TABLE tenants (
    id uuid PRIMARY KEY,
    name text NOT NULL CHECK (length (name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);
CREATE INDEX tenants_list ON tenants (created_at DESC, id DESC);

CREATE TABLE users (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    email_key text NOT NULL UNIQUE,           -- lower (email)
    name text NOT NULL,
    password_hash text NOT NULL,              -- argon2id encoded string
    platform_admin boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);

CREATE TABLE memberships (
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('tenant_admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, created_at);
CREATE INDEX memberships_list ON memberships (tenant_id, created_at DESC, user_id DESC);

-- A session is one refresh-token family: a login and every refresh after it.
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    revoked_at timestamptz,
    revoked_reason text
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
    token_hash text PRIMARY KEY,              -- SHA-256 hex of the token
    session_id uuid NOT NULL REFERENCES sessions ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    expires_at timestamptz NOT NULL,
    used_at timestamptz                       -- rotated: presenting it again is reuse
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

CREATE TABLE invites (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    email text NOT NULL,
    email_key text NOT NULL,
    role text NOT NULL CHECK (role IN ('tenant_admin', 'member')),
    token_hash text NOT NULL UNIQUE,
    invited_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by uuid
);
CREATE INDEX invites_list ON invites (tenant_id, created_at DESC, id DESC);

CREATE TABLE password_resets (
    token_hash text PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

CREATE TABLE api_keys (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants ON DELETE CASCADE,
    created_by uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    name text NOT NULL CHECK (length (name) BETWEEN 1 AND 100),
    scopes text[] NOT NULL,
    prefix text NOT NULL,
    key_hash text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    expires_at timestamptz,
    last_used_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_keys_list ON api_keys (tenant_id, created_at DESC, id DESC)
    WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id uuid PRIMARY KEY,
    tenant_id uuid REFERENCES tenants ON DELETE CASCADE,  -- NULL: no tenant known
    action text NOT NULL,
    actor_id uuid,
    target_id uuid,
    ip text NOT NULL DEFAULT '',
    details jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);
CREATE INDEX audit_log_list ON audit_log (tenant_id, created_at DESC, id DESC);

-- What every edge must refuse now (schemas/auth.md, "Revocation").
CREATE TABLE revocations (
    seq bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind IN ('session', 'user', 'member', 'api_key')),
    ref text NOT NULL,
    tenant_id text NOT NULL DEFAULT '',
    at timestamptz NOT NULL DEFAULT clock_timestamp (),
    until timestamptz NOT NULL
);
CREATE INDEX revocations_until ON revocations (until);
