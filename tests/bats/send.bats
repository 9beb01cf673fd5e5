#!/usr/bin/env bats
# queue-send against the real test cluster and the Cloud API stand-in.

load helpers
load send_helpers

NOW=2026-11-22T15:00:00Z

setup() {
	new_db
	start_standin --slow-ms 3000
}

teardown() {
	stop_standin
	drop_dbs
}

@test "a message is sent: wamid, sent_at, audit, outbox, and the request the API saw" {
	user 1 000 pt-BR
	id=$(msg 1 weekly_review)
	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 1 ]
	run row "$id" "status, attempts, provider_message_id LIKE 'wamid.%', sent_at = '$NOW', locked_by IS NULL"
	[ "$output" = "sent|1|t|t|t" ]
	[ "$(q "SELECT event FROM engagement.audit_log WHERE message_id = $id")" = message_sent ]
	[ "$(q "SELECT payload->>'provider_message_id' LIKE 'wamid.%' FROM engagement.outbox_events WHERE event_type = 'message.sent'")" = t ]
	[ "$(requests)" -eq 1 ]
	r=$(jq -c . "$STANDIN_RECORD")
	[ "$(jq -r .to <<<"$r")" = "$(phone 1)" ]
	[ "$(jq -r .template <<<"$r")" = engagement_weekly_review ]
	[ "$(jq -r .language <<<"$r")" = pt_BR ]
	[ "$(jq -c .parameters <<<"$r")" = '["4"]' ]
	[ "$(jq -r .biz_opaque_callback_data <<<"$r")" = "mq:$id" ]
	[ "$(jq -r .auth <<<"$r")" = ok ]
}

@test "FAIL (131026): failed now, attempt charged, error recorded, outbox message.failed" {
	user 1 901
	id=$(msg 1)
	send
	[ "$status" -eq 0 ]
	[ "$(sj '.errors["131026"]')" -eq 1 ]
	run row "$id" "status, attempts, last_error_code"
	[ "$output" = "failed|1|131026" ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'message.failed'")" -eq 1 ]
}

@test "RETRY (131000, HTTP 500, 503/2): back to the queue within 30 s, attempt charged" {
	user 1 910; user 2 906; user 3 915
	a=$(msg 1); b=$(msg 2); c=$(msg 3)
	send
	[ "$status" -eq 0 ]
	[ "$(sj .retried)" -eq 3 ]
	for id in $a $b $c; do
		run row "$id" "status, attempts, next_attempt_at >= '$NOW' AND next_attempt_at <= timestamptz '$NOW' + interval '30 seconds'"
		[ "$output" = "queued|1|t" ]
	done
	[ "$(row "$a" last_error_code)" = 131000 ]
	[ "$(row "$b" last_error_code)" = http_500 ]
	[ "$(row "$c" last_error_code)" = 2 ]
}

@test "DEFER (130429, 131056): back to the queue within 5 min, 131049 a day later" {
	user 1 902; user 2 903; user 3 911
	a=$(msg 1); b=$(msg 2); c=$(msg 3)
	send
	[ "$status" -eq 0 ]
	[ "$(sj .deferred)" -eq 3 ]
	for id in $a $b; do
		run row "$id" "status, attempts, next_attempt_at <= timestamptz '$NOW' + interval '5 minutes'"
		[ "$output" = "queued|1|t" ]
	done
	[ "$(row "$c" "next_attempt_at >= timestamptz '$NOW' + interval '24 hours'")" = t ]
}

