#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2154 # jq filters are single-quoted; bats sets $stderr
# engagement-event: black-box tests against the real test cluster.
#
# Every test builds its users and states with SQL, runs the program with
# fixed instants (--at / --now) and checks the summary, the logs and the
# rows it left behind (engagement_states, state_transitions, outbox_events,
# message_queue, activity_events).

load helpers

# The instants every test uses.
T0=2026-11-22T06:00:00Z      # when events happen
LAST=2026-11-01T06:00:00Z    # canonical last_activity_at (21 days before T0)
CHG=2026-11-20T06:00:00Z     # canonical state_changed_at
REMIND=2026-12-04T06:00:00Z  # canonical remind_at of a remind_later user

setup() {
	TMP=$(mktemp -d)
	new_db
}

teardown() {
	drop_dbs
	rm -rf "$TMP"
}

# ---- fixtures ----------------------------------------------------------

# uid N / phone N: a user's id and phone number.
uid() { printf 'aaaaaaaa-bbbb-4ccc-8ddd-eeee%08d' "$1"; }
phone() { printf '+55119876%05d' "$1"; }

# mkuser N STATE [LAST_ACTIVITY [STATE_CHANGED]]: user N in STATE ("none":
# no engagement_states row). goodbye_sent gets its goodbye timestamps from
# STATE_CHANGED; remind_later keeps them and gets remind_at = $REMIND.
mkuser() {
	local id phone st=$2 last=${3:-$LAST} chg=${4:-$CHG}
	id=$(uid "$1")
	phone=$(phone "$1")
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('$id', '$phone')" >/dev/null
	[ "$st" = none ] && return 0
	local gs=NULL ge=NULL ra=NULL
	case $st in
	goodbye_sent)
		gs="'$chg'"
		ge="'$chg'::timestamptz + interval '48 hours'"
		;;
	remind_later)
		gs="'$chg'::timestamptz - interval '1 day'"
		ge="'$chg'::timestamptz + interval '1 day'"
		ra="'$REMIND'"
		;;
	esac
	q "INSERT INTO engagement.engagement_states
	     (user_id, state, last_activity_at, state_changed_at,
	      goodbye_sent_at, goodbye_expires_at, remind_at)
	   VALUES ('$id', '$st', '$last', '$chg', $gs, $ge, $ra)" >/dev/null
}

# z COLUMN: SQL that renders a timestamptz as 2026-11-22T06:00:00Z.
z() {
	printf "to_char(%s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" "$1"
}

# state_json ID: the user's state row as JSON (timestamps as above).
state_json() {
	q "SELECT json_build_object('state', state,
	     'last_activity_at', $(z last_activity_at),
	     'goodbye_sent_at', $(z goodbye_sent_at),
	     'goodbye_expires_at', $(z goodbye_expires_at),
	     'remind_at', $(z remind_at),
	     'state_changed_at', $(z state_changed_at))
	   FROM engagement.engagement_states WHERE user_id = '$1'"
}

# transitions_json ID: the user's state_transitions rows, in id order.
transitions_json() {
	q "SELECT coalesce(json_agg(json_build_object('id', id,
	     'from_state', from_state, 'to_state', to_state, 'trigger', trigger,
	     'run_id', run_id, 'metadata', metadata,
	     'created_at', $(z created_at)) ORDER BY id), '[]')
	   FROM engagement.state_transitions WHERE user_id = '$1'"
}

# outbox_json ID: the user's engagement.state_changed events, in id order.
outbox_json() {
	q "SELECT coalesce(json_agg(json_build_object('id', id,
	     'aggregate_id', aggregate_id, 'payload', payload,
	     'payload_text', payload::text) ORDER BY id), '[]')
	   FROM engagement.outbox_events
	   WHERE event_type = 'engagement.state_changed'
	     AND payload->>'user_id' = '$1'"
}

# snap: everything an event could change, as one string.
snap() {
	q "SELECT coalesce((SELECT json_agg(s ORDER BY user_id)
	                      FROM engagement.engagement_states s)::text, '[]')
	   || ' transitions=' || (SELECT count(*) FROM engagement.state_transitions)
	   || ' outbox=' || (SELECT count(*) FROM engagement.outbox_events)
	   || ' queue=' || (SELECT count(*) FROM engagement.message_queue)
	   || ' activity=' || (SELECT count(*) FROM engagement.activity_events)"
}

# jqe JSON FILTER [JQ ARGS...]: fail, showing JSON, unless FILTER is true.
jqe() {
	local json=$1 filter=$2
	shift 2
	if ! jq -e "$@" "$filter" <<<"$json" >/dev/null; then
		echo "check failed: $filter" >&2
		echo "on: $json" >&2
		return 1
	fi
}

# ---- 1. the ten valid transitions --------------------------------------

