-- The evtest service (tests only)'s durable event log (schemas/bus.md, "Events"): every event is
-- written here in the transaction that makes the change, numbered densely in
-- commit order by the one-row counter, and replayed to subscribers that missed it.
CREATE TABLE outbox_state (
    id integer PRIMARY KEY CHECK (id = 1),
    last_seq bigint NOT NULL
);
INSERT INTO outbox_state (id, last_seq) VALUES (1, 0);

CREATE TABLE outbox (
    seq bigint PRIMARY KEY,
    topic text NOT NULL,
    tenant_id text NOT NULL DEFAULT '',
    payload bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_created_at ON outbox (created_at);
