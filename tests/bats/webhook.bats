#!/usr/bin/env bats
# shellcheck disable=SC2016,SC2154,SC2030,SC2031 # jq filters are single-quoted; bats sets $stderr; setup, tests and teardown share one shell
# engagement-webhook: black-box tests against the real test cluster (and the
# Cloud API stand-in for the whole loop). Every test starts the receiver on
# a free loopback port against a fresh database, talks HTTP to it, and stops
# it with SIGTERM (it must exit 0 with its summary).

load helpers

CLIENT="$BATS_TEST_DIRNAME/webhook_client.py"

setup() {
	new_db
	SECRET="app-secret-$RANDOM$RANDOM"
	TOKEN="verify-token-$RANDOM$RANDOM"
	SECRET_FILE=$BATS_TEST_TMPDIR/app_secret
	TOKEN_FILE=$BATS_TEST_TMPDIR/verify_token
	printf '%s\n' "$SECRET" >"$SECRET_FILE"
	printf '%s\n' "$TOKEN" >"$TOKEN_FILE"
	chmod 600 "$SECRET_FILE" "$TOKEN_FILE"
	HOOK_PID=
	LOCK_PID=
	BG_PIDS=()
	DELIVERED=0
	NOW_S=$(q "SELECT extract(epoch FROM date_trunc('second', now()))::bigint")
	T=$((NOW_S - 600)) # when the people in most tests write
}

teardown() {
	local pid rc=0
	stop_standin
	release_lock
	for pid in "${BG_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	stop_hook || rc=$?
	drop_dbs
	return "$rc"
}

# ---- the receiver ------------------------------------------------------------

# alive PID: the process exists and is not a zombie.
alive() {
	local s
	s=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$s" ] && [ "$s" != Z ]
}

# start_hook [OPTION]...: engagement-webhook on a free port; sets HOOK_PID,
# HOOK_PORT and URL (with HOOK_PATH, default /). Log $HOOK_LOG, summary $HOOK_OUT.
start_hook() {
	HOOK_LOG=$BATS_TEST_TMPDIR/hook.log
	HOOK_OUT=$BATS_TEST_TMPDIR/hook.out
	"$ENG_BIN/engagement-webhook" --db "$CONN" --listen 127.0.0.1:0 \
		--app-secret-file "$SECRET_FILE" --verify-token-file "$TOKEN_FILE" "$@" \
		>"$HOOK_OUT" 2>"$HOOK_LOG" 3>&- &
	HOOK_PID=$!
	HOOK_PORT=
	wait_for 30 '! alive "$HOOK_PID" || grep -q "\"event\":\"listening\"" "$HOOK_LOG" 2>/dev/null' || true
	HOOK_PORT=$(grep '"event":"listening"' "$HOOK_LOG" 2>/dev/null | jq -r .port) || true
	if [ -z "$HOOK_PORT" ] || [ "$HOOK_PORT" = 0 ]; then
		echo "engagement-webhook did not start:" >&2
		cat "$HOOK_LOG" "$HOOK_OUT" >&2
		return 1
	fi
	URL="http://127.0.0.1:$HOOK_PORT${HOOK_PATH:-/}"
}

# hook_exit: wait (30 s at most) for the receiver to end; sets HOOK_RC.
hook_exit() {
	local pid=$HOOK_PID
	HOOK_PID=
	if ! wait_for 30 '! alive "$pid"'; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		echo "engagement-webhook did not stop within 30 s" >&2
		return 1
	fi
	HOOK_RC=0
	wait "$pid" || HOOK_RC=$?
}

# check_stopped: the receiver exited 0, printed one summary (ok, exit 0) and
# only JSON log lines, the last of them webhook_finished and job_finished.
# Sets SUMMARY.
check_stopped() {
	SUMMARY=$(cat "$HOOK_OUT")
	if [ "$HOOK_RC" -ne 0 ]; then
		echo "engagement-webhook exited $HOOK_RC; summary: $SUMMARY" >&2
		tail -20 "$HOOK_LOG" >&2
		return 1
	fi
	[ "$(jq -s length <<<"$SUMMARY")" -eq 1 ] || { echo "summary: $SUMMARY" >&2; return 1; }
	jq -e '.program == "engagement-webhook" and .status == "ok" and .exit_code == 0
		and has("run_id") and has("duration_ms") and has("received") and has("applied")' \
		<<<"$SUMMARY" >/dev/null || { echo "bad summary: $SUMMARY" >&2; return 1; }
	check_log_file "$HOOK_LOG"
	grep -q '"event":"webhook_finished"' "$HOOK_LOG" || { echo "no webhook_finished" >&2; return 1; }
	absent "$SECRET" "$HOOK_LOG" "$HOOK_OUT"
	absent "$TOKEN" "$HOOK_LOG" "$HOOK_OUT"
}

# check_log_file FILE: every line a JSON log object with the common fields
# (check_log_lines, in one jq run).
check_log_file() {
	jq -e -n '[inputs] | all(.[]; type == "object" and has("ts") and has("level")
		and has("program") and has("run_id") and has("event")
		and (.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$")))' \
		<"$1" >/dev/null || { echo "$1 has lines that are not JSON log objects:" >&2; cat "$1" >&2; return 1; }
}

# absent TEXT FILE...: TEXT is in none of the files.
absent() {
	local t=$1
	shift
	if grep -qF -- "$t" "$@"; then
		echo "[$t] found in $*" >&2
		return 1
	fi
}

# stop_hook: SIGTERM, then check_stopped (no-op when not running).
stop_hook() {
	[ -n "${HOOK_PID:-}" ] || return 0
	kill -TERM "$HOOK_PID"
	hook_exit
	check_stopped
}

# sh FILTER: jq on the stopped receiver's summary.
sh_() { jq -r "$1" <<<"$SUMMARY"; }

# ---- HTTP ---------------------------------------------------------------------

# http CURL-ARGS...: one request; sets CODE and RESP.
http() {
	local f=$BATS_TEST_TMPDIR/resp
	: >"$f"
	CODE=$(curl -sS --max-time 30 -o "$f" -w '%{http_code}' "$@") || true
	RESP=$(cat "$f")
}

# sig FILE: the X-Hub-Signature-256 value of FILE's bytes.
sig() {
	printf 'sha256=%s' "$(openssl dgst -sha256 -hmac "$SECRET" -r <"$1" | cut -d' ' -f1)"
}

# post FILE [CURL-ARGS...]: POST FILE to $URL, signed.
post() {
	local f=$1
	shift
	http -H "X-Hub-Signature-256: $(sig "$f")" -H 'Content-Type: application/json' \
		--data-binary "@$f" "$@" "$URL"
}

# served: the receiver still answers (the subscription check).
served() {
	http "$URL?hub.mode=subscribe&hub.verify_token=$TOKEN&hub.challenge=still-serving"
	if [ "$CODE" != 200 ] || [ "$RESP" != still-serving ]; then
		echo "the receiver stopped serving: $CODE $RESP" >&2
		return 1
	fi
}

# envelope VALUE: Meta's envelope around one `messages` change with VALUE.
envelope() {
	jq -c '{object: "whatsapp_business_account", entry: [{id: "102290129340398",
		changes: [{field: "messages", value: ({messaging_product: "whatsapp",
		metadata: {display_phone_number: "15550783881", phone_number_id: "106540352242922"}} + .)}]}]}' <<<"$1"
}

# messages ITEM... / statuses ITEM...: a change's value holding them.
messages() { printf '%s\n' "$@" | jq -cs '{messages: .}'; }
statuses() { printf '%s\n' "$@" | jq -cs '{statuses: .}'; }

# body VALUE: a file with Meta's envelope around VALUE; prints its path.
body() {
	local f
	f=$(mktemp "$BATS_TEST_TMPDIR/body.XXXXXX")
	envelope "$1" >"$f"
	echo "$f"
}

# deliver VALUE [TIMES]: post the envelope around VALUE, signed, TIMES times
# (default once); every answer must be 200.
deliver() {
	local f i
	f=$(body "$1")
	for i in $(seq "${2:-1}"); do
		post "$f"
		if [ "$CODE" != 200 ] || [ "$RESP" != ok ]; then
			echo "POST answered $CODE: $RESP" >&2
			return 1
		fi
		DELIVERED=$((DELIVERED + 1))
	done
}

# inbox: "stored/pending" deliveries.
inbox() {
	q "SELECT count(*) || '/' || count(*) FILTER (WHERE applied_at IS NULL) FROM engagement.webhook_inbox"
}

# settle [N]: until N (default: all delivered so far) deliveries are stored
# and none is pending (30 s at most; they are applied within a second, on
# an idle machine).
settle() {
	local want=${1:-$DELIVERED}
	wait_for 30 '[ "$(inbox)" = "$want/0" ]' || {
		echo "inbox $(inbox) (stored/pending), expected $want/0" >&2
		return 1
	}
}

# ---- people, messages and statuses ---------------------------------------------

uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }
phone() { printf '+55119%05d%s' "$1" "${2:-000}"; }
from() { local p; p=$(phone "$@"); echo "${p#+}"; }

# user N STATE [SUFFIX]: a person with preferences and a state row, last
# active 20 days ago, in STATE for 5 days (goodbye_sent: since an hour).
user() {
	local id gs=NULL ge=NULL ra=NULL chg="to_timestamp($NOW_S) - interval '5 days'"
	id=$(uid "$1")
	case $2 in
	goodbye_sent)
		chg="to_timestamp($NOW_S) - interval '1 hour'"
		gs=$chg
		ge="$chg + interval '48 hours'"
		;;
	remind_later)
		gs="to_timestamp($NOW_S) - interval '6 days'"
		ge="to_timestamp($NOW_S) - interval '4 days'"
		ra="to_timestamp($NOW_S) + interval '9 days'"
		;;
	esac
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('$id', '$(phone "$1" "${3:-000}")');
	   INSERT INTO engagement.user_preferences (user_id) VALUES ('$id');
	   INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, state_changed_at,
	     goodbye_sent_at, goodbye_expires_at, remind_at)
	   VALUES ('$id', '$2', to_timestamp($NOW_S) - interval '20 days', $chg, $gs, $ge, $ra)" >/dev/null
}

state() { q "SELECT state FROM engagement.engagement_states WHERE user_id = '$(uid "$1")'"; }
count() { q "SELECT count(*) FROM engagement.$1 ${2:+WHERE $2}"; }

