-- Processing after the answer (schemas/channels.md, "Processing" and "Replies out"):
-- the inbox's rows in order per chat, replies queued as outbound parts, and the
-- outcome of every send with its channels.outbound.<status> event.

-- A chat's messages are taken oldest first, one at a time.
CREATE INDEX inbox_chat_pending ON inbox (connection_id, chat_id, thread_id, received_at, id)
    WHERE status IN ('received', 'processing');
CREATE INDEX outbound_list ON outbound (connection_id, created_at DESC, id DESC);

-- Queue a message's parts for connection conn (one row each, part 0, 1, ...); a
-- message queued before is left as it is. Returns how many parts the message has.
CREATE FUNCTION outbound_enqueue (conn uuid, inbox uuid, conversation uuid,
                                  message uuid, chat text, thread text, parts text[])
RETURNS integer
LANGUAGE plpgsql AS
$$ DECLARE
    c channels.connections%ROWTYPE;
BEGIN
    SELECT * INTO c FROM channels.connections WHERE id = conn;
    PERFORM channels.require (FOUND, 'not_found', 'no such connection');
    INSERT INTO channels.outbound (tenant_id, connection_id, platform, inbox_id,
        conversation_id, message_id, part, chat_id, thread_id, text)
    SELECT c.tenant_id, c.id, c.platform, inbox, conversation, message, p.n - 1, chat,
        coalesce (thread, ''), p.text
    FROM unnest (parts) WITH ORDINALITY AS p (text, n)
    ON CONFLICT (connection_id, message_id, part) DO NOTHING;
    RETURN (SELECT count (*) FROM channels.outbound
            WHERE connection_id = conn AND message_id = message);
END $$;

-- The end of an inbox row's processing: done (with the conversation and, when
-- the agent answered, its reply's parts queued) or, on failure, back to received
-- after delay_ms or failed for good. Nothing happens when the row is no longer
-- this processing (its lease ended and another worker took it).
CREATE FUNCTION inbox_finish (row_id uuid, taken integer, outcome text,
                              conversation uuid, message uuid, parts text[],
                              error text, delay_ms bigint)
RETURNS integer
LANGUAGE plpgsql AS
$$ DECLARE
    i channels.inbox%ROWTYPE;
BEGIN
    SELECT * INTO i FROM channels.inbox WHERE id = row_id FOR UPDATE;
    IF NOT FOUND OR i.status <> 'processing' OR i.attempts <> taken THEN
        RETURN 0;
    END IF;
    IF outcome = 'done' AND message IS NOT NULL AND array_length (parts, 1) > 0 THEN
        PERFORM channels.outbound_enqueue (i.connection_id, i.id, conversation, message,
            i.chat_id, i.thread_id, parts);
    END IF;
    UPDATE channels.inbox SET status = outcome, locked_until = NULL,
        conversation_id = coalesce (conversation, conversation_id),
        last_error = CASE WHEN outcome = 'done' THEN NULL ELSE error END,
        next_attempt_at = clock_timestamp () + make_interval (secs => delay_ms / 1000.0),
        updated_at = clock_timestamp ()
    WHERE id = row_id;
    RETURN 1;
END $$;

-- The outcome of sending outbound row row_id (taken with attempt number taken):
-- sent (with the platform's id), queued again after delay_ms, or failed (with
-- the platform's error). Returns the event to publish (none when the row moved
-- on without this send: its lease ended, or a status callback came first).
CREATE FUNCTION outbound_finish (row_id uuid, taken integer, outcome text,
                                 external text, code text, error text, delay_ms bigint)
RETURNS TABLE (seq bigint, topic text, tenant text, payload text, ms bigint)
LANGUAGE plpgsql AS
$$
#variable_conflict use_column
DECLARE
    o channels.outbound%ROWTYPE;
    event bytea;
BEGIN
    UPDATE channels.outbound SET
        status = outcome,
        external_id = coalesce (external, external_id),
        locked_until = NULL,
        next_attempt_at = clock_timestamp () + make_interval (secs => delay_ms / 1000.0),
        error_code = CASE WHEN outcome = 'sent' THEN NULL ELSE code END,
        last_error = CASE WHEN outcome = 'sent' THEN NULL ELSE error END,
        sent_at = CASE WHEN outcome = 'sent' THEN clock_timestamp () ELSE sent_at END,
        failed_at = CASE WHEN outcome = 'failed' THEN clock_timestamp () ELSE failed_at END,
        updated_at = clock_timestamp ()
    WHERE id = row_id AND status = 'sending' AND attempts = taken
    RETURNING * INTO o;
    IF NOT FOUND OR outcome = 'queued' THEN
        RETURN;
    END IF;
    event := channels.mp_map ('id', o.id::text, 'connection_id', o.connection_id::text,
        'platform', o.platform, 'external_id', o.external_id, 'status', o.status,
        'error', o.last_error, 'conversation_id', o.conversation_id::text,
        'message_id', o.message_id::text);
    RETURN QUERY SELECT a.seq, 'channels.outbound.' || o.status, o.tenant_id::text,
        encode (event, 'hex'), a.ms
        FROM channels.outbox_append ('channels.outbound.' || o.status,
                                     o.tenant_id::text, event) a;
END $$;
