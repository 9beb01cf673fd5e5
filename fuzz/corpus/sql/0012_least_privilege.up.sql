-- 0012_least_privilege: a role per program (DESIGN.md §5), and the writes
-- several programs share behind one SQL function each, so that a role gets
-- the function, not the table.
--
-- Roles are NOLOGIN groups; an operator grants one to a login:
--     GRANT engagement_sender TO sender_login;
-- Roles belong to the cluster, not the database: they are created when
-- missing (if the migrating role may create roles; otherwise migrate says
-- what to run) and never dropped by a down migration.
--
-- The functions that write for others are SECURITY DEFINER (they run as the
-- schema owner) with a fixed search_path, and nobody may call them but the
-- roles named below. What they write is what the rows say: an outbox event
-- is built from the message, transition or preference it announces, so a
-- role can at most announce a true fact again, never invent one.

-- When a delivery failed (the 'message.undelivered' event's time).
ALTER TABLE engagement.message_queue ADD COLUMN delivery_failed_at timestamptz;

-- ---- "opted out?" ----------------------------------------------------------------
-- The people who opted out of re-engagement messages: every query that must
-- skip them asks this view (a view runs with its owner's rights, so the
-- daily and weekly jobs see who opted out and nothing else of preferences).
CREATE VIEW engagement.opted_out_users AS
    SELECT p.user_id FROM engagement.user_preferences p WHERE p.reengagement_opt_out;

-- ---- the outbox ----------------------------------------------------------------------
-- Announce messages: p_event_type for each id whose row is in that state;
-- the others are skipped. In p_ids order. Returns how many were published.
CREATE FUNCTION engagement.publish_message_events(p_event_type text, p_ids bigint[],
                                                  p_correlation_id uuid)
    RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    IF p_event_type IS NULL OR p_event_type NOT IN ('message.queued', 'message.cancelled',
            'message.sent', 'message.failed', 'message.delivered', 'message.read',
            'message.undelivered') THEN
        RAISE EXCEPTION 'unknown message event type: %', p_event_type
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO engagement.outbox_events
        (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
    SELECT 'message', m.id::text, p_event_type,
        CASE p_event_type
        WHEN 'message.queued' THEN jsonb_build_object('message_id', m.id,
            'user_id', m.user_id, 'message_type', m.message_type)
        WHEN 'message.cancelled' THEN jsonb_build_object('message_id', m.id,
            'user_id', m.user_id, 'reason', m.last_error_code)
        WHEN 'message.sent' THEN jsonb_strip_nulls(jsonb_build_object('message_id', m.id,
            'user_id', m.user_id, 'message_type', m.message_type, 'status', m.status,
            'provider_message_id', m.provider_message_id))
        WHEN 'message.failed' THEN jsonb_strip_nulls(jsonb_build_object('message_id', m.id,
            'user_id', m.user_id, 'message_type', m.message_type, 'status', m.status,
            'provider_message_id', m.provider_message_id, 'error_code', m.last_error_code))
        ELSE jsonb_strip_nulls(jsonb_build_object('message_id', m.id,
            'user_id', m.user_id, 'message_type', m.message_type,
            'delivery_status', m.delivery_status,
            'at', CASE p_event_type WHEN 'message.delivered' THEN m.delivered_at
                                    WHEN 'message.read' THEN m.read_at
                                    ELSE m.delivery_failed_at END,
            'error_code', CASE WHEN p_event_type = 'message.undelivered'
                               THEN m.delivery_error_code END))
        END,
        p_correlation_id, m.user_id
    FROM unnest(p_ids) WITH ORDINALITY AS i(id, ord)
    JOIN engagement.message_queue m ON m.id = i.id
    WHERE CASE p_event_type
        WHEN 'message.queued' THEN m.status = 'queued'
        WHEN 'message.cancelled' THEN m.status = 'cancelled'
        WHEN 'message.sent' THEN m.status = 'sent'
        WHEN 'message.failed' THEN m.status = 'failed'
        WHEN 'message.delivered' THEN m.delivery_status IN ('delivered', 'read')
        WHEN 'message.read' THEN m.delivery_status = 'read'
        ELSE m.delivery_status = 'failed' END
    ORDER BY i.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Announce state transitions (engagement.state_changed), in p_ids order;
-- the correlation id is the run that made each one.
CREATE FUNCTION engagement.publish_transition_events(p_ids bigint[])
    RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO engagement.outbox_events
        (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
    SELECT 'user', t.user_id::text, 'engagement.state_changed',
        jsonb_build_object('user_id', t.user_id, 'transition_id', t.id,
            'from_state', t.from_state, 'to_state', t.to_state, 'trigger', t.trigger,
            'occurred_at', t.created_at, 'metadata', t.metadata),
        t.run_id, t.user_id
    FROM unnest(p_ids) WITH ORDINALITY AS i(id, ord)
    JOIN engagement.state_transitions t ON t.id = i.id
    ORDER BY i.ord;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- ---- the audit log ------------------------------------------------------------------
-- Append audit rows: p_rows is a JSON array of {user_id, message_id, event,
-- source, details, run_id}. Append only: no role may change or delete one.
CREATE FUNCTION engagement.write_audit(p_rows jsonb)
    RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO engagement.audit_log (user_id, message_id, event, source, details, run_id)
    SELECT x.user_id, x.message_id, x.event, x.source, coalesce(x.details, '{}'), x.run_id
    FROM jsonb_to_recordset(coalesce(p_rows, '[]')) AS x(user_id uuid, message_id bigint,
        event text, source text, details jsonb, run_id uuid);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- ---- preference changes -----------------------------------------------------------------
-- Apply opt-out and opt-in changes, last write wins. p_changes: a JSON
-- array of {user_id, opt_out, at, source, reason, message_id, run_id,
-- event_id}. One row back per change whose user exists: its position
-- (1-based), outcome (applied, unchanged, stale, future, duplicate), the
-- old value and the instant it took effect (Unix microseconds). In the same
-- transaction, an applied change writes the preference, an audit row, an
-- outbox event and a NOTIFY on engagement_preferences, and an opt-out
-- blocks the person's queued messages and locks those a sender claimed
-- (whose pre-send fence, engagement.send_fence, then sees it). A change
-- whose event_id was applied before is a duplicate and changes nothing.
CREATE FUNCTION engagement.apply_preference_changes(p_changes jsonb, p_future_skew_s integer)
    RETURNS TABLE (ord bigint, outcome text, old_value boolean, at_us bigint)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    -- a preference row for every user who exists, none for those who do not
    -- (rows inserted here are visible to the next statement)
    INSERT INTO engagement.user_preferences (user_id)
    SELECT u.id FROM engagement.users u
    WHERE u.id IN (SELECT (c->>'user_id')::uuid FROM jsonb_array_elements(p_changes) c)
    ON CONFLICT (user_id) DO NOTHING;

    RETURN QUERY
    WITH input AS (
        SELECT i.*, r.ord FROM jsonb_array_elements(p_changes) WITH ORDINALITY AS r(j, ord),
            LATERAL jsonb_to_record(r.j) AS i(user_id uuid, opt_out bool, at timestamptz,
                source text, reason text, message_id bigint, run_id uuid, event_id text)
    ), old AS (
        SELECT p.user_id, p.reengagement_opt_out AS v,
               p.reengagement_opt_out_updated_at AS t, p.reengagement_opt_out_source AS src
        FROM engagement.user_preferences p
        WHERE p.user_id IN (SELECT user_id FROM input)
        ORDER BY p.user_id FOR UPDATE
    ), d AS (
        SELECT i.*, coalesce(i.at, now()) AS eff, o.v AS old_v, o.t AS old_t, o.src AS old_src,
            CASE WHEN EXISTS (SELECT 1 FROM engagement.inbound_events e
                              WHERE e.event_id = i.event_id AND e.kind = 'preference')
                   THEN 'duplicate'
                 WHEN i.at > now() + make_interval(secs => p_future_skew_s) THEN 'future'
                 WHEN o.t IS NOT NULL AND coalesce(i.at, now()) < o.t THEN 'stale'
                 WHEN o.v = i.opt_out THEN 'unchanged' ELSE 'applied' END AS outcome
        FROM input i JOIN old o USING (user_id)
    ), upd AS (
        UPDATE engagement.user_preferences p SET reengagement_opt_out = d.opt_out,
            reengagement_opt_out_updated_at = d.eff, reengagement_opt_out_source = d.source
        FROM d WHERE p.user_id = d.user_id AND d.outcome IN ('applied', 'unchanged')
        RETURNING p.user_id
    ), ob AS (
        INSERT INTO engagement.outbox_events
            (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
        SELECT 'user', d.user_id::text, 'preferences.reengagement_changed',
            jsonb_build_object('user_id', d.user_id, 'opt_out', d.opt_out,
                'source', d.source, 'at', d.eff),
            d.run_id, d.user_id
        FROM d WHERE d.outcome = 'applied'
        ORDER BY d.ord
    ), stopped AS (
        UPDATE engagement.message_queue q SET
            status = CASE WHEN q.status = 'queued' THEN 'blocked' ELSE q.status END,
            last_error_code = CASE WHEN q.status = 'queued' THEN 'opted_out'
                                   ELSE q.last_error_code END,
            last_error = CASE WHEN q.status = 'queued'
                              THEN 'the user opted out of re-engagement messages'
                              ELSE q.last_error END
        FROM d WHERE d.outcome = 'applied' AND d.opt_out AND q.user_id = d.user_id
            AND q.status IN ('queued', 'sending')
        RETURNING q.id, q.user_id, q.status, q.attempts, d.source, d.run_id
    ), seen AS (
        INSERT INTO engagement.inbound_events (event_id, kind, user_id, outcome, detail, run_id)
        SELECT d.event_id, 'preference', d.user_id, d.outcome,
            jsonb_build_object('opt_out', d.opt_out, 'source', d.source, 'at', d.eff), d.run_id
        FROM d WHERE d.event_id IS NOT NULL AND d.outcome IN ('applied', 'unchanged', 'stale')
    ), counted AS (
        INSERT INTO engagement.message_counts (minute, kind, code, n)
        SELECT date_trunc('minute', clock_timestamp()),
            CASE WHEN d.opt_out THEN 'opt_out' ELSE 'opt_in' END AS kind, d.source, count(*)
        FROM d WHERE d.outcome = 'applied' GROUP BY 2, 3 ORDER BY 2, 3
        ON CONFLICT (minute, kind, code) DO UPDATE
            SET n = engagement.message_counts.n + excluded.n
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
                'run_id', d.run_id) ORDER BY d.ord)
             FROM d WHERE d.outcome IN ('applied', 'unchanged')), '[]'::jsonb)
            || coalesce((SELECT jsonb_agg(jsonb_build_object('user_id', s.user_id,
                'message_id', s.id, 'event', 'message_blocked', 'source', s.source,
                'details', jsonb_build_object('attempts', s.attempts, 'reason', 'opted_out'),
                'run_id', s.run_id) ORDER BY s.id)
             FROM stopped s WHERE s.status = 'blocked'), '[]'::jsonb)) AS n
    ), notified AS (
        SELECT count(pg_notify('engagement_preferences',
            json_build_object('user_id', d.user_id, 'opt_out', d.opt_out,
                'source', d.source, 'at', d.eff)::text)::text) AS n
        FROM d WHERE d.outcome = 'applied'
    )
    -- (a CTE that only reads runs when referenced: audited and notified are)
    SELECT d.ord, d.outcome, d.old_v, (extract(epoch FROM d.eff) * 1000000)::bigint
    FROM d, audited, notified
    ORDER BY d.ord;