# check_transition N FROM TO TRIGGER ARGS...: user N in state FROM; the
# program, run with ARGS at $T0, must move it to TO by TRIGGER, with the
# transition row, the outbox event and the side effects of DESIGN.md §1.
check_transition() {
	local n=$1 from=$2 to=$3 trigger=$4
	shift 4
	local id
	id=$(uid "$n")
	mkuser "$n" "$from"
	eng engagement-event --db "$CONN" --user "$id" "$@" --at "$T0"
	[ "$status" -eq 0 ] || { echo "$from --$trigger--> exited $status: $output" >&2; return 1; }
	jqe "$output" '.status == "ok" and .outcome == "transitioned"
		and .user_id == $id and .from_state == $f and .to_state == $t
		and (.at | startswith("2026-11-22T06:00:00"))' \
		--arg id "$id" --arg f "$from" --arg t "$to"
	local run_id
	run_id=$(sj .run_id)

	# the state row and the side effects
	local s
	s=$(state_json "$id")
	jqe "$s" '.state == $t and .state_changed_at == $at' --arg t "$to" --arg at "$T0"
	case $trigger in
	inactivity_14d)
		jqe "$s" '.goodbye_sent_at == "2026-11-22T06:00:00Z"
			and .goodbye_expires_at == "2026-11-24T06:00:00Z"
			and .last_activity_at == $last' --arg last "$LAST"
		;;
	user_message)
		jqe "$s" '.last_activity_at == $at and .goodbye_sent_at == null
			and .goodbye_expires_at == null and .remind_at == null' --arg at "$T0"
		;;
	goodbye_response_2)
		jqe "$s" '.remind_at == "2026-12-06T06:00:00Z" and .last_activity_at == $last' \
			--arg last "$LAST"
		;;
	*)
		jqe "$s" '.last_activity_at == $last' --arg last "$LAST"
		;;
	esac

	# the goodbye message, for inactivity_14d only
	local mq
	mq=$(q "SELECT coalesce(json_agg(json_build_object('message_type', message_type,
	          'idempotency_key', idempotency_key, 'status', status,
	          'expires_at', $(z expires_at))), '[]')
	        FROM engagement.message_queue WHERE user_id = '$id'")
	if [ "$trigger" = inactivity_14d ]; then
		jqe "$mq" 'length == 1 and .[0].message_type == "goodbye"
			and .[0].idempotency_key == ($id + ":goodbye_sent:2026-11-22")
			and .[0].status == "queued"
			and .[0].expires_at == "2026-11-24T06:00:00Z"' --arg id "$id"
	else
		jqe "$mq" 'length == 0'
	fi

	# exactly one transition row
	local tr
	tr=$(transitions_json "$id")
	jqe "$tr" 'length == 1 and .[0].from_state == $f and .[0].to_state == $t
		and .[0].trigger == $tr and .[0].run_id == $run
		and .[0].created_at == $at
		and .[0].metadata.days_inactive == 21' \
		--arg f "$from" --arg t "$to" --arg tr "$trigger" --arg run "$run_id" --arg at "$T0"
	local rt=null
	case $trigger in
	goodbye_response_1) rt='"confused"' ;;
	goodbye_response_2) rt='"busy"' ;;
	goodbye_response_3) rt='"all_good"' ;;
	goodbye_timeout) rt='"timeout"' ;;
	esac
	jqe "$tr" '.[0].metadata.response_type == $rt' --argjson rt "$rt"
	if [ "$from" = dormant ]; then # dormant since $CHG: 2 days, not unprompted
		jqe "$tr" '.[0].metadata.unprompted_return == false'
	else
		jqe "$tr" '.[0].metadata | has("unprompted_return") | not'
	fi

	# exactly one outbox event, carrying the transition, never the phone
	local ob digits
	ob=$(outbox_json "$id")
	jqe "$ob" 'length == 1 and (.[0].payload as $p
		| $p.user_id == $id and $p.from_state == $f and $p.to_state == $t
		and $p.trigger == $tr and $p.transition_id == $trow[0].id
		and $p.metadata == $trow[0].metadata)' \
		--arg id "$id" --arg f "$from" --arg t "$to" --arg tr "$trigger" \
		--argjson trow "$tr"
	digits=$(phone "$n")
	digits=${digits#+}
	jqe "$ob" '.[0].payload_text | contains($d) | not' --arg d "$digits"
}

@test "active --inactivity_14d--> goodbye_sent, goodbye queued" {
	check_transition 1 active goodbye_sent inactivity_14d --trigger inactivity_14d
}

@test "goodbye_sent --user_message--> active, goodbye timestamps cleared" {
	check_transition 1 goodbye_sent active user_message --trigger user_message
}

@test "goodbye_sent --goodbye_response_1..3--> help_flow, remind_later, dormant (--trigger)" {
	check_transition 1 goodbye_sent help_flow goodbye_response_1 --trigger goodbye_response_1
	check_transition 2 goodbye_sent remind_later goodbye_response_2 --trigger goodbye_response_2
	check_transition 3 goodbye_sent dormant goodbye_response_3 --trigger goodbye_response_3
}

@test "goodbye_sent --goodbye_response_1..3--> help_flow, remind_later, dormant (--goodbye-reply)" {
	check_transition 1 goodbye_sent help_flow goodbye_response_1 --goodbye-reply 1
	check_transition 2 goodbye_sent remind_later goodbye_response_2 --goodbye-reply 2
	check_transition 3 goodbye_sent dormant goodbye_response_3 --goodbye-reply 3
}

@test "goodbye_sent --goodbye_timeout--> dormant" {
	check_transition 1 goodbye_sent dormant goodbye_timeout --trigger goodbye_timeout
}

@test "help_flow --user_message--> active" {
	check_transition 1 help_flow active user_message --trigger user_message
}

@test "remind_later --user_message--> active, remind_at cleared" {
	check_transition 1 remind_later active user_message --trigger user_message
}

@test "remind_later --reminder_due--> dormant" {
	check_transition 1 remind_later dormant reminder_due --trigger reminder_due
}

@test "dormant --user_message--> active with unprompted_return" {
	check_transition 1 dormant active user_message --trigger user_message
}

@test "without --at the event happens at --now" {
	mkuser 1 goodbye_sent
	eng engagement-event --db "$CONN" --user "$(uid 1)" --goodbye-reply 3 --now "$T0"
	[ "$status" -eq 0 ]
	[[ "$(sj .at)" == 2026-11-22T06:00:00* ]]
	jqe "$(transitions_json "$(uid 1)")" '.[0].created_at == $at' --arg at "$T0"
	jqe "$(state_json "$(uid 1)")" '.state == "dormant" and .state_changed_at == $at' --arg at "$T0"
}

# ---- 2. the 25 invalid (state, trigger) pairs ---------------------------

@test "every invalid (state, trigger) pair exits 65, names the state and changes nothing" {
	local states=(active goodbye_sent help_flow remind_later dormant)
	local triggers=(inactivity_14d user_message goodbye_response_1 goodbye_response_2
		goodbye_response_3 goodbye_timeout reminder_due)
	local valid=" active:inactivity_14d goodbye_sent:user_message
		goodbye_sent:goodbye_response_1 goodbye_sent:goodbye_response_2
		goodbye_sent:goodbye_response_3 goodbye_sent:goodbye_timeout
		help_flow:user_message remind_later:user_message
		remind_later:reminder_due dormant:user_message "
	local si st tr before after pairs=0
	for si in "${!states[@]}"; do
		mkuser "$si" "${states[$si]}"
	done
	# nothing may change, so every run is compared with the first picture
	before=$(snap)
	for si in "${!states[@]}"; do
		st=${states[$si]}
		for tr in "${triggers[@]}"; do
			[[ "$valid" == *[[:space:]]"$st:$tr"[[:space:]]* ]] && continue
			pairs=$((pairs + 1))
			eng engagement-event --db "$CONN" --user "$(uid "$si")" --trigger "$tr" --at "$T0"
			[ "$status" -eq 65 ] || { echo "$st/$tr exited $status: $output" >&2; return 1; }
			jqe "$output" '.status == "failed" and .outcome == "failed"
				and (.error | test("state " + $st + "\\b"))' --arg st "$st" ||
				{ echo "pair $st/$tr" >&2; return 1; }
			[ "$(jq -r 'select(.event == "event_rejected") | .error' <<<"$stderr" |
				grep -c "state $st")" -eq 1 ] ||
				{ echo "$st/$tr: no event_rejected log naming the state: $stderr" >&2; return 1; }
			after=$(snap)
			[ "$before" = "$after" ] || {
				echo "$st/$tr changed the database:" >&2
				echo "before: $before" >&2
				echo "after:  $after" >&2
				return 1
			}
		done
	done
	[ "$pairs" -eq 25 ]
}

