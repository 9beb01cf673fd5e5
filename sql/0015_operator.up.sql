-- 0015_operator: the operator's hands (engagement-ctl, DESIGN.md §2.3):
-- pauses that queue-send honours at the claim and at its pre-send fence,
-- requeue, cancel and one person's history, each a SECURITY DEFINER
-- function of engagement_owner that engagement_operator may call. Every
-- action is audited with the login (audit_log.login) and the reason given.

-- ---- pauses ------------------------------------------------------------------------------
-- A pause stops sending what it matches (everything, a message_type or a
-- template_key) until it is resumed or its until passes. Operators pause
-- with engagement-ctl; Meta's template pauses come from the webhook.
CREATE TABLE engagement.send_pauses (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    scope text NOT NULL
        CONSTRAINT send_pauses_scope_check CHECK (scope IN ('all', 'type', 'template')),
    value text
        CONSTRAINT send_pauses_value_check CHECK ((scope = 'all') = (value IS NULL)
            AND (value IS NULL OR length(value) BETWEEN 1 AND 200)),
    reason text NOT NULL
        CONSTRAINT send_pauses_reason_check CHECK (length(reason) BETWEEN 1 AND 500),
    source text NOT NULL DEFAULT 'operator'
        CONSTRAINT send_pauses_source_check CHECK (source IN ('operator', 'meta')),
    paused_by text NOT NULL DEFAULT session_user,
    paused_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    until timestamptz,
    resumed_at timestamptz,
    resumed_by text,
    CONSTRAINT send_pauses_until_check CHECK (until IS NULL OR until > paused_at)
);
-- One open pause per scope, value and source (a second pause updates it).
CREATE UNIQUE INDEX send_pauses_open_key
    ON engagement.send_pauses (scope, coalesce(value, ''), source) WHERE resumed_at IS NULL;

-- The pauses in force at p_at (their until not passed).
CREATE FUNCTION engagement.active_pauses(p_at timestamptz)
    RETURNS SETOF engagement.send_pauses
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM engagement.send_pauses p
    WHERE p.resumed_at IS NULL AND (p.until IS NULL OR p.until > p_at)
$$;

-- Is a message of this type and template paused at p_at?
CREATE FUNCTION engagement.is_paused(p_type text, p_template text, p_at timestamptz)
    RETURNS boolean LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM engagement.active_pauses(p_at) p
                   WHERE p.scope = 'all' OR p.scope = 'type' AND p.value = p_type
                      OR p.scope = 'template' AND p.value = p_template)
$$;

-- Wait until no pre-send fence holds a claimed message this pause matches:
-- a fence locks its messages until each of its requests is on the wire, so
-- once this returns and the pause commits, no request it matches starts.
CREATE FUNCTION engagement.wait_for_fences(p_scope text, p_value text) RETURNS integer
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH l AS (
        SELECT m.id FROM engagement.message_queue m
        WHERE m.status = 'sending'
          AND (p_scope = 'all' OR p_scope = 'type' AND m.message_type = p_value
               OR p_scope = 'template' AND m.template_key = p_value)
        ORDER BY m.id FOR UPDATE)
    SELECT count(*)::integer FROM l
$$;

-- Open a pause: p_scope all (p_value NULL), type or template, until
-- p_until (NULL: until resumed), for p_reason, from p_source (operator or
-- meta). An open pause of the same scope, value and source is updated (its
-- reason and until). One audit row (event sending_paused). Returns the
-- pause's id, whether it was new, and how many claimed messages it waited
-- for. Granted to no program: the operator's door is pause_sending (source
-- operator), Meta's is meta_pause_template (0016), so that no login can
-- claim a pause is Meta's.
CREATE FUNCTION engagement.open_pause(p_scope text, p_value text, p_until timestamptz,
    p_reason text, p_source text)
    RETURNS TABLE (pause_id bigint, created boolean, waited integer)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    w integer;
