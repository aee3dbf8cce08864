-- agents.turn.completed carries the reply's text: compressed with lz4 when stored
-- out of line, as chat's messages are (chat/004_lz4.sql). A server built without
-- lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: agents keeps pglz';
END
$$;