# ---- 3. activity of an active user --------------------------------------

@test "--activity on an active user: recorded, event row, last_activity_at only moves forward" {
	mkuser 1 active
	local id
	id=$(uid 1)
	eng engagement-event --db "$CONN" --user "$id" --activity --at "$T0"
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "recorded" and .action == "activity"
		and .from_state == "active" and .to_state == "active"'
	jqe "$(state_json "$id")" '.state == "active" and .last_activity_at == $at
		and .state_changed_at == $chg' --arg at "$T0" --arg chg "$CHG"
	[ "$(q "SELECT count(*) FROM engagement.activity_events
	        WHERE user_id = '$id' AND occurred_at = '$T0'")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 0 ]

	# an older activity is recorded but does not move the clock back
	eng engagement-event --db "$CONN" --user "$id" --activity --at 2026-11-10T06:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = recorded ]
	jqe "$(state_json "$id")" '.state == "active" and .last_activity_at == $at' --arg at "$T0"
	[ "$(q "SELECT count(*) FROM engagement.activity_events WHERE user_id = '$id'")" -eq 2 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 0 ]
}

@test "--activity on a user without a state row creates it, active" {
	mkuser 1 none
	local id
	id=$(uid 1)
	eng engagement-event --db "$CONN" --user "$id" --activity --at "$T0"
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "recorded" and .from_state == "active" and .to_state == "active"'
	jqe "$(state_json "$id")" '.state == "active" and .last_activity_at == $at' --arg at "$T0"
	[ "$(q "SELECT count(*) FROM engagement.activity_events WHERE user_id = '$id'")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 0 ]
}

# ---- 4. activity brings a user back --------------------------------------

@test "--activity on a dormant user: unprompted_return true after 3 days dormant, false before" {
	# last active long ago; dormant since 3 days, 2 days, 3 days less 1 s
	mkuser 1 dormant 2026-10-01T06:00:00Z 2026-11-19T06:00:00Z
	mkuser 2 dormant 2026-10-01T06:00:00Z 2026-11-20T06:00:00Z
	mkuser 3 dormant 2026-10-01T06:00:00Z 2026-11-19T06:00:01Z
	local n ret
	for n in 1 2 3; do
		eng engagement-event --db "$CONN" --user "$(uid "$n")" --activity --at "$T0"
		[ "$status" -eq 0 ]
		jqe "$output" '.outcome == "transitioned" and .from_state == "dormant" and .to_state == "active"'
		jqe "$(state_json "$(uid "$n")")" '.state == "active" and .last_activity_at == $at' --arg at "$T0"
		[ "$(q "SELECT count(*) FROM engagement.activity_events WHERE user_id = '$(uid "$n")'")" -eq 1 ]
	done
	for n in 1 2 3; do
		case $n in 1) ret=true ;; *) ret=false ;; esac
		jqe "$(transitions_json "$(uid "$n")")" 'length == 1 and .[0].trigger == "user_message"
			and .[0].metadata.days_inactive == 52
			and .[0].metadata.unprompted_return == $r' --argjson r "$ret"
		jqe "$(outbox_json "$(uid "$n")")" 'length == 1
			and .[0].payload.metadata.unprompted_return == $r' --argjson r "$ret"
	done
}

@test "unprompted_return through the real cycle: goodbye, timeout, then a late reply or a return days later" {
	mkuser 1 active 2026-10-01T00:00:00Z
	mkuser 2 active 2026-10-01T00:00:00Z
	eng engagement-daily --db "$CONN" --now 2026-10-20T00:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .checks.inactivity.succeeded)" -eq 2 ]
	eng engagement-daily --db "$CONN" --now 2026-10-22T00:00:01Z
	[ "$status" -eq 0 ]
	[ "$(sj .checks.goodbye_timeout.succeeded)" -eq 2 ]
	# a day after going dormant: a late answer to the goodbye
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at 2026-10-23T00:00:01Z
	[ "$status" -eq 0 ]
	# four days after: a return of their own
	eng engagement-event --db "$CONN" --user "$(uid 2)" --activity --at 2026-10-26T00:00:01Z
	[ "$status" -eq 0 ]
	[ "$(q "SELECT string_agg(u || ':' || (metadata->>'unprompted_return'), ' ' ORDER BY u) FROM (
	        SELECT right(user_id::text, 1) AS u, metadata FROM engagement.state_transitions
	        WHERE from_state = 'dormant') t")" = "1:false 2:true" ]
}

@test "--activity on goodbye_sent and remind_later users: active, their timestamps cleared" {
	mkuser 1 goodbye_sent
	mkuser 2 remind_later
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0"
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .from_state == "goodbye_sent" and .to_state == "active"'
	jqe "$(state_json "$(uid 1)")" '.state == "active" and .goodbye_sent_at == null
		and .goodbye_expires_at == null and .last_activity_at == $at' --arg at "$T0"
	jqe "$(transitions_json "$(uid 1)")" 'length == 1 and .[0].from_state == "goodbye_sent"
		and .[0].to_state == "active" and .[0].trigger == "user_message"
		and .[0].metadata.days_inactive == 21'

	eng engagement-event --db "$CONN" --user "$(uid 2)" --activity --at "$T0"
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .from_state == "remind_later" and .to_state == "active"'
	jqe "$(state_json "$(uid 2)")" '.state == "active" and .remind_at == null
		and .last_activity_at == $at' --arg at "$T0"
	jqe "$(transitions_json "$(uid 2)")" 'length == 1 and .[0].from_state == "remind_later"'
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 2 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'engagement.state_changed'")" -eq 2 ]
}

