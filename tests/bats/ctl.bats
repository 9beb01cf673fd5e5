#!/usr/bin/env bats
# engagement-ctl (DESIGN.md §2.3), the operator's hands, run as its login
# (eng_operator, granted engagement_operator only): every subcommand, its
# audit rows (the login and --reason), its counts, --dry-run, and every bad
# input named in issue 22: one error line, the right exit code, nothing
# written. queue-send's side of pauses is tests/bats/send_pause.bats.

load helpers

U1=00000000-0000-4000-8000-000000000001 # opted out on the web, dormant
U2=00000000-0000-4000-8000-000000000002 # active
U3=00000000-0000-4000-8000-000000000003 # in goodbye_sent
U4=00000000-0000-4000-8000-000000000004 # came back: active again
P3=+5511987654323
NOBODY=00000000-0000-4000-8000-000000000099

setup() {
	new_db
	q "INSERT INTO engagement.users (id, phone_e164) VALUES
	     ('$U1', '+5511987654321'), ('$U2', '+5511987654322'), ('$U3', '$P3'),
	     ('$U4', '+5511987654324');
	   INSERT INTO engagement.user_preferences (user_id, reengagement_opt_out,
	       reengagement_opt_out_updated_at, reengagement_opt_out_source) VALUES
	     ('$U1', true, now() - interval '1 day', 'web'), ('$U2', false, NULL, NULL),
	     ('$U3', false, NULL, NULL), ('$U4', false, NULL, NULL);
	   INSERT INTO engagement.engagement_states (user_id, state, last_activity_at,
	       goodbye_sent_at, goodbye_expires_at) VALUES
	     ('$U1', 'dormant', now() - interval '30 days', NULL, NULL),
	     ('$U2', 'active', now() - interval '1 day', NULL, NULL),
	     ('$U3', 'goodbye_sent', now() - interval '15 days', now() - interval '1 hour',
	      now() + interval '47 hours'),
	     ('$U4', 'active', now() - interval '1 hour', NULL, NULL)" >/dev/null
}

teardown() {
	drop_dbs
}

ctl() { eng engagement-ctl --db "$CONN" "$@"; }

# msg USER TYPE STATUS KEY [COLUMNS VALUES]: a message; its id
msg() {
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key,
	     idempotency_key, status${5:+, $5})
	   VALUES ('$1', '$2', '$2', '$4', '$3'${6:+, $6}) RETURNING id"
}
row() { q "SELECT $2 FROM engagement.message_queue WHERE id = $1"; }

# everything engagement-ctl may change, as one hash
written() {
	q "SELECT md5(concat_ws('|',
	     (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM engagement.send_pauses t),
	     (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM engagement.message_queue t),
	     (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM engagement.audit_log t),
	     (SELECT string_agg(t::text, ',' ORDER BY t.id) FROM engagement.outbox_events t),
	     (SELECT string_agg(t::text, ',') FROM engagement.messaging_limits t)))"
}

# refused CODE ARGS...: engagement-ctl ARGS exits CODE with one error line
# (on stderr, and the summary's one-line "error"), and writes nothing
refused() {
	local code=$1 before
	shift
	before=$(written)
	ctl "$@"
	[ "$status" -eq "$code" ] || { echo "$* -> $status, wanted $code: $output $stderr" >&2; return 1; }
	[ "$(jq -c 'select(.level == "error")' <<<"$stderr" | grep -c .)" -eq 1 ] ||
		{ echo "$*: not one error line: $stderr" >&2; return 1; }
	[ -n "$(sj .error)" ] && [ "$(sj .error | wc -l)" -eq 1 ] ||
		{ echo "$*: no one-line error in $output" >&2; return 1; }
	[ "$(written)" = "$before" ] || { echo "$*: something was written" >&2; return 1; }
}