END
$$;

-- A stop the provider reported (WhatsApp error 131050, the person pressed
-- "stop"): recorded as an opt-out from whatsapp, the same way as any other
-- change. It can only opt out: whoever may call it cannot opt anyone in.
CREATE FUNCTION engagement.record_provider_stops(p_changes jsonb, p_future_skew_s integer)
    RETURNS TABLE (ord bigint, outcome text, old_value boolean, at_us bigint)
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
    SELECT * FROM engagement.apply_preference_changes(
        (SELECT coalesce(jsonb_agg(c.j || '{"opt_out": true, "source": "whatsapp"}'::jsonb
                                   ORDER BY c.n), '[]'::jsonb)
         FROM jsonb_array_elements(p_changes) WITH ORDINALITY AS c(j, n)),
        p_future_skew_s)
$$;

-- The sender's pre-send fence asks the view too.
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
        WHEN EXISTS (SELECT 1 FROM engagement.opted_out_users o
                     WHERE o.user_id = m.user_id) THEN 'opted_out'
        WHEN m.message_type = 'goodbye' AND s.state IS NOT NULL
             AND s.state <> 'goodbye_sent' THEN 'user_returned'
        ELSE 'send' END
    FROM unnest(p_ids) AS i(id)
    LEFT JOIN engagement.message_queue m ON m.id = i.id
    LEFT JOIN engagement.engagement_states s ON s.user_id = m.user_id;