@test "--activity on a help_flow user brings it back to active" {
	mkuser 1 help_flow
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0"
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .from_state == "help_flow" and .to_state == "active"'
	jqe "$(state_json "$(uid 1)")" '.state == "active" and .last_activity_at == $at' --arg at "$T0"
}

# ---- 5. late activity ------------------------------------------------------

@test "a late activity does not undo a state the user chose by a goodbye reply" {
	mkuser 1 dormant
	local id
	id=$(uid 1)
	q "UPDATE engagement.engagement_states SET state_trigger = 'goodbye_response_3' WHERE user_id = '$id'" >/dev/null
	eng engagement-event --db "$CONN" --user "$id" --activity --at 2026-11-10T06:00:00Z
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "recorded" and .from_state == "dormant" and .to_state == "dormant"'
	jqe "$(state_json "$id")" '.state == "dormant" and .state_changed_at == $chg' --arg chg "$CHG"
	[ "$(q "SELECT count(*) FROM engagement.activity_events WHERE user_id = '$id'")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 0 ]
}

@test "a named user_message older than the user's goodbye reply: 65, says why, nothing changed" {
	mkuser 1 help_flow
	local id
	id=$(uid 1)
	q "UPDATE engagement.engagement_states SET state_trigger = 'goodbye_response_1' WHERE user_id = '$id'" >/dev/null
	eng engagement-event --db "$CONN" --user "$id" --trigger user_message --at 2026-11-10T06:00:00Z
	[ "$status" -eq 65 ]
	[[ "$(sj .error)" == *"chose state help_flow by a goodbye reply made after this user_message"* ]]
	jqe "$(state_json "$id")" '.state == "help_flow" and .state_changed_at == $chg' --arg chg "$CHG"
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 0 ]
}

@test "a late activity still moves last_activity_at forward (max of old and at)" {
	mkuser 1 dormant # last activity Nov 1, dormant since Nov 20
	q "UPDATE engagement.engagement_states SET state_trigger = 'goodbye_response_3' WHERE user_id = '$(uid 1)'" >/dev/null
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at 2026-11-10T06:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = recorded ]
	jqe "$(state_json "$(uid 1)")" '.state == "dormant"
		and .last_activity_at == "2026-11-10T06:00:00Z"'
}

@test "a late activity undoes a state the system entered for lack of activity" {
	# dormant by goodbye_timeout on Nov 20; the activity happened on Nov 10
	mkuser 1 dormant
	q "UPDATE engagement.engagement_states SET state_trigger = 'goodbye_timeout' WHERE user_id = '$(uid 1)'" >/dev/null
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at 2026-11-10T06:00:00Z
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .from_state == "dormant" and .to_state == "active"'
	jqe "$(state_json "$(uid 1)")" '.state == "active" and .last_activity_at == "2026-11-10T06:00:00Z"'
}

@test "coming back from goodbye_sent cancels the goodbye still queued" {
	mkuser 1 active 2026-11-01T06:00:00Z
	eng engagement-event --db "$CONN" --user "$(uid 1)" --trigger inactivity_14d --at "$T0"
	[ "$(q "SELECT status FROM engagement.message_queue WHERE user_id = '$(uid 1)'")" = queued ]
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0"
	[ "$status" -eq 0 ]
	[ "$(sj .to_state)" = active ]
	run q "SELECT status, last_error_code FROM engagement.message_queue WHERE user_id = '$(uid 1)'"
	[ "$output" = "cancelled|user_returned" ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'message.cancelled'")" -eq 1 ]
}

# ---- 6. users by phone, unknown users ------------------------------------

@test "--phone finds the user" {
	mkuser 1 goodbye_sent
	mkuser 2 goodbye_sent
	eng engagement-event --db "$CONN" --phone "$(phone 2)" --goodbye-reply 2 --at "$T0"
	[ "$status" -eq 0 ]
	jqe "$output" '.user_id == $id and .outcome == "transitioned" and .to_state == "remind_later"' \
		--arg id "$(uid 2)"
	jqe "$(state_json "$(uid 2)")" '.state == "remind_later"'
	jqe "$(state_json "$(uid 1)")" '.state == "goodbye_sent"'
	local p
	p=$(phone 2)
	[[ "$output$stderr" != *"${p#+}"* ]]
}

@test "an unknown user id exits 67 and changes nothing" {
	mkuser 1 active
	local before ghost
	before=$(snap)
	ghost=$(uid 99)
	eng engagement-event --db "$CONN" --user "$ghost" --activity --at "$T0"
	[ "$status" -eq 67 ]
	jqe "$output" '.status == "failed" and .outcome == "failed" and (.error | contains($id))' --arg id "$ghost"
	[ "$(log_events unknown_user | wc -l)" -eq 1 ]
	[ "$(snap)" = "$before" ]
	eng engagement-event --db "$CONN" --user "$ghost" --goodbye-reply 1 --at "$T0"
	[ "$status" -eq 67 ]
}

@test "an unknown phone exits 67 and the number appears only masked" {
	mkuser 1 active
	local before p
	before=$(snap)
	p=+5521912345678
	eng engagement-event --db "$CONN" --phone "$p" --activity --at "$T0"
	[ "$status" -eq 67 ]
	jqe "$output" '.status == "failed" and .outcome == "failed"'
	[[ "$output" != *"${p#+}"* ]]
	[[ "$stderr" != *"${p#+}"* ]]
	[[ "$output$stderr" != *"21912345"* ]]
	[ "$(log_events unknown_user | wc -l)" -eq 1 ]
	[[ "$(sj .error)" =~ \+55\*+78 ]]
	[ "$(snap)" = "$before" ]
}

# ---- 7. malformed input and usage errors ---------------------------------

