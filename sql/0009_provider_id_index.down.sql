-- migrate:no-transaction
-- 0009_provider_id_index: undo.
DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_provider_id_idx;
