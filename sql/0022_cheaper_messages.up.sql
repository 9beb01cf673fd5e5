-- 0022_cheaper_messages: less work per message for the sender and the
-- webhook applier, the same rows written, the same verdicts.
--
-- * quiet_until's body is one expression (no FROM), so the planner inlines
--   it: the claim called it as a function once per message, about a third
--   of the claim's time in the database.
-- * A message event's payload is built by one function,
--   message_event_payload (publish_message_events uses it too). The
--   sender's write-back (record_outcomes) and the applier
--   (apply_delivery_statuses) insert their audit rows and outbox events
--   straight from the rows they updated, in the same statement: before,
--   each message was looked up again by publish_message_events, and each
--   audit row went through a jsonb array that write_audit took apart.
-- * The fence finds the rows it locks by their ids (the primary key), not
--   by a scan of message_queue_lease_idx (see send_fence).
-- Same events, same payloads, same order (sent before failed; delivered,
-- read, then undelivered; each by message id), same audit rows.

CREATE OR REPLACE FUNCTION engagement.quiet_until(at timestamptz, tz text, qstart time, qend time)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN qstart IS NULL OR qend IS NULL OR qstart = qend THEN NULL
        WHEN qstart < qend THEN
            CASE WHEN (at AT TIME ZONE tz)::time >= qstart AND (at AT TIME ZONE tz)::time < qend
                 THEN ((at AT TIME ZONE tz)::date + qend) AT TIME ZONE tz END
        ELSE
            CASE WHEN (at AT TIME ZONE tz)::time >= qstart
                 THEN (((at AT TIME ZONE tz)::date + 1) + qend) AT TIME ZONE tz
                 WHEN (at AT TIME ZONE tz)::time < qend
                 THEN ((at AT TIME ZONE tz)::date + qend) AT TIME ZONE tz END
    END
$$;

-- The payload of message event p_event_type (message.queued, .cancelled,
-- .sent, .failed, .delivered, .read, .undelivered) of message m, as it is
-- now. One expression: inlined where it is called.
CREATE FUNCTION engagement.message_event_payload(p_event_type text,
    m engagement.message_queue) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT
        CASE p_event_type
        WHEN 'message.queued' THEN jsonb_build_object('message_id', (m).id,
            'user_id', (m).user_id, 'message_type', (m).message_type)
        WHEN 'message.cancelled' THEN jsonb_build_object('message_id', (m).id,
            'user_id', (m).user_id, 'reason', (m).last_error_code)
        WHEN 'message.sent' THEN jsonb_strip_nulls(jsonb_build_object('message_id', (m).id,
            'user_id', (m).user_id, 'message_type', (m).message_type, 'status', (m).status,
            'provider_message_id', (m).provider_message_id))
        WHEN 'message.failed' THEN jsonb_strip_nulls(jsonb_build_object('message_id', (m).id,
            'user_id', (m).user_id, 'message_type', (m).message_type, 'status', (m).status,
            'provider_message_id', (m).provider_message_id, 'error_code', (m).last_error_code))
        ELSE jsonb_strip_nulls(jsonb_build_object('message_id', (m).id,
            'user_id', (m).user_id, 'message_type', (m).message_type,
            'delivery_status', (m).delivery_status,
            'at', CASE p_event_type WHEN 'message.delivered' THEN (m).delivered_at
                                    WHEN 'message.read' THEN (m).read_at
                                    ELSE (m).delivery_failed_at END,
            'error_code', CASE WHEN p_event_type = 'message.undelivered'
                               THEN (m).delivery_error_code END))
        END
$$;