@test "malformed answers, a dropped connection and a timeout are retried" {
	# the slow recipient (908) far slower than --timeout, and --timeout far
	# longer than any other answer takes, even on a loaded machine
	stop_standin
	start_standin --slow-ms 60000
	user 1 907; user 2 912; user 3 909; user 4 908
	a=$(msg 1); b=$(msg 2); c=$(msg 3); d=$(msg 4)
	send --timeout 5s
	[ "$status" -eq 0 ]
	[ "$(sj .retried)" -eq 4 ]
	[ "$(row "$a" "status || '/' || last_error_code")" = queued/malformed ]
	[ "$(row "$b" "status || '/' || last_error_code")" = queued/malformed ]
	[ "$(row "$c" "status || '/' || last_error_code")" = queued/network ]
	[ "$(row "$d" "status || '/' || last_error_code")" = queued/timeout ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE attempts = 1")" -eq 4 ]
}

@test "an unknown error code is retried until attempts run out, then failed" {
	user 1 914
	id=$(msg 1 goodbye "attempts" "3")
	send
	run row "$id" "status, attempts, last_error_code"
	[ "$output" = "queued|4|987654" ]
	q "UPDATE engagement.message_queue SET next_attempt_at = '$NOW' WHERE id = $id" >/dev/null
	send
	run row "$id" "status, attempts"
	[ "$output" = "failed|5" ]
	[ "$(q "SELECT details->>'reason' FROM engagement.audit_log WHERE message_id = $id AND event = 'message_failed'")" = max_attempts ]
}

@test "the first failure then success (920): retried, then sent" {
	user 1 920
	id=$(msg 1)
	send
	[ "$(row "$id" status)" = queued ]
	q "UPDATE engagement.message_queue SET next_attempt_at = '$NOW' WHERE id = $id" >/dev/null
	send
	run row "$id" "status, attempts"
	[ "$output" = "sent|2" ]
}

@test "a bad token: exit 69, every claimed message back in queued, attempts unchanged" {
	for i in $(seq 1 30); do user "$i"; msg "$i" >/dev/null; done
	echo "not-the-token" >"$BATS_TEST_TMPDIR/wrong"
	WHATSAPP_ACCESS_TOKEN_FILE="$BATS_TEST_TMPDIR/wrong" send --batch 10 --concurrency 4
	[ "$status" -eq 69 ]
	[ "$(sj .status)" = failed ]
	[[ "$(sj .error)" == *"refused the whole run"* ]]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued' AND attempts = 0 AND locked_by IS NULL")" -eq 30 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE last_error_code = '190'")" -ge 1 ]
	[ "$(requests 'select(.auth == "invalid")')" -le 4 ]
	[[ "$output$stderr" != *not-the-token* ]]
}

@test "a claim that comes back after the API refused the run is handed back too: no message left claimed, and the run ends" {
	for i in $(seq 1 12); do user "$i"; msg "$i" >/dev/null; done
	# every claim takes a while (each row it takes sleeps), so that the
	# second claim is on its way when the first requests are refused
	q "CREATE FUNCTION engagement.test_slow_claim() RETURNS trigger LANGUAGE plpgsql AS \$\$
	   BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END \$\$;
	   CREATE TRIGGER test_slow_claim BEFORE UPDATE ON engagement.message_queue FOR EACH ROW
	   WHEN (OLD.status = 'queued' AND NEW.status = 'sending')
	   EXECUTE FUNCTION engagement.test_slow_claim()" >/dev/null
	echo "not-the-token" >"$BATS_TEST_TMPDIR/wrong"
	WHATSAPP_ACCESS_TOKEN_FILE="$BATS_TEST_TMPDIR/wrong" run --separate-stderr \
		timeout -k 10 120 "$ENG_BIN/queue-send" --db "$CONN" --now "$NOW" --batch 3 --concurrency 2
	[ "$status" -ne 124 ] && [ "$status" -ne 137 ] || { echo "queue-send did not end within 120 s" >&2; return 1; }
	[ "$status" -eq 69 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending'")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued' AND attempts = 0")" -eq 12 ]
	[ "$(sj .claimed)" -gt 3 ] # a claim came back after the refusal
}