# queued N TYPE [STATUS [WAMID]]: a message of user N in the queue; prints its id.
queued() {
	local st=${3:-queued} pid=NULL sent=NULL
	if [ -n "${4:-}" ]; then pid="'$4'"; fi
	[ "$st" = sent ] && sent="to_timestamp($NOW_S) - interval '20 minutes'"
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
	     status, provider_message_id, sent_at, attempts, next_attempt_at, locked_by, locked_until)
	   VALUES ('$(uid "$1")', '$2', '$2', '$(uid "$1"):$2:$RANDOM$RANDOM', '$st', $pid, $sent,
	     CASE WHEN '$st' = 'queued' THEN 0 ELSE 1 END, to_timestamp($NOW_S) - interval '1 hour',
	     CASE WHEN '$st' = 'sending' THEN 'w1' END,
	     CASE WHEN '$st' = 'sending' THEN to_timestamp($NOW_S) + interval '5 minutes' END)
	   RETURNING id"
}

# mtext N WAMID TS TEXT; mbutton N WAMID TS PAYLOAD; mreply N WAMID TS ID;
# mtype N WAMID TS TYPE: inbound messages as Meta writes them.
mtext() {
	jq -cn --arg f "$(from "$1")" --arg id "$2" --arg ts "$3" --arg t "$4" \
		'{from: $f, id: $id, timestamp: $ts, type: "text", text: {body: $t}}'
}
mbutton() {
	jq -cn --arg f "$(from "$1")" --arg id "$2" --arg ts "$3" --arg p "$4" \
		'{from: $f, id: $id, timestamp: $ts, type: "button", button: {payload: $p, text: "Busy"},
		  context: {from: "15550783881", id: "wamid.TEMPLATE"}}'
}
mreply() {
	jq -cn --arg f "$(from "$1")" --arg id "$2" --arg ts "$3" --arg p "$4" \
		'{from: $f, id: $id, timestamp: $ts, type: "interactive",
		  interactive: {type: "button_reply", button_reply: {id: $p, title: "Yes"}}}'
}
mtype() {
	jq -cn --arg f "$(from "$1")" --arg id "$2" --arg ts "$3" --arg t "$4" \
		'{from: $f, id: $id, timestamp: $ts, type: $t} + {($t): {id: "1234", mime_type: "image/jpeg"}}'
}

# st WAMID STATUS TS [CODE [CALLBACK]]: a delivery status.
st() {
	jq -cn --arg id "$1" --arg s "$2" --arg ts "$3" --arg code "${4:-}" --arg cb "${5:-}" \
		'{id: $id, status: $s, timestamp: $ts, recipient_id: "5511900000000"}
		 + (if $code != "" then {errors: [{code: ($code | tonumber), title: "Message undeliverable"}]} else {} end)
		 + (if $cb != "" then {biz_opaque_callback_data: $cb} else {} end)'
}

# row ID COLUMNS: columns of a queued message.
row() { q "SELECT $2 FROM engagement.message_queue WHERE id = $1"; }

# outbox TYPE [MESSAGE_ID]: how many outbox events of TYPE (for that message).
outbox() {
	count outbox_events "event_type = '$1'${2:+ AND aggregate_id = '$2'}"
}

# ---- database locks (to hold the applier still, deterministically) --------------

# hold_lock TABLE: another session holds an ACCESS EXCLUSIVE lock on it until
# release_lock.
hold_lock() {
	PGAPPNAME=twh_locker psql -X -q -d "$DB" \
		-c "BEGIN; LOCK TABLE $1 IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(300);" \
		>/dev/null 2>&1 3>&- &
	LOCK_PID=$!
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'twh_locker'
	         AND datname = current_database() AND wait_event = 'PgSleep'" 1
}

release_lock() {
	[ -n "${LOCK_PID:-}" ] || return 0
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	   WHERE application_name = 'twh_locker' AND datname = current_database()" >/dev/null || true
	wait "$LOCK_PID" 2>/dev/null || true
	LOCK_PID=
}

# applier_blocked: the receiver's applier waits for a lock.
applier_blocked() {
	wait_q "SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'engagement-webhook'
	         AND datname = current_database() AND wait_event_type = 'Lock'" t
}

# =============================================================================
# Subscription check
# =============================================================================

@test "GET subscription check: the right verify token is answered 200 with the challenge" {
	start_hook
	http "$URL?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=$TOKEN"
	[ "$CODE" = 200 ]
	[ "$RESP" = 1158201444 ]
	http "$URL?hub.verify_token=$TOKEN&hub.challenge=abc-XYZ_09&hub.mode=subscribe"
	[ "$CODE" = 200 ]
	[ "$RESP" = abc-XYZ_09 ]
	stop_hook
	[ "$(sh_ .verifications)" -eq 2 ]
	[ "$(count webhook_inbox)" -eq 0 ]
}

@test "GET subscription check: a wrong or missing token, or another hub.mode, is refused 403" {
	start_hook
	for query in \
		"hub.mode=subscribe&hub.challenge=42&hub.verify_token=wrong" \
		"hub.mode=subscribe&hub.challenge=42&hub.verify_token=${TOKEN}x" \
		"hub.mode=subscribe&hub.challenge=42&hub.verify_token=${TOKEN:0:5}" \
		"hub.mode=subscribe&hub.challenge=42&hub.verify_token=" \
		"hub.mode=subscribe&hub.challenge=42" \
		"hub.mode=unsubscribe&hub.challenge=42&hub.verify_token=$TOKEN" \
		"hub.challenge=42&hub.verify_token=$TOKEN" \
		""; do
		http "$URL?$query"
		[ "$CODE" = 403 ] || { echo "?$query answered $CODE: $RESP" >&2; return 1; }
		[[ "$RESP" != *42* ]]
	done
	served
	stop_hook
	[ "$(sh_ .verifications_refused)" -eq 8 ]
	# a warning each, but for the two without hub.mode (probes: debug)
	[ "$(grep -c '"event":"verification_refused"' "$HOOK_LOG")" -eq 6 ]
}

# =============================================================================
# Bad input
# =============================================================================

