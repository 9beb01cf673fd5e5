-- engagement-weekly's work as one hand-written set-based statement.
--   psql -v now=... -v run=<uuid> -v week=2026-W47 -f bench/reference_weekly.sql
\set ON_ERROR_STOP on
\set QUIET on
WITH act AS (
  SELECT a.user_id, count(*) AS n
  FROM engagement.activity_events a
  WHERE a.occurred_at >= :'now'::timestamptz - interval '7 days' AND a.occurred_at < :'now'::timestamptz
  GROUP BY a.user_id
), ins AS (
  INSERT INTO engagement.message_queue (user_id, message_type, template_key, params, idempotency_key,
                                        scheduled_for, next_attempt_at, expires_at, run_id)
  SELECT act.user_id, 'weekly_review', 'weekly_review', jsonb_build_object('activity_count', act.n),
         act.user_id::text || ':weekly_review:' || :'week', :'now', :'now',
         :'now'::timestamptz + interval '24 hours', :'run'
  FROM act
  WHERE NOT EXISTS (SELECT 1 FROM engagement.user_preferences p
                    WHERE p.user_id = act.user_id AND p.reengagement_opt_out)
  ON CONFLICT (idempotency_key) DO NOTHING
  RETURNING id, user_id
)
INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload, correlation_id, user_id)
SELECT 'message', id::text, 'message.queued',
       jsonb_build_object('message_id', id, 'user_id', user_id, 'message_type', 'weekly_review'), :'run', user_id
FROM ins;
