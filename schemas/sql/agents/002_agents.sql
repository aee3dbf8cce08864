-- Agents (schemas/chat.md): agent configurations, their avatars, and each
-- tenant's provider settings (API keys sealed with libsodium by the service).

-- RFC 3339 UTC text of a timestamp, as every API answer shows it.
CREATE FUNCTION rfc3339 (ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT to_char (ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- Raises error code with message as its detail unless ok (service_call reads both).
CREATE FUNCTION require (ok boolean, code text, message text DEFAULT '') RETURNS boolean
LANGUAGE plpgsql AS
$$ BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'CH001', MESSAGE = code, DETAIL = message;
    END IF;
    RETURN true;
END $$;

-- List cursors: creation time in microseconds and id, hex-encoded.
CREATE FUNCTION ts_us (ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (extract (epoch FROM ts) * 1000000)::bigint $$;

CREATE FUNCTION cursor_of (ts timestamptz, id uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT encode (convert_to (agents.ts_us (ts)::text || '/' || id::text, 'UTF8'), 'hex') $$;

CREATE FUNCTION cursor_ts (cursor text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 1)::bigint $$;

CREATE FUNCTION cursor_id (cursor text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 2)::uuid $$;

CREATE TABLE agents (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    name text NOT NULL CHECK (length (name) BETWEEN 1 AND 100),
    description text NOT NULL DEFAULT '',
    system_prompt text NOT NULL,
    provider text NOT NULL,
    model text NOT NULL DEFAULT '',
    temperature double precision CHECK (temperature BETWEEN 0 AND 2),
    max_tokens integer CHECK (max_tokens BETWEEN 1 AND 200000),
    thinking_mode text NOT NULL DEFAULT 'balanced'
        CHECK (thinking_mode IN ('quick', 'balanced', 'deep')),
    tools jsonb NOT NULL DEFAULT '[]',
    knowledge_base_id uuid,
    enabled boolean NOT NULL DEFAULT true,
    webhook_url text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);
-- An agent's name is its model name on /v1: unique in its tenant, any case
CREATE UNIQUE INDEX agents_name ON agents (tenant_id, lower (name));
CREATE INDEX agents_list ON agents (tenant_id, created_at DESC, id DESC);

CREATE TABLE agent_avatars (
    agent_id uuid PRIMARY KEY REFERENCES agents ON DELETE CASCADE,
    content_type text NOT NULL,
    data bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);

CREATE TABLE provider_settings (
    tenant_id uuid NOT NULL,
    provider text NOT NULL,
    api_key_sealed text,                    -- base64 (nonce | secretbox), or NULL
    base_url text,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    PRIMARY KEY (tenant_id, provider)
);