# audit EVENT: "login|reason" of that event's audit rows, one per line
audit() {
	q "SELECT login || '|' || coalesce(details->>'reason', '-') FROM engagement.audit_log
	   WHERE event = '$1' ORDER BY id"
}

# ---- pause, resume, pauses ---------------------------------------------------

@test "pause by type with --until, by template and of all; pauses lists them; pausing again updates; resume ends them; each audited with the login and the reason" {
	until=$(q "SELECT to_json(date_trunc('second', now()) + interval '2 hours')#>>'{}'")
	ctl pause --type weekly_review --until "$until" --reason "copy mistake"
	[ "$status" -eq 0 ]
	jq -e '.command == "pause" and .scope == "type" and .value == "weekly_review"
	       and .created == true and .waited_for_claims == 0' <<<"$output"
	id=$(sj .pause_id)
	[ "$(q "SELECT until = '$until' FROM engagement.send_pauses WHERE id = $id")" = t ]
	ctl pause --template goodbye --reason "meta paused it"
	[ "$status" -eq 0 ]
	ctl pause --reason "incident 22"
	[ "$status" -eq 0 ]
	[ "$(sj .scope)" = all ]
	[ "$(q "SELECT string_agg(scope || ':' || coalesce(value, '-') || ':' || paused_by || ':' || source, ','
	        ORDER BY id) FROM engagement.send_pauses")" = \
		"type:weekly_review:eng_operator:operator,template:goodbye:eng_operator:operator,all:-:eng_operator:operator" ]
	[ "$(audit sending_paused | tr '\n' ,)" = "eng_operator|copy mistake,eng_operator|meta paused it,eng_operator|incident 22," ]

	ctl pauses
	[ "$status" -eq 0 ]
	jq -e '(.pauses | length) == 3 and .pauses[0].scope == "type"
	       and .pauses[0].reason == "copy mistake" and .pauses[0].paused_by == "eng_operator"
	       and .pauses[0].until != null and .pauses[2].value == null' <<<"$output"

	# the same pause again: the same row, its reason and end changed
	ctl pause --type weekly_review --reason "longer"
	[ "$status" -eq 0 ]
	[ "$(sj .pause_id)" = "$id" ]
	[ "$(sj .created)" = false ]
	[ "$(q "SELECT reason || ':' || (until IS NULL) FROM engagement.send_pauses WHERE id = $id")" = longer:true ]

	ctl resume --type weekly_review --reason "copy fixed"
	[ "$status" -eq 0 ]
	jq -e '.resumed == 1 and .ids == ['"$id"']' <<<"$output"
	[ "$(audit sending_resumed)" = "eng_operator|copy fixed" ]
	ctl resume
	[ "$(sj .resumed)" -eq 1 ]
	# a resume that matches nothing: 0, not an error
	ctl resume --type weekly_review
	[ "$status" -eq 0 ]
	[ "$(sj .resumed)" -eq 0 ]
	ctl pauses
	jq -e '(.pauses | length) == 1 and .pauses[0].scope == "template"' <<<"$output"
	[ "$(q "SELECT resumed_by FROM engagement.send_pauses WHERE id = $id")" = eng_operator ]
}

@test "pause --dry-run reports the pause and keeps nothing" {
	before=$(written)
	ctl pause --type goodbye --reason "just looking" --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .created)" = true ]
	[ "$(written)" = "$before" ]
	ctl pauses
	[ "$(sj '.pauses | length')" -eq 0 ]
}

