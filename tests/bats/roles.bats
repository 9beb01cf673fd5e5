#!/usr/bin/env bats
# Least privilege (DESIGN.md §5): the database has an API, and it is the
# only way in. Tried as an attacker holding a program's credentials would:
# every write on every table another program depends on is refused, and
# every function the role may call, given hostile arguments, changes
# nothing outside that program's job. The tables and functions come from
# the catalog, so a new one is covered without editing this file. (Every
# other test file already runs each program as a login granted its role
# only: a missing grant fails those.)

load helpers

ROLES="engagement_daily engagement_weekly engagement_event engagement_sender engagement_optout engagement_relay engagement_status engagement_webhook engagement_operator"
# the login tests/pg/cluster.sh made for each program role
LOGINS="eng_daily eng_weekly eng_event eng_sender eng_optout eng_relay eng_status eng_webhook eng_operator"

U1=00000000-0000-4000-8000-000000000001 # opted out a day ago
U2=00000000-0000-4000-8000-000000000002 # opted in, a message sent to them
U3=00000000-0000-4000-8000-000000000003 # in goodbye_sent, its goodbye queued

setup() {
	new_db
	PRIV_PG=
	q "INSERT INTO engagement.users (id, phone_e164) VALUES
	     ('$U1', '+5511987654321'), ('$U2', '+5511987654322'), ('$U3', '+5511987654323');
	   INSERT INTO engagement.user_preferences (user_id, reengagement_opt_out,
	       reengagement_opt_out_updated_at, reengagement_opt_out_source) VALUES
	     ('$U1', true, now() - interval '1 day', 'web'),
	     ('$U2', false, now() - interval '1 day', 'web'),
	     ('$U3', false, NULL, NULL);
	   INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, goodbye_sent_at,
	       goodbye_expires_at, state_changed_at) VALUES
	     ('$U1', 'dormant', now() - interval '30 days', NULL, NULL, now() - interval '10 days'),
	     ('$U2', 'active', now() - interval '1 day', NULL, NULL, now() - interval '1 day'),
	     ('$U3', 'goodbye_sent', now() - interval '15 days', now() - interval '1 hour',
	      now() + interval '47 hours', now() - interval '1 hour');
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
	       status, provider_message_id, sent_at, attempts) VALUES
	     ('$U1', 'weekly_review', 'weekly_review', 'blocked1', 'blocked', NULL, NULL, 0),
	     ('$U2', 'weekly_review', 'weekly_review', 'sent2', 'sent', 'wamid.SENT2', now(), 1),
	     ('$U3', 'goodbye', 'goodbye', 'queued3', 'queued', NULL, NULL, 0)" >/dev/null
	M_BLOCKED=$(q "SELECT id FROM engagement.message_queue WHERE idempotency_key = 'blocked1'")
	M_SENT=$(q "SELECT id FROM engagement.message_queue WHERE idempotency_key = 'sent2'")
	M_QUEUED=$(q "SELECT id FROM engagement.message_queue WHERE idempotency_key = 'queued3'")
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

# role_of LOGIN: the program role a test login holds
role_of() {
	q "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
	   JOIN pg_roles l ON l.oid = m.member WHERE l.rolname = '$1'"
}

# own_tables ROLE: the tables that role may write because only its program
# writes and reads them (DESIGN.md §5): its inbox, its rate bucket, its own
# run and lease rows (row-level security)
own_tables() {
	case $1 in
	engagement_daily | engagement_weekly | engagement_relay) echo "job_runs job_locks" ;;
	engagement_sender) echo "job_runs send_rate" ;;
	engagement_webhook) echo "webhook_inbox" ;;
	*) echo "" ;;
	esac
}

# job_tables ROLE: what that program's functions may change (its job);
# anything else must stay as it was whatever the role calls
job_tables() {
	case $1 in
	engagement_daily) echo "engagement_states state_transitions message_queue outbox_events job_runs job_locks" ;;
	engagement_weekly) echo "message_queue outbox_events job_runs job_locks" ;;
	engagement_event) echo "engagement_states state_transitions activity_events inbound_events message_queue outbox_events" ;;
	engagement_sender) echo "message_queue audit_log outbox_events message_counts user_preferences inbound_events send_rate job_runs" ;;
	engagement_optout) echo "user_preferences audit_log outbox_events inbound_events message_queue message_counts" ;;
	engagement_relay) echo "outbox_events job_runs job_locks" ;;
	engagement_webhook) echo "engagement_states state_transitions activity_events inbound_events message_queue outbox_events user_preferences audit_log message_counts webhook_inbox" ;;
	engagement_operator) echo "send_pauses message_queue audit_log outbox_events messaging_limits" ;;
	*) echo "" ;;
	esac
}

