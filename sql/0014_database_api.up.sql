-- 0014_database_api: the database has an API, and it is the only way in
-- (DESIGN.md §5). Every write to a table that more than one program
-- depends on is a SECURITY DEFINER function with a narrow signature and
-- every rule inside it; the functions belong to engagement_owner, a NOLOGIN
-- role (not the migrating superuser); program roles keep SELECT on what
-- they read and EXECUTE on their functions, and no INSERT, UPDATE or DELETE
-- on a shared table. What only one program writes and reads stays a table
-- grant: the webhook's inbox, the sender's rate bucket, a job's own run and
-- lease rows (row-level security).
--
-- The state machine lives here, in one place: engagement.state_machine
-- (the ten transitions) and engagement.transition_users (its guards and
-- side effects), called by the daily checks, inbound events and the
-- webhook. Limits are never parameters: the 5-minute limit on future dates,
-- last-write-wins, forward-only delivery statuses, "only a sent message can
-- be delivered", "a provider stop only opts out". Audit and outbox rows are
-- built from the rows changed, and every audit row says which database
-- login caused it (audit_log.login). NOTIFY payloads carry no personal
-- data.

-- ---- the owner ---------------------------------------------------------------------
-- engagement_owner owns the API's functions: created here when this role
-- may create roles, and this role made a member so that it may hand them
-- over. When it may not, the functions stay this role's (not a superuser's
-- then) and migrate says what an administrator must run; the next migrate
-- up hands them over (engagement.apply_grants, below).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engagement_owner')
       AND (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user) THEN
        CREATE ROLE engagement_owner NOLOGIN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engagement_owner') THEN
        IF NOT pg_has_role(current_user, 'engagement_owner', 'USAGE') THEN
            BEGIN
                EXECUTE format('GRANT engagement_owner TO %I', current_user);
            EXCEPTION WHEN insufficient_privilege THEN
                NULL; -- said by migrate (roles_missing)
            END;
        END IF;
        IF pg_has_role(current_user, 'engagement_owner', 'USAGE') THEN
            -- functions the owner creates are nobody's to call until granted
            ALTER DEFAULT PRIVILEGES FOR ROLE engagement_owner
                REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
        END IF;
    END IF;
END
$$;

-- Who claimed a message (the last ten claims' owners, kept through a
-- recovery): a sender may record what became of a request it made after its
-- claim was recovered, and only then, and only for messages it claimed.
ALTER TABLE engagement.message_queue ADD COLUMN claimed_by text[] NOT NULL DEFAULT '{}';

-- Every audit row names the database login that caused it: unforgeable,
-- whatever a caller says.
ALTER TABLE engagement.audit_log ADD COLUMN login text DEFAULT session_user;

-- ---- the state machine -----------------------------------------------------------------
-- The ten valid transitions of DESIGN.md §1: the one place to add a trigger.
CREATE TABLE engagement.state_machine (
    from_state text NOT NULL,
    trigger text NOT NULL,
    to_state text NOT NULL,
    PRIMARY KEY (from_state, trigger)
);
INSERT INTO engagement.state_machine (from_state, trigger, to_state) VALUES
    ('active', 'inactivity_14d', 'goodbye_sent'),
    ('goodbye_sent', 'user_message', 'active'),
    ('goodbye_sent', 'goodbye_response_1', 'help_flow'),
    ('goodbye_sent', 'goodbye_response_2', 'remind_later'),
    ('goodbye_sent', 'goodbye_response_3', 'dormant'),
    ('goodbye_sent', 'goodbye_timeout', 'dormant'),
    ('help_flow', 'user_message', 'active'),
    ('remind_later', 'user_message', 'active'),
    ('remind_later', 'reminder_due', 'dormant'),
    ('dormant', 'user_message', 'active');

