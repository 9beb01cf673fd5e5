-- 0007_send_fence: the check queue-send makes immediately before a group of
-- requests starts (DESIGN.md §2.3, "Guarantees").
--
-- Called inside a short transaction that queue-send keeps open until the
-- group's requests are on the wire. Step 1 locks the claims this worker
-- still holds (FOR UPDATE: an opt-out or a transition that wants the same
-- rows waits until the requests have started; rows such a writer holds now
-- are skipped, and retried later). Step 2 runs with a new snapshot (each
-- statement of a VOLATILE function gets one under READ COMMITTED), so it
-- sees every opt-out and transition that committed before the locks were
-- granted. Together: no request starts after an opt-out of its user has
-- committed, after the claim was lost, or after a goodbye's user left
-- goodbye_sent.
--
-- The verdict per id: send; expired (past expires_at at p_now, or the
-- database clock); opted_out; user_returned (a goodbye whose user is no
-- longer in goodbye_sent); busy (ours, but a concurrent writer holds the row:
-- try again); lost (not ours any more: the lease ran out and another worker
-- recovered it, or it was finished meanwhile).
CREATE FUNCTION engagement.send_fence(p_ids bigint[], p_owner text,
                                      p_now timestamptz)
RETURNS TABLE (id bigint, verdict text)
LANGUAGE plpgsql VOLATILE AS $$
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