# fingerprint TABLE: a hash of its rows
fingerprint() {
	q "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM engagement.$1 t"
}

# the tables of the schema, from the catalog
tables() {
	q "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'engagement'::regnamespace
	   AND c.relkind IN ('r', 'p') ORDER BY 1"
}

@test "migrate creates the nine program roles and the API's owner, NOLOGIN, and running it again changes nothing" {
	for r in $ROLES engagement_owner; do
		[ "$(q "SELECT rolcanlogin FROM pg_roles WHERE rolname = '$r'")" = f ]
	done
	grants() {
		q "SELECT md5(string_agg(g, ',' ORDER BY g)) FROM (
		     SELECT grantee || table_name || privilege_type AS g
		     FROM (SELECT grantee::text, table_name::text, privilege_type::text
		           FROM information_schema.role_table_grants WHERE table_schema = 'engagement'
		           UNION ALL SELECT grantee, table_name || '.' || column_name, privilege_type
		           FROM information_schema.column_privileges WHERE table_schema = 'engagement'
		           UNION ALL SELECT grantee, routine_name, privilege_type
		           FROM information_schema.routine_privileges
		           WHERE routine_schema = 'engagement') g) x"
	}
	before=$(grants)
	eng migrate --db "$CONN" up
	[ "$status" -eq 0 ]
	[ "$(sj '.roles_missing | length')" -eq 0 ]
	[ "$(grants)" = "$before" ]
	# nothing is granted to everyone but what row-level security asks
	[ "$(q "SELECT count(*) FROM information_schema.role_table_grants
	        WHERE table_schema = 'engagement' AND grantee = 'PUBLIC'")" -eq 0 ]
	[ "$(q "SELECT string_agg(p.proname, ',') FROM pg_proc p
	        WHERE p.pronamespace = 'engagement'::regnamespace
	          AND has_function_privilege('public', p.oid, 'EXECUTE')")" = program_role ]
	# every function is the owner's, none a superuser's
	[ "$(q "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'engagement'::regnamespace
	        AND pg_get_userbyid(p.proowner) <> 'engagement_owner'")" -eq 0 ]
	[ "$(q "SELECT rolsuper FROM pg_roles WHERE rolname = 'engagement_owner'")" = f ]
	# every function that writes for others: definer, with a fixed search_path
	[ "$(q "SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'engagement'::regnamespace
	        AND p.prosecdef AND NOT (p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'])")" -eq 0 ]
	denied eng_sender "SELECT engagement.apply_grants()"
}

@test "every program role is refused every INSERT, UPDATE and DELETE on every table another program depends on (from the catalog)" {
	local login role t own col n=0
	for login in $LOGINS; do
		role=$(role_of "$login")
		own=" $(own_tables "$role") "
		for t in $(tables); do
			[[ "$own" == *" $t "* ]] && continue
			col=$(q "SELECT attname FROM pg_attribute WHERE attrelid = 'engagement.$t'::regclass
			         AND attnum > 0 AND NOT attisdropped AND attidentity = '' AND attgenerated = ''
			         ORDER BY attnum LIMIT 1")
			denied "$login" \
				"INSERT INTO engagement.$t DEFAULT VALUES" \
				"UPDATE engagement.$t SET $col = $col" \
				"DELETE FROM engagement.$t"
			n=$((n + 3))
		done
	done
	echo "# $n writes tried, every one refused" >&3
	# and no role may call the internal functions (audit, outbox, preferences,
	# counts)
	for login in $LOGINS; do
		denied "$login" \
			"SELECT engagement.write_audit('[{\"event\": \"forged\"}]')" \
			"SELECT engagement.publish_message_events('message.sent', ARRAY[$M_SENT::bigint], NULL)" \
			"SELECT * FROM engagement.apply_preferences('[]', NULL)" \
			"SELECT engagement.provider_stops('[]', NULL, 'x')" \
			"SELECT engagement.count_messages(ARRAY['sent'], ARRAY[''])"
	done
}

# hostile TYPE: a value of that type meant to break a rule: far-future
# instants, huge and negative numbers, other people's ids, a message
# already sent, one that was blocked, forged actors and sources
hostile() {
	case $1 in
	timestamptz | 'timestamp with time zone') echo "'9999-12-31T23:59:59Z'::timestamptz" ;;
	integer) echo "2147483647" ;;
	bigint) echo "$M_SENT::bigint" ;;
	boolean) echo "true" ;;
	text) echo "'inactivity'" ;;
	uuid) echo "'$U1'::uuid" ;;
	'uuid[]') echo "ARRAY['$U1', '$U2', '$U3']::uuid[]" ;;
	'bigint[]') echo "ARRAY[$M_BLOCKED, $M_SENT, $M_QUEUED]::bigint[]" ;;
	'timestamp with time zone[]') echo "ARRAY['9999-12-31T23:59:59Z']::timestamptz[]" ;;
	jsonb) jq -cn --arg u1 "$U1" --arg u2 "$U2" --argjson ms "$M_SENT" --argjson mb "$M_BLOCKED" '[
	  {user_id: $u1, opt_out: false, source: "web", at: "9999-12-31T00:00:00Z",
	   reason: "forged", login: "root", actor: "admin", event_id: "hostile-1",
	   trigger: "inactivity_14d", activity: false, phrase_locale: "forged",
	   id: $ms, kind: "retried", charge: 1, before: 0, requested: true,
	   status: "delivered", wamid: "wamid.SENT2", queue_id: $mb, message_id: $ms},
	  {user_id: $u2, opt_out: true, source: "api", at: "9999-12-31T00:00:00Z",
	   id: $mb, kind: "sent", wamid: "wamid.FORGED", sent_at: "2026-01-01T00:00:00Z",
	   status: "read", wamid_: "x", queue_id: $mb}]' | sed "s/'/''/g; s/^/'/; s/\$/'::jsonb/" ;;
	*) echo "NULL" ;;
	esac
}

