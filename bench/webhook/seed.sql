-- The database the webhook benchmarks apply deliveries to
-- (bench/webhook.sh, bench/apply_profile.sh; psql -v users=N -v nmsgs=M):
-- users 1..users (1 in 20 waiting for their goodbye answer) and the sent
-- messages 1..nmsgs the statuses of bench/webhook/bodies.py are about
-- (provider id wamid.BENCH<m on 12 digits>, queue id m).
INSERT INTO engagement.users (id, phone_e164)
SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '+5511' || lpad(i::text, 9, '0')
FROM generate_series(1, :users) i;
INSERT INTO engagement.user_preferences (user_id) SELECT id FROM engagement.users;
INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, goodbye_sent_at, goodbye_expires_at)
SELECT id, 'active', now() - interval '3 days', NULL, NULL FROM engagement.users
WHERE right(phone_e164, 2)::int % 20 <> 0
UNION ALL
SELECT id, 'goodbye_sent', now() - interval '15 days', now() - interval '1 day', now() + interval '1 day'
FROM engagement.users WHERE right(phone_e164, 2)::int % 20 = 0;
INSERT INTO engagement.message_queue (user_id, message_type, template_key, params, idempotency_key,
  status, provider_message_id, sent_at, attempts)
SELECT ('00000000-0000-4000-8000-' || lpad(((m - 1) % :users + 1)::text, 12, '0'))::uuid,
  'weekly_review', 'weekly_review', '{"activity_count": 3}', 'bench:' || m, 'sent',
  'wamid.BENCH' || lpad(m::text, 12, '0'), now() - interval '1 hour', 1
FROM generate_series(1, :nmsgs) m;
