-- 0014_database_api: undo. The functions go back to the migrating role and
-- the grants to what 0012 and 0013 gave; engagement_owner and
-- engagement_operator stay (roles belong to the cluster: drop them by hand
-- once no database uses them).
DO $$
DECLARE
    r text;
    f regprocedure;
BEGIN
    FOREACH r IN ARRAY ARRAY['engagement_daily', 'engagement_weekly', 'engagement_event',
        'engagement_sender', 'engagement_optout', 'engagement_relay', 'engagement_status',
        'engagement_webhook', 'engagement_operator'] LOOP
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA engagement FROM %I', r);
            EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA engagement FROM %I', r);
            EXECUTE format('REVOKE ALL ON SCHEMA engagement FROM %I', r);
        END IF;
    END LOOP;
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.pronamespace = 'engagement'::regnamespace LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO %I', f, current_user);
    END LOOP;
END
$$;
DROP POLICY IF EXISTS engagement_owner ON engagement.job_runs;
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'engagement_owner') THEN
        REVOKE ALL ON ALL TABLES IN SCHEMA engagement FROM engagement_owner;
        REVOKE ALL ON SCHEMA engagement FROM engagement_owner;
        IF pg_has_role(current_user, 'engagement_owner', 'USAGE') THEN
            ALTER DEFAULT PRIVILEGES FOR ROLE engagement_owner
                GRANT EXECUTE ON FUNCTIONS TO PUBLIC;
        END IF;
    END IF;
END
$$;

DROP FUNCTION engagement.purge_inbound_events(integer);
DROP FUNCTION engagement.purge_published(integer);
DROP FUNCTION engagement.mark_published(bigint[]);
DROP FUNCTION engagement.queue_weekly_reviews(uuid[], timestamptz, integer, integer, uuid);
DROP FUNCTION engagement.purge_messages(integer);
DROP FUNCTION engagement.record_outcomes(text, uuid, jsonb);
DROP FUNCTION engagement.recover_claims(text, timestamptz, uuid);
DROP FUNCTION engagement.renew_claims(text, uuid, integer);
DROP FUNCTION engagement.claim_messages(text, timestamptz, integer, integer, integer);
DROP FUNCTION engagement.check_claim(text, integer);
DROP FUNCTION engagement.apply_delivery_statuses(jsonb, uuid);
DROP FUNCTION engagement.provider_stops(jsonb, uuid, text);
DROP FUNCTION engagement.record_whatsapp_preferences(jsonb, uuid);
DROP FUNCTION engagement.change_preferences(jsonb, uuid);
DROP FUNCTION engagement.apply_preferences(jsonb, uuid);
DROP FUNCTION engagement.count_messages(text[], text[]);
DROP FUNCTION engagement.apply_events(jsonb, uuid);
DROP FUNCTION engagement.transition_due_users(text, uuid[], timestamptz, integer, uuid, integer, integer);
DROP FUNCTION engagement.transition_due(text, timestamptz, integer, timestamptz, uuid, integer, uuid, integer, integer);
DROP FUNCTION engagement.due_users(text, timestamptz, integer, timestamptz, uuid, integer);
DROP FUNCTION engagement.due_cutoff(text, timestamptz, integer);
DROP FUNCTION engagement.due_trigger(text);
DROP FUNCTION engagement.trigger_sources(text);
DROP FUNCTION engagement.fail_arg(text);
DROP FUNCTION engagement.transition_users(text, uuid[], timestamptz[], uuid, timestamptz,
    timestamptz, boolean, boolean, integer, integer);
DROP TABLE engagement.state_machine;
ALTER TABLE engagement.audit_log DROP COLUMN login;
ALTER TABLE engagement.message_queue DROP COLUMN claimed_by;

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

CREATE OR REPLACE FUNCTION engagement.apply_grants() RETURNS text[]
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

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA engagement FROM PUBLIC;
GRANT EXECUTE ON FUNCTION engagement.program_role(text) TO PUBLIC;

DELETE FROM engagement.program_grants;
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
INSERT INTO engagement.program_grants (programs, privileges, object) VALUES
    ('daily,weekly,sender,relay', 'UPDATE (heartbeat_at)', 'engagement.job_runs'),
    ('daily,weekly,relay', 'UPDATE (holder_pid, holder_started)', 'engagement.job_locks');
SELECT engagement.apply_grants();
