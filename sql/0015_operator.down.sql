-- 0015_operator, undone: no pauses, no operator functions; the claim and
-- the fence as 0014 made them.
DELETE FROM engagement.program_grants WHERE programs = 'operator'
    OR object = 'engagement.send_pauses';

DROP FUNCTION engagement.person_history(uuid, text, integer);
DROP FUNCTION engagement.cancel_messages(text, text, uuid, text, text);
DROP FUNCTION engagement.requeue_messages(text, text[], text, timestamptz, timestamptz, text);
DROP FUNCTION engagement.resume_sending(text, text, text);
DROP FUNCTION engagement.pause_sending(text, text, timestamptz, text);
DROP FUNCTION engagement.open_pause(text, text, timestamptz, text, text);
DROP FUNCTION engagement.wait_for_fences(text, text);

CREATE OR REPLACE FUNCTION engagement.claim_messages(p_owner text, p_now timestamptz, p_lease_s integer,
    p_limit integer, p_hourly_cap integer)
    RETURNS TABLE (id bigint, user_id uuid, message_type text, template_key text, params text,
        attempts integer, max_attempts integer, expired boolean, opted_out boolean,
        quiet_until_us bigint, recent_sends text, phone text, to_group boolean, group_id text,
        tpl_name text, tpl_language text, tpl_params text, locale text, state text,
        now_us bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM engagement.check_claim(p_owner, p_lease_s);
    IF p_limit NOT BETWEEN 1 AND 10000 OR p_hourly_cap NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a claim takes 1 to 10000 messages, with an hourly cap of 1 to 1000'
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE engagement.message_queue m
        SET status = 'sending', locked_by = p_owner,
            locked_until = clock_timestamp() + make_interval(secs => p_lease_s),
            claimed_by = (m.claimed_by || p_owner)[greatest(1, cardinality(m.claimed_by) - 8):]
        WHERE m.id = ANY (ARRAY(
            SELECT q.id FROM engagement.message_queue q
            WHERE q.status = 'queued' AND q.next_attempt_at <= coalesce(p_now, now())
            ORDER BY q.next_attempt_at LIMIT p_limit
            FOR UPDATE SKIP LOCKED))
        RETURNING m.*
    ), t AS (SELECT coalesce(p_now, now()) AS now)
    SELECT c.id, c.user_id, c.message_type, c.template_key, c.params::text, c.attempts,
        c.max_attempts,
        c.expires_at IS NOT NULL AND c.expires_at <= t.now,
        coalesce(p.reengagement_opt_out, false),
        (extract(epoch FROM CASE WHEN c.quiet_hours_override THEN NULL ELSE
            engagement.quiet_until(t.now, coalesce(p.timezone, 'UTC'),
                p.quiet_hours_start, p.quiet_hours_end) END) * 1000000)::bigint,
        (SELECT string_agg(y.id || ':' || y.us, ',' ORDER BY y.us) FROM (
            SELECT s.id, (extract(epoch FROM s.sent_at) * 1000000)::bigint AS us
            FROM engagement.message_queue s
            WHERE s.user_id = c.user_id
              AND s.sent_at > t.now - interval '1 hour' AND s.sent_at <= t.now
            ORDER BY s.sent_at DESC LIMIT p_hourly_cap) y),
        u.phone_e164,
        coalesce(p.preferred_destination, 'individual') = 'group',
        p.group_id, tp.provider_name, tp.provider_language, tp.param_names::text,
        coalesce(p.locale, 'en'), es.state,
        (extract(epoch FROM t.now) * 1000000)::bigint
    FROM claimed c CROSS JOIN t
    LEFT JOIN engagement.engagement_states es ON es.user_id = c.user_id
    JOIN engagement.users u ON u.id = c.user_id
    LEFT JOIN engagement.user_preferences p ON p.user_id = c.user_id
    LEFT JOIN LATERAL (
        SELECT x.provider_name, x.provider_language, x.param_names
        FROM engagement.message_templates x
        WHERE x.template_key = c.template_key AND x.is_active
          AND x.locale IN (coalesce(p.locale, 'en'), split_part(coalesce(p.locale, 'en'), '-', 1), 'en')
        ORDER BY CASE x.locale WHEN coalesce(p.locale, 'en') THEN 0
            WHEN split_part(coalesce(p.locale, 'en'), '-', 1) THEN 1 ELSE 2 END
        LIMIT 1) tp ON true
    ORDER BY c.next_attempt_at, c.id;
END
$$;

CREATE OR REPLACE FUNCTION engagement.send_fence(p_ids bigint[], p_owner text,
                                                 p_now timestamptz)
    RETURNS TABLE (id bigint, verdict text) LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
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
        WHEN EXISTS (SELECT 1 FROM engagement.user_preferences o
                     WHERE o.user_id = m.user_id AND o.reengagement_opt_out) THEN 'opted_out'
        WHEN m.message_type = 'goodbye' AND s.state IS NOT NULL
             AND s.state <> 'goodbye_sent' THEN 'user_returned'
        ELSE 'send' END
    FROM unnest(p_ids) AS i(id)
    LEFT JOIN engagement.message_queue m ON m.id = i.id
    LEFT JOIN engagement.engagement_states s ON s.user_id = m.user_id;
END
$$;

DROP FUNCTION engagement.is_paused(text, text, timestamptz);
DROP FUNCTION engagement.active_pauses(timestamptz);
DROP TABLE engagement.send_pauses;