@test "a malformed --user, --phone or --at exits 65 with one clear error line" {
	mkuser 1 active
	local before
	before=$(snap)

	eng engagement-event --db "$CONN" --user not-a-uuid --activity
	[ "$status" -eq 65 ]
	[ "$(stderr_lines)" -eq 1 ]
	jqe "$stderr" '.level == "error" and (.error | contains("--user"))'
	[ "$(sj .status)" = failed ]

	eng engagement-event --db "$CONN" --user "$(uid 1)x" --activity
	[ "$status" -eq 65 ]
	[ "$(stderr_lines)" -eq 1 ]

	for p in 5511987600001 +0511987600001 "+55 11 98760 0001" +5511987600001234567; do
		eng engagement-event --db "$CONN" --phone "$p" --activity
		[ "$status" -eq 65 ] || { echo "phone '$p' exited $status" >&2; return 1; }
		[ "$(stderr_lines)" -eq 1 ]
		jqe "$stderr" '.level == "error" and (.error | contains("--phone"))'
		[[ "$output$stderr" != *"98760"* ]] || { echo "phone '$p' leaked" >&2; return 1; }
	done

	for at in yesterday 2026-13-01T00:00:00Z "2026-11-22T06:00:00" ""; do
		eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$at"
		[ "$status" -eq 65 ] || { echo "--at '$at' exited $status" >&2; return 1; }
		[ "$(stderr_lines)" -eq 1 ]
		jqe "$stderr" '.level == "error" and (.error | contains("--at"))'
	done
	[ "$(snap)" = "$before" ]
}

@test "usage errors exit 64 with one usage_error line" {
	mkuser 1 goodbye_sent
	local before f
	before=$(snap)
	f=$TMP/b.jsonl
	printf '{"user_id":"%s","goodbye_reply":1}\n' "$(uid 1)" >"$f"
	local -a cases=(
		"--activity"
		"--user $(uid 1) --phone $(phone 1) --activity"
		"--user $(uid 1)"
		"--user $(uid 1) --activity --goodbye-reply 1"
		"--user $(uid 1) --goodbye-reply 1 --trigger goodbye_response_1"
		"--user $(uid 1) --activity --activity"
		"--user $(uid 1) --goodbye-reply 4"
		"--user $(uid 1) --goodbye-reply 0"
		"--user $(uid 1) --trigger bogus"
		"--batch $f --user $(uid 1)"
		"--batch $f --at $T0"
		"--batch $f --activity"
		"--user $(uid 1) --activity extra"
		"--user $(uid 1) --activity --bogus"
		"--user $(uid 1) --activity --now yesterday"
	)
	local c
	for c in "${cases[@]}"; do
		# shellcheck disable=SC2086
		eng engagement-event --db "$CONN" $c
		[ "$status" -eq 64 ] || { echo "'$c' exited $status: $output" >&2; return 1; }
		[ "$(stderr_lines)" -eq 1 ] || { echo "'$c': $stderr" >&2; return 1; }
		[ "$(jq -r .event <<<"$stderr")" = usage_error ]
		[ "$(sj .status)" = failed ]
	done
	[ "$(snap)" = "$before" ]
}

@test "--help and --version" {
	run --separate-stderr "$ENG_BIN/engagement-event" --help
	[ "$status" -eq 0 ]
	[[ "$output" == Usage:\ engagement-event* ]]
	run --separate-stderr "$ENG_BIN/engagement-event" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^engagement-event\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

# ---- 8. dry run -----------------------------------------------------------

@test "--dry-run reports the outcome and changes nothing" {
	mkuser 1 goodbye_sent
	mkuser 2 active
	mkuser 3 dormant
	mkuser 4 none
	local before
	before=$(snap)

	eng engagement-event --db "$CONN" --user "$(uid 1)" --goodbye-reply 2 --at "$T0" --dry-run
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .from_state == "goodbye_sent"
		and .to_state == "remind_later"'
	[ "$(snap)" = "$before" ]

	eng engagement-event --db "$CONN" --user "$(uid 2)" --trigger inactivity_14d --at "$T0" --dry-run
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .to_state == "goodbye_sent"'
	[ "$(snap)" = "$before" ]

	eng engagement-event --db "$CONN" --user "$(uid 2)" --activity --at "$T0" --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = recorded ]
	[ "$(snap)" = "$before" ]

	eng engagement-event --db "$CONN" --phone "$(phone 3)" --activity --at "$T0" --dry-run
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .from_state == "dormant" and .to_state == "active"'
	[ "$(snap)" = "$before" ]

	eng engagement-event --db "$CONN" --user "$(uid 4)" --activity --at "$T0" --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = recorded ]
	[ "$(snap)" = "$before" ]

	# an invalid transition is still refused
	eng engagement-event --db "$CONN" --user "$(uid 3)" --goodbye-reply 1 --at "$T0" --dry-run
	[ "$status" -eq 65 ]
	[ "$(snap)" = "$before" ]

	# a dry batch applies nothing either
	printf '{"user_id":"%s","goodbye_reply":3,"at":"%s"}\n{"user_id":"%s","activity":true,"at":"%s"}\n' \
		"$(uid 1)" "$T0" "$(uid 3)" "$T0" >"$TMP/b.jsonl"
	eng engagement-event --db "$CONN" --batch "$TMP/b.jsonl" --dry-run
	[ "$status" -eq 0 ]
	jqe "$output" '.lines == 2 and .applied == 2 and .transitions == 2 and .failed == 0'
	[ "$(snap)" = "$before" ]
}

# ---- 9. batches -------------------------------------------------------------

@test "--batch: good lines apply, bad lines are reported with their line numbers" {
	mkuser 1 goodbye_sent # line 1: reply 1 -> help_flow
	mkuser 2 active       # line 4: unknown field -> nothing
	mkuser 3 dormant      # line 7: reminder_due (by phone) -> invalid
	mkuser 4 dormant      # line 8: activity by phone -> active
	mkuser 5 active       # line 10: inactivity_14d -> goodbye_sent
	local f=$TMP/events.jsonl
	{
		printf '{"user_id":"%s","goodbye_reply":1,"at":"%s"}\n' "$(uid 1)" "$T0"
		printf '\n'
		printf '{"user_id": "%s", "activity": tru\n' "$(uid 2)"
		printf '{"user_id":"%s","activity":true,"colour":"red","at":"%s"}\n' "$(uid 2)" "$T0"
		printf '   \n'
		printf '{"user_id":"%s","activity":true,"at":"%s"}\n' "$(uid 99)" "$T0"
		printf '{"phone":"%s","trigger":"reminder_due","at":"%s"}\n' "$(phone 3)" "$T0"
		printf '{"phone":"%s","activity":true,"at":"%s"}\r\n' "$(phone 4)" "$T0"
		printf '{"phone":"+5521912345678","activity":true,"at":"%s"}\n' "$T0"
		printf '{"user_id":"%s","trigger":"inactivity_14d","at":"%s"}\n' "$(uid 5)" "$T0"
	} >"$f"
	eng engagement-event --db "$CONN" --batch "$f"
	[ "$status" -eq 1 ]
	jqe "$output" '.status == "partial" and .lines == 8 and .applied == 3
		and .failed == 5 and .malformed == 2 and .transitions == 3 and .activities == 1'

	local failed
	failed=$(log_events line_failed | jq -s -c 'map(.line) | sort')
	[ "$failed" = "[3,4,6,7,9]" ] || { echo "line_failed lines: $failed" >&2; return 1; }
	jqe "$(log_events line_failed | jq -s .)" '
		(map(select(.line == 4))[0].error | test("colour"))
		and (map(select(.line == 6))[0].error_class == "no_user")
		and (map(select(.line == 7))[0].error | test("state dormant"))
		and (map(select(.line == 9))[0].error_class == "no_user")'
	[[ "$output$stderr" != *5521912345678* ]]

	jqe "$(state_json "$(uid 1)")" '.state == "help_flow"'
	jqe "$(state_json "$(uid 2)")" '.state == "active" and .last_activity_at == $last' --arg last "$LAST"
	jqe "$(state_json "$(uid 3)")" '.state == "dormant"'
	jqe "$(state_json "$(uid 4)")" '.state == "active" and .last_activity_at == $at' --arg at "$T0"
	jqe "$(state_json "$(uid 5)")" '.state == "goodbye_sent" and .goodbye_sent_at == $at' --arg at "$T0"
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 3 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'engagement.state_changed'")" -eq 3 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 1 ]
	[ "$(q "SELECT string_agg(user_id::text, ',') FROM engagement.activity_events")" = "$(uid 4)" ]
}

