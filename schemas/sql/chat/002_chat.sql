-- Conversations and messages (schemas/chat.md). Every row carries its tenant; every
-- query of the service is scoped by the tenant of the request's headers.

-- RFC 3339 UTC text of a timestamp, as every API answer shows it.
CREATE FUNCTION rfc3339 (ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT to_char (ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- Raises error code (a bus.md error code) with message as its detail unless ok:
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

-- Opaque list cursor of a row: its ordering time and id, hex-encoded; a page after
-- a cursor holds the rows with (ts_us (time), id) below both parts.
CREATE FUNCTION cursor_of (ts timestamptz, id uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT encode (convert_to (chat.ts_us (ts)::text || '/' || id::text, 'UTF8'), 'hex') $$;

CREATE FUNCTION cursor_ts (cursor text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 1)::bigint $$;

CREATE FUNCTION cursor_id (cursor text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 2)::uuid $$;

-- A conversation of the tenant's members with one agent (an agents service id).
-- Lists show the most recently active first: updated_at moves with every message.
CREATE TABLE conversations (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    agent_id uuid NOT NULL,
    title text NOT NULL CHECK (length (title) BETWEEN 1 AND 200),
    archived boolean NOT NULL DEFAULT false,
    created_by uuid NOT NULL,
    message_count integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);
CREATE INDEX conversations_list ON conversations (tenant_id, archived, updated_at DESC, id DESC);
CREATE INDEX conversations_agent
    ON conversations (tenant_id, agent_id, archived, updated_at DESC, id DESC);

-- A message: the user's, or the agent's reply. A reply is written with status
-- streaming before the turn runs and gets its final status when it ends. The replica
-- running a turn touches heartbeat_at about once a second and stops the turn when
-- cancel_requested is set (by a conversations.cancel on any replica).
CREATE TABLE messages (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    conversation_id uuid NOT NULL REFERENCES conversations ON DELETE CASCADE,
    role text NOT NULL CHECK (role IN ('user', 'assistant')),
    content text NOT NULL DEFAULT '',
    author_id uuid,                           -- user id, or the agent id of a reply
    status text NOT NULL DEFAULT 'complete'
        CHECK (status IN ('streaming', 'complete', 'failed', 'cancelled')),
    model text,
    prompt_tokens integer CHECK (prompt_tokens >= 0),
    completion_tokens integer CHECK (completion_tokens >= 0),
    latency_ms integer CHECK (latency_ms >= 0),
    error text,
    tool_calls jsonb NOT NULL DEFAULT '[]',   -- [{"id", "name", "arguments"}]
    reply_to uuid,                            -- a reply: the user message it answers
    cancel_requested boolean NOT NULL DEFAULT false,
    heartbeat_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);
CREATE INDEX messages_list ON messages (conversation_id, created_at DESC, id DESC);
CREATE INDEX messages_streaming ON messages (heartbeat_at) WHERE status = 'streaming';
