-- 0006_outbox_notify: wake `outbox-relay --follow` when events are written.
-- One NOTIFY per inserting statement (not per row), delivered at commit.
CREATE FUNCTION engagement.notify_outbox() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('engagement_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_events_notify AFTER INSERT ON engagement.outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION engagement.notify_outbox();