END
$$;

-- Erasing a user announces it through the outbox whoever deletes the row.
ALTER FUNCTION engagement.announce_user_erased() SECURITY DEFINER;
ALTER FUNCTION engagement.announce_user_erased() SET search_path = pg_catalog, pg_temp;

-- Nothing is callable by everyone.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA engagement FROM PUBLIC;

-- ---- job bookkeeping: each program sees and writes only its own rows ------------------------
ALTER TABLE engagement.job_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE engagement.job_locks ENABLE ROW LEVEL SECURITY;

-- The role a program runs as (NULL for the others).
CREATE FUNCTION engagement.program_role(p_program text) RETURNS name
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_program
        WHEN 'engagement-daily' THEN 'engagement_daily'
        WHEN 'engagement-weekly' THEN 'engagement_weekly'
        WHEN 'queue-send' THEN 'engagement_sender'
        WHEN 'outbox-relay' THEN 'engagement_relay'
    END::name
$$;

-- ---- roles and grants --------------------------------------------------------------------
-- Who may do what, as data: each row grants privileges on an object to the
-- roles of the programs listed (comma-separated suffixes of engagement_, or
-- '*' for all eight). A later migration that adds a table or column inserts
-- its rows here; engagement.apply_grants() grants whatever the table says.
CREATE TABLE engagement.program_grants (
    programs text NOT NULL,
    privileges text NOT NULL,
    object text NOT NULL,
    PRIMARY KEY (programs, privileges, object)
);
INSERT INTO engagement.program_grants (programs, privileges, object) VALUES
    -- every program: the schema, and the version check at start
    ('*', 'USAGE', 'SCHEMA engagement'),
    ('*', 'SELECT', 'engagement.schema_migrations'),
    -- job bookkeeping (rows limited to the program's own by policies)
    ('daily,weekly,sender,relay', 'SELECT, INSERT', 'engagement.job_runs'),
    ('daily,weekly,sender,relay', 'UPDATE (finished_at, status, exit_code, summary)',
        'engagement.job_runs'),
    ('daily,weekly,relay', 'SELECT, INSERT, DELETE', 'engagement.job_locks'),
    ('daily,weekly,relay', 'UPDATE (run_id, holder, acquired_at, expires_at)',
        'engagement.job_locks'),
    ('status', 'SELECT', 'engagement.job_runs'),
    -- who opted out
    ('daily,weekly,event,sender,webhook', 'SELECT', 'engagement.opted_out_users'),
    -- people: the phone number to find or reach them
    ('event,sender,optout,webhook', 'SELECT (id, phone_e164)', 'engagement.users'),
    -- state machine (daily, event, webhook)
    ('daily,event,webhook', 'SELECT', 'engagement.engagement_states'),
    ('daily,event,webhook', 'UPDATE (state, state_changed_at, state_trigger, '
        'last_activity_at, goodbye_sent_at, goodbye_expires_at, remind_at)',
        'engagement.engagement_states'),
    ('event,webhook', 'INSERT (user_id, state, last_activity_at, state_changed_at)',
        'engagement.engagement_states'),
    ('daily,event,webhook', 'SELECT, INSERT', 'engagement.state_transitions'),
    ('event,webhook', 'INSERT (user_id, occurred_at, kind)', 'engagement.activity_events'),
    ('weekly', 'SELECT (user_id, occurred_at)', 'engagement.activity_events'),
    ('event,webhook', 'SELECT, INSERT', 'engagement.inbound_events'),
    ('webhook', 'DELETE', 'engagement.inbound_events'),
    -- the queue: queueing (daily, weekly, event, webhook: a goodbye or a review)
    ('daily,weekly,event,webhook', 'INSERT (user_id, message_type, template_key, params, '
        'idempotency_key, scheduled_for, next_attempt_at, expires_at, run_id)',
        'engagement.message_queue'),
    ('daily,weekly,event,webhook', 'SELECT (id, user_id, message_type, status, '
        'delivery_status, idempotency_key, locked_until)', 'engagement.message_queue'),
    -- holding a goodbye a sender claimed while its person leaves goodbye_sent
    -- (a no-op update the sender's fence waits for)
    ('daily,event,webhook', 'UPDATE (locked_until)', 'engagement.message_queue'),
    -- cancelling a goodbye the person answered by writing again
    ('event,webhook', 'UPDATE (status, last_error_code, last_error)',
        'engagement.message_queue'),
    -- sending
    ('sender', 'SELECT, DELETE', 'engagement.message_queue'),
    ('sender', 'UPDATE (status, attempts, next_attempt_at, locked_by, locked_until, '
        'last_error_code, last_error, provider_message_id, sent_at)',
        'engagement.message_queue'),
    ('sender', 'SELECT (user_id, locale, timezone, quiet_hours_start, quiet_hours_end, '
        'preferred_destination, group_id)', 'engagement.user_preferences'),
    ('sender', 'SELECT (user_id, state)', 'engagement.engagement_states'),
    ('sender', 'SELECT', 'engagement.message_templates'),
    ('sender', 'SELECT, INSERT (phone_number_id), UPDATE (tokens, refreshed_at)',
        'engagement.send_rate'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.send_fence(bigint[], text, timestamptz)'),
    ('sender', 'EXECUTE',
        'FUNCTION engagement.quiet_until(timestamptz, text, time, time)'),
    -- delivery statuses
    ('webhook', 'SELECT (provider_message_id, delivered_at, read_at, delivery_error_code, '
        'delivery_failed_at)', 'engagement.message_queue'),
    ('webhook', 'UPDATE (delivery_status, delivered_at, read_at, delivery_error_code, '
        'delivery_failed_at)', 'engagement.message_queue'),
    ('webhook', 'SELECT, INSERT (body), UPDATE (applied_at, result), DELETE',
        'engagement.webhook_inbox'),
    -- counts of what happened, for engagement-status
    ('sender,webhook', 'SELECT, INSERT, UPDATE (n)', 'engagement.message_counts'),
    -- preferences
    ('optout', 'SELECT (user_id, reengagement_opt_out, reengagement_opt_out_updated_at, '
        'reengagement_opt_out_source, locale, timezone, quiet_hours_start, '
        'quiet_hours_end, preferred_destination)', 'engagement.user_preferences'),
    ('optout,webhook', 'EXECUTE', 'FUNCTION engagement.apply_preference_changes(jsonb, integer)'),
    ('sender,webhook', 'EXECUTE', 'FUNCTION engagement.record_provider_stops(jsonb, integer)'),
    -- shared writes
    ('daily,weekly,event,sender,webhook', 'EXECUTE',
        'FUNCTION engagement.publish_message_events(text, bigint[], uuid)'),
    ('daily,event,webhook', 'EXECUTE', 'FUNCTION engagement.publish_transition_events(bigint[])'),
    ('sender,webhook', 'EXECUTE', 'FUNCTION engagement.write_audit(jsonb)'),
    -- publishing
    ('relay', 'SELECT, UPDATE (published_at), DELETE', 'engagement.outbox_events'),
    -- the operator's view: counts and ages, no phone number, no message body
    ('status', 'SELECT (template_key)', 'engagement.message_templates'),
    ('status', 'SELECT (status, message_type, next_attempt_at, locked_until)',
        'engagement.message_queue'),
    ('status', 'SELECT', 'engagement.message_counts'),
    ('status', 'SELECT (state)', 'engagement.engagement_states'),
    ('status', 'SELECT (id, created_at, published_at)', 'engagement.outbox_events'),
    ('status', 'SELECT (id, received_at, applied_at)', 'engagement.webhook_inbox');

-- Create the roles that are missing (when this role may) and grant each
-- what program_grants says. Idempotent: `migrate up` runs it after every
-- run, so roles created later by an administrator get their grants then.
-- Returns the roles still missing.
CREATE FUNCTION engagement.apply_grants() RETURNS text[]
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    roles constant text[] := ARRAY['engagement_daily', 'engagement_weekly',
        'engagement_event', 'engagement_sender', 'engagement_optout', 'engagement_relay',
        'engagement_status', 'engagement_webhook'];
    may_create boolean;
    r text;
    missing text[] := '{}';
    g record;
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
    GRANT EXECUTE ON FUNCTION engagement.program_role(text) TO PUBLIC;
    RETURN missing;
END
$$;
REVOKE EXECUTE ON FUNCTION engagement.apply_grants() FROM PUBLIC;

SELECT engagement.apply_grants();
