-- 0006_outbox_notify: undo.
DROP TRIGGER outbox_events_notify ON engagement.outbox_events;
DROP FUNCTION engagement.notify_outbox();