@test "an account-level error (131031) stops the run too: 69, both handed back with an audit row" {
	user 1 913; user 2
	msg 1 >/dev/null; msg 2 >/dev/null
	send --concurrency 1
	[ "$status" -eq 69 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued' AND attempts = 0")" -eq 2 ]
	[ "$(q "SELECT string_agg(details->>'reason', ',') FROM engagement.audit_log WHERE event = 'message_handed_back'")" = fatal,fatal ]
	[ "$(requests)" -eq 1 ]
}

@test "the API unreachable for every request: exit 75, messages handed back, attempts not used up" {
	for i in $(seq 1 30); do user "$i"; msg "$i" >/dev/null; done
	WHATSAPP_API_URL=http://127.0.0.1:1 send --concurrency 4 --rate 0
	[ "$status" -eq 75 ]
	[[ "$(sj .fatal_error)" == *unreachable* ]]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued'")" -eq 30 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'failed'")" -eq 0 ]
	[ "$(q "SELECT max(attempts) FROM engagement.message_queue")" -le 1 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE attempts = 0")" -ge 25 ]
}

@test "131050: failed, and the user's opt-out recorded from whatsapp, everywhere" {
	user 1 904
	id=$(msg 1)
	send
	[ "$status" -eq 0 ]
	run row "$id" "status, last_error_code"
	[ "$output" = "failed|131050" ]
	run q "SELECT reengagement_opt_out, reengagement_opt_out_source, reengagement_opt_out_updated_at = '$NOW'
	       FROM engagement.user_preferences WHERE user_id = '$(uid 1)'"
	[ "$output" = "t|whatsapp|t" ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log WHERE event = 'reengagement_opted_out' AND source = 'whatsapp'")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'preferences.reengagement_changed'")" -eq 1 ]
}

@test "opted out after queueing: blocked, and no request made" {
	user 1
	id=$(msg 1)
	q "UPDATE engagement.user_preferences SET reengagement_opt_out = true, reengagement_opt_out_updated_at = now(),
	   reengagement_opt_out_source = 'web' WHERE user_id = '$(uid 1)'" >/dev/null
	send
	[ "$status" -eq 0 ]
	[ "$(sj .blocked)" -eq 1 ]
	run row "$id" "status, attempts"
	[ "$output" = "blocked|0" ]
	[ "$(requests)" -eq 0 ]
}

@test "past its expiry: cancelled, no request" {
	user 1
	id=$(msg 1 goodbye "expires_at" "'2026-11-22T14:59:59Z'")
	send
	run row "$id" "status, last_error_code"
	[ "$output" = "cancelled|expired" ]
	[ "$(requests)" -eq 0 ]
}

@test "quiet hours across midnight: deferred to the window's end, no attempt charged" {
	user 1 000 en America/Sao_Paulo 22:00 07:00
	user 2 000 en UTC 22:00 07:00
	a=$(msg 1); b=$(msg 2)
	# 02:30 in Sao Paulo (-03) on Nov 23; 05:30 UTC for the other
	eng queue-send --db "$CONN" --now 2026-11-23T05:30:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .deferred)" -eq 2 ]
	run row "$a" "status, attempts, next_attempt_at = '2026-11-23T10:00:00Z'"
	[ "$output" = "queued|0|t" ]
	run row "$b" "status, attempts, next_attempt_at = '2026-11-23T07:00:00Z'"
	[ "$output" = "queued|0|t" ]
	[ "$(requests)" -eq 0 ]
}

