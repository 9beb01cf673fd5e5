#!/usr/bin/env bats
# Least privilege (DESIGN.md §5): the roles migrate creates, what each may
# not do, the functions that write for others, and a migrating role that
# may not create roles. (Every other test file already runs each program as
# a login granted its role only: a missing grant fails those.)

load helpers

ROLES="engagement_daily engagement_weekly engagement_event engagement_sender engagement_optout engagement_relay engagement_status engagement_webhook"

setup() {
	new_db
	PRIV_PG=
	q "INSERT INTO engagement.users (id, phone_e164) VALUES
	     ('00000000-0000-4000-8000-000000000001', '+5511987654321');
	   INSERT INTO engagement.user_preferences (user_id) VALUES
	     ('00000000-0000-4000-8000-000000000001');
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key)
	   VALUES ('00000000-0000-4000-8000-000000000001', 'goodbye', 'goodbye', 'k1')" >/dev/null
	U1=00000000-0000-4000-8000-000000000001
}

teardown() {
	if [ -n "$PRIV_PG" ]; then
		"$ENG_SRC/tests/pg/cluster.sh" stop "$PRIV_PG" >/dev/null 2>&1 3>&- || true
	fi
	drop_dbs
}

# as LOGIN SQL: run SQL in the test database as LOGIN (a login granted one
# program role, made by tests/pg/cluster.sh); $status and $output (psql's
# stderr included).
as() {
	run psql -X -q -At -v ON_ERROR_STOP=1 -U "$1" -d "$DB" -c "$2" 2>&1
}

# denied LOGIN SQL...: every statement fails for want of a privilege
denied() {
	local login=$1 sql
	shift
	for sql in "$@"; do
		as "$login" "$sql"
		if [ "$status" -eq 0 ] || [[ "$output" != *"permission denied"* && "$output" != *"must be owner"* ]]; then
			echo "$login was allowed (or failed otherwise): $sql -> $status: $output" >&2
			return 1
		fi
	done
}

@test "migrate creates the eight program roles, NOLOGIN, and running it again changes nothing" {
	for r in $ROLES; do
		[ "$(q "SELECT rolcanlogin FROM pg_roles WHERE rolname = '$r'")" = f ]
	done
	before=$(q "SELECT md5(string_agg(g, ',' ORDER BY g)) FROM (SELECT grantee || table_name || privilege_type AS g
	            FROM (SELECT grantee::text, table_name::text, privilege_type::text
	                  FROM information_schema.role_table_grants WHERE table_schema = 'engagement'
	                  UNION ALL SELECT grantee, table_name || '.' || column_name, privilege_type
	                  FROM information_schema.column_privileges WHERE table_schema = 'engagement') g) x")
	eng migrate --db "$CONN" up
	[ "$status" -eq 0 ]
	[ "$(sj '.roles_missing | length')" -eq 0 ]
	after=$(q "SELECT md5(string_agg(g, ',' ORDER BY g)) FROM (SELECT grantee || table_name || privilege_type AS g
	           FROM (SELECT grantee::text, table_name::text, privilege_type::text
	                 FROM information_schema.role_table_grants WHERE table_schema = 'engagement'
	                 UNION ALL SELECT grantee, table_name || '.' || column_name, privilege_type
	                 FROM information_schema.column_privileges WHERE table_schema = 'engagement') g) x")
	[ "$before" = "$after" ]
	# nothing is granted to everyone, and apply_grants is the owner's
	[ "$(q "SELECT count(*) FROM information_schema.role_table_grants
	        WHERE table_schema = 'engagement' AND grantee = 'PUBLIC'")" -eq 0 ]
	denied eng_sender "SELECT engagement.apply_grants()"
}

@test "the sender cannot opt anyone in, touch preferences, users, templates or the outbox, or queue messages" {
	denied eng_sender \
		"UPDATE engagement.user_preferences SET reengagement_opt_out = false" \
		"INSERT INTO engagement.user_preferences (user_id) VALUES (gen_random_uuid())" \
		"DELETE FROM engagement.users" \
		"INSERT INTO engagement.users (phone_e164) VALUES ('+5511900000009')" \
		"INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key)
		 VALUES ('$U1', 'goodbye', 'goodbye', 'mine')" \
		"INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
		 VALUES ('user', 'x', 'preferences.reengagement_changed', '{}')" \
		"UPDATE engagement.message_templates SET provider_name = 'phish'" \
		"DELETE FROM engagement.audit_log" \
		"UPDATE engagement.audit_log SET event = 'x'" \
		"SELECT * FROM engagement.apply_preference_changes('[]', 300)" \
		"UPDATE engagement.engagement_states SET state = 'active'" \
		"DROP TABLE engagement.audit_log"
	# a provider stop opts out, whatever it says
	as eng_sender "SELECT outcome FROM engagement.record_provider_stops(
	  '[{\"user_id\": \"$U1\", \"opt_out\": false, \"source\": \"web\"}]', 300)"
	[ "$status" -eq 0 ]
	[ "$output" = applied ]
	[ "$(q "SELECT reengagement_opt_out || ' ' || reengagement_opt_out_source
	        FROM engagement.user_preferences WHERE user_id = '$U1'")" = "true whatsapp" ]
	# and the queued message of the person who stopped is blocked
	[ "$(q "SELECT status FROM engagement.message_queue WHERE idempotency_key = 'k1'")" = blocked ]
}

