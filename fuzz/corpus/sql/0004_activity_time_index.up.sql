-- migrate:no-transaction
-- 0004_activity_time_index: engagement-weekly reads a week of activity by
-- time. Built CONCURRENTLY so that adding it to a live, large table does not
-- block the webhook's inserts; hence no transaction and one statement.
CREATE INDEX CONCURRENTLY IF NOT EXISTS activity_events_occurred_at_idx
    ON engagement.activity_events (occurred_at);