# invariants: what no role may ever bring about, whatever it calls
invariants() {
	# nobody's consent frozen in the future, U1 still opted out
	[ "$(q "SELECT count(*) FROM engagement.user_preferences
	        WHERE reengagement_opt_out_updated_at > now() + interval '5 minutes'")" -eq 0 ] ||
		{ echo "a preference dated in the future" >&2; return 1; }
	[ "$(q "SELECT reengagement_opt_out FROM engagement.user_preferences WHERE user_id = '$U1'")" = t ] ||
		{ echo "the opted-out person was opted in" >&2; return 1; }
	# the sent message stays sent, once, with its own wamid; the blocked one
	# is never sent or delivered
	[ "$(q "SELECT status || ' ' || provider_message_id FROM engagement.message_queue WHERE id = $M_SENT")" = "sent wamid.SENT2" ] ||
		{ echo "the sent message changed: $(q "SELECT status, provider_message_id FROM engagement.message_queue WHERE id = $M_SENT")" >&2; return 1; }
	[ "$(q "SELECT status || ' ' || coalesce(delivery_status, '-') FROM engagement.message_queue WHERE id = $M_BLOCKED")" = "blocked -" ] ||
		{ echo "the blocked message changed" >&2; return 1; }
	# no forged word in any audit row or outbox event, and every audit row
	# names a real login
	[ "$(q "SELECT count(*) FROM engagement.audit_log a WHERE a::text ~ '(forged|admin|root)'
	        OR a.login IS NULL OR a.login NOT IN (SELECT rolname FROM pg_roles)")" -eq 0 ] ||
		{ echo "a forged audit row" >&2; return 1; }
	[ "$(q "SELECT count(*) FROM engagement.outbox_events o WHERE o::text ~ 'forged'")" -eq 0 ] ||
		{ echo "a forged outbox event" >&2; return 1; }
}