@test "an outbox event says what its row says: no event for a state the row is not in, no unknown type" {
	id=$(q "SELECT id FROM engagement.message_queue WHERE idempotency_key = 'k1'")
	# the message is queued, not sent: announcing it sent publishes nothing
	as eng_sender "SELECT engagement.publish_message_events('message.sent', ARRAY[$id::bigint], NULL)"
	[ "$status" -eq 0 ]
	[ "$output" = 0 ]
	as eng_sender "SELECT engagement.publish_message_events('user.erased', ARRAY[$id::bigint], NULL)"
	[ "$status" -ne 0 ]
	[[ "$output" == *"unknown message event type"* ]]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 0 ]
	# what is true may be announced (again): the payload comes from the row
	as eng_weekly "SELECT engagement.publish_message_events('message.queued', ARRAY[$id::bigint], NULL)"
	[ "$output" = 1 ]
	[ "$(q "SELECT payload->>'message_type' FROM engagement.outbox_events")" = goodbye ]
}

@test "each job sees and writes only its own runs and lease; engagement-status reads them all" {
	q "INSERT INTO engagement.job_runs (run_id, program, started_at, status) VALUES
	     (gen_random_uuid(), 'engagement-daily', now(), 'ok'),
	     (gen_random_uuid(), 'queue-send', now(), 'ok');
	   INSERT INTO engagement.job_locks (job, run_id, holder, acquired_at, expires_at)
	     VALUES ('engagement-daily', gen_random_uuid(), 'x', now(), now() + interval '1 hour')" >/dev/null
	as eng_sender "SELECT string_agg(program, ',') FROM engagement.job_runs"
	[ "$output" = queue-send ]
	as eng_sender "UPDATE engagement.job_runs SET status = 'failed' WHERE program = 'engagement-daily' RETURNING 1"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	as eng_sender "INSERT INTO engagement.job_runs (run_id, program, started_at, status)
	               VALUES (gen_random_uuid(), 'engagement-daily', now(), 'ok')"
	[ "$status" -ne 0 ]
	[[ "$output" == *"row-level security"* ]]
	as eng_weekly "DELETE FROM engagement.job_locks RETURNING 1"
	[ -z "$output" ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks")" -eq 1 ]
	as eng_status "SELECT count(*) FROM engagement.job_runs"
	[ "$output" = 2 ]
	denied eng_status "UPDATE engagement.job_runs SET status = 'ok'"
}

@test "engagement-status reads counts, never a phone number or a message body, and writes nothing" {
	denied eng_status \
		"SELECT phone_e164 FROM engagement.users" \
		"SELECT body FROM engagement.webhook_inbox" \
		"SELECT params FROM engagement.message_queue" \
		"SELECT payload FROM engagement.outbox_events" \
		"SELECT details FROM engagement.audit_log" \
		"SELECT * FROM engagement.user_preferences" \
		"INSERT INTO engagement.message_counts (minute, kind, n) VALUES (now(), 'sent', 1)" \
		"DELETE FROM engagement.message_queue"
	as eng_status "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued'"
	[ "$output" = 1 ]
}

@test "the daily and weekly jobs see who opted out, not preferences or phone numbers" {
	for login in eng_daily eng_weekly; do
		denied "$login" \
			"SELECT reengagement_opt_out FROM engagement.user_preferences" \
			"SELECT phone_e164 FROM engagement.users" \
			"UPDATE engagement.user_preferences SET reengagement_opt_out = false" \
			"INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
			 VALUES ('x', 'x', 'x', '{}')" \
			"UPDATE engagement.message_queue SET status = 'cancelled'" \
			"DELETE FROM engagement.message_queue"
		as "$login" "SELECT count(*) FROM engagement.opted_out_users"
		[ "$status" -eq 0 ]
	done
	denied eng_weekly "UPDATE engagement.engagement_states SET state = 'dormant'" \
		"INSERT INTO engagement.state_transitions (user_id, from_state, to_state, trigger)
		 VALUES ('$U1', 'active', 'dormant', 'x')"
}