@test "quiet hours on DST change days in New York and Berlin" {
	user 1 000 en America/New_York 22:00 07:00
	user 2 000 en Europe/Berlin 22:00 07:00
	user 3 000 en America/New_York 22:00 07:00
	a=$(msg 1); b=$(msg 2); c=$(msg 3)
	# only the message of the step is due at that step's --now
	due() { q "UPDATE engagement.message_queue SET next_attempt_at =
	           CASE WHEN id = $1 THEN timestamptz '2026-01-01Z' ELSE timestamptz '2030-01-01Z' END" >/dev/null; }
	due "$a"
	eng queue-send --db "$CONN" --now 2026-03-08T05:00:00Z   # 00:00 EST; clocks go forward at 02:00
	[ "$(row "$a" "next_attempt_at = '2026-03-08T11:00:00Z'")" = t ]   # 07:00 EDT
	due "$b"
	eng queue-send --db "$CONN" --now 2026-10-24T22:30:00Z   # 00:30 CEST; clocks go back at 03:00
	[ "$(row "$b" "next_attempt_at = '2026-10-25T06:00:00Z'")" = t ]   # 07:00 CET
	due "$c"
	eng queue-send --db "$CONN" --now 2026-11-01T05:00:00Z   # 01:00 EDT; clocks go back at 02:00
	[ "$(row "$c" "next_attempt_at = '2026-11-01T12:00:00Z'")" = t ]   # 07:00 EST
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued' AND attempts = 0")" -eq 3 ]
	[ "$(requests)" -eq 0 ]
}

@test "no quiet hours, or quiet_hours_override: sent at night" {
	user 1
	user 2 000 en UTC 22:00 07:00
	a=$(msg 1); b=$(msg 2 goodbye "quiet_hours_override" "true")
	eng queue-send --db "$CONN" --now 2026-11-23T03:00:00Z
	[ "$(row "$a" status)" = sent ]
	[ "$(row "$b" status)" = sent ]
}

@test "the 21st message in an hour is deferred until a slot frees" {
	user 1
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, status,
	     provider_message_id, sent_at)
	   SELECT '$(uid 1)', 'goodbye', 'goodbye', 'old' || i, 'sent', 'wamid.' || i,
	     timestamptz '$NOW' - interval '59 minutes' + i * interval '2 minutes'
	   FROM generate_series(0, 19) i" >/dev/null
	id=$(msg 1)
	send
	[ "$status" -eq 0 ]
	[ "$(sj .deferred)" -eq 1 ]
	run row "$id" "status, attempts, next_attempt_at = timestamptz '$NOW' + interval '1 minute'"
	[ "$output" = "queued|0|t" ]
	[ "$(requests)" -eq 0 ]
}

@test "the hourly cap counts each send once across claims" {
	user 1
	for i in $(seq 2 191); do user "$i"; done
	# claim order: 10 of user 1's (13:00), 190 others (13:30), 10 more of
	# user 1's (14:00, the default), in claims of 100
	for i in $(seq 10); do msg 1 >/dev/null; done
	q "UPDATE engagement.message_queue SET next_attempt_at = '2026-11-22T13:00:00Z'" >/dev/null
	for i in $(seq 2 191); do msg "$i" >/dev/null; done
	q "UPDATE engagement.message_queue SET next_attempt_at = '2026-11-22T13:30:00Z'
	   WHERE user_id <> '$(uid 1)'" >/dev/null
	for i in $(seq 10); do msg 1 >/dev/null; done
	# (the cap, not the pair rate: send_account.bats tests that)
	send --batch 100 --rate 0 --pair-interval 0
	[ "$status" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE user_id = '$(uid 1)' AND status = 'sent'")" -eq 20 ]
	[ "$(sj .deferred)" -eq 0 ]
}

@test "the hourly cap holds within one run: 25 messages to one user, 20 sent" {
	user 1
	for i in $(seq 25); do msg 1 >/dev/null; done
	send --per-user-hourly 20 --pair-interval 0
	[ "$(sj .sent)" -eq 20 ]
	[ "$(sj .deferred)" -eq 5 ]
	[ "$(requests)" -eq 20 ]
}