@test "every function a role may call, with hostile arguments: nothing outside its job changes, no rule is broken (from the catalog)" {
	local login role fn args t calls=0 refused=0 sql
	declare -A before
	for login in $LOGINS; do
		role=$(role_of "$login")
		for t in $(tables); do before[$t]=$(fingerprint "$t"); done
		while IFS='|' read -r fn args; do
			[ -n "$fn" ] || continue
			# each argument NULL, then each hostile, then all hostile
			local types=() a i list
			IFS=',' read -r -a types <<<"$args"
			for variant in null hostile; do
				list=()
				for a in "${types[@]}"; do
					a=$(sed 's/^ *//; s/ *$//' <<<"$a")
					if [ "$variant" = null ]; then list+=("NULL"); else list+=("$(hostile "$a")"); fi
				done
				sql="SELECT * FROM engagement.$fn($(IFS=,; echo "${list[*]}"))"
				as "$login" "$sql"
				calls=$((calls + 1))
				[ "$status" -eq 0 ] || refused=$((refused + 1))
				# an error of the server's own (a crash) is not a refusal
				[[ "$output" != *"server closed the connection"* ]]
				invariants || { echo "$login: $sql" >&2; return 1; }
			done
		done < <(q "SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p
		            WHERE p.pronamespace = 'engagement'::regnamespace
		              AND has_function_privilege('$role', p.oid, 'EXECUTE')
		              AND p.proname <> 'program_role' ORDER BY 1" |
			sed -E 's/p_[a-z_]+ //g')
		# nothing outside the role's job changed
		local job=" $(job_tables "$role") "
		for t in $(tables); do
			[[ "$job" == *" $t "* ]] && continue
			[ "$(fingerprint "$t")" = "${before[$t]}" ] ||
				{ echo "$login changed engagement.$t, outside its job" >&2; return 1; }
		done
	done
	echo "# $calls hostile calls, $refused refused, every rule held" >&3
}

@test "the internet-facing receiver cannot requeue, forge, or freeze consent (the attacks of issue 20)" {
	# it may not rewrite the queue or the inbound ids, or move a state by hand
	denied eng_webhook \
		"INSERT INTO engagement.message_queue (user_id, message_type, template_key, params, idempotency_key)
		 VALUES ('$U2', 'goodbye', 'goodbye', '{\"link\": \"http://phish\"}', 'x')" \
		"UPDATE engagement.message_queue SET status = 'queued' WHERE id = $M_SENT" \
		"DELETE FROM engagement.inbound_events" \
		"UPDATE engagement.engagement_states SET state = 'active'" \
		"SELECT engagement.write_audit('[]')"
	# a far-future change is refused, and a real opt-out afterwards applies
	as eng_webhook "SELECT outcome FROM engagement.record_whatsapp_preferences(
	  '[{\"user_id\": \"$U2\", \"opt_out\": false, \"at\": \"9999-12-31T00:00:01Z\", \"phrase_locale\": \"en\"}]', NULL)"
	[ "$status" -eq 0 ]
	[ "$output" = future ]
	as eng_webhook "SELECT outcome FROM engagement.record_whatsapp_preferences(
	  '[{\"user_id\": \"$U2\", \"opt_out\": true, \"phrase_locale\": \"pt-BR\", \"source\": \"web\"}]', NULL)"
	[ "$output" = applied ]
	# whatever it says, the source is whatsapp and the record says a phrase
	[ "$(q "SELECT reengagement_opt_out_source FROM engagement.user_preferences WHERE user_id = '$U2'")" = whatsapp ]
	[ "$(q "SELECT details->>'reason' || '|' || login FROM engagement.audit_log
	        WHERE user_id = '$U2' ORDER BY id DESC LIMIT 1")" = "WhatsApp message, phrase (pt-BR)|eng_webhook" ]
	# it records messages and goodbye replies, not other triggers
	as eng_webhook "SELECT * FROM engagement.apply_events(
	  '[{\"user_id\": \"$U2\", \"trigger\": \"inactivity_14d\", \"at\": \"2026-11-22T00:00:00Z\"}]', NULL)"
	[ "$status" -ne 0 ]
	[[ "$output" == *"may record activity and goodbye replies, not inactivity_14d"* ]]
	# a status for the blocked message (by mq:ID) marks nothing
	as eng_webhook "SELECT delivered FROM engagement.apply_delivery_statuses(
	  '[{\"wamid\": \"wamid.X\", \"queue_id\": $M_BLOCKED, \"status\": \"delivered\", \"at\": \"2026-11-22T00:00:00Z\"}]', NULL)"
	[ "$output" = 0 ]
	[ "$(q "SELECT delivery_status IS NULL FROM engagement.message_queue WHERE id = $M_BLOCKED")" = t ]
}