@test "optout-set changes preferences only through the function; event, relay and webhook keep to their tables" {
	denied eng_optout \
		"UPDATE engagement.user_preferences SET reengagement_opt_out = true" \
		"INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key)
		 VALUES ('$U1', 'goodbye', 'goodbye', 'x')" \
		"UPDATE engagement.message_queue SET status = 'blocked'" \
		"INSERT INTO engagement.audit_log (event, source) VALUES ('x', 'x')"
	as eng_optout "SELECT outcome FROM engagement.apply_preference_changes(
	  '[{\"user_id\": \"$U1\", \"opt_out\": true, \"source\": \"web\"}]', 300)"
	[ "$output" = applied ]
	denied eng_event \
		"UPDATE engagement.user_preferences SET reengagement_opt_out = false" \
		"SELECT * FROM engagement.apply_preference_changes('[]', 300)" \
		"INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
		 VALUES ('x', 'x', 'x', '{}')" \
		"DELETE FROM engagement.users"
	denied eng_relay \
		"SELECT phone_e164 FROM engagement.users" \
		"INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
		 VALUES ('x', 'x', 'x', '{}')" \
		"UPDATE engagement.outbox_events SET payload = '{}'" \
		"SELECT * FROM engagement.message_queue"
	denied eng_webhook \
		"UPDATE engagement.message_templates SET is_active = false" \
		"DELETE FROM engagement.users" \
		"UPDATE engagement.user_preferences SET reengagement_opt_out = false" \
		"UPDATE engagement.message_queue SET provider_message_id = 'wamid.x'" \
		"UPDATE engagement.message_queue SET attempts = 0" \
		"INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
		 VALUES ('x', 'x', 'x', '{}')"
}

@test "a migrating role that may not create roles: migrate says what to run, the rest applies; run again after, the roles get their grants" {
	PRIV_PG="$BATS_TEST_TMPDIR/pg"
	"$ENG_SRC/tests/pg/cluster.sh" start "$PRIV_PG" >/dev/null 3>&-
	eval "$(. "$PRIV_PG/env" && printf 'P_HOST=%q P_PORT=%q' "$PGHOST" "$PGPORT")"
	psu() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$P_HOST" -p "$P_PORT" -U postgres -d "${2:-postgres}" -c "$1"; }
	psu "CREATE ROLE app_owner LOGIN CREATEDB" >/dev/null
	psu "CREATE DATABASE app OWNER app_owner" >/dev/null
	OWNER="host=$P_HOST port=$P_PORT user=app_owner dbname=app"
	eng migrate --db "$OWNER" up
	[ "$status" -eq 0 ]
	[ "$(sj .current)" -eq "$(ls "$ENG_SRC"/sql/*.up.sql | wc -l)" ]
	[ "$(sj '.roles_missing | length')" -eq 8 ]
	line=$(log_events roles_missing)
	[ "$(jq -r .level <<<"$line")" = warn ]
	[[ "$(jq -r .message <<<"$line")" == *"CREATEROLE"* ]]
	# the schema works for its owner meanwhile
	[ "$(psu "SELECT count(*) FROM engagement.opted_out_users" app)" -eq 0 ]
	# an administrator runs what it said, then migrate up again grants
	psu "$(jq -r .sql <<<"$line")" >/dev/null
	eng migrate --db "$OWNER" up
	[ "$status" -eq 0 ]
	[ "$(sj '.roles_missing | length')" -eq 0 ]
	psu "CREATE ROLE sender_login LOGIN IN ROLE engagement_sender" >/dev/null
	[ "$(psql -X -q -At -h "$P_HOST" -p "$P_PORT" -U sender_login -d app \
		-c "SELECT count(*) FROM engagement.message_queue")" -eq 0 ]
	run psql -X -q -At -h "$P_HOST" -p "$P_PORT" -U sender_login -d app \
		-c "UPDATE engagement.user_preferences SET reengagement_opt_out = false" 2>&1
	[[ "$output" == *"permission denied"* ]]
	# down past 0012 reverts the grants and keeps the roles (they belong to
	# the cluster)
	eng migrate --db "$OWNER" down --to 11
	[ "$status" -eq 0 ]
	[ "$(psu "SELECT count(*) FROM pg_roles WHERE rolname = ANY (string_to_array('$ROLES', ' '))")" -eq 8 ]
	[ "$(psu "SELECT count(*) FROM information_schema.role_table_grants
	          WHERE table_schema = 'engagement' AND grantee LIKE 'engagement\_%'" app)" -eq 0 ]
}
