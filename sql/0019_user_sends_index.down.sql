-- migrate:no-transaction
-- 0019_user_sends_index: undo.
CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_user_idx
    ON engagement.message_queue (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_user_sent_idx
    ON engagement.message_queue (user_id, sent_at) WHERE sent_at IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_user_sends_idx;
