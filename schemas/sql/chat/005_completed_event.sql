-- The number n of a finished reply's message.completed event (its SSE id is
-- "<message id>:<n>"), so a client that reconnects after it is told there is
-- nothing more (204) instead of being sent the end again, and a replay derived
-- from the stored reply (its event log gone) numbers the end as the stream did.
-- NULL for replies that ended without one (swept as interrupted) and older ones.
ALTER TABLE messages ADD COLUMN completed_event integer;
