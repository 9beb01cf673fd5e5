#!/usr/bin/env bats
# engagement-daily against the real test cluster (story 5.1 and more).

load helpers

NOW=2026-11-22T06:00:00Z

setup() {
	new_db
	N=0
}

teardown() {
	drop_dbs
}

uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }

# user NUM STATE LAST_ACTIVITY [SQL for more columns as "col = value, ..."]
user() {
	local id
	id=$(uid "$1")
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('$id', '+5511$(printf %09d "$1")');
	   INSERT INTO engagement.engagement_states (user_id, state, last_activity_at)
	   VALUES ('$id', 'active', '$3')" >/dev/null
	if [ "$2" != active ] || [ -n "${4:-}" ]; then
		q "UPDATE engagement.engagement_states SET state = '$2'${4:+, $4} WHERE user_id = '$id'" >/dev/null
	fi
}

state_of() { q "SELECT state FROM engagement.engagement_states WHERE user_id = '$(uid "$1")'"; }
messages_of() { q "SELECT count(*) FROM engagement.message_queue WHERE user_id = '$(uid "$1")'"; }
goodbyes() { q "SELECT count(*) FROM engagement.engagement_states WHERE state = 'goodbye_sent'"; }

# gate AFTER: a run stops at its first state update once AFTER users are in
# goodbye_sent (committed, or earlier in its own batch), and waits there
# until ungate: the test then knows the run is in the middle of its work,
# whatever the machine's speed. The gate is an advisory lock that a session
# of the test's own holds.
gate() {
	session_open gate
	session gate "SELECT pg_advisory_lock(4242)"
	q "CREATE FUNCTION engagement.test_gate() RETURNS trigger LANGUAGE plpgsql AS \$\$
	   BEGIN
	     IF (SELECT count(*) FROM engagement.engagement_states WHERE state = 'goodbye_sent') >= $1 THEN
	       PERFORM pg_advisory_xact_lock_shared(4242);
	     END IF;
	     RETURN NEW;
	   END \$\$;
	   CREATE TRIGGER test_gate BEFORE UPDATE ON engagement.engagement_states
	   FOR EACH ROW EXECUTE FUNCTION engagement.test_gate()" >/dev/null
}
ungate() { session_close gate; }

# daily_at_gate: the daily run waits at the gate.
daily_at_gate() {
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	        AND application_name = 'engagement-daily' AND wait_event_type = 'Lock'" 1
}

@test "13 days inactive: nothing happens" {
	user 1 active 2026-11-09T06:00:00Z
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = active ]
	[ "$(messages_of 1)" -eq 0 ]
	[ "$(sj .checks.inactivity.processed)" -eq 0 ]
}

@test "14 days and 1 minute inactive: goodbye_sent and one goodbye message" {
	user 1 active 2026-11-08T05:59:00Z
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = goodbye_sent ]
	[ "$(sj .checks.inactivity.succeeded)" -eq 1 ]
	[ "$(sj .messages_queued)" -eq 1 ]
	run_id=$(sj .run_id)
	id=$(uid 1)
	run q "SELECT message_type, template_key, status, idempotency_key, expires_at = '2026-11-24T06:00:00Z'
	       FROM engagement.message_queue WHERE user_id = '$id'"
	[ "$output" = "goodbye|goodbye|queued|$id:goodbye_sent:2026-11-22|t" ]
	run q "SELECT goodbye_sent_at = '$NOW', goodbye_expires_at = '2026-11-24T06:00:00Z'
	       FROM engagement.engagement_states WHERE user_id = '$id'"
	[ "$output" = "t|t" ]
	run q "SELECT from_state, to_state, trigger, metadata->>'days_inactive', run_id::text = '$run_id'
	       FROM engagement.state_transitions WHERE user_id = '$id'"
	[ "$output" = "active|goodbye_sent|inactivity_14d|14|t" ]
	[ "$(q "SELECT string_agg(event_type, ',' ORDER BY event_type) FROM engagement.outbox_events WHERE user_id = '$id'")" = "engagement.state_changed,message.queued" ]
	# no phone number in what is published
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE payload::text LIKE '%+5511%'")" -eq 0 ]
}

