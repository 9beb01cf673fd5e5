-- Generate a population for benchmarks and the demo.
--   psql -v n=1000000 -v now=2026-11-22T06:00:00Z -f bench/gen_users.sql
-- By i mod 100: 0-9 due for a goodbye (quiet 15-30 days), 10 expired
-- goodbyes, 11 due reminders, 12 goodbyes still open, 13 help_flow,
-- 14-15 dormant, 16 remind_later not yet due, the rest active in the last
-- 13 days. 5% opted out, spread over every state (a different hash of i).
-- 30% of users have 1-5 activity events in the last 7 days.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO engagement.users (id, phone_e164, display_name, created_at)
SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       '+5511' || lpad(i::text, 9, '0'),
       'user ' || i,
       :'now'::timestamptz - interval '200 days'
FROM generate_series(1, :n) AS i;

INSERT INTO engagement.engagement_states
    (user_id, state, last_activity_at, goodbye_sent_at, goodbye_expires_at,
     remind_at, state_changed_at, created_at)
SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       CASE WHEN m < 10 THEN 'active'
            WHEN m IN (10, 12) THEN 'goodbye_sent'
            WHEN m IN (11, 16) THEN 'remind_later'
            WHEN m = 13 THEN 'help_flow'
            WHEN m IN (14, 15) THEN 'dormant'
            ELSE 'active' END,
       CASE WHEN m < 10 THEN t - make_interval(days => 15 + (i % 16), secs => i % 86400)
            WHEN m BETWEEN 10 AND 16 THEN t - make_interval(days => 17 + (i % 10))
            ELSE t - make_interval(days => i % 14, secs => i % 86400) END,
       CASE WHEN m = 10 THEN t - interval '3 days'
            WHEN m = 12 THEN t - interval '1 day'
            WHEN m = 11 OR m = 16 THEN t - interval '5 days' END,
       CASE WHEN m = 10 THEN t - interval '1 day'
            WHEN m = 12 THEN t + interval '1 day'
            WHEN m = 11 OR m = 16 THEN t - interval '3 days' END,
       CASE WHEN m = 11 THEN t - interval '1 hour'
            WHEN m = 16 THEN t + interval '5 days' END,
       t - interval '2 days',
       t - interval '200 days'
FROM (SELECT i, i % 100 AS m, :'now'::timestamptz AS t
      FROM generate_series(1, :n) AS i) g;

INSERT INTO engagement.user_preferences
    (user_id, locale, timezone, quiet_hours_start, quiet_hours_end,
     reengagement_opt_out, reengagement_opt_out_updated_at, reengagement_opt_out_source)
SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       (ARRAY['en', 'pt-BR', 'es', 'es-MX', 'fr'])[1 + i % 5],
       (ARRAY['UTC', 'America/Sao_Paulo', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[1 + i % 5],
       CASE WHEN i % 3 = 0 THEN time '22:00' END,
       CASE WHEN i % 3 = 0 THEN time '07:00' END,
       (i::bigint * 7919) % 100 < 5,
       CASE WHEN (i::bigint * 7919) % 100 < 5 THEN :'now'::timestamptz - interval '30 days' END,
       CASE WHEN (i::bigint * 7919) % 100 < 5 THEN 'web' END
FROM generate_series(1, :n) AS i;

INSERT INTO engagement.activity_events (user_id, occurred_at, kind)
SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       :'now'::timestamptz - make_interval(hours => 1 + (i * 13 + k * 37) % 160),
       'message'
FROM generate_series(1, :n) AS i, generate_series(1, 5) AS k
WHERE i % 10 < 3 AND k <= 1 + i % 5;
COMMIT;
VACUUM ANALYZE;
