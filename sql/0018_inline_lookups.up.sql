-- 0018_inline_lookups: the claim, the fence and the account's rules look up
-- a message's template row (template_for) and test its status
-- (template_sendable, template_dead) once per message. As 0016 made them,
-- with their own search_path, PostgreSQL called each as a function of its
-- own for every row: about 12 microseconds a template row, 2 a status test,
-- in the claim and again in the fence. Without a SET clause (and the
-- template row a set of at most one), the planner inlines them into the
-- query that uses them, which then runs under its own search_path (every
-- caller is a SECURITY DEFINER function with pg_catalog, pg_temp). The
-- names they use are qualified; none of them is SECURITY DEFINER, so called
-- directly they run with the caller's rights and search_path, as any query.

CREATE OR REPLACE FUNCTION engagement.template_sendable(p_status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT p_status IS NULL OR p_status IN ('APPROVED', 'REINSTATED')
$$;

CREATE OR REPLACE FUNCTION engagement.template_dead(p_status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT p_status IN ('DISABLED', 'REJECTED', 'DELETED', 'PENDING_DELETION', 'ARCHIVED')
$$;

-- The template row a message of p_key is sent with, for a person of
-- p_locale: the locale, then its language, then English (the claim's rule).
-- No row: no active template. (Callers join it LATERAL.)
DROP FUNCTION engagement.template_for(text, text);
CREATE FUNCTION engagement.template_for(p_key text, p_locale text)
    RETURNS SETOF engagement.message_templates
    LANGUAGE sql STABLE ROWS 1 AS $$
    SELECT x.* FROM engagement.message_templates x
    WHERE x.template_key = p_key AND x.is_active
      AND x.locale IN (coalesce(p_locale, 'en'), split_part(coalesce(p_locale, 'en'), '-', 1), 'en')
    ORDER BY CASE x.locale WHEN coalesce(p_locale, 'en') THEN 0
        WHEN split_part(coalesce(p_locale, 'en'), '-', 1) THEN 1 ELSE 2 END
    LIMIT 1
$$;

-- As 0016 made it, the template row joined rather than called for a field.
CREATE OR REPLACE FUNCTION engagement.fail_dead_template_messages(p_keys text[], p_run_id uuid)
    RETURNS integer LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH d AS (
        SELECT m.id FROM engagement.message_queue m
        LEFT JOIN engagement.user_preferences p ON p.user_id = m.user_id
        LEFT JOIN LATERAL engagement.template_for(m.template_key, p.locale) tp ON true
        WHERE m.status = 'queued' AND m.template_key = ANY (p_keys)
          AND engagement.template_dead(tp.provider_status)
        ORDER BY m.id FOR UPDATE OF m
    ), upd AS (
        UPDATE engagement.message_queue m
        SET status = 'failed', last_error_code = 'template_disabled',
            last_error = 'WhatsApp disabled, rejected or deleted the template'
        FROM d WHERE m.id = d.id
        RETURNING m.id, m.user_id, m.attempts
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object(
            'user_id', u.user_id, 'message_id', u.id, 'event', 'message_failed',
            'source', 'whatsapp', 'run_id', p_run_id,
            'details', jsonb_build_object('attempts', u.attempts,
                'error_code', 'template_disabled')) ORDER BY u.id)) AS n
        FROM upd u
    ), ob AS (
        SELECT engagement.publish_message_events('message.failed',
            (SELECT array_agg(u.id ORDER BY u.id) FROM upd u), p_run_id) AS n
    ), counted AS (
        SELECT engagement.count_messages(array_agg('failed'::text), array_agg('template_disabled'::text)) AS n
        FROM upd
    ), forced AS MATERIALIZED (
        SELECT (SELECT n FROM audit) + (SELECT n FROM ob) + (SELECT n FROM counted) AS n
    )
    -- (audit, ob and counted only read: they run because they are read here)
    SELECT (SELECT count(*) FROM upd)::integer FROM forced
$$;
