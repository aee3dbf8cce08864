-- Channels (schemas/channels.md): connections with their sealed credentials, the
-- durable inbox of verified inbound messages, and the outbound deliveries. Every row
-- carries its tenant; webhooks take the tenant from the connection row.

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

-- List cursors: ordering time in microseconds and id, hex-encoded.
CREATE FUNCTION ts_us (ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT (extract (epoch FROM ts) * 1000000)::bigint $$;

CREATE FUNCTION cursor_of (ts timestamptz, id uuid) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT encode (convert_to (channels.ts_us (ts)::text || '/' || id::text, 'UTF8'), 'hex') $$;

CREATE FUNCTION cursor_ts (cursor text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 1)::bigint $$;

CREATE FUNCTION cursor_id (cursor text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT split_part (convert_from (decode (cursor, 'hex'), 'UTF8'), '/', 2)::uuid $$;

-- An update's value of an optional column: NULL keeps old, '' clears it.
CREATE FUNCTION keep_or_clear (old text, new text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE WHEN new IS NULL THEN old ELSE NULLIF (new, '') END $$;

-- msgpack (schemas/bus.md) of a string, nil for NULL: event payloads are written
-- here, in the transaction that makes the change, from the rows it wrote.
CREATE FUNCTION mp_str (s text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$ DECLARE
    b bytea;
    n integer;
BEGIN
    IF s IS NULL THEN
        RETURN '\xc0'::bytea;
    END IF;
    b := convert_to (s, 'UTF8');
    n := length (b);
    IF n < 32 THEN
        RETURN set_byte ('\x00'::bytea, 0, 160 + n) || b;
    ELSIF n < 256 THEN
        RETURN '\xd9'::bytea || set_byte ('\x00'::bytea, 0, n) || b;
    ELSIF n < 65536 THEN
        RETURN '\xda'::bytea || substring (int4send (n) FROM 3 FOR 2) || b;
    END IF;
    RETURN '\xdb'::bytea || int4send (n) || b;
END $$;

-- msgpack map of key/value text pairs (NULL values are nil: the field is absent).
CREATE FUNCTION mp_map (VARIADIC kv text[]) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS
$$ DECLARE
    n integer := coalesce (array_length (kv, 1), 0) / 2;
    out bytea;
BEGIN
    IF n < 16 THEN
        out := set_byte ('\x00'::bytea, 0, 128 + n);
    ELSE
        out := '\xde'::bytea || substring (int4send (n) FROM 3 FOR 2);
    END IF;
    FOR i IN 1 .. n LOOP
        out := out || channels.mp_str (kv[2 * i - 1]) || channels.mp_str (kv[2 * i]);
    END LOOP;
    RETURN out;
END $$;

-- Append an event to the outbox (the numbering service_events uses: the one-row
-- counter's lock orders event-writing transactions). Returns its sequence and time.
CREATE FUNCTION outbox_append (topic text, tenant text, payload bytea,
                               OUT seq bigint, OUT ms bigint)
LANGUAGE sql AS
$$ WITH next AS (UPDATE channels.outbox_state SET last_seq = last_seq + 1 WHERE id = 1
                 RETURNING last_seq)
   INSERT INTO channels.outbox (seq, topic, tenant_id, payload)
   SELECT last_seq, topic, tenant, payload FROM next
   RETURNING seq, (extract (epoch FROM created_at) * 1000)::bigint $$;

CREATE TABLE connections (
    id uuid PRIMARY KEY,
    tenant_id uuid NOT NULL,
    platform text NOT NULL
        CHECK (platform IN ('whatsapp', 'messenger', 'instagram', 'telegram', 'slack')),
    agent_id uuid NOT NULL,
    name text NOT NULL CHECK (length (name) BETWEEN 1 AND 100),
    enabled boolean NOT NULL DEFAULT true,
    phone_number_id text,
    page_id text,
    bot_user_id text,
    -- base64 (nonce | secretbox) of each credential (auth_secretbox), or NULL
    access_token_sealed text,
    app_secret_sealed text,
    verify_token_sealed text,
    bot_token_sealed text,
    secret_token_sealed text,
    signing_secret_sealed text,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp ()
);
CREATE INDEX connections_list ON connections (tenant_id, created_at DESC, id DESC);

-- The names of the credentials a connection has, for answers.
CREATE FUNCTION credentials_set (c connections) RETURNS text[]
LANGUAGE sql IMMUTABLE AS
$$ SELECT array_remove (ARRAY[
       CASE WHEN c.access_token_sealed IS NOT NULL THEN 'access_token' END,
       CASE WHEN c.app_secret_sealed IS NOT NULL THEN 'app_secret' END,
       CASE WHEN c.verify_token_sealed IS NOT NULL THEN 'verify_token' END,
       CASE WHEN c.bot_token_sealed IS NOT NULL THEN 'bot_token' END,
       CASE WHEN c.secret_token_sealed IS NOT NULL THEN 'secret_token' END,
       CASE WHEN c.signing_secret_sealed IS NOT NULL THEN 'signing_secret' END],
       NULL) $$;

-- Why a connection cannot work on its platform (a required credential or id is
-- missing), or NULL: updates check the row they leave behind.
CREATE FUNCTION connection_missing (c connections) RETURNS text
LANGUAGE sql IMMUTABLE AS
$$ SELECT CASE
       WHEN c.platform IN ('whatsapp', 'messenger', 'instagram')
            AND (c.access_token_sealed IS NULL OR c.app_secret_sealed IS NULL
                 OR c.verify_token_sealed IS NULL)
           THEN c.platform || ' needs credentials access_token, app_secret and verify_token'
       WHEN c.platform = 'whatsapp' AND c.phone_number_id IS NULL
           THEN 'whatsapp needs phone_number_id'
       WHEN c.platform IN ('messenger', 'instagram') AND c.page_id IS NULL
           THEN c.platform || ' needs page_id'
       WHEN c.platform = 'telegram'
            AND (c.bot_token_sealed IS NULL OR c.secret_token_sealed IS NULL)
           THEN 'telegram needs credentials bot_token and secret_token'
       WHEN c.platform = 'slack'
            AND (c.bot_token_sealed IS NULL OR c.signing_secret_sealed IS NULL)
           THEN 'slack needs credentials bot_token and signing_secret'
   END $$;

-- Verified inbound messages, stored before the platform gets its 200; step 2 takes
-- them from here (status, attempts, next_attempt_at, locked_until).
CREATE TABLE inbox (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid (),
    tenant_id uuid NOT NULL,
    connection_id uuid NOT NULL REFERENCES connections ON DELETE CASCADE,
    platform text NOT NULL,
    external_id text NOT NULL,              -- dedupe key: wamid, mid, update_id, event_id
    message_id text NOT NULL DEFAULT '',    -- the platform's message id (Slack: ts)
    sender_id text NOT NULL DEFAULT '',
    sender_name text NOT NULL DEFAULT '',
    chat_id text NOT NULL DEFAULT '',       -- where a reply goes
    thread_id text NOT NULL DEFAULT '',     -- Slack: the thread to answer in
    message_type text NOT NULL DEFAULT 'text',
    text text NOT NULL DEFAULT '',
    sent_at timestamptz,
    payload jsonb NOT NULL,                 -- the item as received
    status text NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'processing', 'done', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    locked_until timestamptz,
    last_error text,
    conversation_id uuid,                   -- the chat conversation, once known
    received_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    UNIQUE (connection_id, external_id)
);
CREATE INDEX inbox_pending ON inbox (next_attempt_at)
    WHERE status IN ('received', 'processing');
CREATE INDEX inbox_list ON inbox (connection_id, received_at DESC, id DESC);

-- Messages to deliver, one row per part (long replies are split); step 2 sends them.
CREATE TABLE outbound (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid (),
    tenant_id uuid NOT NULL,
    connection_id uuid NOT NULL REFERENCES connections ON DELETE CASCADE,
    platform text NOT NULL,
    inbox_id uuid REFERENCES inbox ON DELETE SET NULL,  -- the message it answers
    conversation_id uuid,                   -- chat's conversation
    message_id uuid,                        -- chat's message it carries
    part integer NOT NULL DEFAULT 0,        -- which part of that message
    chat_id text NOT NULL,
    thread_id text NOT NULL DEFAULT '',
    text text NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'read', 'failed')),
    external_id text,                       -- the platform's id once sent (wamid, ...)
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    locked_until timestamptz,
    error_code text,
    last_error text,                        -- the platform's error, JSON text
    created_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp (),
    sent_at timestamptz,
    delivered_at timestamptz,
    read_at timestamptz,
    failed_at timestamptz,
    UNIQUE (connection_id, message_id, part),
    UNIQUE (connection_id, external_id)
);
CREATE INDEX outbound_pending ON outbound (next_attempt_at)
    WHERE status IN ('queued', 'sending');

-- Whether a delivery status may replace another: forward only (queued < sending <
-- sent < delivered < read), failed after anything but read, nothing after failed.
CREATE FUNCTION status_moves (old text, new text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT CASE
       WHEN old = 'failed' THEN false
       WHEN new = 'failed' THEN old <> 'read'
       ELSE array_position (ARRAY['queued', 'sending', 'sent', 'delivered', 'read'], new)
            > array_position (ARRAY['queued', 'sending', 'sent', 'delivered', 'read'], old)
   END $$;

-- Store a verified webhook's items (a JSON array made by channels_batch) for
-- connection conn in the caller's transaction: each new message into the inbox with
-- its channels.inbound.received event; each WhatsApp status onto its outbound row
-- with a channels.outbound.<status> event. Returns the events written, for the
-- service to publish after the commit. Webhooks of one connection are stored one at
-- a time (the connection row's lock: only they can have items in common), and every
-- row is written before the first event takes the outbox counter's lock, so that
-- transactions never wait for each other in a cycle.
CREATE FUNCTION inbox_store (conn uuid, items jsonb)
RETURNS TABLE (seq bigint, topic text, tenant text, payload text, ms bigint)
LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    c channels.connections%ROWTYPE;
    item jsonb;
    row_id uuid;
    o channels.outbound%ROWTYPE;
    topics text[] := '{}';
    events bytea[] := '{}';
BEGIN
    -- Also makes a concurrent delete or update of the connection wait
    SELECT * INTO c FROM channels.connections WHERE id = conn FOR NO KEY UPDATE;
    PERFORM channels.require (FOUND, 'not_found', 'no such connection');
    FOR item IN SELECT value FROM jsonb_array_elements (items) LOOP
        IF item->>'kind' = 'message' THEN
            INSERT INTO channels.inbox (tenant_id, connection_id, platform, external_id,
                message_id, sender_id, sender_name, chat_id, thread_id, message_type,
                text, sent_at, payload)
            VALUES (c.tenant_id, c.id, c.platform, item->>'external_id',
                coalesce (item->>'message_id', ''), coalesce (item->>'sender_id', ''),
                coalesce (item->>'sender_name', ''), coalesce (item->>'chat_id', ''),
                coalesce (item->>'thread_id', ''),
                coalesce (item->>'message_type', 'text'), coalesce (item->>'text', ''),
                to_timestamp ((item->>'sent_at')::double precision),
                coalesce (item->'payload', '{}'::jsonb))
            ON CONFLICT (connection_id, external_id) DO NOTHING
            RETURNING id INTO row_id;
            IF row_id IS NOT NULL THEN
                topics := array_append (topics, 'channels.inbound.received');
                events := array_append (events, channels.mp_map (
                    'id', row_id::text, 'connection_id', c.id::text,
                    'agent_id', c.agent_id::text, 'platform', c.platform,
                    'external_id', item->>'external_id',
                    'message_type', coalesce (item->>'message_type', 'text'),
                    'sender_id', item->>'sender_id', 'chat_id', item->>'chat_id',
                    'received_at', channels.rfc3339 (clock_timestamp ())));
            END IF;
        ELSIF item->>'kind' = 'status' THEN
            UPDATE channels.outbound SET status = item->>'status',
                updated_at = clock_timestamp (),
                sent_at = CASE WHEN item->>'status' = 'sent'
                               THEN coalesce (sent_at, clock_timestamp ()) ELSE sent_at END,
                delivered_at = CASE WHEN item->>'status' = 'delivered'
                                    THEN clock_timestamp () ELSE delivered_at END,
                read_at = CASE WHEN item->>'status' = 'read'
                               THEN clock_timestamp () ELSE read_at END,
                failed_at = CASE WHEN item->>'status' = 'failed'
                                 THEN clock_timestamp () ELSE failed_at END,
                error_code = CASE WHEN item->>'status' = 'failed'
                                  THEN item->>'error_code' ELSE error_code END,
                last_error = CASE WHEN item->>'status' = 'failed'
                                  THEN item->>'error' ELSE last_error END
            WHERE connection_id = c.id AND external_id = item->>'external_id'
                AND channels.status_moves (status, item->>'status')
            RETURNING * INTO o;
            IF FOUND THEN
                topics := array_append (topics, 'channels.outbound.' || o.status);
                events := array_append (events, channels.mp_map (
                    'id', o.id::text, 'connection_id', c.id::text, 'platform', c.platform,
                    'external_id', o.external_id, 'status', o.status,
                    'error', o.last_error, 'conversation_id', o.conversation_id::text,
                    'message_id', o.message_id::text));
            END IF;
        END IF;
    END LOOP;
    FOR i IN 1 .. coalesce (array_length (topics, 1), 0) LOOP
        RETURN QUERY SELECT a.seq, topics[i], c.tenant_id::text,
            encode (events[i], 'hex'), a.ms
            FROM channels.outbox_append (topics[i], c.tenant_id::text, events[i]) a;
    END LOOP;
END $$;