@test "pause and resume: every bad input is one error line, its exit code, and nothing written" {
	refused 64 pause --type goodbye
	refused 64 pause --type goodbye --template goodbye --reason x
	refused 64 pause --reason ""
	refused 64 pause --reason "$(printf 'x%.0s' $(seq 501))"
	refused 64 pause --user "$U1" --reason x
	refused 64 pause --reason x extra
	refused 64 resume --until 2030-01-01T00:00:00Z
	refused 64 pauses --reason x
	refused 64 pauses --dry-run
	refused 65 pause --until tomorrow --reason x
	refused 65 pause --until 2020-01-01T00:00:00Z --reason "already over"
	refused 65 pause --type Goodbye --reason x
	refused 65 pause --reason "   "
	refused 64 frobnicate
	refused 64
	# the database's rule, as it said it, in the error
	ctl pause --until 2020-01-01T00:00:00Z --reason x
	[[ "$(sj .error)" == *"end must be in the future"* ]]
	[ "$(sj .command)" = pause ]
}

# ---- requeue -----------------------------------------------------------------

@test "requeue: failed messages back to queued with attempts reset; the opted-out, the expired and the goodbye of someone who came back are skipped and counted by reason; --dry-run changes nothing" {
	local f='last_error_code, attempts, expires_at, updated_at'
	ok=$(msg "$U2" weekly_review failed r1 "$f" "'130429', 5, NULL, now()")
	bye=$(msg "$U3" goodbye failed r2 "$f" "'130429', 5, now() + interval '40 hours', now()")
	out=$(msg "$U1" weekly_review failed r3 "$f" "'130429', 5, NULL, now()")
	late=$(msg "$U3" goodbye failed r4 "$f" "'130429', 5, now() - interval '1 hour', now()")
	back=$(msg "$U4" goodbye failed r5 "$f" "'130429', 5, now() + interval '40 hours', now()")
	other=$(msg "$U2" weekly_review failed r6 "$f" "'131026', 5, NULL, now()")
	old=$(msg "$U2" weekly_review failed r7 "$f" "'130429', 5, NULL, now() - interval '3 days'")
	since=$(q "SELECT to_json(now() - interval '1 day')#>>'{}'")

	before=$(written)
	ctl requeue --status failed --error 130429 --since "$since" --reason "outage over" --dry-run
	[ "$status" -eq 0 ]
	jq -e '.requeued == 2 and .skipped == {"opted_out": 1, "expired": 1, "user_returned": 1}' <<<"$output"
	[ "$(written)" = "$before" ]

	ctl requeue --status failed --error 130429 --since "$since" --reason "outage over"
	[ "$status" -eq 0 ]
	jq -e '.requeued == 2 and .skipped.opted_out == 1 and .skipped.expired == 1
	       and .skipped.user_returned == 1' <<<"$output"
	for id in $ok $bye; do
		[ "$(row "$id" "status || ':' || attempts || ':' || (next_attempt_at <= now())")" = queued:0:true ]
	done
	for id in $out $late $back $other $old; do
		[ "$(row "$id" status)" = failed ]
	done
	[ "$(audit message_requeued | sort -u)" = "eng_operator|outage over" ]
	[ "$(q "SELECT string_agg(message_id::text, ',' ORDER BY message_id) FROM engagement.audit_log
	        WHERE event = 'message_requeued'")" = "$ok,$bye" ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'message.queued'")" -eq 2 ]
	# the log says what it did and skipped
	jq -e '.requeued == 2 and .opted_out == 1 and .expired == 1 and .user_returned == 1' \
		<<<"$(log_events messages_requeued)"

	# by type and code, and --until: what changed before it
	ctl requeue --status failed --type weekly_review --error 131026 --error 130429 \
		--until "$since"
	[ "$(sj .requeued)" -eq 1 ]
	[ "$(row "$old" status)" = queued ]
	[ "$(row "$other" status)" = failed ]
	# a filter that matches nothing: counts 0, exit 0
	ctl requeue --status failed --error 999999
	[ "$status" -eq 0 ]
	jq -e '.requeued == 0 and .skipped == {"opted_out": 0, "expired": 0, "user_returned": 0}' <<<"$output"
}

