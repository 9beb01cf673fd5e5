-- 0008_webhook: undo.
DROP TABLE engagement.inbound_events;
DROP TABLE engagement.webhook_inbox;
ALTER TABLE engagement.message_queue
    DROP COLUMN delivery_error_code,
    DROP COLUMN read_at,
    DROP COLUMN delivered_at,
    DROP COLUMN delivery_status;
