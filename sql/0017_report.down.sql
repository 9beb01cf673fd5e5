-- 0017_report, undone: the status role reads what 0016 let it read
-- (apply_grants only grants: what 0017 granted is revoked here).
DELETE FROM engagement.program_grants
WHERE programs = 'status'
  AND (object, privileges) IN (
    ('FUNCTION engagement.active_pauses(timestamptz)', 'EXECUTE'),
    ('engagement.message_queue', 'SELECT (created_at, sent_at, delivered_at, read_at, '
        'delivery_status, last_error_code, delivery_error_code)'));

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engagement_status') THEN
        REVOKE SELECT (created_at, sent_at, delivered_at, read_at, delivery_status,
            last_error_code, delivery_error_code) ON engagement.message_queue
            FROM engagement_status;
        REVOKE EXECUTE ON FUNCTION engagement.active_pauses(timestamptz) FROM engagement_status;
    END IF;
END
$$;
