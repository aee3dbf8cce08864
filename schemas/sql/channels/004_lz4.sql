-- Message texts, inbound and outbound, and the events carrying them: lz4 when
-- stored out of line, as chat's (chat/004_lz4.sql). Without lz4, pglz stays.
DO $$
BEGIN
    ALTER TABLE inbox ALTER COLUMN text SET COMPRESSION lz4;
    ALTER TABLE outbound ALTER COLUMN text SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'lz4 is not available: channels keeps pglz';
END
$$;
