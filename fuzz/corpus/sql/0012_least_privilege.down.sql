-- 0012_least_privilege: undo. The roles stay (they belong to the cluster,
-- and other databases may use them): their privileges in this database go.
-- Drop a role by hand once no database uses it: DROP ROLE engagement_sender;
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['engagement_daily', 'engagement_weekly', 'engagement_event',
        'engagement_sender', 'engagement_optout', 'engagement_relay', 'engagement_status',
        'engagement_webhook'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA engagement FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA engagement FROM %I', r);
            EXECUTE format('REVOKE ALL ON SCHEMA engagement FROM %I', r);
            EXECUTE format('DROP POLICY IF EXISTS %I ON engagement.job_runs', r);
            EXECUTE format('DROP POLICY IF EXISTS %I ON engagement.job_locks', r);
        END IF;
    END LOOP;
END
$$;
ALTER TABLE engagement.job_runs DISABLE ROW LEVEL SECURITY;
ALTER TABLE engagement.job_locks DISABLE ROW LEVEL SECURITY;
DROP FUNCTION engagement.apply_grants();
DROP TABLE engagement.program_grants;
DROP FUNCTION engagement.program_role(text);

ALTER FUNCTION engagement.announce_user_erased() SECURITY INVOKER;
ALTER FUNCTION engagement.announce_user_erased() RESET search_path;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA engagement TO PUBLIC;

CREATE OR REPLACE FUNCTION engagement.send_fence(p_ids bigint[], p_owner text,
                                                 p_now timestamptz)
    RETURNS TABLE (id bigint, verdict text) LANGUAGE plpgsql AS $$
DECLARE
    held bigint[];
BEGIN
    SELECT coalesce(array_agg(q.id), '{}') INTO held FROM (
        SELECT m.id FROM engagement.message_queue m
        WHERE m.id = ANY (p_ids) AND m.status = 'sending'
          AND m.locked_by = p_owner
          AND m.locked_until > clock_timestamp() + interval '1 second'
        ORDER BY m.id
        FOR UPDATE SKIP LOCKED) q;

    RETURN QUERY
    SELECT i.id, CASE
        WHEN NOT (i.id = ANY (held)) THEN
            CASE WHEN m.status = 'sending' AND m.locked_by = p_owner
                      AND m.locked_until > clock_timestamp()
                 THEN 'busy' ELSE 'lost' END
        WHEN m.expires_at IS NOT NULL
             AND m.expires_at <= coalesce(p_now, clock_timestamp()) THEN 'expired'
        WHEN coalesce(p.reengagement_opt_out, false) THEN 'opted_out'
        WHEN m.message_type = 'goodbye' AND s.state IS NOT NULL
             AND s.state <> 'goodbye_sent' THEN 'user_returned'
        ELSE 'send' END
    FROM unnest(p_ids) AS i(id)
    LEFT JOIN engagement.message_queue m ON m.id = i.id
    LEFT JOIN engagement.user_preferences p ON p.user_id = m.user_id
    LEFT JOIN engagement.engagement_states s ON s.user_id = m.user_id;
END
$$;

DROP FUNCTION engagement.record_provider_stops(jsonb, integer);
DROP FUNCTION engagement.apply_preference_changes(jsonb, integer);
DROP FUNCTION engagement.write_audit(jsonb);
DROP FUNCTION engagement.publish_transition_events(bigint[]);
DROP FUNCTION engagement.publish_message_events(text, bigint[], uuid);
DROP VIEW engagement.opted_out_users;
ALTER TABLE engagement.message_queue DROP COLUMN delivery_failed_at;
