-- migrate:no-transaction
-- 0020_finished_at: undo. Retention keyed on updated_at again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_finished_idx
    ON engagement.message_queue (updated_at)
    WHERE status IN ('sent', 'failed', 'blocked', 'cancelled');

CREATE OR REPLACE FUNCTION engagement.purge_messages(p_days integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    IF p_days IS NULL OR p_days NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'retention is 1 to 3650 days' USING ERRCODE = '22023';
    END IF;
    DELETE FROM engagement.message_queue WHERE id = ANY (ARRAY(
        SELECT q.id FROM engagement.message_queue q
        WHERE q.status IN ('sent', 'failed', 'blocked', 'cancelled')
          AND q.updated_at < clock_timestamp() - make_interval(days => p_days)
        ORDER BY q.updated_at LIMIT 1000));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

DO $$
BEGIN
    DROP TRIGGER IF EXISTS message_queue_finished ON engagement.message_queue;
    DROP TRIGGER IF EXISTS message_queue_touch ON engagement.message_queue;
    CREATE TRIGGER message_queue_touch BEFORE UPDATE ON engagement.message_queue
        FOR EACH ROW EXECUTE FUNCTION engagement.touch_updated_at();
END
$$;

DROP FUNCTION IF EXISTS engagement.touch_message();

DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_finished_at_idx;

ALTER TABLE engagement.message_queue DROP COLUMN IF EXISTS finished_at;
