-- The schema of DESIGN.md §3: tables, constraints, erasure, maintenance.
BEGIN;
SELECT plan(70);

-- Tables ------------------------------------------------------------------
SELECT tables_are('engagement', ARRAY[
    'users', 'user_preferences', 'engagement_states', 'state_transitions',
    'activity_events', 'message_templates', 'message_queue', 'audit_log',
    'outbox_events', 'job_runs', 'job_locks', 'schema_migrations', 'time_zones', 'send_rate', 'send_pauses', 'messaging_limits', 'limit_reached',
    'webhook_inbox', 'inbound_events', 'message_counts', 'program_grants', 'state_machine']);

-- The state machine: exactly the ten transitions of DESIGN.md §1 ------------
SELECT set_eq(
    'SELECT from_state, trigger, to_state FROM engagement.state_machine',
    $$VALUES ('active', 'inactivity_14d', 'goodbye_sent'),
             ('goodbye_sent', 'user_message', 'active'),
             ('goodbye_sent', 'goodbye_response_1', 'help_flow'),
             ('goodbye_sent', 'goodbye_response_2', 'remind_later'),
             ('goodbye_sent', 'goodbye_response_3', 'dormant'),
             ('goodbye_sent', 'goodbye_timeout', 'dormant'),
             ('help_flow', 'user_message', 'active'),
             ('remind_later', 'user_message', 'active'),
             ('remind_later', 'reminder_due', 'dormant'),
             ('dormant', 'user_message', 'active')$$,
    'the ten valid transitions of DESIGN.md, and nothing else');
SELECT is(engagement.trigger_sources('user_message'),
          'goodbye_sent, help_flow, remind_later or dormant', 'where user_message applies from');
SELECT is(engagement.trigger_sources('inactivity_14d'), 'active', 'where inactivity_14d applies from');
SELECT col_is_pk('engagement', 'users', 'id', 'users keyed by id');
SELECT col_is_pk('engagement', 'user_preferences', 'user_id', 'preferences 1:1');
SELECT col_is_pk('engagement', 'engagement_states', 'user_id', 'state 1:1');
SELECT col_is_pk('engagement', 'message_templates', ARRAY['template_key', 'locale'], 'templates keyed by key+locale');
SELECT col_is_pk('engagement', 'schema_migrations', 'version', 'migrations keyed by version');
SELECT col_is_pk('engagement', 'job_runs', 'run_id', 'job runs keyed by run_id');
SELECT col_not_null('engagement', 'user_preferences', 'reengagement_opt_out', 'opt-out is never unknown');
SELECT col_default_is('engagement', 'user_preferences', 'reengagement_opt_out', 'false', 'opt-out defaults to false');
SELECT col_default_is('engagement', 'user_preferences', 'locale', 'en', 'locale defaults to en');
SELECT col_default_is('engagement', 'user_preferences', 'timezone', 'UTC', 'timezone defaults to UTC');
SELECT col_default_is('engagement', 'message_queue', 'max_attempts', '5', 'five attempts by default');
SELECT col_type_is('engagement', 'message_queue', 'params', 'jsonb', 'params are jsonb');
SELECT col_type_is('engagement', 'state_transitions', 'metadata', 'jsonb', 'metadata is jsonb');

-- Indexes the hot queries need ----------------------------------------------
SELECT has_index('engagement', 'engagement_states', 'engagement_states_inactive_idx', 'daily check 1 index');
SELECT has_index('engagement', 'engagement_states', 'engagement_states_goodbye_due_idx', 'daily check 2 index');
SELECT has_index('engagement', 'engagement_states', 'engagement_states_remind_due_idx', 'daily check 3 index');
SELECT has_index('engagement', 'message_queue', 'message_queue_due_type_idx', 'claim index (by type too)');
SELECT has_index('engagement', 'message_queue', 'message_queue_lease_idx', 'lease recovery index');
SELECT has_index('engagement', 'outbox_events', 'outbox_events_unpublished_idx', 'outbox backlog index');
SELECT has_index('engagement', 'activity_events', 'activity_events_occurred_at_idx', 'weekly activity index');
SELECT has_index('engagement', 'user_preferences', 'user_preferences_opted_out_idx', 'the opted-out index');
SELECT is((SELECT indpred IS NOT NULL FROM pg_index WHERE indexrelid = 'engagement.message_queue_due_type_idx'::regclass),
          true, 'the claim index is partial');

-- Seeded templates ----------------------------------------------------------
SELECT set_eq(
    'SELECT template_key, locale, provider_language FROM engagement.message_templates WHERE is_active',
    $$VALUES ('goodbye', 'en', 'en'), ('goodbye', 'pt-BR', 'pt_BR'), ('goodbye', 'es', 'es'),
             ('weekly_review', 'en', 'en'), ('weekly_review', 'pt-BR', 'pt_BR'), ('weekly_review', 'es', 'es')$$,
    'goodbye and weekly_review seeded in en, pt-BR and es');