@test "POST without a signature, with a malformed or wrong one, or another body's: 401, nothing stored" {
	user 1 dormant
	start_hook
	local f g
	f=$(body "$(messages "$(mtext 1 wamid.SIG1 "$T" hello)")")
	g=$(body "$(messages "$(mtext 1 wamid.SIG2 "$T" other)")")
	good=$(sig "$f")
	# missing
	http -H 'Content-Type: application/json' --data-binary "@$f" "$URL"
	[ "$CODE" = 401 ]
	# malformed: no prefix, another algorithm, short, not hex, empty, padded
	for s in "${good#sha256=}" "sha1=${good#sha256=}" "${good:0:40}" \
		"sha256=$(printf 'z%.0s' $(seq 64))" "sha256=" "" "${good}00" " ${good}x"; do
		http -H "X-Hub-Signature-256: $s" -H 'Content-Type: application/json' --data-binary "@$f" "$URL"
		[ "$CODE" = 401 ] || { echo "signature [$s] answered $CODE" >&2; return 1; }
	done
	# wrong: signed with another secret
	wrong=$(openssl dgst -sha256 -hmac "${SECRET}x" -r <"$f" | cut -d' ' -f1)
	http -H "X-Hub-Signature-256: sha256=$wrong" -H 'Content-Type: application/json' --data-binary "@$f" "$URL"
	[ "$CODE" = 401 ]
	# the signature of another body
	http -H "X-Hub-Signature-256: $(sig "$g")" -H 'Content-Type: application/json' --data-binary "@$f" "$URL"
	[ "$CODE" = 401 ]
	[[ "$RESP" == *X-Hub-Signature-256* ]]
	# the right one, upper-case hex, is accepted (hex is case-insensitive)
	http -H "X-Hub-Signature-256: sha256=$(tr a-f A-F <<<"${good#sha256=}")" \
		-H 'Content-Type: application/json' --data-binary "@$f" "$URL"
	[ "$CODE" = 200 ]
	settle 1
	served
	stop_hook
	[ "$(sh_ .refused_signature)" -eq 11 ]
	[ "$(sh_ .stored)" -eq 1 ]
	[ "$(count activity_events)" -eq 1 ]
	[ "$(grep -c '"event":"delivery_refused"' "$HOOK_LOG")" -eq 11 ]
	absent hello "$HOOK_LOG"
}

@test "an empty body: 401 unsigned, 400 signed; nothing stored" {
	start_hook
	: >"$BATS_TEST_TMPDIR/empty"
	http -X POST -H 'Content-Type: application/json' "$URL"
	[ "$CODE" = 401 ]
	post "$BATS_TEST_TMPDIR/empty"
	[ "$CODE" = 400 ]
	served
	[ "$(count webhook_inbox)" -eq 0 ]
	stop_hook
	[ "$(sh_ .stored)" -eq 0 ]
}

@test "a body over --max-body: 413 with a Content-Length and chunked without one, nothing stored" {
	start_hook --max-body 2048
	local big fit
	big=$BATS_TEST_TMPDIR/big
	fit=$BATS_TEST_TMPDIR/fit
	# signed, valid JSON objects of 4 KiB and of exactly 2048 bytes
	python3 -c 'import json,sys; p=json.dumps({"object":"whatsapp_business_account","entry":[],"pad":""}); sys.stdout.write(p[:-2] + "a"*(int(sys.argv[1])-len(p)) + "\"}")' 4096 >"$big"
	python3 -c 'import json,sys; p=json.dumps({"object":"whatsapp_business_account","entry":[],"pad":""}); sys.stdout.write(p[:-2] + "a"*(int(sys.argv[1])-len(p)) + "\"}")' 2048 >"$fit"
	[ "$(stat -c %s "$big")" -eq 4096 ]
	[ "$(stat -c %s "$fit")" -eq 2048 ]
	jq -e . "$big" "$fit" >/dev/null
	post "$big"
	[ "$CODE" = 413 ] || { echo "with Content-Length: $CODE $RESP" >&2; return 1; }
	post "$big" -H 'Expect:'
	[ "$CODE" = 413 ] || { echo "with Content-Length, no Expect: $CODE $RESP" >&2; return 1; }
	post "$big" -H 'Transfer-Encoding: chunked'
	[ "$CODE" = 413 ] || { echo "chunked: $CODE $RESP" >&2; return 1; }
	post "$big" -H 'Transfer-Encoding: chunked' -H 'Expect:'
	[ "$CODE" = 413 ] || { echo "chunked, no Expect: $CODE $RESP" >&2; return 1; }
	[ "$(count webhook_inbox)" -eq 0 ]
	served
	# exactly --max-body is accepted, chunked too
	post "$fit"
	[ "$CODE" = 200 ] || { echo "2048 bytes: $CODE $RESP" >&2; return 1; }
	post "$fit" -H 'Transfer-Encoding: chunked'
	[ "$CODE" = 200 ] || { echo "2048 bytes chunked: $CODE $RESP" >&2; return 1; }
	settle 2
	stop_hook
	[ "$(sh_ .refused_too_large)" -eq 4 ]
	[ "$(sh_ .stored)" -eq 2 ]
}

@test "not JSON, or JSON that is not an object, validly signed: 400, logged without the payload, nothing stored" {
	start_hook
	local n=0 b
	for b in 'hello PAYLOAD-MARK-1' '{"object": "PAYLOAD-MARK-2", ' '["PAYLOAD-MARK-3"]' \
		'"PAYLOAD-MARK-4"' '42' 'null' 'true' '{"a":1} {"b":"PAYLOAD-MARK-5"}'; do
		n=$((n + 1))
		printf '%s' "$b" >"$BATS_TEST_TMPDIR/b$n"
		post "$BATS_TEST_TMPDIR/b$n"
		[ "$CODE" = 400 ] || { echo "[$b] answered $CODE: $RESP" >&2; return 1; }
		[[ "$RESP" != *PAYLOAD-MARK* ]]
	done
	served
	[ "$(count webhook_inbox)" -eq 0 ]
	stop_hook
	[ "$(sh_ .refused_malformed)" -eq 8 ]
	# one warn line each, with the reason only (the array is JSON, the rest is not
	# JSON to jansson, which takes only an object or an array at the top)
	[ "$(grep -c '"event":"delivery_refused"' "$HOOK_LOG")" -eq 8 ]
	[ "$(grep '"event":"delivery_refused"' "$HOOK_LOG" | jq -r .reason | sort | uniq -c | awk '{print $2 "=" $1}' | paste -sd,)" = "not_an_object=1,not_json=7" ]
	grep '"event":"delivery_refused"' "$HOOK_LOG" | jq -e 'select(.level == "warn")' >/dev/null
	absent PAYLOAD-MARK "$HOOK_LOG" "$HOOK_OUT"
}

@test "invalid UTF-8 in a signed body: 400, nothing stored" {
	start_hook
	printf '{"object":"whatsapp_business_account","entry":[],"x":"\xff\xfe bad"}' >"$BATS_TEST_TMPDIR/u1"
	printf '{"object":"whatsapp_business_account","entry":[],"x":"\xc0\xaf overlong"}' >"$BATS_TEST_TMPDIR/u2"
	printf '{"object":"whatsapp_business_account","entry":[],"x":"\xed\xa0\x80 surrogate"}' >"$BATS_TEST_TMPDIR/u3"
	for f in u1 u2 u3; do
		post "$BATS_TEST_TMPDIR/$f"
		[ "$CODE" = 400 ] || { echo "$f answered $CODE" >&2; return 1; }
	done
	served
	[ "$(count webhook_inbox)" -eq 0 ]
	stop_hook
	[ "$(sh_ .refused_malformed)" -eq 3 ]
}

@test "an entry without changes, or another field: 200, kept and marked applied, nothing changed" {
	user 1 dormant
	start_hook
	printf '{"object":"whatsapp_business_account","entry":[{"id":"102290129340398"}]}' >"$BATS_TEST_TMPDIR/a"
	printf '{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[]}]}' >"$BATS_TEST_TMPDIR/b"
	jq -cn --argjson m "$(mtext 1 wamid.OTHERFIELD "$T" hi)" \
		'{object: "whatsapp_business_account", entry: [{id: "1", changes: [{field: "account_update", value: {messages: [$m]}}]}]}' \
		>"$BATS_TEST_TMPDIR/c"
	for f in a b c; do
		post "$BATS_TEST_TMPDIR/$f"
		[ "$CODE" = 200 ] || { echo "$f answered $CODE" >&2; return 1; }
	done
	settle 3
	[ "$(q "SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NOT NULL
	        AND (result->>'messages')::int = 0 AND (result->>'statuses')::int = 0")" -eq 3 ]
	[ "$(q "SELECT (result->>'ignored')::int FROM engagement.webhook_inbox ORDER BY id DESC LIMIT 1")" -eq 1 ]
	[ "$(q "SELECT body FROM engagement.webhook_inbox ORDER BY id LIMIT 1")" = "$(cat "$BATS_TEST_TMPDIR/a")" ]
	[ "$(state 1)" = dormant ]
	[ "$(count activity_events)" -eq 0 ]
	[ "$(count state_transitions)" -eq 0 ]
	[ "$(count outbox_events)" -eq 0 ]
	served
	stop_hook
	[ "$(sh_ .applied)" -eq 3 ]
	[ "$(sh_ .ignored)" -eq 1 ]
	[ "$(sh_ .messages)" -eq 0 ]
	[ "$(sh_ .broken_deliveries)" -eq 0 ]
}

@test "a status for an unknown wamid: 200, counted unmatched, nothing changed" {
	user 1 active
	id=$(queued 1 weekly_review sent wamid.KNOWN)
	start_hook
	deliver "$(statuses "$(st wamid.UNKNOWN delivered "$T")" "$(st wamid.UNKNOWN2 read "$T" "" "mq:999999")")"
	settle
	[ "$(row "$id" "coalesce(delivery_status, 'null')")" = null ]
	[ "$(count outbox_events)" -eq 0 ]
	served
	stop_hook
	[ "$(sh_ .statuses)" -eq 2 ]
	[ "$(sh_ .unmatched_statuses)" -eq 2 ]
	[ "$(sh_ .delivered)" -eq 0 ]
}

@test "a message from an unknown number: 200, counted unknown_users, nothing changed" {
	user 1 dormant
	start_hook
	deliver "$(messages "$(jq -cn --arg ts "$T" '{from: "5521912345678", id: "wamid.STRANGER", timestamp: $ts, type: "text", text: {body: "oi"}}')")"
	settle
	[ "$(count activity_events)" -eq 0 ]
	[ "$(count state_transitions)" -eq 0 ]
	[ "$(count users)" -eq 1 ]
	served
	stop_hook
	[ "$(sh_ .messages)" -eq 1 ]
	[ "$(sh_ .unknown_users)" -eq 1 ]
	[ "$(sh_ .activities)" -eq 0 ]
	absent 5521912345678 "$HOOK_LOG" "$HOOK_OUT"
}

@test "a text of 1 MiB inside a delivery (within a larger --max-body) is stored and applied" {
	user 1 dormant
	start_hook --max-body 4194304
	local f=$BATS_TEST_TMPDIR/huge
	python3 -c '
import json, sys
m = {"from": sys.argv[1], "id": "wamid.HUGE", "timestamp": sys.argv[2], "type": "text",
     "text": {"body": "é" * (512 * 1024)}}
print(json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
    {"field": "messages", "value": {"messaging_product": "whatsapp", "messages": [m]}}]}]},
    ensure_ascii=False), end="")' "$(from 1)" "$T" >"$f"
	[ "$(stat -c %s "$f")" -gt 1048576 ]
	post "$f"
	[ "$CODE" = 200 ]
	settle 1
	[ "$(state 1)" = active ]
	[ "$(count activity_events)" -eq 1 ]
	[ "$(q "SELECT length(body) > 524288 FROM engagement.webhook_inbox")" = t ]
	served
	stop_hook
	[ "$(sh_ .activities)" -eq 1 ]
	[ "$(sh_ .broken_deliveries)" -eq 0 ]
}

@test "a timestamp that is not a number, or far in the future: that item counted malformed, the rest applied" {
	user 1 dormant; user 2 dormant; user 3 dormant; user 4 active
	a=$(queued 4 weekly_review sent wamid.A)
	b=$(queued 4 weekly_review sent wamid.B)
	c=$(queued 4 weekly_review sent wamid.C)
	start_hook
	future=$((NOW_S + 86400))
	deliver "$(jq -cs add <<<"$(messages "$(mtext 1 wamid.M1 soon hi)" "$(mtext 2 wamid.M2 "$future" hi)" \
		"$(mtext 3 wamid.M3 "$T" hi)")
$(statuses "$(st wamid.A delivered 17634600x0)" "$(st wamid.B delivered "$future")" "$(st wamid.C delivered "$T")")")"
	settle
	[ "$(state 1)" = dormant ]
	[ "$(state 2)" = dormant ]
	[ "$(state 3)" = active ]
	[ "$(count activity_events)" -eq 1 ]
	[ "$(row "$a" "coalesce(delivery_status, 'null')")" = null ]
	[ "$(row "$b" "coalesce(delivery_status, 'null')")" = null ]
	[ "$(row "$c" "delivery_status || ' ' || (delivered_at = to_timestamp($T))")" = "delivered true" ]
	[ "$(q "SELECT result->>'malformed' FROM engagement.webhook_inbox")" = 4 ]
	served
	stop_hook
	[ "$(sh_ .malformed_items)" -eq 4 ]
	[ "$(sh_ .broken_deliveries)" -eq 0 ]
}