@test "running again the same day changes nothing and queues nothing" {
	user 1 active 2026-11-01T00:00:00Z
	user 2 active 2026-11-02T00:00:00Z
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$(sj .messages_queued)" -eq 2 ]
	before=$(q "SELECT count(*) FROM engagement.state_transitions")
	eng engagement-daily --db "$CONN" --now 2026-11-22T18:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .processed)" -eq 0 ]
	[ "$(sj .messages_queued)" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 2 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq "$before" ]
}

@test "an idempotency key already used that day queues no second goodbye" {
	user 1 active 2026-11-01T00:00:00Z
	eng engagement-daily --db "$CONN" --now "$NOW"
	# someone resets the user by hand; the daily job runs again that day
	q "UPDATE engagement.engagement_states SET state = 'active', goodbye_sent_at = NULL,
	   goodbye_expires_at = NULL WHERE user_id = '$(uid 1)'" >/dev/null
	eng engagement-daily --db "$CONN" --now 2026-11-22T07:00:00Z
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = goodbye_sent ]
	[ "$(messages_of 1)" -eq 1 ]
	[ "$(sj .messages_queued)" -eq 0 ]
}

@test "an opted-out user is skipped and counted, and left alone" {
	user 1 active 2026-11-01T00:00:00Z
	user 2 active 2026-11-01T00:00:00Z
	q "INSERT INTO engagement.user_preferences (user_id, reengagement_opt_out) VALUES ('$(uid 2)', true)" >/dev/null
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = goodbye_sent ]
	[ "$(state_of 2)" = active ]
	[ "$(messages_of 2)" -eq 0 ]
	[ "$(sj .checks.inactivity.skipped)" -eq 1 ]
	[ "$(sj .checks.inactivity.succeeded)" -eq 1 ]
	[ "$(sj .skipped)" -eq 1 ]
}

@test "a goodbye 47 hours old: nothing happens" {
	user 1 goodbye_sent 2026-11-01T00:00:00Z \
		"goodbye_sent_at = '2026-11-20T07:00:00Z', goodbye_expires_at = '2026-11-22T07:00:00Z'"
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = goodbye_sent ]
	[ "$(sj .checks.goodbye_timeout.processed)" -eq 0 ]
}

@test "a goodbye 48 hours and 1 second old: dormant, silently" {
	user 1 goodbye_sent 2026-11-01T00:00:00Z \
		"goodbye_sent_at = '2026-11-20T05:59:59Z', goodbye_expires_at = '2026-11-22T05:59:59Z'"
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = dormant ]
	[ "$(messages_of 1)" -eq 0 ]
	[ "$(sj .checks.goodbye_timeout.succeeded)" -eq 1 ]
	run q "SELECT trigger, metadata->>'response_type', metadata->>'days_inactive'
	       FROM engagement.state_transitions WHERE user_id = '$(uid 1)'"
	[ "$output" = "goodbye_timeout|timeout|21" ]
}

@test "a due remind_later: dormant, silently" {
	user 1 remind_later 2026-11-01T00:00:00Z "remind_at = '2026-11-22T05:00:00Z'"
	user 2 remind_later 2026-11-01T00:00:00Z "remind_at = '2026-11-22T07:00:00Z'"
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = dormant ]
	[ "$(state_of 2)" = remind_later ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 0 ]
	[ "$(q "SELECT remind_at IS NULL FROM engagement.engagement_states WHERE user_id = '$(uid 1)'")" = t ]
	[ "$(sj .checks.reminder_due.succeeded)" -eq 1 ]
}

@test "the three checks run in order: a goodbye sent today does not time out today" {
	user 1 active 2026-11-01T00:00:00Z
	eng engagement-daily --db "$CONN" --now "$NOW" --goodbye-hours 1
	[ "$(state_of 1)" = goodbye_sent ]
	[ "$(sj .checks.goodbye_timeout.processed)" -eq 0 ]
	eng engagement-daily --db "$CONN" --now 2026-11-22T07:00:01Z --goodbye-hours 1
	[ "$(state_of 1)" = dormant ]
}