SELECT is((SELECT param_names FROM engagement.message_templates WHERE template_key = 'weekly_review' AND locale = 'en'),
          ARRAY['activity_count'], 'weekly_review takes activity_count');

-- users: E.164 ----------------------------------------------------------------
SELECT lives_ok($$INSERT INTO engagement.users (id, phone_e164) VALUES
    ('00000000-0000-4000-8000-000000000001', '+5511987654321')$$, 'a valid E.164 number is accepted');
SELECT throws_ok($$INSERT INTO engagement.users (phone_e164) VALUES ('5511987654321')$$, '23514', NULL, 'a number without + is refused');
SELECT throws_ok($$INSERT INTO engagement.users (phone_e164) VALUES ('+0511987654321')$$, '23514', NULL, 'a leading 0 is refused');
SELECT throws_ok($$INSERT INTO engagement.users (phone_e164) VALUES ('+1234567')$$, '23514', NULL, 'seven digits are too few');
SELECT throws_ok($$INSERT INTO engagement.users (phone_e164) VALUES ('+1234567890123456')$$, '23514', NULL, 'sixteen digits are too many');
SELECT throws_ok($$INSERT INTO engagement.users (phone_e164) VALUES ('+55 11 98765 4321')$$, '23514', NULL, 'spaces are refused');
SELECT throws_ok($$INSERT INTO engagement.users (phone_e164) VALUES ('+5511987654321')$$, '23505', NULL, 'phone numbers are unique');

-- user_preferences ------------------------------------------------------------
SELECT lives_ok($$INSERT INTO engagement.user_preferences (user_id, locale, timezone, quiet_hours_start, quiet_hours_end)
    VALUES ('00000000-0000-4000-8000-000000000001', 'pt-BR', 'America/Sao_Paulo', '22:00', '07:00')$$,
    'a valid preference row (quiet hours across midnight)');
SELECT throws_ok($$UPDATE engagement.user_preferences SET timezone = 'Mars/Olympus_Mons'$$, '23503', NULL, 'an unknown time zone is refused');
SELECT throws_ok($$UPDATE engagement.user_preferences SET timezone = 'XYZ+3'$$, '23503', NULL, 'a POSIX zone string is not an IANA name');
SELECT throws_ok($$UPDATE engagement.user_preferences SET quiet_hours_end = NULL$$, '23514', NULL, 'quiet hours are both or neither');
SELECT throws_ok($$UPDATE engagement.user_preferences SET quiet_hours_end = quiet_hours_start$$, '23514', NULL, 'an empty quiet window is refused');
SELECT lives_ok($$UPDATE engagement.user_preferences SET quiet_hours_start = NULL, quiet_hours_end = NULL$$, 'no quiet hours at all is fine');
SELECT throws_ok($$UPDATE engagement.user_preferences SET locale = 'Portuguese'$$, '23514', NULL, 'a locale must look like a BCP 47 tag');
SELECT throws_ok($$UPDATE engagement.user_preferences SET preferred_destination = 'email'$$, '23514', NULL, 'destination is individual or group');
SELECT throws_ok($$UPDATE engagement.user_preferences SET preferred_destination = 'group'$$, '23514', NULL, 'a group destination needs a group_id');
SELECT throws_ok($$UPDATE engagement.user_preferences SET reengagement_opt_out_source = 'fax'$$, '23514', NULL, 'opt-out sources are whatsapp, web, cli, api');

-- updated_at maintenance --------------------------------------------------------
UPDATE engagement.user_preferences SET updated_at = '2000-01-01Z', locale = 'es';
SELECT isnt((SELECT updated_at FROM engagement.user_preferences), '2000-01-01Z'::timestamptz, 'updated_at is set by the database on update');

-- engagement_states -------------------------------------------------------------
SELECT lives_ok($$INSERT INTO engagement.engagement_states (user_id) VALUES ('00000000-0000-4000-8000-000000000001')$$, 'a state row defaults to active');
SELECT is((SELECT state FROM engagement.engagement_states), 'active', 'the default state is active');
SELECT throws_ok($$UPDATE engagement.engagement_states SET state = 'asleep'$$, '23514', NULL, 'unknown states are refused');
SELECT throws_ok($$UPDATE engagement.engagement_states SET state = 'goodbye_sent'$$, '23514', NULL, 'goodbye_sent needs its timestamps');
SELECT throws_ok($$UPDATE engagement.engagement_states SET state = 'remind_later'$$, '23514', NULL, 'remind_later needs remind_at');
SELECT throws_ok($$INSERT INTO engagement.state_transitions (user_id, from_state, to_state, trigger)
    VALUES ('00000000-0000-4000-8000-000000000001', 'active', 'dormant', 'nap_time')$$, '23514', NULL, 'unknown triggers are refused');

