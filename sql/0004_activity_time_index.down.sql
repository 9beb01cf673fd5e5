-- migrate:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS engagement.activity_events_occurred_at_idx;