@test "one failing user: the others proceed, exit 1, the failed user unchanged" {
	for i in $(seq 1 7); do user "$i" active 2026-11-01T00:00:00Z; done
	bad=$(uid 4)
	q "CREATE FUNCTION engagement.test_fail() RETURNS trigger LANGUAGE plpgsql AS \$\$
	   BEGIN IF NEW.user_id = '$bad' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END \$\$;
	   CREATE TRIGGER test_fail BEFORE UPDATE ON engagement.engagement_states
	   FOR EACH ROW EXECUTE FUNCTION engagement.test_fail()" >/dev/null
	eng engagement-daily --db "$CONN" --now "$NOW" --batch-size 3
	[ "$status" -eq 1 ]
	[ "$(sj .status)" = partial ]
	[ "$(sj .failed)" -eq 1 ]
	[ "$(sj .succeeded)" -eq 6 ]
	[ "$(state_of 4)" = active ]
	[ "$(messages_of 4)" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions WHERE user_id = '$bad'")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.engagement_states WHERE state = 'goodbye_sent'")" -eq 6 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 6 ]
	line=$(log_events user_failed)
	[ "$(jq -r .user_id <<<"$line")" = "$bad" ]
	[ "$(jq -r .check <<<"$line")" = inactivity ]
	[[ "$(jq -r .error <<<"$line")" == *"injected failure"* ]]
}

@test "batches walk past skipped and failed users (keyset), all due users handled" {
	for i in $(seq 1 25); do user "$i" active "2026-11-0$(( (i % 7) + 1 ))T00:00:00Z"; done
	q "INSERT INTO engagement.user_preferences (user_id, reengagement_opt_out)
	   SELECT user_id, true FROM engagement.engagement_states ORDER BY user_id LIMIT 5" >/dev/null
	eng engagement-daily --db "$CONN" --now "$NOW" --batch-size 2
	[ "$status" -eq 0 ]
	[ "$(sj .checks.inactivity.processed)" -eq 25 ]
	[ "$(sj .checks.inactivity.skipped)" -eq 5 ]
	[ "$(sj .checks.inactivity.succeeded)" -eq 20 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 20 ]
}

@test "--dry-run reports what would happen and changes nothing" {
	user 1 active 2026-11-01T00:00:00Z
	user 2 goodbye_sent 2026-11-01T00:00:00Z \
		"goodbye_sent_at = '2026-11-10T00:00:00Z', goodbye_expires_at = '2026-11-12T00:00:00Z'"
	before=$(q "SELECT md5(string_agg(t::text, ',' ORDER BY user_id)) FROM engagement.engagement_states t")
	eng engagement-daily --db "$CONN" --now "$NOW" --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .dry_run)" = true ]
	[ "$(sj .succeeded)" -eq 2 ]
	[ "$(sj .messages_queued)" -eq 1 ]
	[ "$(q "SELECT md5(string_agg(t::text, ',' ORDER BY user_id)) FROM engagement.engagement_states t")" = "$before" ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.job_runs")" -eq 0 ]
}

@test "a run is recorded in job_runs with its summary" {
	user 1 active 2026-11-01T00:00:00Z
	eng engagement-daily --db "$CONN" --now "$NOW"
	run q "SELECT program, status, exit_code, summary->>'messages_queued', finished_at IS NOT NULL
	       FROM engagement.job_runs WHERE run_id = '$(sj .run_id)'"
	[ "$output" = "engagement-daily|ok|0|1|t" ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks")" -eq 0 ]
}

@test "two runs at once: the second exits 75 already_running" {
	for i in $(seq 1 3); do user "$i" active 2026-11-01T00:00:00Z; done
	# the first run stops at its first state update until the second is done
	gate 0
	"$ENG_BIN/engagement-daily" --db "$CONN" --now "$NOW" >"$BATS_TEST_TMPDIR/first.json" 2>/dev/null &
	first=$!
	daily_at_gate
	eng engagement-daily --db "$CONN" --now "$NOW"
	second=$status
	ungate
	wait "$first"
	first_status=$?
	[ "$second" -eq 75 ]
	[ "$(sj .status)" = skipped ]
	[ "$(log_events already_running | wc -l)" -eq 1 ]
	[ "$first_status" -eq 0 ]
	[ "$(jq .succeeded "$BATS_TEST_TMPDIR/first.json")" -eq 3 ]
}