BEGIN
    IF p_scope IS NULL OR p_scope NOT IN ('all', 'type', 'template')
       OR (p_scope = 'all') <> (p_value IS NULL)
       OR p_scope = 'type' AND p_value !~ '^[a-z][a-z0-9_]*$'
       OR length(p_value) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'a pause is of everything, a message type or a template key'
            USING ERRCODE = '22023';
    END IF;
    IF p_reason IS NULL OR length(btrim(p_reason)) NOT BETWEEN 1 AND 500 THEN
        RAISE EXCEPTION 'a pause needs a reason of 1 to 500 characters' USING ERRCODE = '22023';
    END IF;
    IF p_source IS NULL OR p_source NOT IN ('operator', 'meta') THEN
        RAISE EXCEPTION 'a pause comes from an operator or from meta' USING ERRCODE = '22023';
    END IF;
    IF p_until IS NOT NULL AND p_until <= clock_timestamp() THEN
        RAISE EXCEPTION 'a pause''s end must be in the future' USING ERRCODE = '22023';
    END IF;
    -- an expired pause of the same key ends (it had ended: until passed)
    UPDATE engagement.send_pauses p SET resumed_at = p.until, resumed_by = 'expired'
    WHERE p.resumed_at IS NULL AND p.until <= clock_timestamp() AND p.scope = p_scope
      AND p.value IS NOT DISTINCT FROM p_value AND p.source = p_source;
    INSERT INTO engagement.send_pauses AS p (scope, value, reason, source, until)
    VALUES (p_scope, p_value, btrim(p_reason), p_source, p_until)
    ON CONFLICT (scope, coalesce(value, ''), source) WHERE resumed_at IS NULL
    DO UPDATE SET reason = excluded.reason, until = excluded.until,
        paused_by = excluded.paused_by
    RETURNING p.id, (xmax = 0) AS created INTO r;
    w := engagement.wait_for_fences(p_scope, p_value);
    PERFORM engagement.write_audit(jsonb_build_array(jsonb_build_object(
        'event', 'sending_paused', 'source', p_source,
        'details', jsonb_strip_nulls(jsonb_build_object('pause_id', r.id, 'scope', p_scope,
            'value', p_value, 'until', p_until, 'reason', btrim(p_reason),
            'updated', NOT r.created)))));
    RETURN QUERY SELECT r.id, r.created, w;
END
$$;

-- Pause sending, as the operator (open_pause, source operator).
CREATE FUNCTION engagement.pause_sending(p_scope text, p_value text, p_until timestamptz,
    p_reason text)
    RETURNS TABLE (pause_id bigint, created boolean, waited integer)
    LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM engagement.open_pause(p_scope, p_value, p_until, p_reason, 'operator')
$$;

-- Resume: end the open pauses of p_scope and p_value (every source),
-- for p_reason (may be NULL). One audit row per pause ended. Their ids.
CREATE FUNCTION engagement.resume_sending(p_scope text, p_value text, p_reason text)
    RETURNS TABLE (pause_id bigint, source text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_scope IS NULL OR p_scope NOT IN ('all', 'type', 'template')
       OR (p_scope = 'all') <> (p_value IS NULL) THEN
        RAISE EXCEPTION 'a pause is of everything, a message type or a template key'
            USING ERRCODE = '22023';
    END IF;
    IF length(p_reason) > 500 THEN
        RAISE EXCEPTION 'a reason is at most 500 characters' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH ended AS (
        UPDATE engagement.send_pauses p
        SET resumed_at = CASE WHEN p.until <= clock_timestamp() THEN p.until
                              ELSE clock_timestamp() END,
            resumed_by = session_user
        WHERE p.resumed_at IS NULL AND p.scope = p_scope
          AND p.value IS NOT DISTINCT FROM p_value
        RETURNING p.id, p.source, p.scope, p.value
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object(
            'event', 'sending_resumed', 'source', 'operator',
            'details', jsonb_strip_nulls(jsonb_build_object('pause_id', e.id,
                'scope', e.scope, 'value', e.value, 'paused_by', e.source,
                'reason', p_reason))) ORDER BY e.id)) AS n
        FROM ended e
    )
    SELECT e.id, e.source FROM ended e CROSS JOIN audit ORDER BY e.id;
END
$$;