@test "requeue --status queued: messages waiting for a later attempt are due now, attempts reset" {
	wait=$(msg "$U2" weekly_review queued w1 'last_error_code, attempts, next_attempt_at' \
		"'130429', 2, now() + interval '50 minutes'")
	fresh=$(msg "$U2" goodbye queued w2 'next_attempt_at' "now() + interval '1 hour'")
	ctl requeue --status queued --error 130429 --reason "limit lifted"
	[ "$status" -eq 0 ]
	[ "$(sj .requeued)" -eq 1 ]
	[ "$(row "$wait" "attempts || ':' || (next_attempt_at <= now())")" = 0:true ]
	[ "$(row "$fresh" "next_attempt_at > now()")" = t ]
}

@test "requeue: every bad input is one error line, its exit code, and nothing written" {
	msg "$U2" weekly_review failed r1 last_error_code "'130429'" >/dev/null
	refused 64 requeue
	refused 64 requeue --status sent
	refused 64 requeue --status failed --error ""
	refused 64 requeue --status failed --key r1
	refused 64 requeue --status failed --template goodbye
	refused 64 requeue --status failed --phone +5511987654322
	refused 65 requeue --status failed --since "last week"
	refused 65 requeue --status failed --until 2026-13-01T00:00:00Z
}

# ---- cancel ------------------------------------------------------------------

@test "cancel by key, by person and by type: queued ones cancelled and audited, those a sender holds counted in_flight; no filter is 64" {
	week2=$(msg "$U2" weekly_review queued k-week-2)
	bye2=$(msg "$U2" goodbye queued k-bye-2)
	held=$(msg "$U3" goodbye sending k-bye-3 'locked_by, locked_until' "'w1', now() + interval '1 minute'")
	week3=$(msg "$U3" weekly_review queued k-week-3)
	sent=$(msg "$U4" weekly_review sent k-week-4 'provider_message_id, sent_at' "'wamid.4', now()")

	refused 64 cancel
	refused 64 cancel --reason "no filter"
	refused 64 cancel --dry-run

	ctl cancel --key k-week-2 --reason "bad copy"
	[ "$status" -eq 0 ]
	jq -e '.cancelled == 1 and .in_flight == 0' <<<"$output"
	[ "$(row "$week2" "status || ':' || last_error_code")" = cancelled:operator_cancelled ]
	[ "$(audit message_cancelled)" = "eng_operator|bad copy" ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'message.cancelled'")" -eq 1 ]

	before=$(written)
	ctl cancel --phone "$P3" --dry-run
	jq -e '.cancelled == 1 and .in_flight == 1 and .user_id == "'"$U3"'"' <<<"$output"
	[ "$(written)" = "$before" ]
	ctl cancel --phone "$P3" --reason "asked us by phone"
	jq -e '.cancelled == 1 and .in_flight == 1' <<<"$output"
	[ "$(row "$week3" status)" = cancelled ]
	[ "$(row "$held" status)" = sending ]
	# the number given is never in the log
	! grep -q 5511987654323 <<<"$stderr"

	ctl cancel --type goodbye --user "$U2"
	jq -e '.cancelled == 1 and .in_flight == 0' <<<"$output"
	[ "$(row "$bye2" status)" = cancelled ]
	[ "$(row "$sent" status)" = sent ]
	ctl cancel --template weekly_review
	jq -e '.cancelled == 0 and .in_flight == 0' <<<"$output"
	[ "$status" -eq 0 ]
}

@test "cancel: an unknown person is 67 (the phone masked), a malformed one 65, both given 64; nothing written" {
	msg "$U2" weekly_review queued k1 >/dev/null
	refused 67 cancel --user "$NOBODY"
	refused 67 cancel --phone +5511900000077
	[[ "$(sj .error)" == *"+55*********77"* ]]
	! grep -q 5511900000077 <<<"$stderr$output"
	refused 65 cancel --user not-a-uuid
	refused 65 cancel --phone 5511987654322
	refused 64 cancel --user "$U2" --phone +5511987654322
	refused 64 cancel --key k1 --status failed
	refused 64 cancel --key k1 --unmask
}