@test "template locale fallback: pt-BR exact, es-MX -> es, fr -> en; none -> failed" {
	user 1 000 pt-BR; user 2 000 es-MX; user 3 000 fr; user 4 000 en
	a=$(msg 1); b=$(msg 2); c=$(msg 3); d=$(msg 4 no_such_template)
	send
	[ "$(jq -r 'select(.to == "'"$(phone 1)"'") | .language' "$STANDIN_RECORD")" = pt_BR ]
	[ "$(jq -r 'select(.to == "'"$(phone 2)"'") | .language' "$STANDIN_RECORD")" = es ]
	[ "$(jq -r 'select(.to == "'"$(phone 3)"'") | .language' "$STANDIN_RECORD")" = en ]
	run row "$d" "status, last_error_code"
	[ "$output" = "failed|template" ]
	[ "$(requests)" -eq 3 ]
	# an inactive template is not used
	q "UPDATE engagement.message_templates SET is_active = false WHERE template_key = 'goodbye'" >/dev/null
	e=$(msg 1)
	send
	[ "$(row "$e" status)" = failed ]
}

@test "a group destination sends to the group" {
	user 1
	q "UPDATE engagement.user_preferences SET preferred_destination = 'group', group_id = '120363000000000001@g.us'
	   WHERE user_id = '$(uid 1)'" >/dev/null
	id=$(msg 1)
	send
	[ "$(row "$id" status)" = sent ]
	[ "$(jq -r .recipient_type "$STANDIN_RECORD")" = group ]
	[ "$(jq -r .to "$STANDIN_RECORD")" = 120363000000000001@g.us ]
}

@test "an expired lease is recovered: charged, back in the queue, then sent" {
	user 1
	id=$(msg 1 goodbye "status, locked_by, locked_until" "'sending', 'dead-worker', now() - interval '1 minute'")
	send
	[ "$status" -eq 0 ]
	[ "$(sj .leases_recovered)" -eq 1 ]
	run row "$id" "status, attempts"
	[ "$output" = "sent|2" ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log WHERE event = 'message_lease_recovered'")" -eq 1 ]
}

@test "a live lease of another worker is left alone" {
	user 1
	id=$(msg 1 goodbye "status, locked_by, locked_until" "'sending', 'busy-worker', now() + interval '1 minute'")
	send
	[ "$(row "$id" "status || '/' || locked_by")" = sending/busy-worker ]
	[ "$(requests)" -eq 0 ]
}

@test "four workers on 2,000 messages: every message sent exactly once" {
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '+55119' || lpad(i::text, 5, '0') || '000'
	   FROM generate_series(1, 2000) i;
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, next_attempt_at)
	   SELECT id, 'goodbye', 'goodbye', id::text, '2026-11-22T14:00:00Z' FROM engagement.users" >/dev/null
	pids=()
	for w in 1 2 3 4; do
		"$ENG_BIN/queue-send" --db "$CONN" --now "$NOW" --rate 0 --batch 50 --concurrency 8 \
			--worker-id "w$w" >"$BATS_TEST_TMPDIR/w$w.json" 2>"$BATS_TEST_TMPDIR/w$w.log" &
		pids+=($!)
	done
	wait "${pids[@]}"
	total=0
	for w in 1 2 3 4; do
		[ "$(jq .exit_code "$BATS_TEST_TMPDIR/w$w.json")" -eq 0 ]
		total=$((total + $(jq .sent "$BATS_TEST_TMPDIR/w$w.json")))
	done
	[ "$total" -eq 2000 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent' AND attempts = 1")" -eq 2000 ]
	[ "$(requests)" -eq 2000 ]
	[ "$(jq -r .biz_opaque_callback_data "$STANDIN_RECORD" | sort | uniq -d | wc -l)" -eq 0 ]
}