@test "--batch - reads stdin" {
	mkuser 1 goodbye_sent
	mkuser 2 remind_later
	printf '{"user_id":"%s","goodbye_reply":3,"at":"%s"}\n{"phone":"%s","trigger":"reminder_due","at":"%s"}\n' \
		"$(uid 1)" "$T0" "$(phone 2)" "$T0" >"$TMP/in.jsonl"
	eng_in "$TMP/in.jsonl" engagement-event --db "$CONN" --batch -
	[ "$status" -eq 0 ]
	jqe "$output" '.status == "ok" and .lines == 2 and .applied == 2 and .failed == 0
		and .transitions == 2 and .activities == 0'
	jqe "$(state_json "$(uid 1)")" '.state == "dormant"'
	jqe "$(state_json "$(uid 2)")" '.state == "dormant"'
	jqe "$(transitions_json "$(uid 1)")" '.[0].metadata.response_type == "all_good"'
}

@test "--batch applies one user's events in file order" {
	mkuser 1 goodbye_sent # reply 2, then activity: remind_later, then active
	mkuser 2 goodbye_sent # activity, then reply 2: active, then the reply fails
	mkuser 3 goodbye_sent # reply 1, then activity, no "at": --now for both
	{
		printf '{"user_id":"%s","goodbye_reply":2,"at":"%s"}\n' "$(uid 1)" "$T0"
		printf '{"user_id":"%s","activity":true,"at":"2026-11-22T07:00:00Z"}\n' "$(uid 1)"
		printf '{"user_id":"%s","activity":true,"at":"%s"}\n' "$(uid 2)" "$T0"
		printf '{"phone":"%s","goodbye_reply":2,"at":"2026-11-22T07:00:00Z"}\n' "$(phone 2)"
		printf '{"user_id":"%s","goodbye_reply":1}\n' "$(uid 3)"
		printf '{"phone":"%s","activity":true}\n' "$(phone 3)"
	} >"$TMP/b.jsonl"
	eng engagement-event --db "$CONN" --batch "$TMP/b.jsonl" --now "$T0"
	[ "$status" -eq 1 ]
	jqe "$output" '.lines == 6 and .applied == 5 and .failed == 1 and .malformed == 0
		and .transitions == 5 and .activities == 3'
	[ "$(log_events line_failed | jq -s -c 'map(.line)')" = "[4]" ]
	[[ "$(log_events line_failed | jq -r .error)" == *"state active"* ]]

	jqe "$(transitions_json "$(uid 1)")" 'map([.from_state, .to_state, .trigger])
		== [["goodbye_sent", "remind_later", "goodbye_response_2"],
		    ["remind_later", "active", "user_message"]]'
	jqe "$(state_json "$(uid 1)")" '.state == "active" and .remind_at == null
		and .last_activity_at == "2026-11-22T07:00:00Z"'
	jqe "$(transitions_json "$(uid 2)")" 'map([.from_state, .to_state])
		== [["goodbye_sent", "active"]]'
	jqe "$(state_json "$(uid 2)")" '.state == "active" and .remind_at == null'
	jqe "$(transitions_json "$(uid 3)")" 'map([.from_state, .to_state, .created_at])
		== [["goodbye_sent", "help_flow", $at], ["help_flow", "active", $at]]' --arg at "$T0"
	jqe "$(state_json "$(uid 3)")" '.state == "active"'
}

@test "--batch of 2000 generated lines applies in full" {
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT gen_random_uuid(), '+5531' || lpad(g::text, 9, '0')
	   FROM generate_series(1, 1000) g" >/dev/null
	q "INSERT INTO engagement.engagement_states
	     (user_id, state, last_activity_at, state_changed_at, goodbye_sent_at, goodbye_expires_at)
	   SELECT id, 'goodbye_sent', '$LAST', '$CHG', '$CHG', '$T0' FROM engagement.users" >/dev/null
	local f=$TMP/big.jsonl
	# every user: goodbye reply 2 (by id), then later an activity (by phone,
	# in the reverse order)
	q "SELECT id FROM engagement.users ORDER BY id" |
		awk -v at="$T0" '{ printf "{\"user_id\":\"%s\",\"goodbye_reply\":2,\"at\":\"%s\"}\n", $1, at }' >"$f"
	q "SELECT phone_e164 FROM engagement.users ORDER BY id DESC" |
		awk '{ printf "{\"phone\":\"%s\",\"activity\":true,\"at\":\"2026-11-23T06:00:00Z\"}\n", $1 }' >>"$f"
	[ "$(wc -l <"$f")" -eq 2000 ]
	eng engagement-event --db "$CONN" --batch "$f"
	[ "$status" -eq 0 ]
	jqe "$output" '.status == "ok" and .lines == 2000 and .applied == 2000 and .failed == 0
		and .malformed == 0 and .transitions == 2000 and .activities == 1000'
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 2000 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions WHERE trigger = 'goodbye_response_2'
	        AND from_state = 'goodbye_sent' AND to_state = 'remind_later'")" -eq 1000 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions WHERE trigger = 'user_message'
	        AND from_state = 'remind_later' AND to_state = 'active'")" -eq 1000 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'engagement.state_changed'")" -eq 2000 ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 1000 ]
	[ "$(q "SELECT count(*) FROM engagement.engagement_states WHERE state = 'active'
	        AND remind_at IS NULL AND last_activity_at = '2026-11-23T06:00:00Z'")" -eq 1000 ]
	# each user's reply came before its activity
	[ "$(q "SELECT count(*) FROM engagement.state_transitions a
	        JOIN engagement.state_transitions b USING (user_id)
	        WHERE a.trigger = 'goodbye_response_2' AND b.trigger = 'user_message'
	          AND a.id < b.id")" -eq 1000 ]
}

