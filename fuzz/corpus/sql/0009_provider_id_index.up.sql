-- migrate:no-transaction
-- 0009_provider_id_index: delivery statuses are matched to the queue by the
-- provider's message id. Built CONCURRENTLY: the queue is hot.
CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_provider_id_idx
    ON engagement.message_queue (provider_message_id)
    WHERE provider_message_id IS NOT NULL;