@test "the sender cannot opt anyone in or out, touch preferences, users, templates or the outbox, queue messages, or send again what was sent" {
	denied eng_sender \
		"UPDATE engagement.user_preferences SET reengagement_opt_out = false" \
		"SELECT * FROM engagement.change_preferences('[]', NULL)" \
		"INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key)
		 VALUES ('$U1', 'goodbye', 'goodbye', 'mine')" \
		"UPDATE engagement.message_templates SET provider_name = 'phish'" \
		"DELETE FROM engagement.message_queue" \
		"SELECT phone_e164 FROM engagement.users"
	# a retry outcome for a message it never claimed, that was sent: refused
	as eng_sender "SELECT count(*) FROM engagement.record_outcomes('me', NULL,
	  '[{\"id\": $M_SENT, \"kind\": \"retried\", \"charge\": 1, \"before\": 0, \"requested\": true}]')"
	[ "$output" = 0 ]
	# a 131050 for a message it does not hold opts nobody out
	as eng_sender "SELECT count(*) FROM engagement.record_outcomes('me', NULL,
	  '[{\"id\": $M_QUEUED, \"kind\": \"failed\", \"code\": \"131050\", \"charge\": 1, \"before\": 0, \"requested\": true}]')"
	[ "$(q "SELECT reengagement_opt_out FROM engagement.user_preferences WHERE user_id = '$U3'")" = f ]
	# limits are not parameters: a lease of a day, a purge of everything
	as eng_sender "SELECT count(*) FROM engagement.claim_messages('me', NULL, 86400, 10, 20)"
	[ "$status" -ne 0 ]
	as eng_sender "SELECT engagement.purge_messages(0)"
	[ "$status" -ne 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 3 ]
}

@test "the operator acts only through its functions: no direct write on any table, no phone number but through person_history, nobody's consent, no sending" {
	denied eng_operator \
		"INSERT INTO engagement.send_pauses (scope, reason) VALUES ('all', 'by hand')" \
		"UPDATE engagement.send_pauses SET resumed_at = now()" \
		"DELETE FROM engagement.send_pauses" \
		"UPDATE engagement.message_queue SET status = 'queued', attempts = 0 WHERE id = $M_SENT" \
		"UPDATE engagement.message_queue SET next_attempt_at = now() WHERE status = 'queued'" \
		"DELETE FROM engagement.message_queue" \
		"INSERT INTO engagement.messaging_limits (phone_number_id, tier, max_recipients_24h, source, changed_at)
		 VALUES ('*', 'TIER_UNLIMITED', NULL, 'operator', now())" \
		"UPDATE engagement.messaging_limits SET tier = 'TIER_UNLIMITED'" \
		"UPDATE engagement.message_templates SET is_active = true" \
		"UPDATE engagement.user_preferences SET reengagement_opt_out = false" \
		"INSERT INTO engagement.audit_log (event, source) VALUES ('forged', 'cli')" \
		"SELECT phone_e164 FROM engagement.users" \
		"SELECT params FROM engagement.message_queue" \
		"SELECT * FROM engagement.user_preferences" \
		"SELECT engagement.write_audit('[{\"event\": \"forged\"}]')" \
		"SELECT * FROM engagement.change_preferences('[]', NULL)" \
		"SELECT count(*) FROM engagement.claim_messages('me', NULL, 60, 10, 20)" \
		"SELECT * FROM engagement.apply_events('[]', NULL)" \
		"SELECT * FROM engagement.open_pause('template', 'goodbye', NULL, 'posing as Meta', 'meta')" \
		"SELECT * FROM engagement.meta_pause_template('goodbye', now(), 'posing as Meta')"
	[ "$(q "SELECT count(*) FROM engagement.send_pauses WHERE source = 'meta'")" -eq 0 ]
	# what it may do, it does through the functions, as itself
	as eng_operator "SELECT created FROM engagement.pause_sending('all', NULL, NULL, 'incident')"
	[ "$status" -eq 0 ]
	[ "$output" = t ]
	as eng_operator "SELECT scope, paused_by FROM engagement.send_pauses"
	[ "$output" = "all|eng_operator" ]
	# a requeue or cancel never reaches a sent or blocked message
	as eng_operator "SELECT * FROM engagement.cancel_messages(NULL, NULL, '$U2', NULL, 'x')"
	[ "$output" = "0|0" ]
	as eng_operator "SELECT n FROM engagement.requeue_messages('failed', NULL, NULL, NULL, NULL, 'x')
	                 WHERE outcome = 'requeued'"
	[ "$output" = 0 ]
	invariants
	[ "$(q "SELECT count(*) FROM engagement.audit_log WHERE login = 'eng_operator'")" -eq 1 ]
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
			"SELECT phone_e164 FROM engagement.users"
		as "$login" "SELECT count(*) FROM engagement.opted_out_users"
		[ "$status" -eq 0 ]
		[ "$output" = 1 ]
	done
}

