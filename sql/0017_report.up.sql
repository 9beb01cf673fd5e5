-- 0017_report: what engagement-status reads besides what it read before.
-- The pauses in force, through the one function that says which those are
-- (0015's active_pauses: it already reads send_pauses); and, for its report
-- page (--format html), when each message was queued, sent, delivered and read,
-- and the error codes of those that failed: the delivery funnel of the last
-- 7 days by message type. Times and codes only: still no phone number,
-- parameter or message body.
INSERT INTO engagement.program_grants (programs, privileges, object) VALUES
    ('status', 'EXECUTE', 'FUNCTION engagement.active_pauses(timestamptz)'),
    ('status', 'SELECT (created_at, sent_at, delivered_at, read_at, delivery_status, '
        'last_error_code, delivery_error_code)', 'engagement.message_queue');
