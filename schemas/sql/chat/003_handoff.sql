-- Conversations that channels bring (schemas/chat.md, "Channels and handoff"): the
-- platform, the connection and the contact on it, one conversation per (connection,
-- contact, thread); the handoff state of every conversation; who wrote a message;
-- and the key that stores a channel's message once however often it is sent.
ALTER TABLE conversations
    ADD COLUMN channel text
        CHECK (channel IN ('whatsapp', 'messenger', 'instagram', 'telegram', 'slack')),
    ADD COLUMN connection_id uuid,
    ADD COLUMN contact_id text,
    ADD COLUMN contact_name text,
    ADD COLUMN thread_id text,
    ADD COLUMN status text NOT NULL DEFAULT 'open'
        CHECK (status IN ('open', 'pending', 'resolved')),
    ADD COLUMN assignee_id uuid;

CREATE UNIQUE INDEX conversations_contact
    ON conversations (tenant_id, connection_id, contact_id, thread_id)
    WHERE connection_id IS NOT NULL;
CREATE INDEX conversations_status
    ON conversations (tenant_id, status, updated_at DESC, id DESC);

ALTER TABLE messages
    ADD COLUMN author_type text
        CHECK (author_type IN ('user', 'contact', 'agent', 'member')),
    ADD COLUMN external_key text;

UPDATE messages SET author_type = CASE WHEN role = 'user' THEN 'user' ELSE 'agent' END;

CREATE UNIQUE INDEX messages_external
    ON messages (conversation_id, external_key) WHERE external_key IS NOT NULL;
