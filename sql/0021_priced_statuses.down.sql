-- 0021_priced_statuses: undo. Statuses without their price again
-- (receivers record it with record_pricing).
DROP FUNCTION engagement.apply_delivery_statuses(jsonb, uuid);
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

