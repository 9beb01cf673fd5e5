-- migrate:no-transaction
-- 0011_due_by_type: the claim's index also carries message_type, so that
-- engagement-status counts the queue by type from the index alone (a
-- million queued messages in a fraction of a second). Built CONCURRENTLY,
-- then the old one goes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_due_type_idx
    ON engagement.message_queue (next_attempt_at) INCLUDE (message_type)
    WHERE status = 'queued';
DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_due_idx;