CREATE OR REPLACE FUNCTION engagement.publish_message_events(p_event_type text, p_ids bigint[],
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
        engagement.message_event_payload(p_event_type, m),
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

CREATE OR REPLACE FUNCTION engagement.record_outcomes(p_owner text, p_run_id uuid, p_rows jsonb)
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
        RETURNING m.id, m.user_id, m.message_type, x.status, x.event, x.details, x.code,
            m AS msg
    ), audit AS (
        INSERT INTO engagement.audit_log (user_id, message_id, event, source, details, run_id)
        SELECT user_id, id, event, 'queue-send', details, p_run_id FROM upd ORDER BY id
    ), ob AS (
        INSERT INTO engagement.outbox_events
            (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
        SELECT 'message', u.id::text, 'message.' || u.status,
            engagement.message_event_payload('message.' || u.status, u.msg), p_run_id, u.user_id
        FROM upd u WHERE u.status IN ('sent', 'failed')
        ORDER BY u.status <> 'sent', u.id
    ), counted AS MATERIALIZED (
        SELECT engagement.count_messages(array_agg(CASE event WHEN 'message_retry' THEN 'retried'
                WHEN 'message_deferred' THEN 'deferred'
                WHEN 'message_handed_back' THEN 'handed_back' ELSE status END), array_agg(code)) AS n
        FROM upd
    )
    -- (counted only reads: it runs because it is read here)
    SELECT u.id FROM upd u CROSS JOIN counted
    UNION ALL SELECT d.id FROM done d;
END
$$;

CREATE OR REPLACE FUNCTION engagement.apply_delivery_statuses(p_statuses jsonb, p_run_id uuid)
    RETURNS TABLE (statuses integer, unmatched integer, future integer, delivered integer,
                   read integer, failed integer, stops integer, priced integer)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    r record;
    n_stops integer := 0;
BEGIN
    IF jsonb_typeof(coalesce(p_statuses, '[]')) <> 'array' THEN
        RAISE EXCEPTION 'statuses are an array' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_to_recordset(coalesce(p_statuses, '[]'))
                   AS s(wamid text, status text, at timestamptz, code text, category text)
               WHERE s.status IS NULL OR s.status NOT IN ('sent', 'delivered', 'read', 'failed')
                  OR s.at IS NULL OR length(s.wamid) > 512 OR length(s.code) > 32
                  OR s.category !~ '^[a-z_]{1,40}$') THEN
        RAISE EXCEPTION 'a status is sent, delivered, read or failed, with its instant '
            '(and a price: its category, lowercase)' USING ERRCODE = '22023';
    END IF;
    WITH s0 AS (
        SELECT * FROM ROWS FROM (jsonb_to_recordset(coalesce(p_statuses, '[]'))
                AS (wamid text, queue_id bigint, status text, at timestamptz, code text,
                    category text, billable boolean))
            WITH ORDINALITY AS s(wamid, queue_id, status, at, code, category, billable, ord)
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
            min(code) FILTER (WHERE status = 'failed') AS code,
            (array_agg(category ORDER BY ord DESC) FILTER (WHERE category IS NOT NULL))[1]
                AS category,
            (array_agg(billable ORDER BY ord DESC) FILTER (WHERE category IS NOT NULL))[1]
                AS billable
        FROM m GROUP BY mid
    ), cur AS (
        SELECT q.id, q.user_id, q.message_type, q.delivery_status AS old,
            q.pricing_category AS old_category, q.billable AS old_billable, a.*
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
                THEN coalesce(q.delivery_failed_at, n.f_at) ELSE q.delivery_failed_at END,
            pricing_category = coalesce(n.category, q.pricing_category),
            billable = CASE WHEN n.category IS NOT NULL THEN coalesce(n.billable, q.billable)
                ELSE q.billable END
        FROM nx n WHERE q.id = n.id AND (n.next IS DISTINCT FROM n.old
            OR (n.next IN ('delivered', 'read') AND q.delivered_at IS NULL)
            OR (n.next = 'read' AND q.read_at IS NULL)
            OR (n.category IS NOT NULL AND (q.pricing_category IS DISTINCT FROM n.category
                OR q.billable IS DISTINCT FROM coalesce(n.billable, q.billable))))
        RETURNING q.id, q.user_id, q.message_type, n.old, q.delivery_status AS next,
            q.delivery_error_code AS code, n.f_at, q.delivered_at, q.read_at,
            n.old IS DISTINCT FROM 'delivered' AND n.old IS DISTINCT FROM 'read'
                AND q.delivery_status IN ('delivered', 'read') AS newly_delivered,
            n.old IS DISTINCT FROM 'read' AND q.delivery_status = 'read' AS newly_read,
            n.old IS DISTINCT FROM 'failed' AND q.delivery_status = 'failed' AS newly_failed,
            q.pricing_category IS DISTINCT FROM n.old_category
                OR q.billable IS DISTINCT FROM n.old_billable AS repriced,
            n.old_category IS NULL AND q.pricing_category IS NOT NULL AS first_priced,
            q.pricing_category AS category, q.billable, q AS msg
    ), ob AS (
        INSERT INTO engagement.outbox_events
            (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
        SELECT 'message', u.id::text, e.event_type,
            engagement.message_event_payload(e.event_type, u.msg), p_run_id, u.user_id
        FROM upd u CROSS JOIN LATERAL (VALUES (1, 'message.delivered', u.newly_delivered),
                (2, 'message.read', u.newly_read), (3, 'message.undelivered', u.newly_failed))
            AS e(k, event_type, happened)
        WHERE e.happened ORDER BY e.k, u.id
    ), audit AS (
        INSERT INTO engagement.audit_log (user_id, message_id, event, source, details, run_id)
        SELECT u.user_id, u.id, 'message_undelivered', 'whatsapp',
            jsonb_build_object('error_code', u.code, 'at', u.f_at), p_run_id
        FROM upd u WHERE u.newly_failed ORDER BY u.id
    ), counted AS (
        SELECT engagement.count_messages(array_agg(kind), array_agg(code)) AS n FROM (
            SELECT 'delivered' AS kind, NULL AS code FROM upd WHERE newly_delivered
            UNION ALL SELECT 'read', NULL FROM upd WHERE newly_read
            UNION ALL SELECT 'undelivered', code FROM upd WHERE newly_failed
            UNION ALL SELECT 'priced', category FROM upd WHERE first_priced
            UNION ALL SELECT 'billable', category FROM upd WHERE first_priced AND billable) k
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
        (SELECT count(*) FROM upd WHERE repriced)::integer AS priced,
        -- (counted only reads: it runs because it is read here)
        (SELECT n FROM counted) AS written
    INTO r;
    IF r.stops IS NOT NULL THEN
        n_stops := engagement.provider_stops(r.stops, p_run_id,
            'WhatsApp delivery status 131050: the user stopped marketing messages');
    END IF;
    RETURN QUERY SELECT r.statuses, r.unmatched, r.future, r.delivered, r.read, r.failed, n_stops,
        r.priced;
END
$$;

CREATE OR REPLACE FUNCTION engagement.send_fence(p_ids bigint[], p_owner text, p_now timestamptz,
    p_pair_ms integer)
    RETURNS TABLE (id bigint, verdict text) LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    held bigint[];
    lim integer;
    used integer := 0;
BEGIN
    IF p_pair_ms IS NULL OR p_pair_ms NOT BETWEEN 0 AND 3600000 THEN
        RAISE EXCEPTION 'the pair interval is 0 to 3600000 ms' USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(array_agg(q.id), '{}') INTO held FROM (
        -- (status: IS NOT DISTINCT FROM, so that the planner cannot read
        -- it from message_queue_lease_idx, a scan of every sender's claims
        -- and their dead versions: estimated at a row, it grew with the
        -- claims in flight. The group's ids, through the primary key.)
        SELECT m.id FROM engagement.message_queue m
        WHERE m.id = ANY (p_ids) AND m.status IS NOT DISTINCT FROM 'sending'
          AND m.locked_by = p_owner
          AND m.locked_until > clock_timestamp() + interval '1 second'
        ORDER BY m.id
        FOR UPDATE SKIP LOCKED) q;
    SELECT l.max_recipients_24h INTO lim FROM engagement.messaging_limits l
    WHERE l.phone_number_id = '*';
    IF lim IS NOT NULL THEN
        PERFORM 1 FROM engagement.messaging_limits l WHERE l.phone_number_id = '*' FOR UPDATE;
        used := engagement.reached_24h();
    END IF;

    RETURN QUERY
    WITH v AS (
        SELECT i.id, m.user_id, m.message_type, CASE
            WHEN NOT (i.id = ANY (held)) THEN
                CASE WHEN m.status = 'sending' AND m.locked_by = p_owner
                          AND m.locked_until > clock_timestamp()
                     THEN 'busy' ELSE 'lost' END
            WHEN m.expires_at IS NOT NULL
                 AND m.expires_at <= coalesce(p_now, clock_timestamp()) THEN 'expired'
            WHEN coalesce(p.reengagement_opt_out, false) THEN 'opted_out'
            WHEN m.message_type = 'goodbye' AND s.state IS NOT NULL
                 AND s.state <> 'goodbye_sent' THEN 'user_returned'
            WHEN pz.all_paused OR m.message_type = ANY (pz.types)
                 OR m.template_key = ANY (pz.templates) THEN 'paused'
            WHEN engagement.template_dead(tp.provider_status) THEN 'template_disabled'
            WHEN NOT engagement.template_sendable(tp.provider_status) THEN 'template_held'
            WHEN p_pair_ms > 0 AND EXISTS (
                SELECT 1 FROM engagement.message_queue o
                WHERE o.user_id = m.user_id AND o.id <> m.id
                  AND (o.sent_at > clock_timestamp() - make_interval(secs => p_pair_ms / 1000.0)
                       OR o.status = 'sending' AND o.locked_by <> p_owner AND o.id < m.id))
                 THEN 'pair'
            ELSE 'send' END AS verdict
        FROM unnest(p_ids) AS i(id)
        LEFT JOIN engagement.message_queue m ON m.id = i.id
        LEFT JOIN engagement.engagement_states s ON s.user_id = m.user_id
        LEFT JOIN engagement.user_preferences p ON p.user_id = m.user_id
        LEFT JOIN LATERAL engagement.template_for(m.template_key, p.locale) tp ON true
        CROSS JOIN engagement.paused_now(clock_timestamp()) pz
    ), newp AS (
        -- people to reach who were not reached in 24 hours, goodbyes first
        SELECT v.user_id, min(v.id) AS mid,
            row_number() OVER (ORDER BY bool_or(v.message_type = 'goodbye') DESC,
                               min(v.id)) AS k
        FROM v WHERE v.verdict = 'send' AND lim IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM engagement.limit_reached r WHERE r.user_id = v.user_id
                          AND r.reached_at > clock_timestamp() - interval '24 hours')
        GROUP BY v.user_id
    ), ok AS (
        INSERT INTO engagement.limit_reached AS r (user_id, reached_at, message_id)
        SELECT np.user_id, clock_timestamp(), np.mid FROM newp np WHERE used + np.k <= lim
        ORDER BY np.user_id
        ON CONFLICT (user_id) DO UPDATE
            SET reached_at = excluded.reached_at, message_id = excluded.message_id
        RETURNING r.user_id
    )
    SELECT v.id, CASE WHEN v.verdict = 'send'
            AND EXISTS (SELECT 1 FROM newp np WHERE np.user_id = v.user_id)
            AND NOT EXISTS (SELECT 1 FROM ok WHERE ok.user_id = v.user_id) THEN 'limit'
        ELSE v.verdict END
    FROM v;
END
$$;