@test "a crashed run's lease lapses: the next run proceeds" {
	user 1 active 2026-11-01T00:00:00Z
	q "INSERT INTO engagement.job_locks (job, run_id, holder, expires_at)
	   VALUES ('engagement-daily', gen_random_uuid(), 'crashed pid 1', now() + interval '10 minutes')" >/dev/null
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 75 ]
	[[ "$(sj .error)" == *"crashed pid 1"* ]]
	q "UPDATE engagement.job_locks SET expires_at = now() - interval '1 second'" >/dev/null
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = goodbye_sent ]
}

@test "kill -9 mid-run: the next run finishes the job" {
	for i in $(seq 1 6); do user "$i" active 2026-11-01T00:00:00Z; done
	# killed in its second batch, the first one committed
	gate 2
	"$ENG_BIN/engagement-daily" --db "$CONN" --now "$NOW" --batch-size 2 >/dev/null 2>&1 &
	pid=$!
	daily_at_gate
	kill -9 "$pid"
	wait "$pid" || true
	[ "$(goodbyes)" -eq 2 ]
	ungate
	# the server ends the dead run's session (rolling its batch back) when it
	# next talks to the client
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	        AND application_name = 'engagement-daily'" 0
	q "DROP TRIGGER test_gate ON engagement.engagement_states" >/dev/null
	# simulate the lease running out instead of waiting 60 s
	q "UPDATE engagement.job_locks SET expires_at = now() - interval '1 second'" >/dev/null
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.engagement_states WHERE state = 'goodbye_sent'")" -eq 6 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 6 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 6 ]
}