@test "a NOTIFY on engagement_preferences carries no personal data: only the outbox event's id" {
	session_open listener
	session listener "LISTEN engagement_preferences;"
	as eng_optout "SELECT outcome FROM engagement.change_preferences(
	  '[{\"user_id\": \"$U2\", \"opt_out\": true, \"source\": \"web\"}]', NULL)"
	[ "$output" = applied ]
	session listener "SELECT 1;"
	session_close listener
	id=$(q "SELECT id FROM engagement.outbox_events WHERE event_type = 'preferences.reengagement_changed'")
	grep -q "Asynchronous notification \"engagement_preferences\" with payload \"$id\"" \
		"$BATS_TEST_TMPDIR/listener.out"
	run grep -E "$U2|opt_out|web" "$BATS_TEST_TMPDIR/listener.out"
	[ "$status" -eq 1 ]
}

@test "a migrating role that may not create roles: migrate says what to run, the rest applies; run again after, the roles get their grants and the owner its functions" {
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
	[ "$(sj '.roles_missing | length')" -eq 10 ]
	line=$(log_events roles_missing)
	[ "$(jq -r .level <<<"$line")" = warn ]
	[[ "$(jq -r .message <<<"$line")" == *"CREATEROLE"* ]]
	[[ "$(jq -r .sql <<<"$line")" == *"GRANT engagement_owner TO app_owner"* ]]
	# the schema works for its owner meanwhile; the functions are its own
	[ "$(psu "SELECT count(*) FROM engagement.opted_out_users" app)" -eq 0 ]
	[ "$(psu "SELECT count(*) FROM pg_proc WHERE pronamespace = 'engagement'::regnamespace
	          AND pg_get_userbyid(proowner) <> 'app_owner'" app)" -eq 0 ]
	# an administrator runs what it said, then migrate up again grants
	psu "$(jq -r .sql <<<"$line")" >/dev/null
	eng migrate --db "$OWNER" up
	[ "$status" -eq 0 ]
	[ "$(sj '.roles_missing | length')" -eq 0 ]
	[ "$(psu "SELECT count(*) FROM pg_proc WHERE pronamespace = 'engagement'::regnamespace
	          AND pg_get_userbyid(proowner) <> 'engagement_owner'" app)" -eq 0 ]
	psu "CREATE ROLE sender_login LOGIN IN ROLE engagement_sender" >/dev/null
	[ "$(psql -X -q -At -h "$P_HOST" -p "$P_PORT" -U sender_login -d app \
		-c "SELECT count(*) FROM engagement.claim_messages('x', NULL, 60, 10, 20)")" -eq 0 ]
	run psql -X -q -At -h "$P_HOST" -p "$P_PORT" -U sender_login -d app \
		-c "UPDATE engagement.user_preferences SET reengagement_opt_out = false" 2>&1
	[[ "$output" == *"permission denied"* ]]
	# down past 0012 reverts the grants and keeps the roles (they belong to
	# the cluster)
	eng migrate --db "$OWNER" down --to 11
	[ "$status" -eq 0 ]
	[ "$(psu "SELECT count(*) FROM pg_roles WHERE rolname = ANY (string_to_array('$ROLES', ' '))")" -eq 9 ]
	[ "$(psu "SELECT count(*) FROM information_schema.role_table_grants
	          WHERE table_schema = 'engagement' AND grantee LIKE 'engagement\_%'" app)" -eq 0 ]
}