@test "one worker, a long run: none of its own claims taken for lost (renewals racing claims and fences)" {
	# A renewal whose snapshot predates a claim, answered after that claim
	# was taken in, must not call the claim's messages lost; nor may a
	# renewal hand back claims it merely has not heard of yet. Each such
	# mistake shows as claim_lost or claim_released, and as messages left
	# queued when the run says it drained.
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '+55119' || lpad(i::text, 5, '0') || '000'
	   FROM generate_series(1, 20000) i;
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, next_attempt_at)
	   SELECT id, 'goodbye', 'goodbye', id::text, '2026-11-22T14:00:00Z' FROM engagement.users;
	   ANALYZE engagement.message_queue" >/dev/null
	send --rate 0 --concurrency 64 --lease-seconds 6
	echo "$output" | jq -c '{status, sent, claimed, handed_back, leases_lost}'
	[ "$status" -eq 0 ]
	[ "$(echo "$stderr" | grep -c '"claim_lost"\|"claim_released"')" -eq 0 ]
	[ "$(echo "$output" | jq .leases_lost)" -eq 0 ]
	[ "$(echo "$output" | jq .sent)" -eq 20000 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status <> 'sent'")" -eq 0 ]
}

@test "kill -9 mid-run: the next run finishes the job, nothing is lost" {
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '+55119' || lpad(i::text, 5, '0') || '000'
	   FROM generate_series(1, 300) i;
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, next_attempt_at)
	   SELECT id, 'goodbye', 'goodbye', id::text, '2026-11-22T14:00:00Z' FROM engagement.users" >/dev/null
	# 300 at 20 a second take 15 s: killed once some are sent, most are not
	"$ENG_BIN/queue-send" --db "$CONN" --now "$NOW" --rate 20 --lease-seconds 5 >/dev/null 2>&1 &
	pid=$!
	wait_for 30 q_ge "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'" 1
	kill -9 "$pid"
	wait "$pid" || true
	[ "$(sent_count)" -lt 300 ]
	# the dead worker's leases (5 s, no longer renewed) run out
	wait_q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending' AND locked_until > clock_timestamp()" 0
	send --rate 0
	[ "$status" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'")" -eq 300 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status <> 'sent'")" -eq 0 ]
	# at least once: every message reached the API
	[ "$(jq -r .biz_opaque_callback_data "$STANDIN_RECORD" | sort -u | wc -l)" -eq 300 ]
}