-- ---- requeue and cancel --------------------------------------------------------------------
-- Requeue messages: failed ones (p_status 'failed': back to queued, their
-- attempts reset) or queued ones waiting for a later attempt (p_status
-- 'queued': due now, attempts reset), filtered by their last error codes
-- (NULL: any), type, and when they last changed ([p_since, p_until)). The
-- fence's checks first: a message whose person opted out, whose expiry
-- passed, or a goodbye whose person left goodbye_sent is not requeued. An
-- audit row per message requeued (message_requeued) and message.queued in
-- the outbox. One row per outcome with its count: requeued, opted_out,
-- expired, user_returned.
CREATE FUNCTION engagement.requeue_messages(p_status text, p_errors text[], p_type text,
    p_since timestamptz, p_until timestamptz, p_reason text)
    RETURNS TABLE (outcome text, n integer)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('failed', 'queued') THEN
        RAISE EXCEPTION 'requeue takes failed messages, or queued ones waiting to retry'
            USING ERRCODE = '22023';
    END IF;
    IF length(p_reason) > 500 THEN
        RAISE EXCEPTION 'a reason is at most 500 characters' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH c AS MATERIALIZED (
        SELECT m.id, m.user_id, m.status, m.attempts, m.last_error_code,
            CASE WHEN m.expires_at IS NOT NULL AND m.expires_at <= now() THEN 'expired'
                 WHEN coalesce(p.reengagement_opt_out, false) THEN 'opted_out'
                 WHEN m.message_type = 'goodbye' AND s.state IS NOT NULL
                      AND s.state <> 'goodbye_sent' THEN 'user_returned'
                 ELSE 'requeued' END AS outcome
        FROM engagement.message_queue m
        LEFT JOIN engagement.user_preferences p ON p.user_id = m.user_id
        LEFT JOIN engagement.engagement_states s ON s.user_id = m.user_id
        WHERE m.status = p_status
          AND (p_status = 'failed' OR m.attempts > 0 AND m.next_attempt_at > now())
          AND (p_errors IS NULL OR m.last_error_code = ANY (p_errors))
          AND (p_type IS NULL OR m.message_type = p_type)
          AND (p_since IS NULL OR m.updated_at >= p_since)
          AND (p_until IS NULL OR m.updated_at < p_until)
        ORDER BY m.id
        FOR UPDATE OF m
    ), upd AS (
        UPDATE engagement.message_queue m
        SET status = 'queued', attempts = 0, next_attempt_at = now(),
            locked_by = NULL, locked_until = NULL
        FROM c WHERE m.id = c.id AND c.outcome = 'requeued'
        RETURNING m.id, c.user_id, c.status AS was, c.attempts, c.last_error_code
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object(
            'user_id', u.user_id, 'message_id', u.id, 'event', 'message_requeued',
            'source', 'operator',
            'details', jsonb_strip_nulls(jsonb_build_object('previous_status', u.was,
                'attempts', u.attempts, 'error_code', u.last_error_code,
                'reason', p_reason))) ORDER BY u.id)) AS n
        FROM upd u
    ), ob AS (
        SELECT engagement.publish_message_events('message.queued',
            (SELECT array_agg(u.id ORDER BY u.id) FROM upd u), NULL) AS n
    ), forced AS MATERIALIZED (
        SELECT (SELECT n FROM audit) + (SELECT n FROM ob) AS n
    )
    -- (audit and ob only read: they run because they are read here)
    SELECT o.outcome, count(c.id)::integer
    FROM unnest(ARRAY['requeued', 'opted_out', 'expired', 'user_returned'])
        WITH ORDINALITY AS o(outcome, ord)
    LEFT JOIN c ON c.outcome = o.outcome
    CROSS JOIN forced
    GROUP BY o.outcome, o.ord ORDER BY o.ord;
END
$$;

-- Cancel queued messages (not those a sender holds: counted as in_flight)
-- matching every filter given: type, template, person, idempotency key. At
-- least one is required. last_error_code operator_cancelled, an audit row
-- each (message_cancelled) and message.cancelled in the outbox. Counts:
-- cancelled, in_flight.
CREATE FUNCTION engagement.cancel_messages(p_type text, p_template text, p_user uuid,
    p_key text, p_reason text)
    RETURNS TABLE (cancelled integer, in_flight integer)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_type IS NULL AND p_template IS NULL AND p_user IS NULL AND p_key IS NULL THEN
        RAISE EXCEPTION 'cancel needs a filter: a type, a template, a person or a key'
            USING ERRCODE = '22023';
    END IF;
    IF length(p_reason) > 500 THEN
        RAISE EXCEPTION 'a reason is at most 500 characters' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH c AS MATERIALIZED (
        SELECT m.id, m.status FROM engagement.message_queue m
        WHERE m.status IN ('queued', 'sending')
          AND (p_type IS NULL OR m.message_type = p_type)
          AND (p_template IS NULL OR m.template_key = p_template)
          AND (p_user IS NULL OR m.user_id = p_user)
          AND (p_key IS NULL OR m.idempotency_key = p_key)
    ), upd AS (
        UPDATE engagement.message_queue m
        SET status = 'cancelled', last_error_code = 'operator_cancelled',
            last_error = left(p_reason, 500)
        FROM c WHERE m.id = c.id AND c.status = 'queued' AND m.status = 'queued'
        RETURNING m.id, m.user_id, m.attempts
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object(
            'user_id', u.user_id, 'message_id', u.id, 'event', 'message_cancelled',
            'source', 'operator',
            'details', jsonb_strip_nulls(jsonb_build_object('attempts', u.attempts,
                'reason', p_reason))) ORDER BY u.id)) AS n
        FROM upd u
    ), ob AS (
        SELECT engagement.publish_message_events('message.cancelled',
            (SELECT array_agg(u.id ORDER BY u.id) FROM upd u), NULL) AS n
    ), forced AS MATERIALIZED (
        SELECT (SELECT n FROM audit) + (SELECT n FROM ob) AS n
    )
    -- (audit and ob only read: they run because they are read here)
    SELECT (SELECT count(*) FROM upd)::integer,
        (SELECT count(*) FROM c WHERE c.status = 'sending')::integer
    FROM forced;