@test "an event arriving while the daily job runs is never lost" {
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '+5511' || lpad(i::text, 9, '0')
	   FROM generate_series(1, 3000) i;
	   INSERT INTO engagement.engagement_states (user_id, state, last_activity_at)
	   SELECT id, 'active', '2026-11-01T00:00:00Z'::timestamptz - right(id::text, 12)::int * interval '1 minute'
	   FROM engagement.users" >/dev/null
	# the daily job walks them by last activity: highest user id first, the
	# reverse of the order the event tool locks in (both must lock alike)
	for i in $(seq 1 3 600) $(seq 2401 3 3000); do
		printf '{"user_id":"%s","activity":true,"at":"2026-11-22T06:00:01Z"}\n' "$(uid "$i")"
	done >"$BATS_TEST_TMPDIR/events.jsonl"
	"$ENG_BIN/engagement-daily" --db "$CONN" --now 2026-11-22T06:00:02Z --batch-size 100 --log-level debug \
		>"$BATS_TEST_TMPDIR/daily.json" 2>"$BATS_TEST_TMPDIR/daily.log" &
	daily=$!
	"$ENG_BIN/engagement-event" --db "$CONN" --now 2026-11-22T06:00:02Z --batch "$BATS_TEST_TMPDIR/events.jsonl" \
		--log-level debug >"$BATS_TEST_TMPDIR/events.json" 2>"$BATS_TEST_TMPDIR/events.log"
	ev=$?
	wait "$daily"
	[ "$?" -eq 0 ]
	[ "$ev" -eq 0 ]
	# no batch had to be retried (a deadlock would show here)
	[ "$(cat "$BATS_TEST_TMPDIR/daily.log" "$BATS_TEST_TMPDIR/events.log" |
	     grep -cE 'batch_retried|batch_split|deadlock|40P01')" -eq 0 ]
	# every user who wrote is active, with the event's time, whatever the order
	[ "$(q "SELECT count(*) FROM engagement.engagement_states s
	        JOIN engagement.activity_events a USING (user_id)
	        WHERE s.state = 'active' AND s.last_activity_at = '2026-11-22T06:00:01Z'")" -eq 400 ]
	# everyone else got exactly one goodbye
	[ "$(q "SELECT count(*) FROM engagement.engagement_states WHERE state = 'goodbye_sent'")" -eq 2600 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued'")" -eq 2600 ]
	# a goodbye queued before the user's event committed was cancelled
	[ "$(q "SELECT count(*) FROM engagement.message_queue q JOIN engagement.engagement_states s USING (user_id)
	        WHERE q.status <> 'queued' AND NOT (q.status = 'cancelled' AND q.last_error_code = 'user_returned'
	                                             AND s.state = 'active')")" -eq 0 ]
	# each user's transitions form a chain: from_state = the previous to_state
	[ "$(q "SELECT count(*) FROM (SELECT from_state, lag(to_state) OVER (PARTITION BY user_id ORDER BY id) AS prev
	        FROM engagement.state_transitions) t WHERE prev IS NOT NULL AND prev <> from_state")" -eq 0 ]
	# and each state row agrees with its last transition
	[ "$(q "SELECT count(*) FROM engagement.engagement_states s
	        JOIN LATERAL (SELECT to_state FROM engagement.state_transitions t
	                      WHERE t.user_id = s.user_id ORDER BY id DESC LIMIT 1) last ON true
	        WHERE last.to_state <> s.state")" -eq 0 ]
}

@test "works through PgBouncer in transaction-pooling mode" {
	[ -n "${ENG_PGBOUNCER_PORT:-}" ] || skip "no pgbouncer"
	user 1 active 2026-11-01T00:00:00Z
	eng engagement-daily --db "host=127.0.0.1 port=$ENG_PGBOUNCER_PORT dbname=$DB" --now "$NOW" --batch-size 1
	[ "$status" -eq 0 ]
	[ "$(state_of 1)" = goodbye_sent ]
}

@test "bad options exit 64 with one line" {
	for args in "--batch-size 0" "--batch-size x" "--inactivity-days -1" "--goodbye-hours 1.5" \
		"--now yesterday" "--now 2026-02-30T00:00:00Z" "extra"; do
		# shellcheck disable=SC2086
		eng engagement-daily --db "$CONN" $args
		[ "$status" -eq 64 ] || { echo "$args -> $status"; return 1; }
		[ "$(stderr_lines)" -eq 1 ]
	done
}

@test "an old schema exits 78 and says to run migrate up" {
	psql -X -q -d "$DB" -c "DELETE FROM engagement.schema_migrations WHERE version > 2" >/dev/null
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *"schema is at 2"*"migrate up"* ]]
	new_db empty
	eng engagement-daily --db "$CONN" --now "$NOW"
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *"not installed"* ]]
}

@test "an unreachable database exits 75, refused credentials 77" {
	eng engagement-daily --db "host=127.0.0.1 port=1 connect_timeout=2"
	[ "$status" -eq 75 ]
	eng engagement-daily --db "host=127.0.0.1 port=$PGPORT dbname=$DB user=engagement_pw password=nope"
	[ "$status" -eq 77 ]
	eng engagement-daily --db "$CONN user=engagement_noperm"
	[ "$status" -eq 77 ]
}

@test "SIGTERM stops the run between batches: exit 75, finished batches kept" {
	for i in $(seq 1 6); do user "$i" active 2026-11-01T00:00:00Z; done
	# signalled in its second batch, the first one committed
	gate 1
	"$ENG_BIN/engagement-daily" --db "$CONN" --now "$NOW" --batch-size 1 \
		>"$BATS_TEST_TMPDIR/out.json" 2>"$BATS_TEST_TMPDIR/err.log" &
	pid=$!
	daily_at_gate
	kill -TERM "$pid"
	ungate
	wait "$pid" && rc=0 || rc=$?
	[ "$rc" -eq 75 ]
	done_users=$(q "SELECT count(*) FROM engagement.engagement_states WHERE state = 'goodbye_sent'")
	[ "$done_users" -ge 1 ] && [ "$done_users" -lt 6 ]
	[ "$(jq .succeeded "$BATS_TEST_TMPDIR/out.json")" -eq "$done_users" ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks")" -eq 0 ]
	[ "$(q "SELECT status FROM engagement.job_runs")" = failed ]
}