-- The trigger of a daily check, and the instant before which a user is
-- due (at least a day of inactivity: a limit, not an option).
CREATE FUNCTION engagement.due_trigger(p_check text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RETURN CASE p_check WHEN 'inactivity' THEN 'inactivity_14d'
        WHEN 'goodbye_timeout' THEN 'goodbye_timeout' WHEN 'reminder_due' THEN 'reminder_due'
        ELSE engagement.fail_arg('unknown check: ' || coalesce(p_check, 'NULL')) END;
END
$$;

CREATE FUNCTION engagement.due_cutoff(p_check text, p_now timestamptz, p_inactivity_days integer)
    RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_now IS NULL THEN
        RETURN engagement.fail_arg('the instant of a check may not be NULL');
    END IF;
    IF p_check = 'inactivity' THEN
        IF p_inactivity_days IS NULL OR p_inactivity_days NOT BETWEEN 1 AND 3650 THEN
            RETURN engagement.fail_arg('inactivity days must be 1 to 3650');
        END IF;
        RETURN p_now - make_interval(days => p_inactivity_days);
    END IF;
    RETURN p_now;
END
$$;

-- "goodbye_sent" or "goodbye_sent, help_flow, remind_later or dormant":
-- the states trigger p_trigger applies from, for an error message.
CREATE FUNCTION engagement.trigger_sources(p_trigger text) RETURNS text
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN count(*) <= 1 THEN min(x.from_state)
        ELSE array_to_string((array_agg(x.from_state ORDER BY x.pos))[1:count(*) - 1], ', ')
             || ' or ' || (array_agg(x.from_state ORDER BY x.pos DESC))[1] END
    FROM (SELECT m.from_state, array_position(ARRAY['active', 'goodbye_sent', 'help_flow',
                 'remind_later', 'dormant'], m.from_state) AS pos
          FROM engagement.state_machine m WHERE m.trigger = p_trigger) x
$$;

-- Raise invalid_parameter_value (22023) from an expression.
CREATE FUNCTION engagement.fail_arg(p_message text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '%', p_message USING ERRCODE = '22023';
END
$$;

-- The one function every transition goes through: trigger p_trigger for the
-- users p_users at the instants p_at (parallel arrays), run p_run_id. It
-- locks their state rows in user_id order (the order every writer locks
-- in), re-checks the transition and its guards under the lock, and writes
-- the state, one state_transitions row per user (metadata: days_inactive
-- always, response_type for goodbye triggers, unprompted_return for
-- returns from dormant), an outbox event per transition, the goodbye a
-- user_message out of goodbye_sent leaves unanswered cancelled, and for
-- inactivity_14d the goodbye message queued (and announced). Guards:
-- p_activity_before (last_activity_at before it), p_due_before (the
-- goodbye's expiry or the reminder before it), p_skip_opted_out,
-- p_after_state_change (an activity does not undo a state the user chose
-- by a goodbye reply made after it). One row back per user moved: their
-- position in p_users, id, the state they left, the goodbye queued.
-- Internal: only the functions below call it.
CREATE FUNCTION engagement.transition_users(p_trigger text, p_users uuid[], p_at timestamptz[],
    p_run_id uuid, p_activity_before timestamptz, p_due_before timestamptz,
    p_skip_opted_out boolean, p_after_state_change boolean,
    p_goodbye_hours integer, p_remind_days integer)
    RETURNS TABLE (ord bigint, user_id uuid, from_state text, message_id bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_goodbye_hours NOT BETWEEN 1 AND 720 OR p_remind_days NOT BETWEEN 1 AND 365 THEN
        RAISE EXCEPTION 'goodbye hours must be 1 to 720 and remind days 1 to 365'
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT i.user_id, i.at, i.ord
        FROM unnest(p_users, p_at) WITH ORDINALITY AS i(user_id, at, ord)
    ), cand AS (
        SELECT s.user_id, s.state AS from_state, sm.to_state,
               s.last_activity_at AS prev_activity, s.state_changed_at AS prev_changed,
               i.at, i.ord
        FROM engagement.engagement_states s
        JOIN input i ON i.user_id = s.user_id
        JOIN engagement.state_machine sm ON sm.from_state = s.state AND sm.trigger = p_trigger
        WHERE (p_activity_before IS NULL OR s.last_activity_at < p_activity_before)
          AND (p_due_before IS NULL OR CASE p_trigger
                 WHEN 'goodbye_timeout' THEN s.goodbye_expires_at
                 WHEN 'reminder_due' THEN s.remind_at END < p_due_before)
          AND (NOT p_after_state_change OR s.state_changed_at <= i.at
               OR coalesce(s.state_trigger, '') NOT LIKE 'goodbye_response_%')
          AND (NOT p_skip_opted_out OR NOT EXISTS (
               SELECT 1 FROM engagement.user_preferences o
               WHERE o.user_id = s.user_id AND o.reengagement_opt_out))
        ORDER BY s.user_id
        FOR UPDATE OF s
    ), upd AS (
        UPDATE engagement.engagement_states s SET
            state = c.to_state,
            state_changed_at = c.at,
            state_trigger = p_trigger,
            last_activity_at = CASE WHEN p_trigger = 'user_message'
                THEN greatest(s.last_activity_at, c.at) ELSE s.last_activity_at END,
            goodbye_sent_at = CASE p_trigger WHEN 'inactivity_14d' THEN c.at
                WHEN 'user_message' THEN NULL ELSE s.goodbye_sent_at END,
            goodbye_expires_at = CASE p_trigger
                WHEN 'inactivity_14d' THEN c.at + make_interval(hours => p_goodbye_hours)
                WHEN 'user_message' THEN NULL ELSE s.goodbye_expires_at END,
            remind_at = CASE p_trigger
                WHEN 'goodbye_response_2' THEN c.at + make_interval(days => p_remind_days)
                WHEN 'user_message' THEN NULL WHEN 'reminder_due' THEN NULL
                ELSE s.remind_at END
        FROM cand c WHERE s.user_id = c.user_id
        RETURNING s.user_id, c.from_state, c.to_state, c.prev_activity, c.prev_changed,
                  c.at, c.ord, s.goodbye_expires_at
    ), tr AS (
        INSERT INTO engagement.state_transitions
            (user_id, from_state, to_state, trigger, run_id, metadata, created_at)
        SELECT u.user_id, u.from_state, u.to_state, p_trigger, p_run_id,
            jsonb_build_object('days_inactive', greatest(0, floor(
                extract(epoch FROM (u.at - u.prev_activity)) / 86400))::int)
            || CASE p_trigger
                WHEN 'goodbye_response_1' THEN '{"response_type":"confused"}'
                WHEN 'goodbye_response_2' THEN '{"response_type":"busy"}'
                WHEN 'goodbye_response_3' THEN '{"response_type":"all_good"}'
                WHEN 'goodbye_timeout' THEN CASE WHEN EXISTS (
                    -- the goodbye never reached them: not sent, or a failed delivery
                    SELECT 1 FROM (SELECT q.status, q.delivery_status
                                   FROM engagement.message_queue q
                                   WHERE q.user_id = u.user_id AND q.message_type = 'goodbye'
                                   ORDER BY q.id DESC LIMIT 1) g
                    WHERE g.status <> 'sent' OR g.delivery_status = 'failed')
                    THEN '{"response_type":"undelivered"}'
                    ELSE '{"response_type":"timeout"}' END
                ELSE '{}' END::jsonb
            || CASE WHEN p_trigger = 'user_message' AND u.from_state = 'dormant'
                    THEN jsonb_build_object('unprompted_return',
                         u.at - u.prev_changed >= interval '3 days')
                    ELSE '{}'::jsonb END,
            u.at
        FROM upd u
        ORDER BY u.user_id
        RETURNING id
    ), mq AS (
        INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
            idempotency_key, scheduled_for, next_attempt_at, expires_at, run_id)
        SELECT u.user_id, 'goodbye', 'goodbye', '{}',
            u.user_id::text || ':goodbye_sent:' || to_char(u.at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
            u.at, u.at, u.goodbye_expires_at, p_run_id
        FROM upd u WHERE p_trigger = 'inactivity_14d'
        ORDER BY u.user_id
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, user_id
    ), held AS (
        -- Leaving goodbye_sent locks the goodbye a sender has claimed (a
        -- no-op update), so that its pre-send fence either sees this commit
        -- or has the request on the wire before this commits.
        UPDATE engagement.message_queue q SET locked_until = q.locked_until
        FROM upd u
        WHERE u.from_state = 'goodbye_sent' AND q.user_id = u.user_id
          AND q.message_type = 'goodbye' AND q.status = 'sending'
    ), cancelled AS (
        -- a user_message out of goodbye_sent cancels the goodbye not yet sent
        UPDATE engagement.message_queue q
        SET status = 'cancelled', last_error_code = 'user_returned',
            last_error = 'the user wrote again before it was sent'
        FROM upd u
        WHERE p_trigger = 'user_message' AND u.from_state = 'goodbye_sent'
          AND q.user_id = u.user_id AND q.message_type = 'goodbye' AND q.status = 'queued'
        RETURNING q.id
    ), announced AS MATERIALIZED (
        SELECT engagement.publish_transition_events(
                   (SELECT array_agg(t.id ORDER BY t.id) FROM tr t))
             + engagement.publish_message_events('message.queued',
                   (SELECT array_agg(m.id ORDER BY m.id) FROM mq m), p_run_id)
             + engagement.publish_message_events('message.cancelled',
                   (SELECT array_agg(c.id ORDER BY c.id) FROM cancelled c), p_run_id) AS n
    )
    -- (announced only reads: materialized, it runs because it is read here)
    SELECT u.ord, u.user_id, u.from_state, m.id
    FROM upd u LEFT JOIN mq m ON m.user_id = u.user_id
    CROSS JOIN announced;
END
$$;

-- The daily checks (engagement-daily): the next batch of users due for
-- p_check ('inactivity': active and quiet for p_inactivity_days, not opted
-- out; 'goodbye_timeout': the goodbye's window over; 'reminder_due'),
-- after the keyset (p_after_key, p_after_id), picked by the check's own
-- index, then moved through transition_users at p_now. One row: users
-- picked (fewer than p_limit: the check is done), moved (picked less those
-- changed meanwhile), goodbyes queued, and the keyset of the last picked.
CREATE FUNCTION engagement.transition_due(p_check text, p_now timestamptz,
    p_inactivity_days integer, p_after_key timestamptz, p_after_id uuid, p_limit integer,
    p_run_id uuid, p_goodbye_hours integer, p_remind_days integer)
    RETURNS TABLE (picked integer, moved integer, queued integer, last_key timestamptz,
                   last_id uuid)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ids uuid[];
    keys timestamptz[];
    n_moved integer;
    n_queued integer;
BEGIN
    IF p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'the batch size must be 1 to 100000' USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(d.user_id ORDER BY d.key, d.user_id), array_agg(d.key ORDER BY d.key, d.user_id)
    INTO ids, keys
    FROM engagement.due_users(p_check, p_now, p_inactivity_days, p_after_key, p_after_id,
                              p_limit) d;
    IF ids IS NULL THEN
        RETURN QUERY SELECT 0, 0, 0, NULL::timestamptz, NULL::uuid;
        RETURN;
    END IF;
    SELECT count(*), count(t.message_id) INTO n_moved, n_queued
    FROM engagement.transition_users(
        engagement.due_trigger(p_check), ids, array_fill(p_now, ARRAY[cardinality(ids)]),
        p_run_id,
        CASE WHEN p_check = 'inactivity' THEN engagement.due_cutoff(p_check, p_now, p_inactivity_days) END,
        CASE WHEN p_check <> 'inactivity' THEN engagement.due_cutoff(p_check, p_now, p_inactivity_days) END,
        p_check = 'inactivity', false, p_goodbye_hours, p_remind_days) t;
    RETURN QUERY SELECT cardinality(ids), n_moved, n_queued, keys[cardinality(keys)],
        ids[cardinality(ids)];
END
$$;

-- The same check for users named (engagement-daily retries a batch that
-- failed in halves, down to the user that fails): only those still due
-- move. One row per user moved, with the goodbye queued.
CREATE FUNCTION engagement.transition_due_users(p_check text, p_users uuid[], p_now timestamptz,
    p_inactivity_days integer, p_run_id uuid, p_goodbye_hours integer, p_remind_days integer)
    RETURNS TABLE (user_id uuid, message_id bigint)
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.user_id, t.message_id
    FROM engagement.transition_users(
        engagement.due_trigger(p_check), p_users,
        array_fill(p_now, ARRAY[cardinality(p_users)]), p_run_id,
        CASE WHEN p_check = 'inactivity' THEN engagement.due_cutoff(p_check, p_now, p_inactivity_days) END,
        CASE WHEN p_check <> 'inactivity' THEN engagement.due_cutoff(p_check, p_now, p_inactivity_days) END,
        p_check = 'inactivity', false, p_goodbye_hours, p_remind_days) t
$$;

-- The users a daily check would move next (keyset after (p_after_key,
-- p_after_id)), by the check's own index; not locked, not changed. What
-- engagement-daily retries a failed batch with.
CREATE FUNCTION engagement.due_users(p_check text, p_now timestamptz, p_inactivity_days integer,
    p_after_key timestamptz, p_after_id uuid, p_limit integer)
    RETURNS TABLE (user_id uuid, key timestamptz)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    cutoff timestamptz := engagement.due_cutoff(p_check, p_now, p_inactivity_days);
BEGIN
    PERFORM engagement.due_trigger(p_check);
    IF p_check = 'inactivity' THEN
        RETURN QUERY SELECT s.user_id, s.last_activity_at FROM engagement.engagement_states s
        WHERE s.state = 'active' AND s.last_activity_at < cutoff
          AND (p_after_key IS NULL OR (s.last_activity_at, s.user_id) > (p_after_key, p_after_id))
          AND NOT EXISTS (SELECT 1 FROM engagement.user_preferences o
                          WHERE o.user_id = s.user_id AND o.reengagement_opt_out)
        ORDER BY s.last_activity_at, s.user_id LIMIT p_limit;
    ELSIF p_check = 'goodbye_timeout' THEN
        RETURN QUERY SELECT s.user_id, s.goodbye_expires_at FROM engagement.engagement_states s
        WHERE s.state = 'goodbye_sent' AND s.goodbye_expires_at < cutoff
          AND (p_after_key IS NULL OR (s.goodbye_expires_at, s.user_id) > (p_after_key, p_after_id))
        ORDER BY s.goodbye_expires_at, s.user_id LIMIT p_limit;
    ELSE
        RETURN QUERY SELECT s.user_id, s.remind_at FROM engagement.engagement_states s
        WHERE s.state = 'remind_later' AND s.remind_at < cutoff
          AND (p_after_key IS NULL OR (s.remind_at, s.user_id) > (p_after_key, p_after_id))
        ORDER BY s.remind_at, s.user_id LIMIT p_limit;
    END IF;
END
$$;

-- ---- inbound events ------------------------------------------------------------------------
-- Apply inbound events (engagement-event, a person's messages through
-- engagement-webhook): p_events is a JSON array of {user_id, activity: true
-- | trigger, at, event_id}, in order. An activity records an
-- activity_events row, moves last_activity_at forward and makes the
-- user_message transition where one is valid (an activity older than a
-- state the user chose by a goodbye reply is only recorded); a trigger
-- makes that transition or fails with the reason. An event whose id was
-- applied before (or appears earlier in p_events) is a duplicate and
-- changes nothing; one dated more than five minutes ahead of the database
-- clock is refused. Triggers other than a goodbye reply (and user_message)
-- need the engagement_event role: the internet-facing receiver can record
-- a person's messages and replies, nothing else. A person's events apply
-- in order: each round takes the next event of every person; once only
-- activities of people now active are left, they are recorded all at once
-- (a delivery of thousands of messages from one number costs one round
-- more than one message). One row back per event: its position (1-based),
-- outcome (transitioned, recorded, failed, duplicate, unknown_user), the
-- state before and after, and why it failed.
CREATE FUNCTION engagement.apply_events(p_events jsonb, p_run_id uuid)
    RETURNS TABLE (ord integer, outcome text, from_state text, to_state text, error text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    n integer;
    u uuid[];
    act boolean[];
    trg text[];
    ats timestamptz[];
    eid text[];
    rnk integer[];
    res_outcome text[];
    res_from text[];
    res_to text[];
    res_error text[];
    late boolean[];
    r integer := 0;
    max_rank integer;
    full_rights boolean := EXISTS (
        SELECT 1 FROM pg_roles r WHERE r.rolname IN ('engagement_event', 'engagement_operator')
          AND pg_has_role(session_user, r.oid, 'USAGE'))
        OR (SELECT rolsuper FROM pg_roles WHERE rolname = session_user);
    rec record;
    t text;
    i integer;
    ids uuid[];
    ins timestamptz[];
    idx integer[];
    gidx integer[];
BEGIN
    -- the events, checked; the rank of each among its person's events
    WITH e AS (
        SELECT x.ord::integer AS ord, x.j
        FROM jsonb_array_elements(coalesce(p_events, '[]')) WITH ORDINALITY AS x(j, ord)
    ), f AS (
        SELECT e.ord, (e.j->>'user_id')::uuid AS user_id,
            coalesce((e.j->>'activity')::boolean, false) AS activity,
            e.j->>'trigger' AS trigger, (e.j->>'at')::timestamptz AS at,
            e.j->>'event_id' AS event_id
        FROM e
    )
    SELECT count(*), array_agg(f.user_id ORDER BY f.ord), array_agg(f.activity ORDER BY f.ord),
        array_agg(f.trigger ORDER BY f.ord), array_agg(f.at ORDER BY f.ord),
        array_agg(f.event_id ORDER BY f.ord)
    INTO n, u, act, trg, ats, eid
    FROM f;
    IF n = 0 THEN
        RETURN;
    END IF;
    res_outcome := array_fill(NULL::text, ARRAY[n]);
    res_from := res_outcome;
    res_to := res_outcome;
    res_error := res_outcome;
    late := array_fill(false, ARRAY[n]);
    rnk := array_fill(0, ARRAY[n]);

    FOR i IN 1..n LOOP
        IF u[i] IS NULL OR ats[i] IS NULL OR (NOT act[i] AND trg[i] IS NULL)
           OR (act[i] AND trg[i] IS NOT NULL) THEN
            RAISE EXCEPTION 'event %: give user_id, at, and activity true or a trigger', i
                USING ERRCODE = '22023';
        END IF;
        IF eid[i] IS NOT NULL AND length(eid[i]) NOT BETWEEN 1 AND 128 THEN
            RAISE EXCEPTION 'event %: an event id is 1 to 128 characters', i
                USING ERRCODE = '22023';
        END IF;
        IF NOT act[i] AND NOT EXISTS (SELECT 1 FROM engagement.state_machine m
                                      WHERE m.trigger = trg[i]) THEN
            RAISE EXCEPTION 'event %: unknown trigger %', i, trg[i] USING ERRCODE = '22023';
        END IF;
        IF NOT act[i] AND NOT full_rights
           AND trg[i] NOT IN ('user_message', 'goodbye_response_1', 'goodbye_response_2',
                              'goodbye_response_3') THEN
            RAISE EXCEPTION 'event %: % may record activity and goodbye replies, not %',
                i, session_user, trg[i] USING ERRCODE = '42501';
        END IF;
    END LOOP;

    -- every person's state row locked, in user_id order (the order every
    -- writer locks in), before anything is read
    PERFORM 1 FROM engagement.engagement_states s WHERE s.user_id = ANY (u)
    ORDER BY s.user_id FOR UPDATE;

    -- refused before anything: the future, unknown people, ids seen before
    -- (or earlier in this call)
    FOR rec IN
        SELECT i.i,
            ats[i.i] > clock_timestamp() + interval '5 minutes' AS future,
            NOT EXISTS (SELECT 1 FROM engagement.users x WHERE x.id = u[i.i]) AS unknown,
            eid[i.i] IS NOT NULL AND (
                i.i > min(i.i) OVER (PARTITION BY eid[i.i])
                OR EXISTS (SELECT 1 FROM engagement.inbound_events b
                           WHERE b.event_id = eid[i.i] AND b.kind = 'event')) AS dup
        FROM generate_series(1, n) i(i)
    LOOP
        IF rec.dup THEN
            res_outcome[rec.i] := 'duplicate';
        ELSIF rec.future THEN
            res_outcome[rec.i] := 'failed';
            res_error[rec.i] := format('the event is dated %s, more than 5 minutes ahead of '
                'the database clock: refused',
                to_char(ats[rec.i] AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
        ELSIF rec.unknown THEN
            res_outcome[rec.i] := 'unknown_user';
            res_error[rec.i] := 'no user with id ' || u[rec.i];
        END IF;
    END LOOP;

    -- ranks among each person's events still to apply
    SELECT array_agg(coalesce(k.rk, 0) ORDER BY i.i), max(k.rk) INTO rnk, max_rank
    FROM generate_series(1, n) i(i)
    LEFT JOIN (SELECT j.i, row_number() OVER (PARTITION BY u[j.i] ORDER BY j.i)::integer AS rk
               FROM generate_series(1, n) j(i) WHERE res_outcome[j.i] IS NULL) k ON k.i = i.i;

    WHILE r < coalesce(max_rank, 0) LOOP
        r := r + 1;
        -- what is left is activity of people who are active now: all at once
        IF NOT EXISTS (
            SELECT 1 FROM generate_series(1, n) i(i)
            LEFT JOIN engagement.engagement_states s ON s.user_id = u[i.i]
            WHERE rnk[i.i] >= r AND (NOT act[i.i] OR s.state IS DISTINCT FROM 'active'))
        THEN
            SELECT array_agg(i.i) INTO idx FROM generate_series(1, n) i(i) WHERE rnk[i.i] >= r;
            INSERT INTO engagement.activity_events (user_id, occurred_at, kind)
            SELECT u[k], ats[k], 'message' FROM unnest(idx) k ORDER BY k;
            UPDATE engagement.engagement_states s SET last_activity_at = m.at
            FROM (SELECT u[k] AS user_id, max(ats[k]) AS at FROM unnest(idx) k GROUP BY 1) m
            WHERE s.user_id = m.user_id AND s.last_activity_at < m.at;
            FOREACH i IN ARRAY idx LOOP
                res_outcome[i] := 'recorded';
                res_from[i] := 'active';
                res_to[i] := 'active';
            END LOOP;
            EXIT;
        END IF;

        -- round r: each person's r-th event (distinct people)
        SELECT array_agg(i.i ORDER BY i.i) INTO idx FROM generate_series(1, n) i(i)
        WHERE rnk[i.i] = r;
        -- 1. activities: a state row for people who have none yet
        INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, state_changed_at)
        SELECT u[k], 'active', ats[k], ats[k] FROM unnest(idx) k WHERE act[k]
        ORDER BY u[k]
        ON CONFLICT (user_id) DO NOTHING;
        -- 2. activities: the event row; last_activity_at of the active forward
        INSERT INTO engagement.activity_events (user_id, occurred_at, kind)
        SELECT u[k], ats[k], 'message' FROM unnest(idx) k WHERE act[k] ORDER BY k;
        UPDATE engagement.engagement_states s SET last_activity_at = ats[k]
        FROM unnest(idx) k
        WHERE act[k] AND s.user_id = u[k] AND s.state = 'active' AND s.last_activity_at < ats[k];
        -- the states now; active people's activities need no transition
        FOR rec IN SELECT k, s.state FROM unnest(idx) k
                   LEFT JOIN engagement.engagement_states s ON s.user_id = u[k] LOOP
            res_from[rec.k] := rec.state;
            res_to[rec.k] := rec.state;
            IF act[rec.k] AND rec.state = 'active' THEN
                res_outcome[rec.k] := 'recorded';
            END IF;
        END LOOP;
        -- 3. the transitions, a trigger at a time (an activity of someone
        -- not active is their user_message)
        FOR t IN SELECT DISTINCT coalesce(trg[k], 'user_message') FROM unnest(idx) k
                 WHERE res_outcome[k] IS NULL LOOP
            SELECT array_agg(u[k] ORDER BY k), array_agg(ats[k] ORDER BY k),
                   array_agg(k ORDER BY k)
            INTO ids, ins, gidx
            FROM generate_series(1, n) k
            WHERE rnk[k] = r AND res_outcome[k] IS NULL
              AND coalesce(trg[k], 'user_message') = t;
            FOR rec IN SELECT m.ord, m.from_state, sm.to_state
                       FROM engagement.transition_users(t, ids, ins, p_run_id, NULL, NULL,
                                false, t = 'user_message', 48, 14) m
                       JOIN engagement.state_machine sm
                         ON sm.from_state = m.from_state AND sm.trigger = t LOOP
                res_outcome[gidx[rec.ord]] := 'transitioned';
                res_from[gidx[rec.ord]] := rec.from_state;
                res_to[gidx[rec.ord]] := rec.to_state;
            END LOOP;
            -- not moved: an activity is history; a trigger fails, saying why
            FOREACH i IN ARRAY gidx LOOP
                CONTINUE WHEN res_outcome[i] IS NOT NULL;
                IF act[i] THEN
                    res_outcome[i] := 'recorded';
                    late[i] := true;
                ELSIF res_from[i] IS NULL THEN
                    res_outcome[i] := 'failed';
                    res_error[i] := format('invalid transition: user %s has no engagement state '
                        'yet (no activity recorded), and %s needs one', u[i], t);
                ELSIF EXISTS (SELECT 1 FROM engagement.state_machine sm
                              WHERE sm.from_state = res_from[i] AND sm.trigger = t) THEN
                    res_outcome[i] := 'failed';
                    res_error[i] := format('invalid transition: user %s chose state %s by a '
                        'goodbye reply made after this %s (at %s)', u[i], res_from[i], t,
                        to_char(ats[i] AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
                ELSE
                    res_outcome[i] := 'failed';
                    res_error[i] := format('invalid transition: user %s is in state %s, and %s '
                        'applies only from %s', u[i], res_from[i], t,
                        engagement.trigger_sources(t));
                END IF;
            END LOOP;
        END LOOP;
        -- 4. late activities still move last_activity_at forward (after the
        -- transitions, whose days_inactive reads the previous value)
        UPDATE engagement.engagement_states s SET last_activity_at = ats[k]
        FROM generate_series(1, n) k
        WHERE rnk[k] = r AND late[k] AND s.user_id = u[k] AND s.last_activity_at < ats[k];
    END LOOP;

    -- the ids of what was applied, with what it produced
    INSERT INTO engagement.inbound_events (event_id, kind, user_id, outcome, detail, run_id)
    SELECT eid[k], 'event', u[k], res_outcome[k],
        jsonb_build_object('action', CASE WHEN act[k] THEN 'activity' ELSE trg[k] END,
                           'from_state', res_from[k], 'to_state', res_to[k]),
        p_run_id
    FROM generate_series(1, n) k
    WHERE eid[k] IS NOT NULL AND res_outcome[k] IN ('transitioned', 'recorded');

    RETURN QUERY SELECT k, res_outcome[k], res_from[k], res_to[k], res_error[k]
    FROM generate_series(1, n) k;
END
$$;

-- ---- counts ------------------------------------------------------------------------------
-- The minute's counts of what happened to messages and preferences
-- (engagement-status reads them): one (kind, code) pair per thing counted,
-- code NULL for none. Upserted in key order, so two writers never
-- deadlock here. Internal: the functions below that count call it. How
-- many rows it touched.
CREATE FUNCTION engagement.count_messages(p_kind text[], p_code text[]) RETURNS integer
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH ins AS (
        INSERT INTO engagement.message_counts (minute, kind, code, n)
        SELECT date_trunc('minute', clock_timestamp()), kind, coalesce(code, ''), count(*)
        FROM unnest(p_kind, p_code) AS k(kind, code) WHERE kind IS NOT NULL
        GROUP BY 2, 3 ORDER BY 2, 3
        ON CONFLICT (minute, kind, code) DO UPDATE
            SET n = engagement.message_counts.n + excluded.n
        RETURNING 1)
    SELECT count(*)::integer FROM ins
$$;

-- ---- preferences -------------------------------------------------------------------------
-- Apply opt-out and opt-in changes, last write wins by the time each was
-- made. p_changes: a JSON array of {user_id, opt_out, source, at, reason,
-- message_id, event_id}, in order (several for one person apply in order).
-- A change applies when it is not older than what stands (ties apply):
-- applied (the value changes: the row, an audit row, an outbox event, a
-- NOTIFY on engagement_preferences carrying the event's id and nothing
-- personal; an opt-out blocks the person's queued messages and locks those
-- a sender claimed, whose pre-send fence then sees it), unchanged (the same
-- value: its time and source move forward, the audit log records the
-- reaffirmation), stale (older: nothing written). A change dated more than
-- five minutes ahead of the database clock is refused (future: a wrong
-- clock would otherwise freeze the preference until then, "stop"
-- included); one whose event_id was applied before, or appears earlier,
-- is a duplicate. One row back per change whose user exists: position,
-- outcome, the value before it, the instant it carries (Unix microseconds).
-- Internal: change_preferences, record_whatsapp_preferences and
-- provider_stops call it.
CREATE FUNCTION engagement.apply_preferences(p_changes jsonb, p_run_id uuid)
    RETURNS TABLE (ord bigint, outcome text, old_value boolean, at_us bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    bad text;
BEGIN
    SELECT format('change %s: %s', r.ord, CASE
        WHEN x.user_id IS NULL OR x.opt_out IS NULL THEN 'user_id and opt_out are required'
        WHEN x.source IS NULL OR x.source NOT IN ('whatsapp', 'web', 'cli', 'api')
            THEN 'source must be whatsapp, web, cli or api'
        WHEN length(x.reason) > 1100 THEN 'the reason is longer than 1100 characters'
        WHEN length(x.event_id) NOT BETWEEN 1 AND 128 THEN 'an event id is 1 to 128 characters'
        END)
    INTO bad
    FROM jsonb_array_elements(coalesce(p_changes, '[]')) WITH ORDINALITY AS r(j, ord),
         LATERAL jsonb_to_record(r.j) AS x(user_id uuid, opt_out boolean, source text,
                                           reason text, event_id text)
    WHERE x.user_id IS NULL OR x.opt_out IS NULL OR x.source IS NULL
       OR x.source NOT IN ('whatsapp', 'web', 'cli', 'api') OR length(x.reason) > 1100
       OR length(x.event_id) NOT BETWEEN 1 AND 128
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION '%', bad USING ERRCODE = '22023';
    END IF;

    -- a preference row for every user who exists, none for those who do not
    -- (rows inserted here are visible to the next statement)
    INSERT INTO engagement.user_preferences (user_id)
    SELECT u.id FROM engagement.users u
    WHERE u.id IN (SELECT (c->>'user_id')::uuid FROM jsonb_array_elements(p_changes) c)
    ORDER BY u.id
    ON CONFLICT (user_id) DO NOTHING;

    RETURN QUERY
    WITH input AS (
        SELECT r.ord, i.*
        FROM jsonb_array_elements(p_changes) WITH ORDINALITY AS r(j, ord),
             LATERAL jsonb_to_record(r.j) AS i(user_id uuid, opt_out boolean, at timestamptz,
                 source text, reason text, message_id bigint, event_id text)
    ), old AS (
        SELECT p.user_id, p.reengagement_opt_out AS v, p.reengagement_opt_out_updated_at AS t,
               p.reengagement_opt_out_source AS src
        FROM engagement.user_preferences p
        WHERE p.user_id IN (SELECT user_id FROM input)
        ORDER BY p.user_id FOR UPDATE
    ), c AS (
        SELECT i.*, coalesce(i.at, now()) AS eff, o.v AS init_v, o.t AS init_t,
            o.src AS init_src,
            CASE WHEN i.event_id IS NOT NULL AND (
                     i.ord > min(i.ord) OVER (PARTITION BY i.event_id)
                     OR EXISTS (SELECT 1 FROM engagement.inbound_events e
                                WHERE e.event_id = i.event_id AND e.kind = 'preference'))
                     THEN 'duplicate'
                 WHEN i.at > clock_timestamp() + interval '5 minutes' THEN 'future' END AS refused
        FROM input i JOIN old o USING (user_id)
    ), s AS (
        -- what stands before each valid change: the latest instant so far
        -- (stale ones are older than it, so counting them changes nothing)
        SELECT c.*, greatest(c.init_t, max(c.eff) OVER (PARTITION BY c.user_id ORDER BY c.ord
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) AS prev_t
        FROM c WHERE c.refused IS NULL
    ), g AS (
        -- seg: how many changes that stood so far (this one included)
        SELECT s.*, s.prev_t IS NOT NULL AND s.eff < s.prev_t AS stale,
            count(*) FILTER (WHERE s.prev_t IS NULL OR s.eff >= s.prev_t) OVER (
                PARTITION BY s.user_id ORDER BY s.ord ROWS UNBOUNDED PRECEDING) AS seg
        FROM s
    ), d AS (
        -- the value before each: the last change that stood, else the row's
        SELECT g.*,
            CASE WHEN p.user_id IS NULL THEN g.init_v ELSE p.opt_out END AS old_v,
            CASE WHEN p.user_id IS NULL THEN g.init_t ELSE p.eff END AS old_t,
            CASE WHEN p.user_id IS NULL THEN g.init_src ELSE p.source END AS old_src,
            CASE WHEN g.stale THEN 'stale'
                 WHEN (CASE WHEN p.user_id IS NULL THEN g.init_v ELSE p.opt_out END) = g.opt_out
                     THEN 'unchanged'
                 ELSE 'applied' END AS outcome
        FROM g LEFT JOIN g p ON p.user_id = g.user_id AND NOT p.stale
            AND p.seg = g.seg - CASE WHEN g.stale THEN 0 ELSE 1 END
    ), fin AS (
        -- each person's last change that stood
        SELECT DISTINCT ON (d.user_id) d.user_id, d.opt_out, d.eff, d.source
        FROM d WHERE d.outcome IN ('applied', 'unchanged')
        ORDER BY d.user_id, d.ord DESC
    ), upd AS (
        UPDATE engagement.user_preferences p SET reengagement_opt_out = f.opt_out,
            reengagement_opt_out_updated_at = f.eff, reengagement_opt_out_source = f.source
        FROM fin f WHERE p.user_id = f.user_id
        RETURNING p.user_id
    ), ob AS (
        INSERT INTO engagement.outbox_events
            (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
        SELECT 'user', d.user_id::text, 'preferences.reengagement_changed',
            jsonb_build_object('user_id', d.user_id, 'opt_out', d.opt_out,
                'source', d.source, 'at', d.eff),
            p_run_id, d.user_id
        FROM d WHERE d.outcome = 'applied'
        ORDER BY d.ord
        RETURNING id
    ), stopped AS (
        UPDATE engagement.message_queue q SET
            status = CASE WHEN q.status = 'queued' THEN 'blocked' ELSE q.status END,
            last_error_code = CASE WHEN q.status = 'queued' THEN 'opted_out'
                                   ELSE q.last_error_code END,
            last_error = CASE WHEN q.status = 'queued'
                              THEN 'the user opted out of re-engagement messages'
                              ELSE q.last_error END
        FROM (SELECT DISTINCT ON (d.user_id) d.user_id, d.source FROM d
              WHERE d.outcome = 'applied' AND d.opt_out ORDER BY d.user_id, d.ord) a
        WHERE q.user_id = a.user_id AND q.status IN ('queued', 'sending')
        RETURNING q.id, q.user_id, q.status, q.attempts, a.source
    ), seen AS (
        INSERT INTO engagement.inbound_events (event_id, kind, user_id, outcome, detail, run_id)
        SELECT d.event_id, 'preference', d.user_id, d.outcome,
            jsonb_build_object('opt_out', d.opt_out, 'source', d.source, 'at', d.eff), p_run_id
        FROM d WHERE d.event_id IS NOT NULL
    ), counted AS (
        SELECT engagement.count_messages(
            array_agg(CASE WHEN d.opt_out THEN 'opt_out' ELSE 'opt_in' END), array_agg(d.source)) AS n
        FROM d WHERE d.outcome = 'applied'
    ), audited AS (
        -- the aggregates read d and stopped whole, so this runs once, after them
        SELECT engagement.write_audit(
            coalesce((SELECT jsonb_agg(jsonb_build_object('user_id', d.user_id,
                'message_id', d.message_id,
                'event', CASE WHEN d.outcome = 'unchanged' THEN 'reengagement_reaffirmed'
                              WHEN d.opt_out THEN 'reengagement_opted_out'
                              ELSE 'reengagement_opted_in' END,
                'source', d.source,
                'details', jsonb_strip_nulls(jsonb_build_object('old_value', d.old_v,
                    'new_value', d.opt_out, 'at', d.eff, 'previous_at', d.old_t,
                    'previous_source', d.old_src, 'reason', d.reason)),
                'run_id', p_run_id) ORDER BY d.ord)
             FROM d WHERE d.outcome IN ('applied', 'unchanged')), '[]'::jsonb)
            || coalesce((SELECT jsonb_agg(jsonb_build_object('user_id', s.user_id,
                'message_id', s.id, 'event', 'message_blocked', 'source', s.source,
                'details', jsonb_build_object('attempts', s.attempts, 'reason', 'opted_out'),
                'run_id', p_run_id) ORDER BY s.id)
             FROM stopped s WHERE s.status = 'blocked'), '[]'::jsonb)) AS n
    ), notified AS (
        -- the event's id: whoever listens reads what changed through its own grants
        SELECT count(pg_notify('engagement_preferences', ob.id::text)) AS n FROM ob
    ), forced AS MATERIALIZED (
        SELECT (SELECT n FROM audited) + (SELECT n FROM notified) + (SELECT n FROM counted) AS n
    )
    -- (a CTE that only reads runs when referenced: audited, notified and
    -- counted are)
    SELECT x.ord, x.outcome, x.old_v, (extract(epoch FROM x.eff) * 1000000)::bigint
    FROM (SELECT d.ord, d.outcome, d.old_v, d.eff FROM d
          UNION ALL
          SELECT c.ord, c.refused, c.init_v, c.eff FROM c WHERE c.refused IS NOT NULL) x
    CROSS JOIN forced
    ORDER BY x.ord;
END
$$;

-- optout-set (and the operator): any channel's change, with its reason.
CREATE FUNCTION engagement.change_preferences(p_changes jsonb, p_run_id uuid)
    RETURNS TABLE (ord bigint, outcome text, old_value boolean, at_us bigint)
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM engagement.apply_preferences(p_changes, p_run_id)
$$;

-- engagement-webhook: "parar lembretes" and the like in a person's own
-- WhatsApp messages: {user_id, opt_out, at, event_id (the wamid),
-- phrase_locale}; the source is whatsapp and the consent record says it
-- was a phrase, whatever else a caller says.
CREATE FUNCTION engagement.record_whatsapp_preferences(p_changes jsonb, p_run_id uuid)
    RETURNS TABLE (ord bigint, outcome text, old_value boolean, at_us bigint)
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM engagement.apply_preferences(
        (SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                    'user_id', c.j->'user_id', 'opt_out', c.j->'opt_out', 'at', c.j->'at',
                    'event_id', c.j->'event_id', 'source', 'whatsapp',
                    'reason', 'WhatsApp message, phrase ('
                              || left(coalesce(c.j->>'phrase_locale', '?'), 35) || ')'))
                ORDER BY c.n), '[]'::jsonb)
         FROM jsonb_array_elements(p_changes) WITH ORDINALITY AS c(j, n)),
        p_run_id)
$$;

-- A stop WhatsApp reported (error 131050: the person pressed "stop" on
-- marketing messages): an opt-out from whatsapp, nothing else, for the
-- person the message was for. p_stops: [{message_id, at}]. Internal: the
-- sender's and the webhook's functions call it for what the provider said.
CREATE FUNCTION engagement.provider_stops(p_stops jsonb, p_run_id uuid, p_what text)
    RETURNS integer LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*)::integer FROM engagement.apply_preferences(
        (SELECT coalesce(jsonb_agg(jsonb_build_object('user_id', m.user_id, 'opt_out', true,
                    'source', 'whatsapp', 'at', least((s.j->>'at')::timestamptz, clock_timestamp()),
                    'message_id', m.id, 'reason', p_what) ORDER BY s.n), '[]'::jsonb)
         FROM jsonb_array_elements(p_stops) WITH ORDINALITY AS s(j, n)
         JOIN engagement.message_queue m ON m.id = (s.j->>'message_id')::bigint),
        p_run_id)
$$;

-- ---- delivery statuses (engagement-webhook) ------------------------------------------------
-- p_statuses: [{wamid, queue_id, status, at, code}]. Each is matched to its
-- message by the provider's id (else by mq:ID while that message has no
-- other provider id), and only to a message that was sent (or is being
-- sent: its write-back may come after Meta's status): a status for a
-- message blocked, cancelled or never sent changes nothing. Per message the newest
-- evidence wins, forward only: read > delivered > sent, failed only from
-- sent (a later delivered or read outweighs it); read sets delivered_at
-- too. A status dated more than five minutes ahead of the database clock
-- is ignored. Changes are published (message.delivered, message.read,
-- message.undelivered), counted, and a failure is audited; 131050 records
-- the person's opt-out. One row: statuses, unmatched, future, and how many
-- messages became delivered, read and failed, and stops recorded.
CREATE FUNCTION engagement.apply_delivery_statuses(p_statuses jsonb, p_run_id uuid)
    RETURNS TABLE (statuses integer, unmatched integer, future integer, delivered integer,
                   read integer, failed integer, stops integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    n_stops integer := 0;
BEGIN
    IF EXISTS (SELECT 1 FROM jsonb_to_recordset(coalesce(p_statuses, '[]'))
                   AS s(wamid text, status text, at timestamptz, code text)
               WHERE s.status IS NULL OR s.status NOT IN ('sent', 'delivered', 'read', 'failed')
                  OR s.at IS NULL OR length(s.wamid) > 512 OR length(s.code) > 32) THEN
        RAISE EXCEPTION 'a status is sent, delivered, read or failed, with its instant'
            USING ERRCODE = '22023';
    END IF;
    WITH s0 AS (
        SELECT * FROM jsonb_to_recordset(coalesce(p_statuses, '[]'))
            AS s(wamid text, queue_id bigint, status text, at timestamptz, code text)
    ), s AS (
        SELECT * FROM s0 WHERE s0.at <= clock_timestamp() + interval '5 minutes'
    ), m AS (
        -- (sending: the request is on the wire, or answered and not yet
        -- written back; Meta's status may come first)
        SELECT q.id AS mid, s.* FROM s
        JOIN engagement.message_queue q ON q.provider_message_id = s.wamid
            AND q.status IN ('sent', 'sending')
        UNION ALL
        SELECT q.id, s.* FROM s JOIN engagement.message_queue q ON q.id = s.queue_id
        WHERE q.status IN ('sent', 'sending') AND q.provider_message_id IS NULL AND NOT EXISTS (
            SELECT 1 FROM engagement.message_queue x WHERE x.provider_message_id = s.wamid)
    ), agg AS (
        SELECT mid,
            max(CASE status WHEN 'sent' THEN 1 WHEN 'delivered' THEN 2 WHEN 'read' THEN 3
                ELSE 0 END) AS top,
            bool_or(status = 'failed') AS failed,
            min(at) FILTER (WHERE status IN ('delivered', 'read')) AS d_at,
            min(at) FILTER (WHERE status = 'read') AS r_at,
            min(at) FILTER (WHERE status = 'failed') AS f_at,
            min(code) FILTER (WHERE status = 'failed') AS code
        FROM m GROUP BY mid
    ), cur AS (
        SELECT q.id, q.user_id, q.message_type, q.delivery_status AS old, a.*
        FROM agg a JOIN engagement.message_queue q ON q.id = a.mid
        ORDER BY q.id FOR UPDATE OF q
    ), nx AS (
        SELECT c.*, CASE
            WHEN c.top = 3 OR c.old = 'read' THEN 'read'
            WHEN c.top = 2 OR c.old = 'delivered' THEN 'delivered'
            WHEN c.old = 'failed' OR c.failed THEN 'failed'
            ELSE 'sent' END AS next
        FROM cur c
    ), upd AS (
        UPDATE engagement.message_queue q SET delivery_status = n.next,
            delivered_at = CASE WHEN n.next IN ('delivered', 'read')
                THEN coalesce(q.delivered_at, n.d_at, n.r_at) ELSE q.delivered_at END,
            read_at = CASE WHEN n.next = 'read' THEN coalesce(q.read_at, n.r_at)
                ELSE q.read_at END,
            delivery_error_code = CASE WHEN n.next = 'failed'
                THEN coalesce(q.delivery_error_code, n.code) ELSE q.delivery_error_code END,
            delivery_failed_at = CASE WHEN n.next = 'failed'
                THEN coalesce(q.delivery_failed_at, n.f_at) ELSE q.delivery_failed_at END
        FROM nx n WHERE q.id = n.id AND (n.next IS DISTINCT FROM n.old
            OR (n.next IN ('delivered', 'read') AND q.delivered_at IS NULL)
            OR (n.next = 'read' AND q.read_at IS NULL))
        RETURNING q.id, q.user_id, q.message_type, n.old, q.delivery_status AS next,
            q.delivery_error_code AS code, n.f_at, q.delivered_at, q.read_at,
            n.old IS DISTINCT FROM 'delivered' AND n.old IS DISTINCT FROM 'read'
                AND q.delivery_status IN ('delivered', 'read') AS newly_delivered,
            n.old IS DISTINCT FROM 'read' AND q.delivery_status = 'read' AS newly_read,
            n.old IS DISTINCT FROM 'failed' AND q.delivery_status = 'failed' AS newly_failed
    ), ob AS (
        SELECT engagement.publish_message_events('message.delivered',
                (SELECT array_agg(id ORDER BY id) FROM upd WHERE newly_delivered), p_run_id)
            + engagement.publish_message_events('message.read',
                (SELECT array_agg(id ORDER BY id) FROM upd WHERE newly_read), p_run_id)
            + engagement.publish_message_events('message.undelivered',
                (SELECT array_agg(id ORDER BY id) FROM upd WHERE newly_failed), p_run_id) AS n
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object('user_id', u.user_id,
            'message_id', u.id, 'event', 'message_undelivered', 'source', 'whatsapp',
            'details', jsonb_build_object('error_code', u.code, 'at', u.f_at),
            'run_id', p_run_id) ORDER BY u.id) FILTER (WHERE u.newly_failed)) AS n
        FROM upd u
    ), counted AS (
        SELECT engagement.count_messages(array_agg(kind), array_agg(code)) AS n FROM (
            SELECT 'delivered' AS kind, NULL AS code FROM upd WHERE newly_delivered
            UNION ALL SELECT 'read', NULL FROM upd WHERE newly_read
            UNION ALL SELECT 'undelivered', code FROM upd WHERE newly_failed) k
    )
    SELECT (SELECT count(*) FROM s0)::integer AS statuses,
        (SELECT count(*) FROM s WHERE NOT EXISTS (SELECT 1 FROM m
            WHERE m.wamid = s.wamid AND m.status = s.status))::integer AS unmatched,
        (SELECT count(*) FROM s0)::integer - (SELECT count(*) FROM s)::integer AS future,
        (SELECT count(*) FROM upd WHERE newly_delivered)::integer AS delivered,
        (SELECT count(*) FROM upd WHERE newly_read)::integer AS read,
        (SELECT count(*) FROM upd WHERE newly_failed)::integer AS failed,
        (SELECT jsonb_agg(jsonb_build_object('message_id', id, 'at', f_at) ORDER BY id)
         FROM upd WHERE newly_failed AND code = '131050') AS stops,
        -- (ob, audit and counted only read: they run because they are read here)
        (SELECT n FROM ob) + (SELECT n FROM audit) + (SELECT n FROM counted) AS written
    INTO r;
    IF r.stops IS NOT NULL THEN
        n_stops := engagement.provider_stops(r.stops, p_run_id,
            'WhatsApp delivery status 131050: the user stopped marketing messages');
    END IF;
    RETURN QUERY SELECT r.statuses, r.unmatched, r.future, r.delivered, r.read, r.failed, n_stops;
END
$$;

-- ---- the sender (queue-send) -------------------------------------------------------------
-- Claim up to p_limit due messages (oldest next_attempt_at first) for
-- p_owner with a lease of p_lease_s seconds, and read everything their
-- checks need. The ARRAY(...) fence keeps the planner from updating more
-- rows than the SKIP LOCKED select chose. The user's newest sends (the
-- hourly cap) are found by sent_at alone (only sent messages have one),
-- which only message_queue_user_sent_idx serves. p_now: decide as of then
-- (NULL: the database's clock).
CREATE FUNCTION engagement.claim_messages(p_owner text, p_now timestamptz, p_lease_s integer,
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

-- A sender's name on its claims and the length of a lease: checked.
CREATE FUNCTION engagement.check_claim(p_owner text, p_lease_s integer) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_owner IS NULL OR length(p_owner) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'the owner of a claim is 1 to 200 characters' USING ERRCODE = '22023';
    END IF;
    IF p_lease_s IS NULL OR p_lease_s NOT BETWEEN 5 AND 3600 THEN
        RAISE EXCEPTION 'a lease is 5 to 3600 seconds' USING ERRCODE = '22023';
    END IF;
END
$$;

-- The pre-send fence (migration 0007), now the owner's: its locks need
-- what the sender's role does not have.
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

-- Move the lease of every claim of p_owner forward, and touch its run's
-- heartbeat (a queue-send run: a run whose heartbeat stops has died). The
-- ids renewed (a claim missing is not the owner's any more).
CREATE FUNCTION engagement.renew_claims(p_owner text, p_run_id uuid, p_lease_s integer)
    RETURNS TABLE (id bigint) LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM engagement.check_claim(p_owner, p_lease_s);
    UPDATE engagement.job_runs SET heartbeat_at = clock_timestamp()
    WHERE run_id = p_run_id AND program = 'queue-send' AND status = 'running';
    RETURN QUERY
    UPDATE engagement.message_queue SET
        locked_until = clock_timestamp() + make_interval(secs => p_lease_s)
    WHERE locked_by = p_owner AND status = 'sending'
    RETURNING message_queue.id;
END
$$;

-- Claims whose lease ran out (their sender died or stalled), other than
-- p_owner's own (it still holds them: renews or hands them back, and may
-- hold their outcome): back to the queue with an attempt charged, failed
-- when the attempts are used up; an audit row each, and message.failed for
-- those. p_now: their next_attempt_at. How many.
CREATE FUNCTION engagement.recover_claims(p_owner text, p_now timestamptz, p_run_id uuid)
    RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    recovered integer;
BEGIN
    WITH r AS (
        UPDATE engagement.message_queue m SET
            status = CASE WHEN m.attempts + 1 >= m.max_attempts THEN 'failed' ELSE 'queued' END,
            attempts = m.attempts + 1, next_attempt_at = coalesce(p_now, now()),
            last_error_code = 'lease_expired',
            last_error = 'the sender ' || coalesce(m.locked_by, '?') ||
                         ' stopped before recording an outcome',
            locked_by = NULL, locked_until = NULL
        WHERE m.id = ANY (ARRAY(
            SELECT q.id FROM engagement.message_queue q
            WHERE q.status = 'sending' AND q.locked_until < clock_timestamp()
              AND q.locked_by IS DISTINCT FROM p_owner
            ORDER BY q.locked_until LIMIT 1000 FOR UPDATE SKIP LOCKED))
        RETURNING m.id, m.user_id, m.status, m.message_type, m.attempts
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object(
            'user_id', user_id, 'message_id', id, 'event', 'message_lease_recovered',
            'source', 'queue-send', 'run_id', p_run_id,
            'details', jsonb_build_object('status', status, 'attempts', attempts))
            ORDER BY id)) AS n FROM r
    ), ob AS (
        SELECT engagement.publish_message_events('message.failed',
            array_agg(id ORDER BY id) FILTER (WHERE status = 'failed'), p_run_id) AS n
        FROM r
    ), forced AS MATERIALIZED (
        SELECT (SELECT n FROM audit) + (SELECT n FROM ob) AS n
    )
    -- (audit and ob only read: materialized, forced runs them because it is read here)
    SELECT count(*) INTO recovered FROM r CROSS JOIN forced;
    RETURN recovered;
END
$$;

-- Write back what became of claimed messages. p_rows: [{id, kind, charge,
-- before, requested, next_attempt_at, code, error, wamid, sent_at, at,
-- reason, until, attempt, http_status, latency_ms, error_code}], kind one
-- of sent, retried, deferred, failed, blocked, cancelled, handed_back
-- (back to queued, uncharged). An outcome is written while p_owner still
-- holds the claim; the outcome of a request (requested: the API was asked)
-- also when another worker recovered the message after the lease ran out
-- (back to queued), and a send whoever holds it now, so that a sent
-- message is never sent again for want of a record: both only for a
-- message p_owner claimed (claimed_by). A row already as the
-- outcome would leave it (a write-back that committed but whose answer was
-- lost) counts as written. "blocked" needs the person opted out. Each
-- written outcome gets its audit row (details from the typed fields),
-- message.sent or message.failed, and the minute's counts; a failure with
-- 131050 records the person's opt-out first (the preference is locked
-- before the messages, as an opt-out locks them). The ids written.
CREATE FUNCTION engagement.record_outcomes(p_owner text, p_run_id uuid, p_rows jsonb)
    RETURNS TABLE (id bigint) LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    stops jsonb;
BEGIN
    PERFORM engagement.check_claim(p_owner, 5);
    IF EXISTS (SELECT 1 FROM jsonb_to_recordset(coalesce(p_rows, '[]')) AS x(id bigint, kind text,
                   charge integer, before integer, wamid text, sent_at timestamptz, code text,
                   error text, reason text)
               WHERE x.id IS NULL OR x.kind IS NULL OR x.kind NOT IN ('sent', 'retried',
                     'deferred', 'failed', 'blocked', 'cancelled', 'handed_back')
                  OR coalesce(x.charge, 0) NOT IN (0, 1) OR x.before < 0
                  OR (x.kind = 'sent' AND (x.wamid IS NULL OR x.sent_at IS NULL))
                  OR length(x.wamid) > 512 OR length(x.code) > 64 OR length(x.error) > 1000
                  OR length(x.reason) > 64) THEN
        RAISE EXCEPTION 'an outcome has an id, a kind (sent, retried, deferred, failed, '
            'blocked, cancelled, handed_back), a charge of 0 or 1, and a send its wamid'
            USING ERRCODE = '22023';
    END IF;

    -- 131050 from the API: the person said stop inside WhatsApp
    SELECT jsonb_agg(jsonb_build_object('message_id', x.id, 'at', coalesce(x.at, now())))
    INTO stops
    FROM jsonb_to_recordset(p_rows) AS x(id bigint, kind text, code text, at timestamptz)
    JOIN engagement.message_queue m ON m.id = x.id
    WHERE x.kind = 'failed' AND x.code = '131050'
      AND m.status = 'sending' AND m.locked_by = p_owner;
    IF stops IS NOT NULL THEN
        PERFORM engagement.provider_stops(stops, p_run_id,
            'WhatsApp error 131050: the user stopped marketing messages');
    END IF;

    RETURN QUERY
    WITH x AS (
        SELECT x.*, CASE x.kind WHEN 'sent' THEN 'sent' WHEN 'failed' THEN 'failed'
                WHEN 'blocked' THEN 'blocked' WHEN 'cancelled' THEN 'cancelled'
                ELSE 'queued' END AS status,
            CASE x.kind WHEN 'retried' THEN 'message_retry'
                ELSE 'message_' || x.kind END AS event,
            jsonb_strip_nulls(jsonb_build_object('attempts', x.before, 'reason', x.reason,
                'until', x.until, 'attempt', x.attempt, 'http_status', x.http_status,
                'latency_ms', x.latency_ms, 'error_code', x.error_code,
                'next_attempt_at', CASE WHEN x.attempt IS NOT NULL THEN x.next_attempt_at END))
                AS details
        FROM jsonb_to_recordset(p_rows) AS x(id bigint, kind text, charge integer,
            before integer, requested boolean, next_attempt_at timestamptz, code text,
            error text, wamid text, sent_at timestamptz, at timestamptz, reason text,
            until timestamptz, attempt integer, http_status integer, latency_ms double precision,
            error_code bigint)
    ), done AS (
        SELECT x.id FROM x JOIN engagement.message_queue m ON m.id = x.id
        WHERE m.status = x.status AND m.status <> 'sending' AND m.locked_by IS NULL
          AND m.attempts = coalesce(x.before, 0) + coalesce(x.charge, 0)
          AND m.provider_message_id IS NOT DISTINCT FROM coalesce(x.wamid, m.provider_message_id)
          AND m.last_error_code IS NOT DISTINCT FROM coalesce(x.code, m.last_error_code)
    ), upd AS (
        UPDATE engagement.message_queue m SET
            status = x.status,
            attempts = greatest(m.attempts, coalesce(x.before, 0) + coalesce(x.charge, 0)),
            next_attempt_at = coalesce(x.next_attempt_at, m.next_attempt_at),
            last_error_code = coalesce(x.code, m.last_error_code),
            last_error = coalesce(x.error, m.last_error),
            provider_message_id = coalesce(x.wamid, m.provider_message_id),
            sent_at = coalesce(x.sent_at, m.sent_at),
            locked_by = NULL, locked_until = NULL
        FROM x WHERE m.id = x.id AND x.id NOT IN (SELECT d.id FROM done d)
          AND (m.status = 'sending' AND m.locked_by = p_owner
               OR p_owner = ANY (m.claimed_by) AND x.requested AND m.status = 'queued'
               OR p_owner = ANY (m.claimed_by) AND x.status = 'sent' AND m.status <> 'sent')
          AND (x.status <> 'blocked' OR EXISTS (
               SELECT 1 FROM engagement.user_preferences o
               WHERE o.user_id = m.user_id AND o.reengagement_opt_out))
        RETURNING m.id, m.user_id, m.message_type, x.status, x.event, x.details, x.code
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object(
            'user_id', user_id, 'message_id', id, 'event', event, 'source', 'queue-send',
            'details', details, 'run_id', p_run_id) ORDER BY id)) AS n FROM upd
    ), ob AS (
        SELECT engagement.publish_message_events('message.sent',
                array_agg(id ORDER BY id) FILTER (WHERE status = 'sent'), p_run_id)
            + engagement.publish_message_events('message.failed',
                array_agg(id ORDER BY id) FILTER (WHERE status = 'failed'), p_run_id) AS n
        FROM upd
    ), counted AS (
        SELECT engagement.count_messages(array_agg(CASE event WHEN 'message_retry' THEN 'retried'
                WHEN 'message_deferred' THEN 'deferred'
                WHEN 'message_handed_back' THEN 'handed_back' ELSE status END), array_agg(code)) AS n
        FROM upd
    ), forced AS MATERIALIZED (
        SELECT (SELECT n FROM audit) + (SELECT n FROM ob) + (SELECT n FROM counted) AS n
    )
    -- (audit, ob and counted only read: they run because they are read here)
    SELECT u.id FROM upd u CROSS JOIN forced
    UNION ALL SELECT d.id FROM done d;
END
$$;

-- Delete up to 1000 finished messages (sent, failed, blocked, cancelled)
-- last changed more than p_days (at least 1) ago; their audit rows stay.
-- How many.
CREATE FUNCTION engagement.purge_messages(p_days integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    IF p_days IS NULL OR p_days NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'retention is 1 to 3650 days' USING ERRCODE = '22023';
    END IF;
    DELETE FROM engagement.message_queue WHERE id = ANY (ARRAY(
        SELECT q.id FROM engagement.message_queue q
        WHERE q.status IN ('sent', 'failed', 'blocked', 'cancelled')
          AND q.updated_at < clock_timestamp() - make_interval(days => p_days)
        ORDER BY q.updated_at LIMIT 1000));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- ---- the weekly review (engagement-weekly) ------------------------------------------------
-- Queue this week's review for the users named who were active in the
-- p_lookback_days before p_now (their activity count is the review's
-- parameter) and have not opted out; idempotency key
-- {user_id}:weekly_review:{ISO year}-W{ISO week} of p_now, expiring
-- p_expire_hours after it. The users who got a new message.
CREATE FUNCTION engagement.queue_weekly_reviews(p_users uuid[], p_now timestamptz,
    p_lookback_days integer, p_expire_hours integer, p_run_id uuid)
    RETURNS TABLE (user_id uuid) LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_now IS NULL OR p_lookback_days NOT BETWEEN 1 AND 366
       OR p_expire_hours NOT BETWEEN 1 AND 720 THEN
        RAISE EXCEPTION 'a review looks back 1 to 366 days and expires after 1 to 720 hours'
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH input AS (
        SELECT a.user_id, count(*) AS n
        FROM unnest(p_users) AS i(user_id)
        JOIN engagement.activity_events a ON a.user_id = i.user_id
            AND a.occurred_at >= p_now - make_interval(days => p_lookback_days)
            AND a.occurred_at < p_now
        WHERE NOT EXISTS (SELECT 1 FROM engagement.user_preferences o
                          WHERE o.user_id = i.user_id AND o.reengagement_opt_out)
        GROUP BY a.user_id
    ), ins AS (
        INSERT INTO engagement.message_queue (user_id, message_type, template_key,
            params, idempotency_key, scheduled_for, next_attempt_at, expires_at, run_id)
        SELECT i.user_id, 'weekly_review', 'weekly_review',
            jsonb_build_object('activity_count', i.n),
            i.user_id::text || ':weekly_review:' || to_char(p_now AT TIME ZONE 'UTC', 'IYYY-"W"IW'),
            p_now, p_now, p_now + make_interval(hours => p_expire_hours), p_run_id
        FROM input i ORDER BY i.user_id
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING message_queue.id, message_queue.user_id
    ), ob AS MATERIALIZED (
        SELECT engagement.publish_message_events('message.queued',
            array_agg(ins.id ORDER BY ins.id), p_run_id) AS n FROM ins
    )
    -- (ob only reads: materialized, it runs because it is read here)
    SELECT ins.user_id FROM ins CROSS JOIN ob;
END
$$;

-- ---- the outbox (outbox-relay) and retention ---------------------------------------------
-- Mark events published (the sink accepted them). How many were.
CREATE FUNCTION engagement.mark_published(p_ids bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    UPDATE engagement.outbox_events SET published_at = clock_timestamp()
    WHERE id = ANY (p_ids) AND published_at IS NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Delete up to 1000 events published more than p_days (at least 1) ago.
CREATE FUNCTION engagement.purge_published(p_days integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    IF p_days IS NULL OR p_days NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'retention is 1 to 3650 days' USING ERRCODE = '22023';
    END IF;
    DELETE FROM engagement.outbox_events WHERE id = ANY (ARRAY(
        SELECT o.id FROM engagement.outbox_events o
        WHERE o.published_at < clock_timestamp() - make_interval(days => p_days)
        ORDER BY o.published_at LIMIT 1000));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Delete up to 1000 inbound event ids recorded more than p_days (at least
-- 1) ago (engagement-webhook's retention; Meta repeats for 7 days).
CREATE FUNCTION engagement.purge_inbound_events(p_days integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    IF p_days IS NULL OR p_days NOT BETWEEN 1 AND 3650 THEN
        RAISE EXCEPTION 'retention is 1 to 3650 days' USING ERRCODE = '22023';
    END IF;
    DELETE FROM engagement.inbound_events WHERE ctid = ANY (ARRAY(
        SELECT e.ctid FROM engagement.inbound_events e
        WHERE e.created_at < clock_timestamp() - make_interval(days => p_days)
        ORDER BY e.created_at LIMIT 1000));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- ---- what is gone ---------------------------------------------------------------------------
-- The preference functions that took the future limit from their caller,
-- and the audit function callers could write anything with, are internal
-- now or gone.
DROP FUNCTION engagement.record_provider_stops(jsonb, integer);
DROP FUNCTION engagement.apply_preference_changes(jsonb, integer);

-- ---- roles and grants ------------------------------------------------------------------------
-- Every program role loses what it had; apply_grants gives back what
-- program_grants says now.
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
        END IF;
    END LOOP;
END
$$;

DELETE FROM engagement.program_grants;
INSERT INTO engagement.program_grants (programs, privileges, object) VALUES
    -- every program: the schema, and the version check at start
    ('*', 'USAGE', 'SCHEMA engagement'),
    ('*', 'SELECT', 'engagement.schema_migrations'),
    -- job bookkeeping (rows limited to the program's own by policies)
    ('daily,weekly,sender,relay', 'SELECT, INSERT', 'engagement.job_runs'),
    ('daily,weekly,sender,relay', 'UPDATE (finished_at, status, exit_code, summary, heartbeat_at)',
        'engagement.job_runs'),
    ('daily,weekly,relay', 'SELECT, INSERT, DELETE', 'engagement.job_locks'),
    ('daily,weekly,relay', 'UPDATE (run_id, holder, acquired_at, expires_at, holder_pid, '
        'holder_started)', 'engagement.job_locks'),
    ('status', 'SELECT', 'engagement.job_runs'),
    -- what each program reads
    ('daily,weekly', 'SELECT', 'engagement.opted_out_users'),
    ('event,optout,webhook', 'SELECT (id, phone_e164)', 'engagement.users'),
    ('daily', 'SELECT (user_id, state, last_activity_at)', 'engagement.engagement_states'),
    ('webhook', 'SELECT (user_id, state)', 'engagement.engagement_states'),
    ('weekly', 'SELECT (user_id, occurred_at)', 'engagement.activity_events'),
    ('optout', 'SELECT (user_id, reengagement_opt_out, reengagement_opt_out_updated_at, '
        'reengagement_opt_out_source, locale, timezone, quiet_hours_start, '
        'quiet_hours_end, preferred_destination)', 'engagement.user_preferences'),
    ('relay', 'SELECT', 'engagement.outbox_events'),
    -- what only one program writes and reads
    ('webhook', 'SELECT, INSERT (body), UPDATE (applied_at, result), DELETE',
        'engagement.webhook_inbox'),
    ('sender', 'SELECT, INSERT (phone_number_id), UPDATE (tokens, refreshed_at)',
        'engagement.send_rate'),
    -- the API: every shared write
    ('daily', 'EXECUTE', 'FUNCTION engagement.transition_due(text, timestamptz, integer, '
        'timestamptz, uuid, integer, uuid, integer, integer)'),
    ('daily', 'EXECUTE', 'FUNCTION engagement.transition_due_users(text, uuid[], timestamptz, '
        'integer, uuid, integer, integer)'),
    ('daily', 'EXECUTE', 'FUNCTION engagement.due_users(text, timestamptz, integer, '
        'timestamptz, uuid, integer)'),
    ('weekly', 'EXECUTE', 'FUNCTION engagement.queue_weekly_reviews(uuid[], timestamptz, '
        'integer, integer, uuid)'),
    ('event,webhook', 'EXECUTE', 'FUNCTION engagement.apply_events(jsonb, uuid)'),
    ('optout', 'EXECUTE', 'FUNCTION engagement.change_preferences(jsonb, uuid)'),
    ('webhook', 'EXECUTE', 'FUNCTION engagement.record_whatsapp_preferences(jsonb, uuid)'),
    ('webhook', 'EXECUTE', 'FUNCTION engagement.apply_delivery_statuses(jsonb, uuid)'),
    ('webhook', 'EXECUTE', 'FUNCTION engagement.purge_inbound_events(integer)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.claim_messages(text, timestamptz, integer, '
        'integer, integer)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.send_fence(bigint[], text, timestamptz)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.renew_claims(text, uuid, integer)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.recover_claims(text, timestamptz, uuid)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.record_outcomes(text, uuid, jsonb)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.purge_messages(integer)'),
    ('relay', 'EXECUTE', 'FUNCTION engagement.mark_published(bigint[])'),
    ('relay', 'EXECUTE', 'FUNCTION engagement.purge_published(integer)'),
    -- the operator's view: counts and ages, no phone number, no message body
    ('status', 'SELECT (template_key)', 'engagement.message_templates'),
    ('status', 'SELECT (status, message_type, next_attempt_at, locked_until)',
        'engagement.message_queue'),
    ('status', 'SELECT', 'engagement.message_counts'),
    ('status', 'SELECT (state)', 'engagement.engagement_states'),
    ('status', 'SELECT (id, created_at, published_at)', 'engagement.outbox_events'),
    ('status', 'SELECT (id, received_at, applied_at)', 'engagement.webhook_inbox');

-- Create the program roles that are missing (when this role may), hand the
-- schema's functions to engagement_owner (with the rights their bodies
-- need: every table's rows), take EXECUTE from PUBLIC, and grant each
-- program role what program_grants says. Idempotent: migrate runs it with
-- every migration, so a function a later migration adds is nobody's to
-- call until program_grants names a role for it, and roles an
-- administrator created since are granted. Returns the roles still missing.
CREATE OR REPLACE FUNCTION engagement.apply_grants() RETURNS text[]
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    roles constant text[] := ARRAY['engagement_daily', 'engagement_weekly',
        'engagement_event', 'engagement_sender', 'engagement_optout', 'engagement_relay',
        'engagement_status', 'engagement_webhook', 'engagement_operator'];
    may_create boolean;
    r text;
    missing text[] := '{}';
    g record;
    f regprocedure;
BEGIN
    SELECT rolsuper OR rolcreaterole INTO may_create FROM pg_roles
    WHERE rolname = current_user;
    FOREACH r IN ARRAY roles LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) AND may_create THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- created meanwhile by a migration of another database
            END;
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            missing := missing || r;
        END IF;
    END LOOP;

    -- the owner of the API: its functions, and every table's rows for them
    -- (while it is missing, or this role may not act for it, the functions
    -- stay this role's, and migrate says what to run)
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engagement_owner') AND may_create THEN
        BEGIN
            CREATE ROLE engagement_owner NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engagement_owner')
       AND NOT pg_has_role(current_user, 'engagement_owner', 'USAGE') AND may_create THEN
        EXECUTE format('GRANT engagement_owner TO %I', current_user);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engagement_owner')
       AND pg_has_role(current_user, 'engagement_owner', 'USAGE') THEN
        GRANT USAGE, CREATE ON SCHEMA engagement TO engagement_owner;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA engagement
            TO engagement_owner;
        FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                 WHERE p.pronamespace = 'engagement'::regnamespace
                   AND p.proowner <> 'engagement_owner'::regrole LOOP
            EXECUTE format('ALTER FUNCTION %s OWNER TO engagement_owner', f);
        END LOOP;
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'engagement'
                       AND tablename = 'job_runs' AND policyname = 'engagement_owner') THEN
            CREATE POLICY engagement_owner ON engagement.job_runs TO engagement_owner
                USING (true) WITH CHECK (true);
        END IF;
    ELSE
        missing := missing || 'engagement_owner'::text;
    END IF;
    REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA engagement FROM PUBLIC;
    -- (row-level security asks it as whoever queries)
    GRANT EXECUTE ON FUNCTION engagement.program_role(text) TO PUBLIC;

    -- what program_grants says, to the roles that exist
    FOR g IN SELECT * FROM engagement.program_grants ORDER BY programs, object, privileges LOOP
        FOREACH r IN ARRAY roles LOOP
            IF (g.programs = '*' OR substr(r, 12) = ANY (string_to_array(g.programs, ',')))
               AND NOT (r = ANY (missing)) THEN
                EXECUTE format('GRANT %s ON %s TO %I', g.privileges, g.object, r);
            END IF;
        END LOOP;
    END LOOP;

    -- the rows of job_runs and job_locks a program may see and touch
    FOREACH r IN ARRAY ARRAY['engagement_daily', 'engagement_weekly', 'engagement_sender',
                              'engagement_relay'] LOOP
        IF NOT (r = ANY (missing)) THEN
            IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'engagement'
                           AND tablename = 'job_runs' AND policyname = r) THEN
                EXECUTE format('CREATE POLICY %I ON engagement.job_runs TO %I '
                    'USING (engagement.program_role(program) = %L) '
                    'WITH CHECK (engagement.program_role(program) = %L)', r, r, r, r);
            END IF;
            IF r <> 'engagement_sender' AND NOT EXISTS (SELECT 1 FROM pg_policies
                    WHERE schemaname = 'engagement' AND tablename = 'job_locks'
                      AND policyname = r) THEN
                EXECUTE format('CREATE POLICY %I ON engagement.job_locks TO %I '
                    'USING (engagement.program_role(job) = %L) '
                    'WITH CHECK (engagement.program_role(job) = %L)', r, r, r, r);
            END IF;
        END IF;
    END LOOP;
    IF NOT ('engagement_status' = ANY (missing)) AND NOT EXISTS (SELECT 1 FROM pg_policies
            WHERE schemaname = 'engagement' AND tablename = 'job_runs'
              AND policyname = 'engagement_status') THEN
        CREATE POLICY engagement_status ON engagement.job_runs FOR SELECT
            TO engagement_status USING (true);
    END IF;
    RETURN missing;
END
$$;
REVOKE EXECUTE ON FUNCTION engagement.apply_grants() FROM PUBLIC;

SELECT engagement.apply_grants();