@test "the same delivery 5 times: applied once (one activity row, one transition, one outbox event each)" {
	user 1 dormant; user 2 active
	id=$(queued 2 weekly_review sent wamid.OUT1)
	start_hook
	value=$(jq -cs add <<<"$(messages "$(mtext 1 wamid.IN1 "$T" 'hello again')")
$(statuses "$(st wamid.OUT1 delivered "$T")")")
	# the first is being applied (held on a lock) while the other four arrive
	hold_lock engagement.users
	deliver "$value"
	applier_blocked
	deliver "$value" 4
	[ "$(inbox)" = 5/5 ]
	release_lock
	settle 5
	# and later once more
	deliver "$value"
	settle 6
	[ "$(state 1)" = active ]
	[ "$(count activity_events)" -eq 1 ]
	[ "$(count state_transitions)" -eq 1 ]
	[ "$(count outbox_events "event_type = 'engagement.state_changed'")" -eq 1 ]
	[ "$(outbox message.delivered)" -eq 1 ]
	[ "$(row "$id" delivery_status)" = delivered ]
	served
	stop_hook
	[ "$(sh_ .applied)" -eq 6 ]
	[ "$(sh_ .activities)" -eq 1 ]
	[ "$(sh_ .duplicates)" -eq 5 ]
	[ "$(sh_ .delivered)" -eq 1 ]
}

@test "read before delivered: read, with delivered_at and read_at both set" {
	user 1 active
	id=$(queued 1 goodbye sent wamid.RB)
	start_hook
	deliver "$(statuses "$(st wamid.RB read $((T + 20)))")"
	settle
	[ "$(row "$id" "delivery_status || ' ' || (delivered_at IS NOT NULL) || ' ' || (read_at = to_timestamp($((T + 20))))")" = "read true true" ]
	deliver "$(statuses "$(st wamid.RB delivered $((T + 10)))")"
	deliver "$(statuses "$(st wamid.RB sent "$T")")"
	settle
	[ "$(row "$id" "delivery_status || ' ' || (delivered_at <= read_at) || ' ' || (read_at = to_timestamp($((T + 20))))")" = "read true true" ]
	[ "$(outbox message.delivered "$id")" -eq 1 ]
	[ "$(outbox message.read "$id")" -eq 1 ]
	served
	stop_hook
}

@test "other HTTP methods on the path: 405; other paths: 404; nothing stored" {
	HOOK_PATH=/wa/hook start_hook --path /wa/hook
	base=http://127.0.0.1:$HOOK_PORT
	f=$(body '{}')
	for m in PUT DELETE PATCH OPTIONS; do
		http -X "$m" -H "X-Hub-Signature-256: $(sig "$f")" --data-binary "@$f" "$URL"
		[ "$CODE" = 405 ] || { echo "$m answered $CODE" >&2; return 1; }
	done
	http -I "$URL"
	[ "$CODE" = 405 ]
	for p in / /wa /wa/hook/ /wa/hookx /WA/HOOK /other; do
		http "$base$p?hub.mode=subscribe&hub.verify_token=$TOKEN&hub.challenge=1"
		[ "$CODE" = 404 ] || { echo "GET $p answered $CODE" >&2; return 1; }
		http -H "X-Hub-Signature-256: $(sig "$f")" --data-binary "@$f" "$base$p"
		[ "$CODE" = 404 ] || { echo "POST $p answered $CODE" >&2; return 1; }
	done
	[ "$(count webhook_inbox)" -eq 0 ]
	served
	post "$f"
	[ "$CODE" = 200 ]
	settle 1
	stop_hook
	[ "$(sh_ .stored)" -eq 1 ]
}

@test "a slow client (slowloris) is cut off by --connection-timeout; the others are answered meanwhile" {
	user 1 dormant
	# 5 s: long enough for the others to be answered while the slow ones
	# still sit there on a loaded machine
	start_hook --connection-timeout 5s --threads 2
	python3 "$CLIENT" slow --port "$HOOK_PORT" --count 8 --wait 60 >"$BATS_TEST_TMPDIR/slow.out" 2>&1 3>&- &
	BG_PIDS+=("$!")
	wait_for 30 grep -q '^ready' "$BATS_TEST_TMPDIR/slow.out"
	# eight connections sit half-sent on two threads; others are served
	served
	deliver "$(messages "$(mtext 1 wamid.WHILESLOW "$T" hi)")"
	settle
	[ "$(state 1)" = active ]
	wait "${BG_PIDS[0]}"
	[ "$(grep -c '^closed' "$BATS_TEST_TMPDIR/slow.out")" -eq 8 ] || {
		cat "$BATS_TEST_TMPDIR/slow.out" >&2
		return 1
	}
	[ "$(count webhook_inbox)" -eq 1 ]
	served
	stop_hook
	[ "$(sh_ .stored)" -eq 1 ]
}

@test "a client trickling a byte at a time is cut off by --request-timeout, never idle; the others are answered meanwhile" {
	user 1 dormant
	start_hook --connection-timeout 300s --request-timeout 3s
	python3 "$CLIENT" trickle --port "$HOOK_PORT" --count 3 --every-ms 200 --wait 60 \
		>"$BATS_TEST_TMPDIR/trickle.out" 2>&1 3>&- &
	BG_PIDS+=("$!")
	wait_for 30 grep -q '^ready' "$BATS_TEST_TMPDIR/trickle.out"
	deliver "$(messages "$(mtext 1 wamid.WHILETRICKLE "$T" hi)")"
	settle
	[ "$(state 1)" = active ]
	wait "${BG_PIDS[0]}"
	# each was closed, after its 3 s (the connection timeout, 300 s, never
	# came into it: a byte came every 200 ms)
	[ "$(grep -c '^closed' "$BATS_TEST_TMPDIR/trickle.out")" -eq 3 ] || {
		cat "$BATS_TEST_TMPDIR/trickle.out" >&2
		return 1
	}
	awk '/^closed/ { if ($3 < 3) exit 1 }' "$BATS_TEST_TMPDIR/trickle.out"
	served
	stop_hook
	[ "$(sh_ .timed_out)" -ge 3 ]
	grep -q '"event":"requests_timed_out"' "$HOOK_LOG"
}

@test "--max-connections-per-ip: one address cannot take every connection; another address is answered" {
	user 1 dormant
	start_hook --max-connections-per-ip 4 --request-timeout 300s --connection-timeout 300s
	python3 "$CLIENT" trickle --port "$HOOK_PORT" --count 12 --every-ms 500 --wait 5 \
		>"$BATS_TEST_TMPDIR/hog.out" 2>&1 3>&- &
	BG_PIDS+=("$!")
	wait_for 30 grep -q '^ready' "$BATS_TEST_TMPDIR/hog.out"
	# from another address (loopback's 127.0.0.2): answered
	local f
	f=$(body "$(messages "$(mtext 1 wamid.OTHERADDR "$T" hi)")")
	post "$f" --interface 127.0.0.2
	[ "$CODE" = 200 ]
	DELIVERED=$((DELIVERED + 1))
	settle
	[ "$(state 1)" = active ]
	wait "${BG_PIDS[0]}"
	# of the twelve from one address, four held a connection
	[ "$(grep -c '^open' "$BATS_TEST_TMPDIR/hog.out")" -eq 4 ] || {
		cat "$BATS_TEST_TMPDIR/hog.out" >&2
		return 1
	}
	stop_hook
}

@test "a delivery of 10,000 messages from one number: each applied once, one state change, and an opt-out posted right behind it applied" {
	user 1 dormant
	user 2 active
	start_hook --max-body 4000000
	local t=$T
	jq -cn --arg f "$(from 1)" --argjson t "$t" \
		'{messages: [range(0; 10000) | {from: $f, id: "wamid.MANY\(.)", timestamp: ($t + (. / 100 | floor) | tostring),
		   type: "text", text: {body: "hi \(.)"}}]}' >"$BATS_TEST_TMPDIR/many.json"
	deliver "$(cat "$BATS_TEST_TMPDIR/many.json")"
	deliver "$(messages "$(mtext 2 wamid.STOPBEHIND $((t + 200)) "parar lembretes")")"
	settle
	[ "$(q "SELECT reengagement_opt_out FROM engagement.user_preferences WHERE user_id = '$(uid 2)'")" = t ]
	# one return from dormant, every message an activity, each id once
	[ "$(count state_transitions "user_id = '$(uid 1)'")" -eq 1 ]
	[ "$(state 1)" = active ]
	[ "$(count activity_events "user_id = '$(uid 1)'")" -eq 10000 ]
	[ "$(count inbound_events "event_id LIKE 'wamid.MANY%'")" -eq 10000 ]
	[ "$(q "SELECT last_activity_at = to_timestamp($((t + 99))) FROM engagement.engagement_states
	        WHERE user_id = '$(uid 1)'")" = t ]
	# again (Meta repeats): nothing more
	deliver "$(cat "$BATS_TEST_TMPDIR/many.json")"
	settle
	[ "$(count activity_events "user_id = '$(uid 1)'")" -eq 10000 ]
	stop_hook
	[ "$(sh_ .duplicates)" -eq 10000 ]
}

# =============================================================================
# Applying
# =============================================================================

@test "a person's text is activity: last_activity_at moves, dormant -> active with its transition" {
	user 1 dormant
	user 2 active
	start_hook
	deliver "$(messages "$(mtext 1 wamid.ACT1 "$T" 'bom dia')" "$(mtext 2 wamid.ACT2 "$T" '2')")"
	settle
	run q "SELECT state, last_activity_at = to_timestamp($T) FROM engagement.engagement_states WHERE user_id = '$(uid 1)'"
	[ "$output" = "active|t" ]
	run q "SELECT from_state, to_state, trigger, metadata->>'unprompted_return', (metadata->>'days_inactive')::int
	       FROM engagement.state_transitions WHERE user_id = '$(uid 1)'"
	[ "$output" = "dormant|active|user_message|true|19" ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events WHERE occurred_at = to_timestamp($T)")" -eq 2 ]
	[ "$(count outbox_events "event_type = 'engagement.state_changed'")" -eq 1 ]
	# an active person's "2" is plain activity
	run q "SELECT state, last_activity_at = to_timestamp($T) FROM engagement.engagement_states WHERE user_id = '$(uid 2)'"
	[ "$output" = "active|t" ]
	[ "$(count state_transitions "user_id = '$(uid 2)'")" -eq 0 ]
	stop_hook
	[ "$(sh_ .messages)" -eq 2 ]
	[ "$(sh_ .activities)" -eq 2 ]
	absent "$(from 1)" "$HOOK_LOG" "$HOOK_OUT"
	absent 'bom dia' "$HOOK_LOG" "$HOOK_OUT"
}

@test "a text \"2\" or a button goodbye_2 from someone in goodbye_sent: remind_later (and goodbye_1, 3)" {
	user 1 goodbye_sent; user 2 goodbye_sent; user 3 goodbye_sent; user 4 goodbye_sent
	start_hook
	deliver "$(messages "$(mtext 1 wamid.R1 "$T" ' 2 ')" "$(mbutton 2 wamid.R2 "$T" goodbye_2)" \
		"$(mreply 3 wamid.R3 "$T" goodbye_1)" "$(mtext 4 wamid.R4 "$T" '3.')")"
	settle
	[ "$(state 1)" = remind_later ]
	[ "$(state 2)" = remind_later ]
	[ "$(state 3)" = help_flow ]
	[ "$(state 4)" = dormant ]
	[ "$(q "SELECT count(*) FROM engagement.engagement_states WHERE remind_at = to_timestamp($T) + interval '14 days'")" -eq 2 ]
	[ "$(q "SELECT string_agg(trigger || ':' || (metadata->>'response_type'), ',' ORDER BY user_id) FROM engagement.state_transitions")" = \
		"goodbye_response_2:busy,goodbye_response_2:busy,goodbye_response_1:confused,goodbye_response_3:all_good" ]
	# a reply is not activity
	[ "$(count activity_events)" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.engagement_states WHERE last_activity_at = to_timestamp($NOW_S) - interval '20 days'")" -eq 4 ]
	stop_hook
	[ "$(sh_ .goodbye_replies)" -eq 4 ]
}