# ---- 10. concurrency ------------------------------------------------------

@test "concurrent replies and activities of one user: no lost update" {
	mkuser 1 goodbye_sent
	local id i
	id=$(uid 1)
	local -a pids=()
	for i in $(seq 1 16); do
		if [ $((i % 2)) -eq 0 ]; then
			set -- --goodbye-reply 1
		else
			set -- --activity
		fi
		(
			rc=0
			"$ENG_BIN/engagement-event" --db "$CONN" --user "$id" "$@" --at "$T0" \
				>"$TMP/out.$i" 2>"$TMP/err.$i" || rc=$?
			echo "$rc" >"$TMP/rc.$i"
		) &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || true; done

	local rc
	for i in $(seq 1 16); do
		rc=$(cat "$TMP/rc.$i")
		[ "$rc" -eq 0 ] || [ "$rc" -eq 65 ] || {
			echo "process $i exited $rc: $(cat "$TMP/out.$i") $(cat "$TMP/err.$i")" >&2
			return 1
		}
		# the summary still tells the truth
		[ "$(jq -r .exit_code "$TMP/out.$i")" = "$rc" ]
		# an activity is always accepted
		if [ $((i % 2)) -eq 1 ]; then [ "$rc" -eq 0 ]; fi
	done

	local tr final
	tr=$(transitions_json "$id")
	final=$(state_json "$id")
	jqe "$tr" 'length >= 1 and .[0].from_state == "goodbye_sent"
		and ([range(1; length) as $i | .[$i].from_state == .[$i - 1].to_state] | all)' ||
		return 1
	jqe "$final" '.state == $last' --arg last "$(jq -r '.[-1].to_state' <<<"$tr")"
	[ "$(q "SELECT count(*) FROM engagement.outbox_events
	        WHERE event_type = 'engagement.state_changed'")" -eq "$(jq length <<<"$tr")" ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events WHERE user_id = '$id'")" -eq 8 ]
	# every process that reported a transition has its row
	local moved
	moved=$(cat "$TMP"/out.* | jq -s '[.[] | select(.outcome == "transitioned")] | length')
	[ "$moved" -eq "$(jq length <<<"$tr")" ]
}

# ---- 11. no phone numbers in summaries ------------------------------------

@test "the summary never contains a phone number" {
	mkuser 1 goodbye_sent
	mkuser 2 active
	local p1 p2 ghost=+5521955554444
	p1=$(phone 1)
	p2=$(phone 2)
	local -a sums=() logs=()
	eng engagement-event --db "$CONN" --phone "$p1" --goodbye-reply 1 --at "$T0"
	[ "$status" -eq 0 ]
	sums+=("$output") logs+=("$stderr")
	eng engagement-event --db "$CONN" --phone "$p1" --goodbye-reply 1 --at "$T0"
	[ "$status" -eq 65 ]
	sums+=("$output") logs+=("$stderr")
	eng engagement-event --db "$CONN" --phone "$p2" --activity --at "$T0" --dry-run
	[ "$status" -eq 0 ]
	sums+=("$output") logs+=("$stderr")
	eng engagement-event --db "$CONN" --phone "$ghost" --activity --at "$T0"
	[ "$status" -eq 67 ]
	sums+=("$output") logs+=("$stderr")
	eng engagement-event --db "$CONN" --phone 5521955554444 --activity --at "$T0"
	[ "$status" -eq 65 ]
	sums+=("$output") logs+=("$stderr")
	printf '{"phone":"%s","activity":true}\n{"phone":"%s","trigger":"bogus"}\n{"phone":"%s","activity":true}\n{"phone":"5521955554444","activity":true}\n' \
		"$p2" "$p2" "$ghost" >"$TMP/b.jsonl"
	eng engagement-event --db "$CONN" --batch "$TMP/b.jsonl"
	[ "$status" -eq 1 ]
	jqe "$output" '.lines == 4 and .applied == 1 and .failed == 3'
	sums+=("$output") logs+=("$stderr")
	local i p
	for i in "${!sums[@]}"; do
		for p in "$p1" "$p2" "$ghost"; do
			[[ "${sums[$i]}${logs[$i]}" != *"${p#+}"* ]] ||
				{ echo "phone $p appears in: ${sums[$i]} ${logs[$i]}" >&2; return 1; }
		done
		# no value of the summary is a phone number, unmasked
		jqe "${sums[$i]}" '[.. | strings | select(test("\\+[0-9]{8}"))] | length == 0'
	done
}

# ---- edge: a user with no state row is active --------------------------------

@test "a named trigger for a user with no state row is refused clearly, nothing changes" {
	mkuser 1 none
	for t in inactivity_14d user_message goodbye_timeout; do
		eng engagement-event --db "$CONN" --user "$(uid 1)" --trigger "$t" --at "$T0"
		[ "$status" -eq 65 ] || { echo "$t exited $status: $output" >&2; return 1; }
		[[ "$(sj .error)" == *"no engagement state yet"* ]]
	done
	[ "$(q "SELECT count(*) FROM engagement.engagement_states WHERE user_id = '$(uid 1)'")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 0 ]
	# an activity brings the user into the state machine
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0"
	[ "$status" -eq 0 ]
	[ "$(sj .to_state)" = active ]
}

# ---- the database itself -----------------------------------------------------

@test "an unmigrated database exits 78, an unreachable one 75" {
	new_db empty
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0"
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *migrate* ]]
	eng engagement-event --db "host=127.0.0.1 port=1 dbname=x connect_timeout=3" \
		--user "$(uid 1)" --activity --at "$T0"
	[ "$status" -eq 75 ]
	[ "$(sj .status)" = failed ]
}