# ---- limit -------------------------------------------------------------------

@test "limit --tier sets the messaging limit, audited; a bad or missing tier is 64 and nothing is written" {
	ctl limit --tier TIER_2K --reason "webhook not subscribed"
	[ "$status" -eq 0 ]
	jq -e '.tier == "TIER_2K" and .max_recipients_24h == 2000 and .reached_24h == 0' <<<"$output"
	[ "$(q "SELECT phone_number_id || ':' || tier || ':' || max_recipients_24h || ':' || source || ':' || updated_by
	        FROM engagement.messaging_limits")" = "*:TIER_2K:2000:operator:eng_operator" ]
	[ "$(audit messaging_limit_set)" = "eng_operator|webhook not subscribed" ]
	ctl limit --tier TIER_UNLIMITED
	[ "$status" -eq 0 ]
	[ "$(sj .max_recipients_24h)" = null ]
	[ "$(q "SELECT tier FROM engagement.messaging_limits")" = TIER_UNLIMITED ]
	refused 64 limit
	refused 64 limit --tier TIER_3K
	refused 64 limit --tier tier_2k
	refused 64 limit --tier TIER_2K --type goodbye
}

# ---- show ----------------------------------------------------------------------

# U3's history: a message sent, delivered and read, with a parameter; an
# opt-out and an opt-in; a reply that brought them back; a cancel
history() {
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
	     idempotency_key, status, attempts, provider_message_id, sent_at, delivery_status,
	     delivered_at, read_at)
	   VALUES ('$U3', 'goodbye', 'goodbye', '{\"name\": \"Maria\", \"count\": 42}', 'h1', 'sent', 1,
	     'wamid.H1', now() - interval '50 minutes', 'read', now() - interval '49 minutes',
	     now() - interval '48 minutes')" >/dev/null
	"$ENG_BIN/optout-set" --db "$CONN" --phone "$P3" --opt-out --source web \
		--reason "called from $P3" >/dev/null 2>&1
	"$ENG_BIN/optout-set" --db "$CONN" --user "$U3" --opt-in --source cli \
		>/dev/null 2>&1
	"$ENG_BIN/engagement-event" --db "$CONN" --user "$U3" --activity --id wamid.IN1 >/dev/null 2>&1
	msg "$U3" weekly_review queued h2 >/dev/null
	ctl cancel --key h2 --reason "asked by $P3"
	[ "$status" -eq 0 ]
}

@test "show: one JSON document of the person's history, masked: the full number, a parameter or a number in a reason never printed" {
	history
	ctl show --phone "$P3"
	[ "$status" -eq 0 ]
	jq -e '.command == "show" and .user.id == "'"$U3"'" and .user.phone == "+55*********23"
	       and .state.state == "active" and .preferences.opt_out == false
	       and ([.transitions[] | .from + ">" + .to] == ["goodbye_sent>active"])
	       and (.messages | length) == 2
	       and .messages[0].status == "sent" and .messages[0].attempts == 1
	       and .messages[0].delivery_status == "read" and .messages[0].read_at != null
	       and .messages[0].params == {"name": "M***", "count": "4***"}
	       and .messages[1].status == "cancelled"
	       and .messages[1].last_error_code == "operator_cancelled"
	       and ([.consent[].event] == ["reengagement_opted_out", "reengagement_opted_in"])
	       and (.inbound_events | length) == 1 and .inbound_events[0].event_id == "wamid.IN1"
	       and ([.audit[] | select(.event == "message_cancelled") | .login] == ["eng_operator"])' \
		<<<"$output"
	! grep -q 5511987654323 <<<"$output$stderr"
	! grep -q Maria <<<"$output$stderr"
	# by id, the same document
	a=$(jq -c 'del(.run_id, .duration_ms, .now)' <<<"$output")
	ctl show --user "$U3"
	[ "$(jq -c 'del(.run_id, .duration_ms, .now)' <<<"$output")" = "$a" ]
}