@test "two messages from someone in goodbye_sent in one delivery: the first is the reply, the second activity" {
	user 1 goodbye_sent
	start_hook
	deliver "$(messages "$(mtext 1 wamid.TWO1 "$T" '2')" "$(mtext 1 wamid.TWO2 "$((T + 1))" '3')")"
	settle
	# "2" answered the goodbye (remind_later); the "3" that followed is a
	# message from someone in remind_later: activity, back to active
	[ "$(q "SELECT string_agg(from_state || '>' || to_state || ':' || trigger, ',' ORDER BY id)
	        FROM engagement.state_transitions")" = \
		"goodbye_sent>remind_later:goodbye_response_2,remind_later>active:user_message" ]
	[ "$(state 1)" = active ]
	[ "$(count activity_events)" -eq 1 ]
	stop_hook
	[ "$(sh_ .goodbye_replies)" -eq 1 ]
	[ "$(sh_ .activities)" -eq 1 ]
	! grep -q message_rejected "$HOOK_LOG"
}

@test "\"parar lembretes\": opted out from whatsapp at its time, queued messages blocked, and activity" {
	user 1 active
	id=$(queued 1 weekly_review)
	start_hook
	deliver "$(messages "$(mtext 1 wamid.STOP1 "$T" 'Parar  Lembretes')")"
	settle
	run q "SELECT reengagement_opt_out, reengagement_opt_out_source, reengagement_opt_out_updated_at = to_timestamp($T)
	       FROM engagement.user_preferences WHERE user_id = '$(uid 1)'"
	[ "$output" = "t|whatsapp|t" ]
	[ "$(row "$id" status)" = blocked ]
	[ "$(count audit_log "event = 'reengagement_opted_out' AND source = 'whatsapp'")" -eq 1 ]
	[ "$(count outbox_events "event_type = 'preferences.reengagement_changed'")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.activity_events WHERE occurred_at = to_timestamp($T)")" -eq 1 ]
	[ "$(q "SELECT last_activity_at = to_timestamp($T) FROM engagement.engagement_states WHERE user_id = '$(uid 1)'")" = t ]
	# opted in again later; the old opt-out repeated changes nothing
	deliver "$(messages "$(mtext 1 wamid.START1 $((T + 60)) 'ativar lembretes')")"
	deliver "$(messages "$(mtext 1 wamid.STOP1 "$T" 'Parar  Lembretes')")"
	settle
	[ "$(q "SELECT reengagement_opt_out FROM engagement.user_preferences WHERE user_id = '$(uid 1)'")" = f ]
	[ "$(count audit_log "event LIKE 'reengagement_opted%'")" -eq 2 ]
	[ "$(count activity_events)" -eq 2 ]
	stop_hook
	[ "$(sh_ .preferences)" -eq 2 ]
	[ "$(sh_ .duplicates)" -ge 1 ]
}

@test "unknown message types and statuses are ignored and counted; known non-text types are activity" {
	user 1 dormant; user 2 dormant
	id=$(queued 2 weekly_review sent wamid.US)
	start_hook
	deliver "$(jq -cs add <<<"$(messages "$(mtype 1 wamid.HOLO "$T" hologram)" "$(mtype 2 wamid.IMG "$T" image)")
$(statuses "$(st wamid.US deleted "$T")")")"
	settle
	[ "$(state 1)" = dormant ]
	[ "$(state 2)" = active ]
	[ "$(count activity_events)" -eq 1 ]
	[ "$(row "$id" "coalesce(delivery_status, 'null')")" = null ]
	[ "$(q "SELECT result->>'ignored' FROM engagement.webhook_inbox")" = 2 ]
	stop_hook
	[ "$(sh_ .ignored)" -eq 2 ]
	[ "$(sh_ .activities)" -eq 1 ]
}

@test "statuses sent, delivered, read move delivery_status forward only; each outbox event once" {
	user 1 active
	id=$(queued 1 weekly_review sent wamid.FWD)
	start_hook
	deliver "$(statuses "$(st wamid.FWD sent "$T")")"
	settle
	[ "$(row "$id" "delivery_status || ' ' || (delivered_at IS NULL) || ' ' || (read_at IS NULL)")" = "sent true true" ]
	deliver "$(statuses "$(st wamid.FWD delivered $((T + 5)))")"
	settle
	[ "$(row "$id" "delivery_status || ' ' || (delivered_at = to_timestamp($((T + 5)))) || ' ' || (read_at IS NULL)")" = "delivered true true" ]
	[ "$(outbox message.delivered "$id")" -eq 1 ]
	deliver "$(statuses "$(st wamid.FWD read $((T + 9)))")"
	settle
	[ "$(row "$id" "delivery_status || ' ' || (read_at = to_timestamp($((T + 9))))")" = "read true" ]
	# nothing moves it back: sent, delivered, a failure, another read
	deliver "$(statuses "$(st wamid.FWD sent "$T")")"
	deliver "$(statuses "$(st wamid.FWD delivered $((T + 7)))")"
	deliver "$(statuses "$(st wamid.FWD failed $((T + 11)) 131026)")"
	deliver "$(statuses "$(st wamid.FWD read $((T + 12)))")"
	settle
	run row "$id" "delivery_status, delivered_at = to_timestamp($((T + 5))), read_at = to_timestamp($((T + 9))), delivery_error_code IS NULL, status"
	[ "$output" = "read|t|t|t|sent" ]
	[ "$(outbox message.delivered "$id")" -eq 1 ]
	[ "$(outbox message.read "$id")" -eq 1 ]
	[ "$(outbox message.undelivered)" -eq 0 ]
	jq -e --arg id "$id" '.message_id == ($id | tonumber) and .delivery_status == "read"' \
		<<<"$(q "SELECT payload FROM engagement.outbox_events WHERE event_type = 'message.read'")" >/dev/null
	stop_hook
	[ "$(sh_ .delivered)" -eq 1 ]
	[ "$(sh_ .read)" -eq 1 ]
	[ "$(sh_ .undelivered)" -eq 0 ]
}

@test "failed: undelivered with its code, message.undelivered once; 131050 records the opt-out; mq:ID matches" {
	user 1 active; user 2 active; user 3 active
	a=$(queued 1 goodbye sent wamid.F1)
	b=$(queued 2 weekly_review sent wamid.F2)
	later=$(queued 2 weekly_review)
	c=$(queued 3 weekly_review sending)
	start_hook
	deliver "$(statuses "$(st wamid.F1 sent "$T")" "$(st wamid.F1 failed $((T + 1)) 131026)" \
		"$(st wamid.F2 failed $((T + 2)) 131050)" "$(st wamid.NOT_YET_WRITTEN delivered "$T" "" "mq:$c")")"
	deliver "$(statuses "$(st wamid.F1 failed $((T + 1)) 131026)")"
	settle
	[ "$(row "$a" "delivery_status || ' ' || delivery_error_code")" = "failed 131026" ]
	[ "$(row "$b" "delivery_status || ' ' || delivery_error_code")" = "failed 131050" ]
	[ "$(outbox message.undelivered "$a")" -eq 1 ]
	[ "$(outbox message.undelivered "$b")" -eq 1 ]
	[ "$(q "SELECT payload->>'error_code' FROM engagement.outbox_events WHERE event_type = 'message.undelivered' AND aggregate_id = '$a'")" = 131026 ]
	[ "$(count audit_log "event = 'message_undelivered'")" -eq 2 ]
	# 131050: the opt-out, from whatsapp, at the status's time, as queue-send records it
	run q "SELECT reengagement_opt_out, reengagement_opt_out_source, reengagement_opt_out_updated_at = to_timestamp($((T + 2)))
	       FROM engagement.user_preferences WHERE user_id = '$(uid 2)'"
	[ "$output" = "t|whatsapp|t" ]
	[ "$(row "$later" status)" = blocked ]
	[ "$(q "SELECT reengagement_opt_out FROM engagement.user_preferences WHERE user_id = '$(uid 1)'")" = f ]
	# a status that came before queue-send wrote the wamid: matched by mq:ID
	[ "$(row "$c" delivery_status)" = delivered ]
	stop_hook
	[ "$(sh_ .undelivered)" -eq 2 ]
	[ "$(sh_ .delivered)" -eq 1 ]
	[ "$(sh_ .preferences)" -eq 1 ]
}

@test "a delivery with messages of several people and their statuses, in one POST" {
	user 1 dormant; user 2 goodbye_sent; user 3 active
	id=$(queued 3 weekly_review sent wamid.MIX)
	start_hook
	deliver "$(jq -cs add <<<"$(messages "$(mtext 1 wamid.X1 "$T" oi)" "$(mtext 2 wamid.X2 "$T" 3)" \
		"$(mtext 3 wamid.X3 "$T" 'stop reminders')")
$(statuses "$(st wamid.MIX delivered "$T")" "$(st wamid.MIX read $((T + 1)))")")"
	settle
	[ "$(state 1)" = active ]
	[ "$(state 2)" = dormant ]
	[ "$(q "SELECT reengagement_opt_out FROM engagement.user_preferences WHERE user_id = '$(uid 3)'")" = t ]
	[ "$(row "$id" delivery_status)" = read ]
	stop_hook
	[ "$(sh_ .messages)" -eq 3 ]
}

# =============================================================================
# Durability and stopping
# =============================================================================