# ---- inbound events have an identity (--id, "id") ------------------------------

@test "--id: applied once; the same id again is a duplicate, changes nothing and exits 0" {
	mkuser 1 dormant
	mkuser 2 goodbye_sent
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0" --id wamid.E1
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .id == "wamid.E1" and .to_state == "active"'
	eng engagement-event --db "$CONN" --user "$(uid 2)" --goodbye-reply 2 --at "$T0" --id wamid.E2
	[ "$status" -eq 0 ]
	jqe "$output" '.outcome == "transitioned" and .to_state == "remind_later"'
	local before
	before=$(snap)
	# again, as sent; and again later, or by phone: the same event
	for args in "--user $(uid 1) --activity --at $T0 --id wamid.E1" \
		"--user $(uid 1) --activity --at 2026-11-22T07:00:00Z --id wamid.E1" \
		"--phone $(phone 1) --activity --at $T0 --id wamid.E1" \
		"--user $(uid 2) --goodbye-reply 2 --at $T0 --id wamid.E2"; do
		# shellcheck disable=SC2086
		eng engagement-event --db "$CONN" $args
		[ "$status" -eq 0 ] || { echo "$args: exit $status: $output" >&2; return 1; }
		jqe "$output" '.status == "ok" and .outcome == "duplicate"'
		[ "$(snap)" = "$before" ] || { echo "$args changed something" >&2; return 1; }
	done
	[ "$(log_events event_duplicate | jq -r .id)" = wamid.E2 ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 2 ]
	# --dry-run of a duplicate reports it too
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0" --id wamid.E1 --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = duplicate ]
	# without an id, or with another, it is a new event
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0" --id wamid.E3
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = recorded ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 2 ]
}

@test "--batch lines with \"id\": applied once; re-running the whole batch reports duplicates and changes nothing" {
	mkuser 1 goodbye_sent
	mkuser 2 dormant
	mkuser 3 remind_later
	mkuser 4 active
	local f=$TMP/ids.jsonl
	{
		printf '{"user_id":"%s","goodbye_reply":2,"at":"%s","id":"wamid.B1"}\n' "$(uid 1)" "$T0"
		printf '{"phone":"%s","activity":true,"at":"%s","id":"wamid.B2"}\n' "$(phone 2)" "$T0"
		printf '{"user_id":"%s","trigger":"reminder_due","at":"%s","id":"batch-3"}\n' "$(uid 3)" "$T0"
		printf '{"id":"wamid.B4","user_id":"%s","activity":true,"at":"%s"}\n' "$(uid 4)" "$T0"
	} >"$f"
	eng engagement-event --db "$CONN" --batch "$f"
	[ "$status" -eq 0 ]
	jqe "$output" '.status == "ok" and .lines == 4 and .applied == 4 and .failed == 0
		and .duplicates == 0 and .transitions == 3 and .activities == 2'
	jqe "$(state_json "$(uid 1)")" '.state == "remind_later"'
	jqe "$(state_json "$(uid 2)")" '.state == "active"'
	jqe "$(state_json "$(uid 3)")" '.state == "dormant"'
	local before
	before=$(snap)
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 3 ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 2 ]
	# after a crash the whole batch is run again: a no-op
	for run in 2 3; do
		eng engagement-event --db "$CONN" --batch "$f"
		[ "$status" -eq 0 ] || { echo "run $run: exit $status: $output" >&2; return 1; }
		jqe "$output" '.status == "ok" and .lines == 4 and .duplicates == 4 and .failed == 0
			and .transitions == 0 and .activities == 0'
		[ "$(snap)" = "$before" ]
	done
}

@test "--batch: the same id twice in one batch is applied once" {
	mkuser 1 dormant
	local f=$TMP/twice.jsonl
	{
		printf '{"user_id":"%s","activity":true,"at":"%s","id":"wamid.T1"}\n' "$(uid 1)" "$T0"
		printf '{"user_id":"%s","activity":true,"at":"2026-11-22T07:00:00Z","id":"wamid.T1"}\n' "$(uid 1)"
	} >"$f"
	eng engagement-event --db "$CONN" --batch "$f"
	[ "$status" -eq 0 ] || { echo "exit $status: $output $stderr" >&2; return 1; }
	jqe "$output" '.applied == 1 and .duplicates == 1 and .failed == 0'
	jqe "$(state_json "$(uid 1)")" '.state == "active" and .last_activity_at == $t' --arg t "$T0"
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.state_transitions")" -eq 1 ]
}

@test "a bad id (empty, over 128 bytes, not a string) is a failed line; --id exits 65" {
	mkuser 1 active
	local f=$TMP/badids.jsonl long128 long129
	long128=$(printf 'x%.0s' $(seq 128))
	long129=${long128}x
	{
		printf '{"user_id":"%s","activity":true,"at":"%s","id":""}\n' "$(uid 1)" "$T0"
		printf '{"user_id":"%s","activity":true,"at":"%s","id":"%s"}\n' "$(uid 1)" "$T0" "$long129"
		printf '{"user_id":"%s","activity":true,"at":"%s","id":42}\n' "$(uid 1)" "$T0"
		printf '{"user_id":"%s","activity":true,"at":"%s","id":null}\n' "$(uid 1)" "$T0"
		printf '{"user_id":"%s","activity":true,"at":"%s","id":["a"]}\n' "$(uid 1)" "$T0"
		printf '{"user_id":"%s","activity":true,"at":"%s","id":"%s"}\n' "$(uid 1)" "$T0" "$long128"
	} >"$f"
	eng engagement-event --db "$CONN" --batch "$f"
	[ "$status" -eq 1 ]
	jqe "$output" '.status == "partial" and .lines == 6 and .applied == 1 and .failed == 5 and .malformed == 5'
	[ "$(log_events line_failed | jq -s -c 'map(.line)')" = "[1,2,3,4,5]" ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 1 ]
	for id in "" "$long129"; do
		eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0" --id "$id"
		[ "$status" -eq 65 ] || { echo "--id [$id]: exit $status" >&2; return 1; }
		[[ "$(sj .error)" == *id* ]]
	done
	eng engagement-event --db "$CONN" --user "$(uid 1)" --activity --at "$T0" --id "$long128"
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = duplicate ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events")" -eq 1 ]
}
