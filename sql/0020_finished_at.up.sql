-- migrate:no-transaction
-- 0020_finished_at: a delivery status (delivered, read) and a price become
-- HOT updates. They change no indexed column of message_queue, but the
-- touch trigger sets updated_at, and the retention index was keyed on
-- updated_at: every status wrote a new entry in each of the queue's
-- indexes. Retention now reads finished_at, set once by the database when
-- a message reaches a finished status (sent, failed, blocked, cancelled)
-- and cleared when it leaves one (a requeue); updated_at stays "last
-- changed" and is no longer indexed.
--
-- One statement at a time, each committed, so that the backfill of a large
-- queue holds no lock for long: the column, the trigger, the backfill in
-- batches of 10,000, the new index (CONCURRENTLY), the purge on it, the old
-- index dropped (CONCURRENTLY). Each statement can run again after an
-- interruption.
ALTER TABLE engagement.message_queue ADD COLUMN IF NOT EXISTS finished_at timestamptz;

-- updated_at as touch_updated_at keeps it, and finished_at: the instant a
-- message reached a finished status, kept while it stays there, NULL
-- otherwise. An inserted finished row (a test's, an import's) finished when
-- it says it was updated. A finished row from before this migration gets
-- its finish time at its first change: when it was last changed. Writing
-- finished_at of such a row and nothing else is the backfill: updated_at is
-- kept.
CREATE OR REPLACE FUNCTION engagement.touch_message() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN -- (called for a finished row only)
        NEW.finished_at := coalesce(NEW.finished_at, NEW.updated_at);
        RETURN NEW;
    END IF;
    IF NEW.status NOT IN ('sent', 'failed', 'blocked', 'cancelled') THEN
        NEW.finished_at := NULL;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        NEW.finished_at := now();
    ELSIF OLD.finished_at IS NOT NULL THEN
        NEW.finished_at := OLD.finished_at;
    ELSIF NEW.finished_at IS NOT NULL THEN
        RETURN NEW; -- the backfill
    ELSE
        NEW.finished_at := OLD.updated_at;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

DO $$
BEGIN
    DROP TRIGGER IF EXISTS message_queue_touch ON engagement.message_queue;
    CREATE TRIGGER message_queue_touch BEFORE UPDATE ON engagement.message_queue
        FOR EACH ROW EXECUTE FUNCTION engagement.touch_message();
    -- (a queued message, as every program inserts one, does not call it)
    DROP TRIGGER IF EXISTS message_queue_finished ON engagement.message_queue;
    CREATE TRIGGER message_queue_finished BEFORE INSERT ON engagement.message_queue
        FOR EACH ROW WHEN (NEW.status IN ('sent', 'failed', 'blocked', 'cancelled'))
        EXECUTE FUNCTION engagement.touch_message();
END
$$;

DO $$
DECLARE
    lo bigint;
    hi bigint;
BEGIN
    SELECT min(id), max(id) INTO lo, hi FROM engagement.message_queue;
    WHILE lo <= hi LOOP
        UPDATE engagement.message_queue SET finished_at = updated_at
        WHERE id >= lo AND id < lo + 10000 AND finished_at IS NULL
          AND status IN ('sent', 'failed', 'blocked', 'cancelled');
        COMMIT;
        lo := lo + 10000;
    END LOOP;
END
$$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_finished_at_idx
    ON engagement.message_queue (finished_at) WHERE finished_at IS NOT NULL;

-- Delete up to 1000 finished messages (sent, failed, blocked, cancelled)
-- finished more than p_days (at least 1) ago; their audit rows stay.
-- How many.
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
        WHERE q.finished_at < clock_timestamp() - make_interval(days => p_days)
          AND q.status IN ('sent', 'failed', 'blocked', 'cancelled')
        ORDER BY q.finished_at LIMIT 1000));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_finished_idx;