# many PEOPLE: deliveries (one per line) from PEOPLE dormant people, two
# texts each and one status each, into $BATS_TEST_TMPDIR/many.jsonl.
many() {
	q "INSERT INTO engagement.users (id, phone_e164)
	     SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
	            '+55119' || lpad(i::text, 5, '0') || '000' FROM generate_series(1, $1) i;
	   INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, state_changed_at)
	     SELECT id, 'dormant', to_timestamp($NOW_S) - interval '20 days', to_timestamp($NOW_S) - interval '5 days'
	     FROM engagement.users;
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
	       status, provider_message_id, sent_at, attempts)
	     SELECT id, 'weekly_review', 'weekly_review', id || ':w', 'sent',
	            'wamid.OUT' || right(id::text, 12)::int, to_timestamp($NOW_S) - interval '20 minutes', 1
	     FROM engagement.users" >/dev/null
	local e
	e=$(envelope '{}')
	jq -cn --argjson n "$1" --argjson e "$e" --arg t "$T" '
		def env(v): $e | .entry[0].changes[0].value += v;
		range(1; $n + 1) as $i | ("55119" + ("00000" + ($i | tostring))[-5:] + "000") as $f
		| env({messages: [{from: $f, id: "wamid.A\($i)", timestamp: $t, type: "text", text: {body: "one"}}]}),
		  env({messages: [{from: $f, id: "wamid.B\($i)", timestamp: ($t | tonumber + 1 | tostring),
		       type: "text", text: {body: "two"}}]}),
		  env({statuses: [{id: "wamid.OUT\($i)", status: "delivered", timestamp: $t,
		       recipient_id: $f}]})' >"$BATS_TEST_TMPDIR/many.jsonl"
}

# many_applied PEOPLE: everything many delivered has been applied, once.
many_applied() {
	[ "$(inbox)" = "$(($1 * 3))/0" ]
	[ "$(count engagement_states "state = 'active' AND last_activity_at = to_timestamp($((T + 1)))")" -eq "$1" ]
	[ "$(count activity_events)" -eq $(($1 * 2)) ]
	[ "$(count state_transitions)" -eq "$1" ]
	[ "$(count message_queue "delivery_status = 'delivered'")" -eq "$1" ]
	[ "$(outbox message.delivered)" -eq "$1" ]
}

# gone: the killed receiver's database sessions have ended.
gone() {
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'engagement-webhook'
	         AND datname = current_database()" 0
}

@test "kill -9 right after the 200s: nothing lost; --drain applies the rest and exits 0, then nothing is pending" {
	many 20
	start_hook
	# the applier is held on a lock while the deliveries are acknowledged
	hold_lock engagement.users
	python3 "$CLIENT" burst --port "$HOOK_PORT" --secret-file "$SECRET_FILE" --conns 8 \
		"$BATS_TEST_TMPDIR/many.jsonl" >"$BATS_TEST_TMPDIR/codes" 3>&-
	[ "$(sort -u "$BATS_TEST_TMPDIR/codes")" = 200 ]
	[ "$(grep -c . "$BATS_TEST_TMPDIR/codes")" -eq 60 ]
	applier_blocked
	kill -KILL "$HOOK_PID"
	hook_exit || true
	[ "$HOOK_RC" -eq 137 ]
	[ "$(inbox)" = 60/60 ]
	release_lock
	gone
	[ "$(inbox)" = 60/60 ]
	[ "$(count activity_events)" -eq 0 ]
	eng engagement-webhook --db "$CONN" --drain
	[ "$status" -eq 0 ]
	[ "$(sj .applied)" -eq 60 ]
	[ "$(sj .activities)" -eq 40 ]
	[ "$(sj .delivered)" -eq 20 ]
	many_applied 20
	# nothing pending: a second drain applies nothing
	eng engagement-webhook --db "$CONN" --drain
	[ "$status" -eq 0 ]
	[ "$(sj .applied)" -eq 0 ]
	many_applied 20
}

@test "kill -9 with deliveries pending: a restarted receiver applies them" {
	many 10
	start_hook
	hold_lock engagement.users
	python3 "$CLIENT" burst --port "$HOOK_PORT" --secret-file "$SECRET_FILE" --conns 4 \
		"$BATS_TEST_TMPDIR/many.jsonl" >"$BATS_TEST_TMPDIR/codes" 3>&-
	[ "$(sort -u "$BATS_TEST_TMPDIR/codes")" = 200 ]
	applier_blocked
	kill -KILL "$HOOK_PID"
	hook_exit || true
	release_lock
	gone
	[ "$(inbox)" = 30/30 ]
	start_hook
	settle 30
	many_applied 10
	stop_hook
	[ "$(sh_ .applied)" -eq 30 ]
}

@test "SIGTERM while requests are in flight: they get their answers, are applied, and it exits 0" {
	for i in 1 2 3 4; do user "$i" dormant; done
	# the requests in hand are not cut off while the test takes its time
	start_hook --connection-timeout 300s
	for i in 1 2 3 4; do
		envelope "$(messages "$(mtext "$i" "wamid.INFLIGHT$i" "$T" oi)")"
	done >"$BATS_TEST_TMPDIR/inflight.jsonl"
	python3 "$CLIENT" inflight --port "$HOOK_PORT" --secret-file "$SECRET_FILE" \
		--ready "$BATS_TEST_TMPDIR/ready" --go "$BATS_TEST_TMPDIR/go" \
		"$BATS_TEST_TMPDIR/inflight.jsonl" >"$BATS_TEST_TMPDIR/answers" 2>&1 3>&- &
	client=$!
	BG_PIDS+=("$client")
	wait_for 30 test -e "$BATS_TEST_TMPDIR/ready"
	kill -TERM "$HOOK_PID"
	wait_for 30 grep -q '"event":"stopping"' "$HOOK_LOG"
	# it no longer accepts connections, while those in hand wait for their bodies
	wait_for 30 '! curl -sS --max-time 5 -o /dev/null "$URL?hub.mode=subscribe&hub.verify_token=$TOKEN&hub.challenge=1" 2>/dev/null'
	[ ! -s "$BATS_TEST_TMPDIR/answers" ]
	touch "$BATS_TEST_TMPDIR/go"
	wait "$client"
	[ "$(cat "$BATS_TEST_TMPDIR/answers")" = "$(printf '200 ok\n200 ok\n200 ok\n200 ok')" ] || {
		cat "$BATS_TEST_TMPDIR/answers" >&2
		return 1
	}
	hook_exit
	check_stopped
	[ "$(sh_ .stored)" -eq 4 ]
	[ "$(sh_ .applied)" -eq 4 ]
	[ "$(inbox)" = 4/0 ]
	[ "$(count engagement_states "state = 'active'")" -eq 4 ]
}

@test "secret files: readable by others, or missing, exit 78 before listening; --drain with --listen is a usage error" {
	# (under timeout: a receiver that starts anyway would serve for ever)
	chmod 644 "$SECRET_FILE"
	run --separate-stderr timeout 10 "$ENG_BIN/engagement-webhook" --db "$CONN" --listen 127.0.0.1:0 \
		--app-secret-file "$SECRET_FILE" --verify-token-file "$TOKEN_FILE"
	[ "$status" -eq 78 ] || { echo "a secret file of mode 0644: exit $status; $stderr" >&2; return 1; }
	check_one_object "$output"
	[[ "$stderr" == *"chmod 600"* ]]
	[[ "$output$stderr" != *"$SECRET"* ]]
	[[ "$stderr" != *'"event":"listening"'* ]]
	chmod 600 "$SECRET_FILE"
	chmod 640 "$TOKEN_FILE"
	run --separate-stderr timeout 10 "$ENG_BIN/engagement-webhook" --db "$CONN" --listen 127.0.0.1:0 \
		--app-secret-file "$SECRET_FILE" --verify-token-file "$TOKEN_FILE"
	[ "$status" -eq 78 ] || { echo "a verify token file of mode 0640: exit $status" >&2; return 1; }
	[[ "$output$stderr" != *"$TOKEN"* ]]
	run --separate-stderr timeout 10 "$ENG_BIN/engagement-webhook" --db "$CONN" --listen 127.0.0.1:0 \
		--app-secret-file "$SECRET_FILE" --verify-token-file "$BATS_TEST_TMPDIR/nope"
	[ "$status" -eq 78 ]
	check_one_object "$output"
	eng engagement-webhook --db "$CONN" --drain --listen 127.0.0.1:0
	[ "$status" -eq 64 ]
}

@test "long wamids are told apart: two messages whose ids share their first 128 bytes are both applied" {
	user 1 active
	start_hook
	prefix=wamid.$(printf 'A%.0s' $(seq 150))
	deliver "$(messages "$(mtext 1 "${prefix}ONE" "$T" one)")"
	deliver "$(messages "$(mtext 1 "${prefix}TWO" $((T + 1)) two)")"
	settle
	stop_hook
	[ "$(sh_ .duplicates)" -eq 0 ] || { echo "summary: $SUMMARY" >&2; return 1; }
	[ "$(count activity_events)" -eq 2 ]
	[ "$(q "SELECT last_activity_at = to_timestamp($((T + 1))) FROM engagement.engagement_states")" = t ]
}