@test "show --unmask: the number and the parameters as stored on stdout, and still never in the log" {
	history
	ctl show --phone "$P3" --unmask
	[ "$status" -eq 0 ]
	jq -e '.user.phone == "'"$P3"'" and .messages[0].params == {"name": "Maria", "count": 42}' <<<"$output"
	! grep -q 5511987654323 <<<"$stderr"
	jq -e '.unmasked == true' <<<"$(log_events person_shown)"
}

@test "show on a terminal: a readable timeline in time order, masked" {
	history
	local cmd
	printf -v cmd '%q ' "$ENG_BIN/engagement-ctl" --db "$CONN" --log-level warn show --phone "$P3"
	run bash -c "set -o pipefail; script -qec $(printf %q "$cmd") /dev/null | tr -d '\r'"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "person $U3 +55*********23: active, re-engagement on (cli, "* ]]
	[[ "$output" == *"transition  goodbye_sent -> active (user_message)"* ]]
	[[ "$output" == *"consent     reengagement_opted_out (web)"* ]]
	[[ "$output" == *"inbound     event: "* ]]
	[[ "$output" == *"message     #"*" read"* ]]
	[[ "$output" == *"message_cancelled"*"by eng_operator"* ]]
	! grep -q 5511987654323 <<<"$output"
	# in time order
	[ "$(printf '%s\n' "${lines[@]:1}" | cut -c1-24 | sort -c && echo sorted)" = sorted ]
}

@test "show: an unknown person is 67, malformed 65, none or both given 64" {
	refused 67 show --phone +5511900000077
	! grep -q 5511900000077 <<<"$stderr$output"
	refused 67 show --user "$NOBODY"
	refused 65 show --phone +0123
	refused 65 show --user 1234
	refused 64 show
	refused 64 show --user "$U1" --phone +5511987654321
	refused 64 show --user "$U1" --reason x
	refused 64 show --user "$U1" --dry-run
}

# ---- privileges and the database -------------------------------------------------

@test "a login without engagement_operator is 77 and changes nothing; an unreachable database is 75" {
	msg "$U2" weekly_review queued k1 >/dev/null
	for args in "pause --reason x" "pauses" "cancel --key k1" "limit --tier TIER_2K" \
		"show --user $U2" "requeue --status failed"; do
		before=$(written)
		# shellcheck disable=SC2086
		run --separate-stderr "$ENG_BUILD/engagement-ctl" --db "$CONN user=engagement_noperm" $args
		[ "$status" -eq 77 ] || { echo "$args -> $status: $output" >&2; return 1; }
		check_one_object "$output"
		[ "$(written)" = "$before" ]
	done
	# another program's login: the functions are not its
	run --separate-stderr env PGUSER=eng_sender "$ENG_BUILD/engagement-ctl" --db "$CONN" \
		pause --reason x
	[ "$status" -eq 77 ] || { echo "as eng_sender: $status $output $stderr" >&2; return 1; }
	[[ "$(jq -r .error <<<"$output")" == *"permission denied"* ]]
	ctl --db "host=$BATS_TEST_TMPDIR/nowhere dbname=x" pauses
	[ "$status" -eq 75 ]
}

@test "--help lists the commands and exit codes; --version" {
	run "$ENG_BIN/engagement-ctl" --help
	[ "$status" -eq 0 ]
	for c in pause resume pauses requeue cancel limit show; do
		grep -qE "^  $c( |$)" <<<"$output" || { echo "no $c in --help" >&2; return 1; }
	done
	[[ "$output" == *"--tier TIER"* ]]
	[[ "$output" == *"77 credentials or privilege refused, or the login lacks engagement_operator"* ]]
	run "$ENG_BIN/engagement-ctl" --version
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == "engagement-ctl "* ]]
}
