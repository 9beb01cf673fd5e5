-- The daily job's work as three hand-written set-based statements, for the
-- benchmark: the same rows written as engagement-daily writes (transition
-- rows with metadata, outbox events, goodbye messages), with no batching.
--   psql -v now=2026-11-22T06:00:00Z -v run=<uuid> -f bench/reference_daily.sql
\set ON_ERROR_STOP on
\set QUIET on

-- 1. 14 days quiet, not opted out -> goodbye_sent + goodbye message
WITH cand AS (
  SELECT s.user_id, s.last_activity_at AS prev
  FROM engagement.engagement_states s
  WHERE s.state = 'active'
    AND s.last_activity_at < :'now'::timestamptz - interval '14 days'
    AND NOT EXISTS (SELECT 1 FROM engagement.user_preferences p
                    WHERE p.user_id = s.user_id AND p.reengagement_opt_out)
  FOR UPDATE OF s
), upd AS (
  UPDATE engagement.engagement_states s
  SET state = 'goodbye_sent', state_changed_at = :'now', state_trigger = 'inactivity_14d', goodbye_sent_at = :'now',
      goodbye_expires_at = :'now'::timestamptz + interval '48 hours'
  FROM cand c WHERE s.user_id = c.user_id
  RETURNING s.user_id, c.prev, s.goodbye_expires_at
), tr AS (
  INSERT INTO engagement.state_transitions (user_id, from_state, to_state, trigger, run_id, metadata, created_at)
  SELECT user_id, 'active', 'goodbye_sent', 'inactivity_14d', :'run',
         jsonb_build_object('days_inactive', floor(extract(epoch FROM (:'now'::timestamptz - prev)) / 86400)::int),
         :'now'
  FROM upd RETURNING id, user_id, metadata
), tr_out AS (
  INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
  SELECT 'user', user_id::text, 'engagement.state_changed',
         jsonb_build_object('user_id', user_id, 'transition_id', id, 'from_state', 'active',
                            'to_state', 'goodbye_sent', 'trigger', 'inactivity_14d',
                            'occurred_at', :'now'::timestamptz, 'metadata', metadata),
         :'run', user_id
  FROM tr
), mq AS (
  INSERT INTO engagement.message_queue (user_id, message_type, template_key, params, idempotency_key,
                                        scheduled_for, next_attempt_at, expires_at, run_id)
  SELECT user_id, 'goodbye', 'goodbye', '{}',
         user_id::text || ':goodbye_sent:' || to_char(:'now'::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
         :'now', :'now', goodbye_expires_at, :'run'
  FROM upd
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id, user_id
)
INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
SELECT 'message', id::text, 'message.queued',
       jsonb_build_object('message_id', id, 'user_id', user_id, 'message_type', 'goodbye'), :'run', user_id
FROM mq;

-- 2. goodbye window over -> dormant
WITH cand AS (
  SELECT s.user_id, s.last_activity_at AS prev
  FROM engagement.engagement_states s
  WHERE s.state = 'goodbye_sent' AND s.goodbye_expires_at < :'now'::timestamptz
  FOR UPDATE OF s
), upd AS (
  UPDATE engagement.engagement_states s SET state = 'dormant', state_changed_at = :'now', state_trigger = 'goodbye_timeout'
  FROM cand c WHERE s.user_id = c.user_id RETURNING s.user_id, c.prev
), tr AS (
  INSERT INTO engagement.state_transitions (user_id, from_state, to_state, trigger, run_id, metadata, created_at)
  SELECT user_id, 'goodbye_sent', 'dormant', 'goodbye_timeout', :'run',
         jsonb_build_object('days_inactive', floor(extract(epoch FROM (:'now'::timestamptz - prev)) / 86400)::int,
                            'response_type', 'timeout'),
         :'now'
  FROM upd RETURNING id, user_id, metadata
)
INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
SELECT 'user', user_id::text, 'engagement.state_changed',
       jsonb_build_object('user_id', user_id, 'transition_id', id, 'from_state', 'goodbye_sent',
                          'to_state', 'dormant', 'trigger', 'goodbye_timeout',
                          'occurred_at', :'now'::timestamptz, 'metadata', metadata),
       :'run', user_id
FROM tr;

-- 3. reminder due -> dormant
WITH cand AS (
  SELECT s.user_id, s.last_activity_at AS prev
  FROM engagement.engagement_states s
  WHERE s.state = 'remind_later' AND s.remind_at < :'now'::timestamptz
  FOR UPDATE OF s
), upd AS (
  UPDATE engagement.engagement_states s SET state = 'dormant', state_changed_at = :'now', state_trigger = 'reminder_due', remind_at = NULL
  FROM cand c WHERE s.user_id = c.user_id RETURNING s.user_id, c.prev
), tr AS (
  INSERT INTO engagement.state_transitions (user_id, from_state, to_state, trigger, run_id, metadata, created_at)
  SELECT user_id, 'remind_later', 'dormant', 'reminder_due', :'run',
         jsonb_build_object('days_inactive', floor(extract(epoch FROM (:'now'::timestamptz - prev)) / 86400)::int),
         :'now'
  FROM upd RETURNING id, user_id, metadata
)
INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
SELECT 'user', user_id::text, 'engagement.state_changed',
       jsonb_build_object('user_id', user_id, 'transition_id', id, 'from_state', 'remind_later',
                          'to_state', 'dormant', 'trigger', 'reminder_due',
                          'occurred_at', :'now'::timestamptz, 'metadata', metadata),
       :'run', user_id
FROM tr;