@test "two receivers on one database: the same delivery posted to both, repeatedly, is applied once" {
	user 1 dormant; user 2 active
	id=$(queued 2 weekly_review sent wamid.TWO)
	start_hook
	# a second receiver, started and stopped by this test
	"$ENG_BIN/engagement-webhook" --db "$CONN" --listen 127.0.0.1:0 \
		--app-secret-file "$SECRET_FILE" --verify-token-file "$TOKEN_FILE" \
		>"$BATS_TEST_TMPDIR/second.out" 2>"$BATS_TEST_TMPDIR/second.log" 3>&- &
	second=$!
	BG_PIDS+=("$second")
	wait_for 30 grep -q '"event":"listening"' "$BATS_TEST_TMPDIR/second.log"
	port2=$(grep '"event":"listening"' "$BATS_TEST_TMPDIR/second.log" | jq -r .port)
	value=$(jq -cs add <<<"$(messages "$(mtext 1 wamid.BOTH "$T" hi)" "$(mbutton 2 wamid.BOTH2 "$T" goodbye_2)")
$(statuses "$(st wamid.TWO delivered "$T")" "$(st wamid.TWO read $((T + 1)))")")
	for i in $(seq 12); do envelope "$value"; done >"$BATS_TEST_TMPDIR/same.jsonl"
	python3 "$CLIENT" burst --port "$HOOK_PORT" --secret-file "$SECRET_FILE" --conns 3 \
		"$BATS_TEST_TMPDIR/same.jsonl" >"$BATS_TEST_TMPDIR/c1" 3>&- &
	c1=$!
	python3 "$CLIENT" burst --port "$port2" --secret-file "$SECRET_FILE" --conns 3 \
		"$BATS_TEST_TMPDIR/same.jsonl" >"$BATS_TEST_TMPDIR/c2" 3>&-
	wait "$c1"
	[ "$(cat "$BATS_TEST_TMPDIR/c1" "$BATS_TEST_TMPDIR/c2" | sort -u)" = 200 ]
	settle 24
	[ "$(state 1)" = active ]
	[ "$(count activity_events)" -eq 2 ]
	[ "$(count state_transitions)" -eq 1 ]
	[ "$(outbox message.delivered)" -eq 1 ]
	[ "$(outbox message.read)" -eq 1 ]
	[ "$(row "$id" delivery_status)" = read ]
	kill -TERM "$second"
	rc=0
	wait "$second" || rc=$?
	[ "$rc" -eq 0 ]
	stop_hook
	[ $(($(sh_ .applied) + $(jq -r .applied "$BATS_TEST_TMPDIR/second.out"))) -eq 24 ]
	[ $(($(sh_ .activities) + $(jq -r .activities "$BATS_TEST_TMPDIR/second.out"))) -eq 2 ]
	[ $(($(sh_ .broken_deliveries) + $(jq -r .broken_deliveries "$BATS_TEST_TMPDIR/second.out"))) -eq 0 ]
}

@test "its database sessions killed: it reconnects, and the next deliveries are stored and applied" {
	user 1 dormant; user 2 dormant
	start_hook
	deliver "$(messages "$(mtext 1 wamid.RC1 "$T" hi)")"
	settle
	pids=$(q "SELECT string_agg(pid::text, ',') FROM pg_stat_activity
	          WHERE application_name = 'engagement-webhook' AND datname = current_database()")
	[ -n "$pids" ]
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid IN ($pids)" >/dev/null
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE pid IN ($pids)" 0
	# a lost connection may cost one 503 (Meta retries), never a lost delivery
	f=$(body "$(messages "$(mtext 2 wamid.RC2 "$T" hi)")")
	for i in 1 2 3; do
		post "$f"
		[ "$CODE" = 200 ] && break
		[ "$CODE" = 503 ] || { echo "answered $CODE: $RESP" >&2; return 1; }
	done
	[ "$CODE" = 200 ]
	settle 2
	[ "$(state 2)" = active ]
	served
	stop_hook
}

@test "applied deliveries and event ids older than --retain-days are purged; newer ones kept" {
	user 1 active
	q "INSERT INTO engagement.webhook_inbox (received_at, body, applied_at, result)
	   SELECT now() - interval '40 days', '{}', now() - interval '40 days', '{}' FROM generate_series(1, 5);
	   INSERT INTO engagement.webhook_inbox (received_at, body, applied_at, result)
	   SELECT now() - interval '3 days', '{}', now() - interval '3 days', '{}' FROM generate_series(1, 2);
	   INSERT INTO engagement.inbound_events (event_id, kind, user_id, outcome, created_at)
	   VALUES ('wamid.OLD', 'event', '$(uid 1)', 'recorded', now() - interval '40 days'),
	          ('wamid.NEW', 'event', '$(uid 1)', 'recorded', now() - interval '3 days')" >/dev/null
	start_hook --retain-days 30
	wait_q "SELECT count(*) FROM engagement.webhook_inbox" 2
	wait_q "SELECT string_agg(event_id, ',') FROM engagement.inbound_events" wamid.NEW
	stop_hook
	[ "$(sh_ .purged)" -eq 6 ]
	# a kept id is still known: the message again is a duplicate
	start_hook
	deliver "$(messages "$(mtext 1 wamid.NEW "$T" hi)")"
	settle 3
	stop_hook
	[ "$(count activity_events)" -eq 0 ]
	[ "$(sh_ .duplicates)" -eq 1 ]
}

# =============================================================================
# The whole loop, with the Cloud API stand-in
# =============================================================================

# standin_stats: the stand-in's counters.
standin_stats() { curl -sS --max-time 10 "$WHATSAPP_API_URL/_standin/stats"; }

# wait_standin FILTER: until its stats satisfy the jq filter (30 s at most).
wait_standin() {
	local filter=$1
	wait_for 30 'standin_stats | jq -e "$filter" >/dev/null 2>&1' && return 0
	echo "the stand-in's stats never satisfied $1: $(standin_stats)" >&2
	return 1
}

# inbound JSON: the stand-in posts an inbound message to the receiver, which
# must answer 200.
inbound() {
	local r
	r=$(curl -sS --max-time 30 -H 'Content-Type: application/json' --data-binary "$1" \
		"$WHATSAPP_API_URL/_standin/inbound")
	jq -e '.status == 200' <<<"$r" >/dev/null || { echo "inbound $1: $r" >&2; return 1; }
}

@test "the whole loop: goodbyes sent through the stand-in, their statuses reach the queue, an undelivered one times out as undelivered" {
	start_hook
	start_standin --status-webhook "$URL" --app-secret-file "$SECRET_FILE" --status-delay-ms 20
	# normal, 930 failed 131026, 931 failed 131050, 933 repeated, 934 out of order, 932 never read
	local n=0 sfx
	for sfx in 000 930 931 933 934 932; do
		n=$((n + 1))
		user "$n" active "$sfx"
	done
	eng engagement-daily --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(count message_queue "message_type = 'goodbye' AND status = 'queued'")" -eq 6 ]
	eng queue-send --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 6 ]
	# 3 + 2 + 2 + 6 + 3 + 2 status POSTs, every one acknowledged
	wait_standin '.webhooks_pending == 0 and .webhooks_posted == 18'
	standin_stats | jq -e '.webhooks_acknowledged == 18 and .webhooks_failed == 0' >/dev/null
	settle 18
	g() { q "SELECT $2 FROM engagement.message_queue WHERE user_id = '$(uid "$1")' AND message_type = 'goodbye'"; }
	[ "$(g 1 "delivery_status || ' ' || (delivered_at <= read_at)")" = "read true" ]
	[ "$(g 2 "delivery_status || ' ' || delivery_error_code || ' ' || status")" = "failed 131026 sent" ]
	[ "$(g 3 "delivery_status || ' ' || delivery_error_code")" = "failed 131050" ]
	[ "$(g 4 "delivery_status || ' ' || (delivered_at <= read_at)")" = "read true" ]
	[ "$(g 5 "delivery_status || ' ' || (delivered_at <= read_at)")" = "read true" ]
	[ "$(g 6 "delivery_status || ' ' || (delivered_at IS NOT NULL) || ' ' || (read_at IS NULL)")" = "delivered true true" ]
	[ "$(outbox message.delivered "$(g 4 id)")" -eq 1 ]
	[ "$(outbox message.read "$(g 4 id)")" -eq 1 ]
	[ "$(outbox message.delivered)" -eq 4 ]
	[ "$(outbox message.read)" -eq 3 ]
	[ "$(outbox message.undelivered)" -eq 2 ]
	run q "SELECT reengagement_opt_out, reengagement_opt_out_source FROM engagement.user_preferences WHERE user_id = '$(uid 3)'"
	[ "$output" = "t|whatsapp" ]
	[ "$(count user_preferences "reengagement_opt_out")" -eq 1 ]
	stop_standin
	stop_hook
	[ "$(sh_ .received)" -eq 18 ]
	[ "$(sh_ .unmatched_statuses)" -eq 0 ]
	[ "$(sh_ .duplicates)" -eq 0 ]

	# two days later the goodbyes time out: the failed one as undelivered
	later=$(q "SELECT to_char((now() + interval '49 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
	eng engagement-daily --db "$CONN" --now "$later"
	[ "$status" -eq 0 ]
	rt() { q "SELECT metadata->>'response_type' FROM engagement.state_transitions WHERE user_id = '$(uid "$1")' AND trigger = 'goodbye_timeout'"; }
	[ "$(rt 1)" = timeout ]
	[ "$(rt 2)" = undelivered ]
	[ "$(rt 4)" = timeout ]
	[ "$(rt 5)" = timeout ]
	[ "$(rt 6)" = timeout ]
	[ "$(state 1)" = dormant ]
	[ "$(state 2)" = dormant ]
}

@test "inbound messages through the stand-in reach the state machine" {
	start_hook
	start_standin --app-secret-file "$SECRET_FILE" --status-webhook "$URL"
	user 1 goodbye_sent; user 2 goodbye_sent; user 3 active; user 4 dormant; user 5 goodbye_sent
	id=$(queued 3 weekly_review)
	inbound "$(jq -cn --arg f "$(from 1)" '{from: $f, text: "2"}')"
	inbound "$(jq -cn --arg f "$(from 2)" '{from: $f, button: "goodbye_3", button_text: "All good"}')"
	inbound "$(jq -cn --arg f "$(from 3)" '{from: $f, text: "parar lembretes"}')"
	inbound "$(jq -cn --arg f "$(from 4)" '{from: $f, type: "image"}')"
	inbound "$(jq -cn --arg f "$(from 5)" '{from: $f, interactive: "goodbye_1", title: "What?", repeat: 3}')"
	settle 7
	[ "$(state 1)" = remind_later ]
	[ "$(state 2)" = dormant ]
	[ "$(q "SELECT reengagement_opt_out || ' ' || reengagement_opt_out_source FROM engagement.user_preferences WHERE user_id = '$(uid 3)'")" = "true whatsapp" ]
	[ "$(row "$id" status)" = blocked ]
	[ "$(state 4)" = active ]
	[ "$(state 5)" = help_flow ]
	[ "$(q "SELECT string_agg(trigger, ',' ORDER BY user_id) FROM engagement.state_transitions")" = \
		"goodbye_response_2,goodbye_response_3,user_message,goodbye_response_1" ]
	[ "$(count activity_events)" -eq 2 ]
	stop_standin
	stop_hook
	[ "$(sh_ .received)" -eq 7 ]
	[ "$(sh_ .duplicates)" -eq 2 ]
}

# =============================================================================
# The account's changes and pricing (issue 23)
# =============================================================================

# account FIELD TIME VALUE: deliver, signed, one change of the account's
# FIELD dated TIME (Unix seconds, the entry's time); it must answer 200.
account() {
	local f
	f=$(mktemp "$BATS_TEST_TMPDIR/account.XXXXXX")
	jq -c --arg f "$1" --argjson t "$2" '{object: "whatsapp_business_account",
		entry: [{id: "102290129340398", time: $t, changes: [{field: $f, value: .}]}]}' \
		<<<"$3" >"$f"
	post "$f"
	if [ "$CODE" != 200 ]; then
		echo "POST answered $CODE: $RESP" >&2
		return 1
	fi
	DELIVERED=$((DELIVERED + 1))
}

# tstatus EVENT TIME [NAME [LANGUAGE]]: a message_template_status_update.
tstatus() {
	account message_template_status_update "$2" "$(jq -cn --arg e "$1" \
		--arg n "${3:-engagement_weekly_review}" --arg l "${4:-pt-BR}" \
		'{event: $e, message_template_id: 806312974732579, message_template_name: $n,
		  message_template_language: $l, reason: "NONE"}')"
}