-- message_queue --------------------------------------------------------------------
SELECT lives_ok($$INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key)
    VALUES ('00000000-0000-4000-8000-000000000001', 'goodbye', 'goodbye', 'k1')$$, 'a queued message');
SELECT throws_ok($$INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key)
    VALUES ('00000000-0000-4000-8000-000000000001', 'goodbye', 'goodbye', 'k1')$$, '23505', NULL, 'idempotency keys are unique');
SELECT throws_ok($$UPDATE engagement.message_queue SET status = 'lost'$$, '23514', NULL, 'unknown statuses are refused');
SELECT throws_ok($$UPDATE engagement.message_queue SET status = 'sending'$$, '23514', NULL, 'sending needs a lease');
SELECT throws_ok($$UPDATE engagement.message_queue SET status = 'sent'$$, '23514', NULL, 'sent needs a provider id and sent_at');
SELECT throws_ok($$UPDATE engagement.message_queue SET params = '[1]'$$, '23514', NULL, 'params are a JSON object');

-- Erasure: deleting a user removes every row about them ---------------------------
INSERT INTO engagement.activity_events (user_id, occurred_at) VALUES ('00000000-0000-4000-8000-000000000001', now());
INSERT INTO engagement.state_transitions (user_id, from_state, to_state, trigger)
    VALUES ('00000000-0000-4000-8000-000000000001', 'active', 'goodbye_sent', 'inactivity_14d');
INSERT INTO engagement.audit_log (user_id, event) VALUES ('00000000-0000-4000-8000-000000000001', 'test');
INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, user_id)
    VALUES ('user', '00000000-0000-4000-8000-000000000001', 'test', '00000000-0000-4000-8000-000000000001');
SELECT is((
    SELECT count(*) FROM pg_constraint c
    WHERE c.contype = 'f' AND c.confrelid = 'engagement.users'::regclass AND c.confdeltype <> 'c'),
    0::bigint, 'every foreign key to users cascades on delete');
DELETE FROM engagement.users WHERE id = '00000000-0000-4000-8000-000000000001';
SELECT is((
    SELECT (SELECT count(*) FROM engagement.user_preferences) + (SELECT count(*) FROM engagement.engagement_states)
         + (SELECT count(*) FROM engagement.activity_events) + (SELECT count(*) FROM engagement.state_transitions)
         + (SELECT count(*) FROM engagement.audit_log) + (SELECT count(*) FROM engagement.message_queue)
         + (SELECT count(*) FROM engagement.outbox_events WHERE event_type <> 'user.erased')),
    0::bigint, 'deleting a user erases every row about them');
SELECT is((SELECT payload FROM engagement.outbox_events WHERE event_type = 'user.erased'),
          '{"user_id": "00000000-0000-4000-8000-000000000001"}'::jsonb,
          'the erasure is announced through the outbox, by id only');

-- What the webhook adds (0008, 0009) -------------------------------------
SELECT has_column('engagement', 'message_queue', 'delivery_status', 'delivery status');
SELECT has_column('engagement', 'message_queue', 'delivered_at', 'delivered_at');
SELECT has_column('engagement', 'message_queue', 'read_at', 'read_at');
SELECT has_column('engagement', 'message_queue', 'delivery_error_code', 'delivery error code');
SELECT throws_ok($$WITH u AS (INSERT INTO engagement.users (phone_e164) VALUES ('+5511900099999')
    RETURNING id) INSERT INTO engagement.message_queue (user_id, message_type, template_key,
    idempotency_key, delivery_status) SELECT id, 'goodbye', 'goodbye', 'k-ds', 'lost' FROM u$$, '23514',
    NULL, 'delivery_status takes only sent, delivered, read or failed');
SELECT col_is_pk('engagement', 'inbound_events', ARRAY['event_id', 'kind'],
    'an inbound event is applied once per id and kind of effect');
SELECT has_index('engagement', 'message_queue', 'message_queue_provider_id_idx',
    'statuses are matched by the provider''s id');
SELECT has_index('engagement', 'webhook_inbox', 'webhook_inbox_pending_idx',
    'pending deliveries found by a partial index');

SELECT col_is_pk('engagement', 'message_counts', ARRAY['minute', 'kind', 'code'],
    'one count per minute, kind and code, added to by concurrent writers');

SELECT * FROM finish();
ROLLBACK;