@test "SIGTERM: in-flight requests finish, the rest is handed back, exit 75, nothing left sending" {
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '+55119' || lpad(i::text, 5, '0') || '000'
	   FROM generate_series(1, 200) i;
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, next_attempt_at)
	   SELECT id, 'goodbye', 'goodbye', id::text, '2026-11-22T14:00:00Z' FROM engagement.users" >/dev/null
	# 200 at 10 a second take 20 s: signalled once some are sent, most are not
	"$ENG_BIN/queue-send" --db "$CONN" --now "$NOW" --rate 10 >"$BATS_TEST_TMPDIR/out.json" 2>"$BATS_TEST_TMPDIR/err.log" &
	pid=$!
	wait_for 30 q_ge "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'" 1
	kill -TERM "$pid"
	wait "$pid" && rc=0 || rc=$?
	[ "$rc" -eq 75 ]
	check_log_lines "$(cat "$BATS_TEST_TMPDIR/err.log")"
	[ "$(jq -r .status "$BATS_TEST_TMPDIR/out.json")" = failed ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending'")" -eq 0 ]
	sent=$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'")
	[ "$sent" -gt 0 ] && [ "$sent" -lt 200 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued' AND attempts = 0")" -eq $((200 - sent)) ]
	[ "$(requests)" -eq "$sent" ]
}

@test "claims are kept while a slow run goes on: a second worker never sends them again" {
	stop_standin
	start_standin --latency-ms 1000
	# 20 messages, two at a time, a second each: a run of 10 s
	for i in $(seq 1 20); do user "$i"; msg "$i" >/dev/null; done
	"$ENG_BIN/queue-send" --db "$CONN" --now "$NOW" --rate 0 --concurrency 2 --lease-seconds 5 \
		--worker-id slow >"$BATS_TEST_TMPDIR/slow.json" 2>/dev/null &
	slow=$!
	# past the end of the first lease it took: renewed meanwhile, so there
	# is nothing to recover
	# (its claims are named after its --worker-id)
	wait_for 30 q_ge "SELECT count(*) FROM engagement.message_queue WHERE locked_by LIKE 'slow%'" 1
	first=$(q "SELECT min(locked_until) FROM engagement.message_queue WHERE locked_by LIKE 'slow%'")
	wait_q "SELECT clock_timestamp() > '$first'" t
	eng queue-send --db "$CONN" --now "$NOW" --rate 0 --worker-id second
	[ "$status" -eq 0 ]
	[ "$(sj .leases_recovered)" -eq 0 ]
	wait "$slow"
	[ "$(sent_count)" -eq 20 ]
	[ "$(jq -r .biz_opaque_callback_data "$STANDIN_RECORD" | sort | uniq -d | wc -l)" -eq 0 ]
	[ "$(requests)" -eq 20 ]
}

@test "--max-seconds: what was not sent in time is handed back, with an audit row" {
	stop_standin
	start_standin --latency-ms 300
	# 40 answers of 300 ms, two at a time, take 6 s: at most half are sent in
	# 3 s, and a loaded machine still sends some
	for i in $(seq 1 40); do user "$i"; msg "$i" >/dev/null; done
	send --rate 0 --concurrency 2 --max-seconds 3
	[ "$status" -eq 0 ]
	sent=$(sj .sent)
	[ "$sent" -gt 0 ] && [ "$sent" -lt 40 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending'")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued' AND attempts = 0")" -eq $((40 - sent)) ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log WHERE event = 'message_handed_back' AND details->>'reason' = 'max_seconds'")" -eq $((40 - sent)) ]
}

@test "a goodbye for someone who came back is cancelled, not sent" {
	user 1
	q "INSERT INTO engagement.engagement_states (user_id, state, last_activity_at) VALUES ('$(uid 1)', 'active', now())" >/dev/null
	id=$(msg 1)
	send
	run row "$id" "status, last_error_code"
	[ "$output" = "cancelled|user_returned" ]
	[ "$(requests)" -eq 0 ]
}

@test "configuration errors exit 78 before anything is claimed" {
	user 1
	id=$(msg 1)
	WHATSAPP_PHONE_NUMBER_ID= send
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *WHATSAPP_PHONE_NUMBER_ID* ]]
	WHATSAPP_ACCESS_TOKEN_FILE= send
	[ "$status" -eq 78 ]
	WHATSAPP_ACCESS_TOKEN_FILE=/nonexistent/token send
	[ "$status" -eq 78 ]
	WHATSAPP_API_URL="http://api.example.com" send
	[ "$status" -eq 78 ]
	WHATSAPP_API_URL="http://127.evil.example" send
	[ "$status" -eq 78 ]
	WHATSAPP_API_URL="::not a url::" send
	[ "$status" -eq 78 ]
	WHATSAPP_API_VERSION="latest" send
	[ "$status" -eq 78 ]
	run row "$id" "status, locked_by IS NULL, attempts"
	[ "$output" = "queued|t|0" ]
	[ "$(requests)" -eq 0 ]
}

@test "the token appears in no output, log or row" {
	user 1; user 2 901; user 3 910
	msg 1 >/dev/null; msg 2 >/dev/null; msg 3 >/dev/null
	send --log-level debug
	[ "$status" -eq 0 ]
	[[ "$output$stderr" != *"$STANDIN_TOKEN"* ]]
	WHATSAPP_ACCESS_TOKEN="$STANDIN_TOKEN" WHATSAPP_ACCESS_TOKEN_FILE= send --log-level debug
	[[ "$output$stderr" != *"$STANDIN_TOKEN"* ]]
	[ "$(q "SELECT count(*) FROM engagement.audit_log WHERE details::text LIKE '%$STANDIN_TOKEN%'")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE last_error LIKE '%$STANDIN_TOKEN%'")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.job_runs WHERE summary::text LIKE '%$STANDIN_TOKEN%'")" -eq 0 ]
}