END
$$;

-- ---- one person ------------------------------------------------------------------------
-- One person's history (by id, or by phone when p_user is NULL), newest
-- last, each list its latest p_limit entries: the person and preferences,
-- the state and its transitions, messages (status, attempts, errors,
-- delivery), the consent trail (preference changes and every audit row),
-- inbound events. NULL when there is no such person. Unmasked: the caller
-- masks what it prints.
CREATE FUNCTION engagement.person_history(p_user uuid, p_phone text, p_limit integer)
    RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    uid uuid;
    lim integer := least(greatest(coalesce(p_limit, 200), 1), 10000);
BEGIN
    IF p_user IS NOT NULL THEN
        SELECT u.id INTO uid FROM engagement.users u WHERE u.id = p_user;
    ELSE
        SELECT u.id INTO uid FROM engagement.users u WHERE u.phone_e164 = p_phone;
    END IF;
    IF uid IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN (SELECT jsonb_build_object(
        'user', jsonb_build_object('id', u.id, 'phone', u.phone_e164,
            'created_at', u.created_at),
        'preferences', (SELECT jsonb_build_object('opt_out', p.reengagement_opt_out,
                'opt_out_updated_at', p.reengagement_opt_out_updated_at,
                'opt_out_source', p.reengagement_opt_out_source, 'locale', p.locale,
                'timezone', p.timezone, 'quiet_hours_start', p.quiet_hours_start,
                'quiet_hours_end', p.quiet_hours_end,
                'preferred_destination', p.preferred_destination)
            FROM engagement.user_preferences p WHERE p.user_id = u.id),
        'state', (SELECT jsonb_build_object('state', s.state,
                'last_activity_at', s.last_activity_at, 'goodbye_sent_at', s.goodbye_sent_at,
                'goodbye_expires_at', s.goodbye_expires_at, 'remind_at', s.remind_at,
                'updated_at', s.updated_at)
            FROM engagement.engagement_states s WHERE s.user_id = u.id),
        'transitions', coalesce((SELECT jsonb_agg(x.j ORDER BY x.id) FROM (
            SELECT t.id, jsonb_build_object('at', t.created_at, 'from', t.from_state,
                'to', t.to_state, 'trigger', t.trigger, 'run_id', t.run_id,
                'metadata', t.metadata) AS j
            FROM engagement.state_transitions t WHERE t.user_id = u.id
            ORDER BY t.id DESC LIMIT lim) x), '[]'),
        'messages', coalesce((SELECT jsonb_agg(x.j ORDER BY x.id) FROM (
            SELECT m.id, jsonb_build_object('id', m.id, 'type', m.message_type,
                'template_key', m.template_key, 'params', m.params, 'status', m.status,
                'attempts', m.attempts, 'max_attempts', m.max_attempts,
                'created_at', m.created_at, 'next_attempt_at', m.next_attempt_at,
                'expires_at', m.expires_at, 'sent_at', m.sent_at,
                'last_error_code', m.last_error_code, 'last_error', m.last_error,
                'provider_message_id', m.provider_message_id,
                'delivery_status', m.delivery_status, 'delivered_at', m.delivered_at,
                'read_at', m.read_at, 'delivery_error_code', m.delivery_error_code,
                'updated_at', m.updated_at) AS j
            FROM engagement.message_queue m WHERE m.user_id = u.id
            ORDER BY m.id DESC LIMIT lim) x), '[]'),
        'consent', coalesce((SELECT jsonb_agg(x.j ORDER BY x.id) FROM (
            SELECT a.id, jsonb_build_object('at', a.created_at, 'event', a.event,
                'source', a.source, 'details', a.details) AS j
            FROM engagement.audit_log a WHERE a.user_id = u.id
              AND a.event IN ('reengagement_opted_out', 'reengagement_opted_in',
                              'reengagement_reaffirmed')
            ORDER BY a.id DESC LIMIT lim) x), '[]'),
        'audit', coalesce((SELECT jsonb_agg(x.j ORDER BY x.id) FROM (
            SELECT a.id, jsonb_build_object('at', a.created_at, 'event', a.event,
                'source', a.source, 'message_id', a.message_id, 'login', a.login,
                'run_id', a.run_id, 'details', a.details) AS j
            FROM engagement.audit_log a WHERE a.user_id = u.id
            ORDER BY a.id DESC LIMIT lim) x), '[]'),
        'inbound_events', coalesce((SELECT jsonb_agg(x.j ORDER BY x.at, x.event_id) FROM (
            SELECT i.created_at AS at, i.event_id, jsonb_build_object('at', i.created_at,
                'event_id', i.event_id, 'kind', i.kind, 'outcome', i.outcome,
                'detail', i.detail) AS j
            FROM engagement.inbound_events i WHERE i.user_id = u.id
            ORDER BY i.created_at DESC LIMIT lim) x), '[]'))
    FROM engagement.users u WHERE u.id = uid);