# tpl KEY LOCALE COLUMNS: a template row's columns.
tpl() { q "SELECT $3 FROM engagement.message_templates WHERE template_key = '$1' AND locale = '$2'"; }

# meta_pauses KEY: open Meta pauses of template KEY.
meta_pauses() {
	count send_pauses "scope = 'template' AND value = '$1' AND source = 'meta' AND resumed_at IS NULL"
}

@test "a template's status: PAUSED pauses it (pt-BR is pt_BR), a replay or an older event changes nothing, APPROVED lifts it" {
	start_hook
	tstatus PAUSED $((NOW_S - 100))
	settle
	[ "$(tpl weekly_review pt-BR "provider_status || ' ' || extract(epoch FROM status_changed_at)::bigint")" = \
		"PAUSED $((NOW_S - 100))" ]
	[ "$(tpl weekly_review en "coalesce(provider_status, 'never')")" = never ]
	[ "$(meta_pauses weekly_review)" -eq 1 ]
	# Meta's first pause lasts 3 hours, from the event's time
	[ "$(q "SELECT extract(epoch FROM until - to_timestamp($NOW_S - 100))::int FROM engagement.send_pauses WHERE source = 'meta'")" -eq 10800 ]
	[ "$(count audit_log "event = 'account_template_status'")" -eq 1 ]
	# the same delivery again, and an APPROVED older than the pause: stale
	tstatus PAUSED $((NOW_S - 100))
	tstatus APPROVED $((NOW_S - 200))
	settle
	[ "$(tpl weekly_review pt-BR provider_status)" = PAUSED ]
	[ "$(meta_pauses weekly_review)" -eq 1 ]
	[ "$(count audit_log "event = 'account_template_status'")" -eq 1 ]
	# a newer APPROVED lifts it
	tstatus APPROVED $((NOW_S - 50))
	settle
	[ "$(tpl weekly_review pt-BR provider_status)" = APPROVED ]
	[ "$(meta_pauses weekly_review)" -eq 0 ]
	# a template that is not ours is counted, not an error
	tstatus PAUSED $((NOW_S - 40)) someone_elses_template en
	settle
	stop_hook
	[ "$(sh_ .account_changes)" -eq 2 ]
	[ "$(sh_ .account_changes_stale)" -eq 2 ]
	[ "$(sh_ .ignored)" -eq 1 ]
	[ "$(sh_ .broken_deliveries)" -eq 0 ]
}

@test "a template DISABLED fails its queued messages (template_disabled); a sent one stays sent" {
	start_hook
	user 1 active; user 2 active; user 3 active
	q "UPDATE engagement.user_preferences SET locale = 'pt-BR'" >/dev/null
	a=$(queued 1 weekly_review)
	b=$(queued 2 weekly_review sent wamid.SENT2)
	c=$(queued 3 goodbye)
	tstatus DISABLED $((NOW_S - 30))
	settle
	[ "$(row "$a" "status || ' ' || last_error_code")" = "failed template_disabled" ]
	[ "$(row "$b" status)" = sent ]
	[ "$(row "$c" status)" = queued ]
	[ "$(outbox message.failed "$a")" -eq 1 ]
}

@test "template quality and the messaging limit: applied in order of time, TIER names and max_daily alike" {
	start_hook
	account message_template_quality_update $((NOW_S - 60)) \
		'{"previous_quality_score": "GREEN", "new_quality_score": "RED", "message_template_id": 1,
		  "message_template_name": "engagement_goodbye", "message_template_language": "en"}'
	account phone_number_quality_update $((NOW_S - 50)) \
		'{"display_phone_number": "15550783881", "event": "DOWNGRADE", "old_limit": "TIER_10K",
		  "current_limit": "TIER_250"}'
	account phone_number_quality_update $((NOW_S - 90)) \
		'{"display_phone_number": "15550783881", "event": "UPGRADE", "current_limit": "TIER_100K"}'
	settle
	[ "$(tpl goodbye en quality)" = RED ]
	[ "$(tpl goodbye es "coalesce(quality, 'none')")" = none ]
	[ "$(q "SELECT tier || ' ' || max_recipients_24h || ' ' || source FROM engagement.messaging_limits WHERE phone_number_id = '*'")" = \
		"TIER_250 250 meta" ]
	# the newer field (2026): max_daily_conversations_per_business, also "unlimited"
	account phone_number_quality_update $((NOW_S - 10)) \
		'{"display_phone_number": "15550783881", "event": "UPGRADE", "max_daily_conversations_per_business": "2000"}'
	settle
	[ "$(q "SELECT max_recipients_24h FROM engagement.messaging_limits")" -eq 2000 ]
	account phone_number_quality_update $((NOW_S - 5)) \
		'{"display_phone_number": "15550783881", "event": "UPGRADE", "max_daily_conversations_per_business": "unlimited"}'
	settle
	[ "$(q "SELECT coalesce(max_recipients_24h::text, 'unlimited') FROM engagement.messaging_limits")" = unlimited ]
	# dated in the future: refused as a future-dated opt-out is
	account phone_number_quality_update $((NOW_S + 3600)) \
		'{"display_phone_number": "15550783881", "event": "DOWNGRADE", "current_limit": "TIER_250"}'
	settle
	[ "$(q "SELECT coalesce(max_recipients_24h::text, 'unlimited') FROM engagement.messaging_limits")" = unlimited ]
	stop_hook
	[ "$(sh_ .account_changes)" -eq 4 ]
	[ "$(sh_ .account_changes_stale)" -eq 1 ]
	[ "$(sh_ .malformed_items)" -eq 1 ]
}

@test "a status's pricing is recorded on the message, counted once per message by category" {
	start_hook
	user 1 active; user 2 active
	a=$(queued 1 goodbye sent wamid.P1)
	b=$(queued 2 weekly_review sent wamid.P2)
	priced() {
		st "$1" "$2" "$T" | jq -c --arg c "$3" --argjson b "$4" \
			'. + {pricing: {billable: $b, pricing_model: "PMP", category: $c}}'
	}
	deliver "$(statuses "$(priced wamid.P1 sent utility true)" "$(priced wamid.P2 sent marketing true)")"
	deliver "$(statuses "$(priced wamid.P1 delivered utility true)")"
	settle
	[ "$(row "$a" "pricing_category || ' ' || billable")" = "utility true" ]
	[ "$(row "$b" "pricing_category || ' ' || billable")" = "marketing true" ]
	# Meta reclassified it: the newest status's category wins, counted once
	deliver "$(statuses "$(priced wamid.P1 read marketing true)")"
	settle
	[ "$(row "$a" pricing_category)" = marketing ]
	[ "$(q "SELECT string_agg(kind || ':' || code || ':' || n, ',' ORDER BY kind, code) FROM engagement.message_counts WHERE kind IN ('priced', 'billable')")" = \
		"billable:marketing:1,billable:utility:1,priced:marketing:1,priced:utility:1" ]
	stop_hook
	[ "$(sh_ .priced)" -eq 3 ]
}

@test "the whole loop, Meta's account rules: a PAUSED webhook stops the template's sends, APPROVED restarts them, statuses bring the price" {
	start_hook
	start_standin --status-webhook "$URL" --app-secret-file "$SECRET_FILE" --status-delay-ms 20
	user 1 active; user 2 active; user 3 goodbye_sent
	a=$(queued 1 weekly_review); b=$(queued 2 weekly_review); c=$(queued 3 goodbye)
	q "UPDATE engagement.message_queue SET params = '{\"activity_count\": 4}'
	   WHERE message_type = 'weekly_review'" >/dev/null
	# account_webhook FIELD-AND-VALUE: the stand-in posts it, signed, and acts on it
	account_webhook() {
		local r
		r=$(curl -sS --max-time 30 -H 'Content-Type: application/json' \
			--data-binary "$1" "$WHATSAPP_API_URL/_standin/account_webhook")
		jq -e '.status == 200' <<<"$r" >/dev/null || { echo "account_webhook $1: $r" >&2; return 1; }
		DELIVERED=$((DELIVERED + 1))
	}
	asked() {
		curl -sS --max-time 10 "$WHATSAPP_API_URL/_standin/account" |
			jq -r --arg t "$1" '.templates[$t].en.requests // 0'
	}
	account_webhook "{\"field\": \"message_template_status_update\", \"time\": $((NOW_S - 20)), \"apply\": true,
		\"value\": {\"event\": \"PAUSED\", \"message_template_name\": \"engagement_weekly_review\",
		            \"message_template_language\": \"en\"}}"
	settle
	[ "$(q "SELECT provider_status FROM engagement.message_templates WHERE template_key = 'weekly_review' AND locale = 'en'")" = PAUSED ]
	eng queue-send --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 1 ]
	[ "$(row "$c" status)" = sent ]
	[ "$(asked engagement_weekly_review)" -eq 0 ]
	[ "$(row "$a" "status || ' ' || attempts")" = "queued 0" ]
	account_webhook "{\"field\": \"message_template_status_update\", \"time\": $((NOW_S - 10)), \"apply\": true,
		\"value\": {\"event\": \"APPROVED\", \"message_template_name\": \"engagement_weekly_review\",
		            \"message_template_language\": \"en\"}}"
	# (the goodbye's statuses arrive meanwhile: wait for the template itself)
	wait_for 30 '[ "$(q "SELECT provider_status FROM engagement.message_templates
	                     WHERE template_key = '\''weekly_review'\'' AND locale = '\''en'\''")" = APPROVED ]'
	eng queue-send --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 2 ]
	[ "$(asked engagement_weekly_review)" -eq 2 ]
	# their statuses come back priced (the stand-in's default: marketing, billable)
	wait_standin '.webhooks_pending == 0'
	settle "$(q "SELECT count(*) FROM engagement.webhook_inbox")"
	for id in $a $b $c; do
		[ "$(row "$id" "pricing_category || ' ' || billable")" = "marketing true" ]
	done
	[ "$(q "SELECT n FROM engagement.message_counts WHERE kind = 'billable' AND code = 'marketing'")" -eq 3 ]
}
