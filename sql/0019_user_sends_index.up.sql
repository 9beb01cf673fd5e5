-- migrate:no-transaction
-- 0019_user_sends_index: one index on (user_id, sent_at) for every row
-- instead of two (user_id alone, and user_id, sent_at for sent rows). It
-- serves what both served: erasure (ON DELETE CASCADE) and per-person
-- lookups by user_id, the hourly cap and the fence's pair rule by user_id
-- and sent_at. Each sent message writes one index entry fewer. Built
-- CONCURRENTLY, then the two go.
CREATE INDEX CONCURRENTLY IF NOT EXISTS message_queue_user_sends_idx
    ON engagement.message_queue (user_id, sent_at);
DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_user_sent_idx;
DROP INDEX CONCURRENTLY IF EXISTS engagement.message_queue_user_idx;