@test "phone numbers are masked in the logs" {
	user 1 901
	msg 1 >/dev/null
	send --log-level debug
	[[ "$stderr" != *"$(phone 1 901)"* ]]
	[[ "$stderr" == *"+55"*"01"* ]]
}

@test "--dry-run shows the request bodies and sends and changes nothing" {
	user 1 000 es; user 2
	a=$(msg 1 weekly_review); b=$(msg 2)
	before=$(q "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM engagement.message_queue t")
	send --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .would_send)" -eq 2 ]
	[ "$(sj '.requests_shown | length')" -eq 2 ]
	[ "$(sj '.requests_shown[] | select(.template.name == "engagement_weekly_review") | .template.language.code')" = es ]
	[[ "$output" != *"$(phone 1)"* ]]
	[ "$(requests)" -eq 0 ]
	[ "$(q "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM engagement.message_queue t")" = "$before" ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log")" -eq 0 ]
}

@test "--max-messages stops claiming; the rest stays queued" {
	for i in $(seq 1 10); do user "$i"; msg "$i" >/dev/null; done
	send --max-messages 4
	[ "$(sj .claimed)" -eq 4 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued'")" -eq 6 ]
}

@test "finished messages past --retain-days are purged, their audit kept" {
	user 1
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, status,
	     provider_message_id, sent_at, updated_at)
	   VALUES ('$(uid 1)', 'goodbye', 'goodbye', 'old', 'sent', 'wamid.1', now() - interval '40 days', now() - interval '40 days'),
	          ('$(uid 1)', 'goodbye', 'goodbye', 'recent', 'sent', 'wamid.2', now() - interval '2 days', now() - interval '2 days');
	   INSERT INTO engagement.audit_log (user_id, message_id, event)
	   SELECT user_id, id, 'message_sent' FROM engagement.message_queue WHERE idempotency_key = 'old'" >/dev/null
	send --retain-days 30
	[ "$(sj .purged)" -eq 1 ]
	[ "$(q "SELECT string_agg(idempotency_key, ',') FROM engagement.message_queue")" = recent ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log")" -eq 1 ]
}

@test "retention counts from when a message finished: a later status does not keep it, a requeue does" {
	user 1
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, status,
	     provider_message_id, sent_at, updated_at, last_error_code)
	   VALUES ('$(uid 1)', 'goodbye', 'goodbye', 'read-late', 'sent', 'wamid.1', now() - interval '40 days', now() - interval '40 days', NULL),
	          ('$(uid 1)', 'goodbye', 'goodbye', 'requeued', 'failed', NULL, NULL, now() - interval '40 days', '131000')" >/dev/null
	# read yesterday, requeued for tomorrow: both changed recently
	q "UPDATE engagement.message_queue SET delivery_status = 'read', delivered_at = now() - interval '1 day',
	     read_at = now() - interval '1 day' WHERE idempotency_key = 'read-late';
	   UPDATE engagement.message_queue SET status = 'queued', next_attempt_at = now() + interval '1 day'
	   WHERE idempotency_key = 'requeued'" >/dev/null
	send --retain-days 30
	[ "$(sj .purged)" -eq 1 ]
	[ "$(q "SELECT string_agg(idempotency_key || ':' || status, ',') FROM engagement.message_queue")" = requeued:queued ]
}

@test "bad options exit 64" {
	for args in "--batch 0" "--concurrency x" "--rate -5" "--rate fast" "--max-seconds 0" \
		"--timeout 10parsecs" "--lease-seconds 1" "--per-user-hourly 0" "--bogus"; do
		# shellcheck disable=SC2086
		eng queue-send --db "$CONN" $args
		[ "$status" -eq 64 ] || { echo "$args -> $status"; return 1; }
	done
}