END
$$;

-- ---- the sender honours pauses ------------------------------------------------------------
-- The claim skips what a pause holds (it waits, queued and uncharged).
CREATE OR REPLACE FUNCTION engagement.claim_messages(p_owner text, p_now timestamptz,
    p_lease_s integer, p_limit integer, p_hourly_cap integer)
    RETURNS TABLE (id bigint, user_id uuid, message_type text, template_key text, params text,
        attempts integer, max_attempts integer, expired boolean, opted_out boolean,
        quiet_until_us bigint, recent_sends text, phone text, to_group boolean, group_id text,
        tpl_name text, tpl_language text, tpl_params text, locale text, state text,
        now_us bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    all_paused boolean;
    types text[];
    templates text[];
BEGIN
    PERFORM engagement.check_claim(p_owner, p_lease_s);
    IF p_limit NOT BETWEEN 1 AND 10000 OR p_hourly_cap NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a claim takes 1 to 10000 messages, with an hourly cap of 1 to 1000'
            USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(bool_or(p.scope = 'all'), false),
        coalesce(array_agg(p.value) FILTER (WHERE p.scope = 'type'), '{}'),
        coalesce(array_agg(p.value) FILTER (WHERE p.scope = 'template'), '{}')
    INTO all_paused, types, templates
    FROM engagement.active_pauses(clock_timestamp()) p;
    IF all_paused THEN
        RETURN;
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
              AND q.message_type <> ALL (types) AND q.template_key <> ALL (templates)
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

-- The fence: a message a pause committed since its claim holds is
-- "paused" (handed back uncharged; the claim skips it until the pause ends).
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
        WHEN engagement.is_paused(m.message_type, m.template_key, clock_timestamp())
             THEN 'paused'
        ELSE 'send' END
    FROM unnest(p_ids) AS i(id)
    LEFT JOIN engagement.message_queue m ON m.id = i.id
    LEFT JOIN engagement.engagement_states s ON s.user_id = m.user_id;
END
$$;

-- ---- grants ---------------------------------------------------------------------------------
INSERT INTO engagement.program_grants (programs, privileges, object) VALUES
    ('operator', 'SELECT', 'engagement.send_pauses'),
    ('status', 'SELECT', 'engagement.send_pauses'),
    ('operator', 'EXECUTE', 'FUNCTION engagement.pause_sending(text, text, timestamptz, text)'),
    ('operator', 'EXECUTE', 'FUNCTION engagement.resume_sending(text, text, text)'),
    ('operator', 'EXECUTE', 'FUNCTION engagement.requeue_messages(text, text[], text, '
        'timestamptz, timestamptz, text)'),
    ('operator', 'EXECUTE', 'FUNCTION engagement.cancel_messages(text, text, uuid, text, text)'),
    ('operator', 'EXECUTE', 'FUNCTION engagement.person_history(uuid, text, integer)');
