-- Message texts and the events that carry them are compressed with lz4 when
-- PostgreSQL stores them out of line (over ~2 KB): pglz took an eighth of the
-- server's CPU while replies were completing (tools/bench/run streams). A server
-- built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE messages ALTER COLUMN content SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: chat keeps pglz';
END
$$;
