-- migrate:no-transaction
-- 0011_due_by_type: undo.
CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_due_idx
    ON engagement.message_queue (next_attempt_at) WHERE status = 'queued';
DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_due_type_idx;
