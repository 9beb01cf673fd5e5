#!/usr/bin/env bats
# outbox-relay against the real test cluster, with the stand-in's webhook
# receiver (POST /_webhook) as the sink.

load helpers

setup() {
	new_db
	BG_PIDS=()
	PRIV_PG=
	SECRET="whsec-$RANDOM$RANDOM-do-not-print"
	SECRET_FILE="$BATS_TEST_TMPDIR/secret"
	printf '%s\n' "$SECRET" >"$SECRET_FILE"
}

teardown() {
	local p
	for p in "${BG_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	stop_standin
	if [ -n "$PRIV_PG" ]; then
		"$ENG_SRC/tests/pg/cluster.sh" stop "$PRIV_PG" >/dev/null 2>&1 3>&- || true
	fi
	drop_dbs
}

uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }

# user NUM PHONE: a user with a preferences row
user() {
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('$(uid "$1")', '$2');
	   INSERT INTO engagement.user_preferences (user_id) VALUES ('$(uid "$1")')" >/dev/null
}

# events N [TYPE]: N outbox rows (one statement), payload {"n": i}
events() {
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
	   SELECT 'test', 'agg-' || g, '${2:-test.happened}', jsonb_build_object('n', g)
	   FROM generate_series(1, $1) g" >/dev/null
}

ids() { q "SELECT coalesce(string_agg(id::text, ' ' ORDER BY id), '') FROM engagement.outbox_events"; }
unpublished() { q "SELECT count(*) FROM engagement.outbox_events WHERE published_at IS NULL"; }
published() { q "SELECT count(*) FROM engagement.outbox_events WHERE published_at IS NOT NULL"; }

# relay_stdout ARGS: outbox-relay --stdout. stdout is one JSON line per
# event and the summary as the LAST line. Sets $events (the event lines),
# $output (the summary line, so that sj works), $status and $stderr.
relay_stdout() {
	run --separate-stderr "$ENG_BIN/outbox-relay" --db "$CONN" --stdout "$@"
	check_log_lines "$stderr"
	local line n=0
	while IFS= read -r line; do
		n=$((n + 1))
		jq -e 'type == "object"' <<<"$line" >/dev/null 2>&1 || {
			echo "stdout line $n is not a JSON object: $line" >&2
			return 1
		}
	done <<<"$output"
	events=$(sed '$d' <<<"$output")
	output=$(tail -n 1 <<<"$output")
	check_one_object "$output"
	[ "$(sj .program)" = outbox-relay ]
	[ "$(sj .sink)" = stdout ]
	# no event line is a summary, and no summary line is an event
	if [ -n "$events" ]; then
		[ "$(jq -s 'map(select(has("event_id") and (has("run_id") | not))) | length' <<<"$events")" -eq "$(grep -c . <<<"$events")" ]
	fi
}

relay_webhook() {
	eng outbox-relay --db "$CONN" --webhook "$WHATSAPP_API_URL/_webhook" \
		--secret-file "$SECRET_FILE" "$@"
}

# The webhook requests the stand-in recorded (optionally those matching a
# jq filter), one JSON object per line.
webhook_records() {
	[ -f "$STANDIN_RECORD" ] || return 0
	jq -c "select(.path == \"/_webhook\") | ${1:-.}" "$STANDIN_RECORD"
}

# The event ids of the accepted (HTTP 200) webhook requests, in order.
webhook_ids() {
	webhook_records 'select(.status == 200)' | jq -r '.body.events[].event_id' | paste -sd' '
}

hmac() { printf '%s' "$2" | openssl dgst -sha256 -hmac "$1" | sed 's/^.*= *//'; }

SW="$BATS_TEST_DIRNAME/../wa-standin/sw_receiver.py"

# whsec KEY_TEXT: a Standard Webhooks secret whose key is those bytes
whsec() { printf 'whsec_%s' "$(printf '%s' "$1" | base64 -w0)"; }

# start_sw SECRET_FILE [OPTION]...: the independent Standard Webhooks
# receiver on a free port; sets SW_URL, SW_OUT (one JSON line per POST).
start_sw() {
	local secrets=$1
	shift
	SW_OUT="$BATS_TEST_TMPDIR/sw.jsonl"
	rm -f "$BATS_TEST_TMPDIR/swport" "$SW_OUT"
	python3 "$SW" --secret-file "$secrets" --port-file "$BATS_TEST_TMPDIR/swport" \
		--out "$SW_OUT" "$@" 2>"$BATS_TEST_TMPDIR/sw.err" 3>&- &
	BG_PIDS+=($!)
	wait_for 30 test -s "$BATS_TEST_TMPDIR/swport" || { cat "$BATS_TEST_TMPDIR/sw.err" >&2; return 1; }
	SW_URL="http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/swport")/hook"
}

# sw VERDICT: how many POSTs the receiver gave that verdict
sw() { jq -r .verdict "$SW_OUT" | grep -cx "$1" || true; }

# replay REC [HEADER...]: POST a recorded request's raw body again, with its
# Standard Webhooks headers (or those given instead), to the receiver;
# prints the HTTP status.
replay() {
	local rec=$1
	shift
	local h=("$@")
	if [ ${#h[@]} -eq 0 ]; then
		h=("webhook-id: $(jq -r .webhook_id <<<"$rec")"
			"webhook-timestamp: $(jq -r .webhook_timestamp <<<"$rec")"
			"webhook-signature: $(jq -r .webhook_signature <<<"$rec")")
	fi
	local args=() x
	for x in "${h[@]}"; do args+=(-H "$x"); done
	jq -j .raw_body <<<"$rec" | curl -s -o /dev/null -w '%{http_code}' \
		-H 'Content-Type: application/json' "${args[@]}" --data-binary @- "$SW_URL"
}

# refute_in NEEDLE TEXT / refute_in_file NEEDLE FILE: fail when found
refute_in() {
	if grep -qF -- "$1" <<<"$2"; then
		echo "found \"$1\" in: $2" >&2
		return 1
	fi
}
refute_in_file() {
	if grep -qF -- "$1" "$2"; then
		echo "found \"$1\" in $2" >&2
		return 1
	fi
}

# forget PID: a background process that was waited for (its id may be
# reused: teardown must not kill it)
forget() {
	local p keep=()
	for p in "${BG_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	BG_PIDS=("${keep[@]}")
}

# stop_bg PID [TIMEOUT]: SIGTERM, wait for the exit (no hang: 30 s at
# most), set $bg_rc
stop_bg() {
	local pid=$1 t=${2:-30}
	kill -TERM "$pid"
	wait_for "$t" '! kill -0 "$pid" 2>/dev/null' || {
		echo "process $pid did not stop within ${t}s of SIGTERM" >&2
		return 1
	}
	bg_rc=0
	wait "$pid" || bg_rc=$?
	forget "$pid"
}

# start_follow OUT ERR [ARGS...]: outbox-relay --follow --stdout in the
# background; sets FOLLOW_PID
start_follow() {
	local out=$1 err=$2
	shift 2
	"$ENG_BIN/outbox-relay" --follow --stdout "$@" >"$out" 2>"$err" 3>&- &
	FOLLOW_PID=$!
	BG_PIDS+=("$FOLLOW_PID")
}

file_has_event() { # FILE JQ-CONDITION
	jq -e -s "map(select(has(\"event_id\") and ($2))) | length > 0" "$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------------------

@test "--stdout: one line per event in id order, summary last, all marked; a second run publishes nothing" {
	events 3
	events 2 test.other
	q "UPDATE engagement.outbox_events SET correlation_id = '11111111-2222-4333-8444-555555555555' WHERE id = (SELECT max(id) FROM engagement.outbox_events)"
	relay_stdout --batch 2
	[ "$status" -eq 0 ]
	[ "$(sj .status)" = ok ]
	[ "$(sj .published)" -eq 5 ]
	[ "$(sj .batches)" -eq 3 ]
	[ "$(grep -c . <<<"$events")" -eq 5 ]
	# id order, across batches
	[ "$(jq -r .event_id <<<"$events" | paste -sd' ')" = "$(ids)" ]
	[ "$(sj .last_id)" = "$(q 'SELECT max(id) FROM engagement.outbox_events')" ]
	# exactly the documented fields
	[ "$(jq -c 'keys' <<<"$events" | sort -u)" = '["aggregate_id","aggregate_type","correlation_id","created_at","event_id","event_type","event_version","payload"]' ]
	jq -e '.created_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$")' <<<"$events" >/dev/null
	# the values are the rows'
	first=$(head -n 1 <<<"$events")
	[ "$(jq -c '[.event_type, .event_version, .aggregate_type, .aggregate_id, .payload, .correlation_id]' <<<"$first")" = '["test.happened",1,"test","agg-1",{"n":1},null]' ]
	last=$(tail -n 1 <<<"$events")
	[ "$(jq -c '[.event_type, .aggregate_id, .payload, .correlation_id]' <<<"$last")" = '["test.other","agg-2",{"n":2},"11111111-2222-4333-8444-555555555555"]' ]
	[ "$(unpublished)" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events WHERE published_at < created_at")" -eq 0 ]
	# the run is recorded, the lease released
	[ "$(q "SELECT status || '|' || exit_code FROM engagement.job_runs WHERE program = 'outbox-relay'")" = "ok|0" ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks WHERE job = 'outbox-relay'")" -eq 0 ]

	before=$(q "SELECT string_agg(published_at::text, ',' ORDER BY id) FROM engagement.outbox_events")
	relay_stdout
	[ "$status" -eq 0 ]
	[ -z "$events" ]
	[ "$(sj .published)" -eq 0 ]
	# published_at is not touched again
	[ "$(q "SELECT string_agg(published_at::text, ',' ORDER BY id) FROM engagement.outbox_events")" = "$before" ]
}

@test "--stdout: the payload passes exactly as stored, even a number no JSON library holds" {
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
	   VALUES ('test', 'agg-1', 'test.big', '{\"big\": 123456789012345678901234567890, \"s\": \"x\"}')" >/dev/null
	relay_stdout
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 1 ]
	[[ "$events" == *'"payload":{"s": "x", "big": 123456789012345678901234567890}}' ]]
	[ "$(unpublished)" -eq 0 ]
}

@test "--stdout that cannot be written: exit 75, nothing marked published" {
	events 3
	run --separate-stderr bash -c '"$0" "$@" >/dev/full' "$ENG_BIN/outbox-relay" --db "$CONN" --stdout
	[ "$status" -eq 75 ]
	check_log_lines "$stderr"
	[ "$(unpublished)" -eq 3 ]
	relay_stdout
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 3 ]
}

@test "--webhook: events in id order, the signature verifies with the secret only, all marked published" {
	start_standin
	events 4
	events 1 test.other
	# non-ASCII text: the signature covers the bytes sent
	q "UPDATE engagement.outbox_events SET payload = payload || '{\"note\": \"ação – ñ 🚀 \\\"q\\\"\"}' WHERE id = (SELECT min(id) FROM engagement.outbox_events)" >/dev/null
	relay_webhook --batch 3
	[ "$status" -eq 0 ]
	[ "$(sj .sink)" = webhook ]
	[ "$(sj .published)" -eq 5 ]
	[ "$(sj .batches)" -eq 2 ]
	[ "$(sj .retries)" -eq 0 ]
	[ "$(webhook_records | grep -c .)" -eq 2 ]
	[ "$(webhook_ids)" = "$(ids)" ]
	[ "$(webhook_records 'select(.status != 200)' | grep -c .)" -eq 0 ]
	while IFS= read -r rec; do
		raw=$(jq -r .raw_body <<<"$rec")
		sig=$(jq -r .signature <<<"$rec")
		[[ "$sig" =~ ^sha256=[0-9a-f]{64}$ ]]
		[ "$sig" = "sha256=$(hmac "$SECRET" "$raw")" ]
		[ "$sig" != "sha256=$(hmac "another-secret" "$raw")" ]
		# the body is {"events": [...]} and nothing else
		[ "$(jq -r '.body | keys | join(",")' <<<"$rec")" = events ]
		[ "$(jq -c 'keys' <<<"$raw")" = '["events"]' ]
	done < <(webhook_records)
	# the events are the rows, with the same fields as --stdout
	[ "$(webhook_records | jq -c '.body.events[] | keys' | sort -u)" = '["aggregate_id","aggregate_type","correlation_id","created_at","event_id","event_type","event_version","payload"]' ]
	[ "$(webhook_records | jq -r '.body.events[] | "\(.event_type)/\(.aggregate_id)/\(.payload.n)"' | paste -sd' ')" = \
		"test.happened/agg-1/1 test.happened/agg-2/2 test.happened/agg-3/3 test.happened/agg-4/4 test.other/agg-1/1" ]
	[ "$(unpublished)" -eq 0 ]
	# the secret is never printed
	refute_in "$SECRET" "$output$stderr"
	refute_in_file "$SECRET" "$STANDIN_RECORD"
}

@test "--webhook is signed per Standard Webhooks: an independent receiver verifies it; one webhook-id per batch across retries, a fresh timestamp per attempt" {
	printf '%s\n' "$(whsec "key-one-$RANDOM")" >"$SECRET_FILE"
	start_sw "$SECRET_FILE" --fail 2
	events 5
	eng outbox-relay --db "$CONN" --webhook "$SW_URL" --secret-file "$SECRET_FILE" --batch 3
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 5 ]
	[ "$(sj .retries)" -eq 2 ]
	# two refusals (503) and then the two batches, every one verified
	[ "$(sw failed)" -eq 2 ]
	[ "$(sw accepted)" -eq 2 ]
	[ "$(sw bad_signature)" -eq 0 ]
	[ "$(sw missing_headers)" -eq 0 ]
	# the retries of a batch carry its id; two batches, two ids
	[ "$(jq -r .id "$SW_OUT" | uniq | grep -c .)" -eq 2 ]
	first=$(q "SELECT min(id) FROM engagement.outbox_events")
	[ "$(jq -r 'select(.verdict == "accepted") | .id' "$SW_OUT" | head -n 1)" = "evt_${first}_$((first + 2))" ]
	[ "$(jq -r 'select(.verdict == "accepted") | .events | join(",")' "$SW_OUT" | paste -sd' ')" = \
		"$first,$((first + 1)),$((first + 2)) $((first + 3)),$((first + 4))" ]
	# one signature per secret line
	[ "$(jq -r .signatures "$SW_OUT" | sort -u)" = 1 ]
	[ "$(unpublished)" -eq 0 ]
	refute_in "$(cut -c7- "$SECRET_FILE")" "$output$stderr"
}

@test "--webhook rotates keys: every secret line signs, so a receiver knowing either key accepts" {
	old=$(whsec "the-old-key-$RANDOM") new=$(whsec "the-new-key-$RANDOM")
	printf '%s\n%s\n' "$old" "$new" >"$SECRET_FILE"
	printf '%s\n' "$new" >"$BATS_TEST_TMPDIR/new-only"
	printf '%s\n' "$old" >"$BATS_TEST_TMPDIR/old-only"
	printf '%s\n' "$(whsec another-key)" >"$BATS_TEST_TMPDIR/neither"
	chmod 600 "$BATS_TEST_TMPDIR"/*-only "$BATS_TEST_TMPDIR/neither"
	for who in new-only old-only neither; do
		start_sw "$BATS_TEST_TMPDIR/$who"
		q "UPDATE engagement.outbox_events SET published_at = NULL" >/dev/null
		events 1
		eng outbox-relay --db "$CONN" --webhook "$SW_URL" --secret-file "$SECRET_FILE" --max-attempts 1
		if [ "$who" = neither ]; then
			# 401: refused, nothing marked published
			[ "$status" -eq 69 ]
			[ "$(sw bad_signature)" -eq 1 ]
			[ "$(unpublished)" -gt 0 ]
		else
			[ "$status" -eq 0 ]
			[ "$(sw accepted)" -eq 1 ]
			[ "$(jq -r .signatures "$SW_OUT")" -eq 2 ]
			[ "$(unpublished)" -eq 0 ]
		fi
		kill "${BG_PIDS[-1]}"
	done
}

@test "a replayed or stale delivery is refused by a Standard Webhooks receiver; a tampered timestamp fails the signature" {
	printf '%s\n' "$(whsec "replay-key-$RANDOM")" >"$SECRET_FILE"
	start_standin
	events 2
	relay_webhook
	[ "$status" -eq 0 ]
	rec=$(webhook_records | head -n 1)
	[[ "$(jq -r .webhook_id <<<"$rec")" =~ ^evt_[0-9]+_[0-9]+$ ]]
	[[ "$(jq -r .webhook_timestamp <<<"$rec")" =~ ^[0-9]+$ ]]
	[[ "$(jq -r .webhook_signature <<<"$rec")" =~ ^v1,[A-Za-z0-9+/]{43}=$ ]]
	# within the tolerance, the captured delivery is good once...
	start_sw "$SECRET_FILE"
	[ "$(replay "$rec")" = 200 ]
	[ "$(sw accepted)" -eq 1 ]
	# ... and a replay of it is recognised and not processed again
	[ "$(replay "$rec")" = 200 ]
	[ "$(sw duplicate)" -eq 1 ]
	[ "$(sw accepted)" -eq 1 ]
	# a new id or a fresh timestamp on the old signature does not verify
	[ "$(replay "$rec" "webhook-id: evt_1_999" "webhook-timestamp: $(jq -r .webhook_timestamp <<<"$rec")" \
		"webhook-signature: $(jq -r .webhook_signature <<<"$rec")")" = 401 ]
	[ "$(replay "$rec" "webhook-id: $(jq -r .webhook_id <<<"$rec")" "webhook-timestamp: $(date +%s)9" \
		"webhook-signature: $(jq -r .webhook_signature <<<"$rec")")" = 401 ]
	[ "$(sw bad_signature)" -eq 2 ]
	# the same delivery five minutes and a second later: stale, refused
	kill "${BG_PIDS[-1]}"
	start_sw "$SECRET_FILE" --clock-offset 301
	[ "$(replay "$rec")" = 401 ]
	[ "$(sw stale)" -eq 1 ]
	[ "$(sw accepted)" -eq 0 ]
}

@test "the deprecated X-Engagement-Signature is still sent, keyed by the first secret line as written" {
	first=$(whsec "first-$RANDOM")
	printf '%s\n%s\n' "$first" "$(whsec "second-$RANDOM")" >"$SECRET_FILE"
	start_standin
	events 1
	relay_webhook
	[ "$status" -eq 0 ]
	rec=$(webhook_records | head -n 1)
	[ "$(jq -r .signature <<<"$rec")" = "sha256=$(hmac "$first" "$(jq -r .raw_body <<<"$rec")")" ]
}

@test "secret files: group- or world-readable, not a regular file, or a bad whsec_ line exit 78 with the fix, never the secret" {
	events 1
	hook="http://127.0.0.1:1/_webhook"
	chmod 640 "$SECRET_FILE"
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$SECRET_FILE"
	[ "$status" -eq 78 ]
	[[ "$stderr" == *"chmod 600"* ]]
	chmod 604 "$SECRET_FILE"
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$SECRET_FILE"
	[ "$status" -eq 78 ]
	chmod 600 "$SECRET_FILE"
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	chmod 600 "$BATS_TEST_TMPDIR/fifo"
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$BATS_TEST_TMPDIR/fifo"
	[ "$status" -eq 78 ]
	[[ "$stderr" == *"not a regular file"* ]]
	printf '%s\nwhsec_%s!!\n' "$(whsec good-key)" "hunter2-secret" >"$BATS_TEST_TMPDIR/bad"
	chmod 600 "$BATS_TEST_TMPDIR/bad"
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$BATS_TEST_TMPDIR/bad"
	[ "$status" -eq 78 ]
	[[ "$stderr" == *"line 2"* ]]
	refute_in hunter2-secret "$output$stderr"
	refute_in "$SECRET" "$output$stderr"
	[ "$(stderr_lines)" -eq 1 ]
	[ "$(unpublished)" -eq 1 ]
}

@test "--webhook: full batches of 100 (bodies of tens of KiB) arrive whole, every event once" {
	start_standin
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
	   SELECT 'test', 'agg-' || g, 'test.happened', jsonb_build_object('n', g, 'text', repeat('x', 200))
	   FROM generate_series(1, 250) g" >/dev/null
	relay_webhook
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 250 ]
	[ "$(sj .batches)" -eq 3 ]
	[ "$(webhook_records 'select(.status != 200)' | grep -c .)" -eq 0 ]
	[ "$(webhook_records '.body_bytes' | sort -n | tail -n 1)" -gt 20000 ]
	[ "$(webhook_ids)" = "$(ids)" ]
	[ "$(webhook_records '.body.events[].payload.text | length' | sort -u)" = 200 ]
	while IFS= read -r rec; do
		[ "$(jq -r .signature <<<"$rec")" = "sha256=$(hmac "$SECRET" "$(jq -r .raw_body <<<"$rec")")" ]
	done < <(webhook_records)
}

@test "--webhook with the receiver down: exit 75 after 3 tries, nothing marked; a later run publishes them all" {
	start_standin
	port=${WHATSAPP_API_URL##*:}
	stop_standin # nothing listens there now
	events 3
	relay_webhook
	[ "$status" -eq 75 ]
	[ "$(unpublished)" -eq 3 ]
	[ "$(sj .published)" -eq 0 ]
	[ "$(log_events delivery_failed | grep -c .)" -eq 3 ]
	[ "$(log_events delivery_failed | jq -r .attempt | paste -sd' ')" = "1 2 3" ]
	refute_in "$SECRET" "$output$stderr"
	[ "$(q "SELECT count(*) FROM engagement.job_locks WHERE job = 'outbox-relay'")" -eq 0 ]

	# the receiver comes back on the same address
	start_standin --port "$port"
	[ "${WHATSAPP_API_URL##*:}" = "$port" ]
	events 1
	relay_webhook
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 4 ]
	[ "$(unpublished)" -eq 0 ]
	[ "$(webhook_ids)" = "$(ids)" ]
}

@test "--webhook: two 503s are retried within the run, then published (retries >= 2)" {
	start_standin --webhook-fail 2
	events 3
	relay_webhook
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 3 ]
	[ "$(sj .retries)" -ge 2 ]
	[ "$(webhook_records | jq -r .status | paste -sd' ')" = "503 503 200" ]
	# the same batch, byte for byte, each time, signed each time
	[ "$(webhook_records | jq -r .raw_body | sort -u | grep -c .)" -eq 1 ]
	[ "$(webhook_ids)" = "$(ids)" ]
	[ "$(unpublished)" -eq 0 ]
}

@test "--webhook answered 400: exit 69 at once, nothing marked published" {
	start_standin --webhook-status 400
	events 3
	relay_webhook
	[ "$status" -eq 69 ]
	[ "$(sj .status)" = failed ]
	[ "$(unpublished)" -eq 3 ]
	# a refusal is not retried
	[ "$(webhook_records | grep -c .)" -eq 1 ]
	refute_in "$SECRET" "$output$stderr"
}

@test "--webhook answered 429: retried like an outage (exit 75), not a refusal" {
	start_standin --webhook-status 429
	events 2
	relay_webhook --max-attempts 2
	[ "$status" -eq 75 ]
	[ "$(webhook_records | grep -c .)" -eq 2 ]
	[ "$(unpublished)" -eq 2 ]
}

@test "--webhook answered 202: accepted like 200" {
	start_standin --webhook-status 202
	events 2
	relay_webhook
	[ "$status" -eq 0 ]
	[ "$(unpublished)" -eq 0 ]
}

@test "--webhook slower than --timeout: exit 75, nothing marked" {
	start_standin --latency-ms 2000
	events 2
	relay_webhook --timeout 200ms --max-attempts 1
	[ "$status" -eq 75 ]
	[ "$(unpublished)" -eq 2 ]
}

@test "SIGTERM while the webhook is failing (no --follow): exit 75 soon, summary printed, nothing marked, lease released" {
	start_standin --webhook-status 503
	events 2
	"$ENG_BIN/outbox-relay" --db "$CONN" --webhook "$WHATSAPP_API_URL/_webhook" \
		--secret-file "$SECRET_FILE" --max-attempts 50 \
		>"$BATS_TEST_TMPDIR/out.json" 2>"$BATS_TEST_TMPDIR/err.log" 3>&- &
	pid=$!
	BG_PIDS+=("$pid")
	wait_for 30 '[ "$(webhook_records | grep -c .)" -ge 2 ]'
	# "soon": long before its 50 attempts would have run out
	stop_bg "$pid"
	[ "$bg_rc" -eq 75 ]
	check_log_lines "$(cat "$BATS_TEST_TMPDIR/err.log")"
	output=$(cat "$BATS_TEST_TMPDIR/out.json")
	status=75
	check_one_object "$output"
	[ "$(unpublished)" -eq 2 ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks WHERE job = 'outbox-relay'")" -eq 0 ]
}

@test "--follow keeps retrying a failing webhook past --max-attempts, then publishes" {
	start_standin --webhook-fail 2
	events 2
	"$ENG_BIN/outbox-relay" --db "$CONN" --follow --webhook "$WHATSAPP_API_URL/_webhook" \
		--secret-file "$SECRET_FILE" --max-attempts 1 \
		>"$BATS_TEST_TMPDIR/out.json" 2>"$BATS_TEST_TMPDIR/err.log" 3>&- &
	pid=$!
	BG_PIDS+=("$pid")
	wait_for 30 '[ "$(unpublished)" -eq 0 ]'
	[ "$(webhook_records | jq -r .status | paste -sd' ')" = "503 503 200" ]
	stop_bg "$pid"
	[ "$bg_rc" -eq 75 ]
	[ "$(jq -r .retries "$BATS_TEST_TMPDIR/out.json")" -eq 2 ]
	[ "$(jq -r .published "$BATS_TEST_TMPDIR/out.json")" -eq 2 ]
}

@test "without --follow, through PgBouncer (transaction pooling): publishes" {
	[ -n "${ENG_PGBOUNCER_PORT:-}" ] || skip "no PgBouncer in the test cluster"
	events 3
	CONN="host=127.0.0.1 port=$ENG_PGBOUNCER_PORT dbname=$DB" relay_stdout
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 3 ]
	[ "$(unpublished)" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks WHERE job = 'outbox-relay'")" -eq 0 ]
}

@test "kill -9 mid-run: the next run takes over at once (the dead holder's process is gone), publishes the rest, no event lost" {
	start_standin --latency-ms 500
	# ten batches of half a second each: killed after the first, the run
	# has more than 4 s of work left
	events 50
	"$ENG_BIN/outbox-relay" --db "$CONN" --webhook "$WHATSAPP_API_URL/_webhook" \
		--secret-file "$SECRET_FILE" --batch 5 >/dev/null 2>&1 3>&- &
	pid=$!
	BG_PIDS+=("$pid")
	# at least one batch through, then kill it in the middle of the rest
	wait_for 30 q_ge "SELECT count(*) FROM engagement.outbox_events WHERE published_at IS NOT NULL" 5
	kill -9 "$pid"
	wait "$pid" || true
	forget "$pid"
	left=$(unpublished)
	[ "$left" -gt 0 ]
	[ "$left" -lt 50 ]

	# the crashed run's lease is still there, but its server process is
	# gone once the server has noticed the client died: the next run takes
	# over at once, without waiting out the 60 s, and marks the dead run
	[ "$(q "SELECT count(*) FROM engagement.job_locks WHERE job = 'outbox-relay'")" -eq 1 ]
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'outbox-relay'" 0
	relay_webhook --batch 5
	[ "$status" -eq 0 ]
	[ "$(log_events dead_runs_marked | jq -r .runs)" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.job_runs WHERE status = 'died'")" -eq 1 ]
	[ "$(sj .published)" -eq "$left" ]
	[ "$(unpublished)" -eq 0 ]
	# every id reached the receiver (accepted) at least once
	got=$(webhook_ids | tr ' ' '\n' | sort -n -u | paste -sd' ')
	[ "$got" = "$(ids)" ]
	# each request carries its events in id order
	[ "$(webhook_records | jq -c '[.body.events[]?.event_id] | . == sort' | sort -u)" = true ]
}

@test "--follow: a change appears within seconds; a second relay exits 75; SIGTERM exits 75 with the summary last" {
	user 1 +5511987650001
	out="$BATS_TEST_TMPDIR/follow.out"
	err="$BATS_TEST_TMPDIR/follow.err"
	start_follow "$out" "$err" --db "$CONN"
	wait_for 30 'grep -q job_started "$err"'

	eng optout-set --db "$CONN" --user "$(uid 1)" --opt-out --source web
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = applied ]
	wait_for 30 'file_has_event "$out" ".event_type == \"preferences.reengagement_changed\" and .payload.user_id == \"$(uid 1)\""'
	wait_for 30 '[ "$(unpublished)" -eq 0 ]'

	# single run: another relay while this one runs
	eng outbox-relay --db "$CONN" --stdout
	[ "$status" -eq 75 ]
	[ "$(sj .reason)" = already_running ]
	[ "$(log_events already_running | grep -c .)" -eq 1 ]

	# a second change is picked up too
	eng optout-set --db "$CONN" --user "$(uid 1)" --opt-in --source whatsapp
	[ "$status" -eq 0 ]
	wait_for 30 'file_has_event "$out" ".payload.opt_out == false"'

	stop_bg "$FOLLOW_PID"
	[ "$bg_rc" -eq 75 ]
	check_log_lines "$(cat "$err")"
	n=$(grep -c . "$out")
	[ "$n" -eq 3 ]
	summary=$(tail -n 1 "$out")
	[ "$(jq -r .program <<<"$summary")" = outbox-relay ]
	[ "$(jq -r .exit_code <<<"$summary")" -eq 75 ]
	[ "$(jq -r .follow <<<"$summary")" = true ]
	[ "$(jq -r .published <<<"$summary")" -eq 2 ]
	[ "$(head -n 2 "$out" | jq -r .event_id | paste -sd' ')" = "$(ids)" ]
	# the lease is released on a clean stop
	[ "$(q "SELECT count(*) FROM engagement.job_locks WHERE job = 'outbox-relay'")" -eq 0 ]
}

@test "--follow: an event committed after a higher id was published is still published (none lost)" {
	out="$BATS_TEST_TMPDIR/follow.out"
	err="$BATS_TEST_TMPDIR/follow.err"
	start_follow "$out" "$err" --db "$CONN"
	wait_for 30 grep -q job_started "$err"
	# a slow transaction takes the lower id and commits last: it stays open
	# until the higher id has been published
	session_open slow
	session slow "BEGIN; INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type) VALUES ('test', 'late', 'test.late');"
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type) VALUES ('test', 'early', 'test.early')" >/dev/null
	wait_for 30 file_has_event "$out" '.aggregate_id == "early"'
	session slow "COMMIT;"
	session_close slow
	wait_for 30 file_has_event "$out" '.aggregate_id == "late"'
	stop_bg "$FOLLOW_PID"
	[ "$bg_rc" -eq 75 ]
	[ "$(unpublished)" -eq 0 ]
	late=$(q "SELECT id FROM engagement.outbox_events WHERE aggregate_id = 'late'")
	early=$(q "SELECT id FROM engagement.outbox_events WHERE aggregate_id = 'early'")
	[ "$late" -lt "$early" ]
}

@test "--follow: its connection terminated, it reconnects and catches up" {
	out="$BATS_TEST_TMPDIR/follow.out"
	err="$BATS_TEST_TMPDIR/follow.err"
	start_follow "$out" "$err" --db "$CONN"
	wait_for 30 'grep -q job_started "$err"'
	[ "$(q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'outbox-relay'")" -eq 1 ]
	events 3
	wait_for 30 '[ "$(unpublished)" -eq 0 ]'
	stop_bg "$FOLLOW_PID"
	[ "$bg_rc" -eq 75 ]
	summary=$(tail -n 1 "$out")
	[ "$(jq -r .reconnects <<<"$summary")" -ge 1 ]
	[ "$(sed '$d' "$out" | jq -r .event_id | paste -sd' ')" = "$(ids)" ]
}

@test "--follow across a PostgreSQL restart: reconnects and catches up" {
	PRIV_PG="$BATS_TEST_TMPDIR/pg"
	"$ENG_SRC/tests/pg/cluster.sh" start "$PRIV_PG" "$ENG_BIN/migrate" >/dev/null 3>&-
	eval "$(. "$PRIV_PG/env" && printf 'P_ROOT=%q P_PORT=%q P_BIN=%q' "$ENG_PG_ROOT" "$PGPORT" "$ENG_PG_BIN")"
	PCONN="host=$P_ROOT/sock port=$P_PORT user=postgres dbname=relay_restart"
	psql -X -q -h "$P_ROOT/sock" -p "$P_PORT" -U postgres -d postgres \
		-c "CREATE DATABASE relay_restart TEMPLATE engagement_tmpl"
	pq() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$PCONN" -c "$1"; }
	pins() {
		pq "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type)
		    SELECT 'test', '$1-' || g, 'test.happened' FROM generate_series(1, $2) g" >/dev/null
	}
	punpub() { pq "SELECT count(*) FROM engagement.outbox_events WHERE published_at IS NULL"; }

	out="$BATS_TEST_TMPDIR/follow.out"
	err="$BATS_TEST_TMPDIR/follow.err"
	start_follow "$out" "$err" --db "$PCONN"
	wait_for 30 'grep -q job_started "$err"'
	pins before 2
	wait_for 30 '[ "$(punpub)" -eq 0 ]'

	as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
	as_owner "$P_BIN/pg_ctl" -D "$P_ROOT/data" -l "$P_ROOT/server.log" -w -t 60 \
		restart -m fast >/dev/null 2>&1 3>&-
	pins after 3
	wait_for 30 '[ "$(punpub)" -eq 0 ]'
	wait_for 30 'file_has_event "$out" ".aggregate_id == \"after-3\""'

	stop_bg "$FOLLOW_PID"
	[ "$bg_rc" -eq 75 ]
	check_log_lines "$(cat "$err")"
	summary=$(tail -n 1 "$out")
	[ "$(jq -r .exit_code <<<"$summary")" -eq 75 ]
	[ "$(jq -r .reconnects <<<"$summary")" -ge 1 ]
	[ "$(jq -r .published <<<"$summary")" -ge 5 ]
	grep -q '"event":"reconnected"' "$err"
	# every event went out (at least once), in id order the first time
	all=$(pq "SELECT string_agg(id::text, ' ' ORDER BY id) FROM engagement.outbox_events")
	[ "$(sed '$d' "$out" | jq -r .event_id | awk '!seen[$0]++' | paste -sd' ')" = "$all" ]
}

@test "--purge-published-days 7: deletes events published more than 7 days ago, keeps recent and unpublished ones" {
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, created_at, published_at) VALUES
	   ('test', 'old',      'test.happened', now() - interval '20 days', now() - interval '8 days'),
	   ('test', 'old2',     'test.happened', now() - interval '20 days', now() - interval '7 days 1 hour'),
	   ('test', 'recent',   'test.happened', now() - interval '20 days', now() - interval '6 days 23 hours'),
	   ('test', 'fresh',    'test.happened', now() - interval '1 day',   now() - interval '1 hour'),
	   ('test', 'unpub',    'test.happened', now() - interval '30 days', NULL)" >/dev/null
	relay_stdout --purge-published-days 7
	[ "$status" -eq 0 ]
	[ "$(sj .purged)" -eq 2 ]
	[ "$(sj .published)" -eq 1 ]
	[ "$(jq -r .aggregate_id <<<"$events")" = unpub ]
	[ "$(q "SELECT string_agg(aggregate_id, ' ' ORDER BY id) FROM engagement.outbox_events")" = "recent fresh unpub" ]
	[ "$(unpublished)" -eq 0 ]

	# a longer retention deletes nothing more
	relay_stdout --purge-published-days 30
	[ "$status" -eq 0 ]
	[ "$(sj .purged)" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 3 ]
}

@test "bad command lines exit 64" {
	eng outbox-relay --db "$CONN" --webhook "http://127.0.0.1:1/_webhook"
	[ "$status" -eq 64 ]
	eng outbox-relay --db "$CONN" --stdout --webhook "http://127.0.0.1:1/_webhook" --secret-file "$SECRET_FILE"
	[ "$status" -eq 64 ]
	eng outbox-relay --db "$CONN"
	[ "$status" -eq 64 ]
	eng outbox-relay --db "$CONN" --stdout --batch 0
	[ "$status" -eq 64 ]
	eng outbox-relay --db "$CONN" --stdout --purge-published-days 0
	[ "$status" -eq 64 ]
	eng outbox-relay --db "$CONN" --stdout --no-such-option
	[ "$status" -eq 64 ]
	# a request may not outlast the run lease
	eng outbox-relay --db "$CONN" --stdout --timeout 31s
	[ "$status" -eq 64 ]
	[ "$(stderr_lines)" -eq 1 ]
	events 1
	[ "$(unpublished)" -eq 1 ]
}

@test "bad configuration exits 78: unreadable or empty secret file, plain http to a non-loopback host; the secret is never printed" {
	events 1
	hook="http://127.0.0.1:1/_webhook"
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$BATS_TEST_TMPDIR/missing"
	[ "$status" -eq 78 ]
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$BATS_TEST_TMPDIR"
	[ "$status" -eq 78 ]
	if [ "$(id -u)" != 0 ]; then
		cp "$SECRET_FILE" "$BATS_TEST_TMPDIR/noread"
		chmod 000 "$BATS_TEST_TMPDIR/noread"
		eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$BATS_TEST_TMPDIR/noread"
		[ "$status" -eq 78 ]
	fi
	: >"$BATS_TEST_TMPDIR/empty"
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$BATS_TEST_TMPDIR/empty"
	[ "$status" -eq 78 ]
	printf ' \n\n' >"$BATS_TEST_TMPDIR/blank"
	eng outbox-relay --db "$CONN" --webhook "$hook" --secret-file "$BATS_TEST_TMPDIR/blank"
	[ "$status" -eq 78 ]
	eng outbox-relay --db "$CONN" --webhook "http://example.com/_webhook" --secret-file "$SECRET_FILE"
	[ "$status" -eq 78 ]
	refute_in "$SECRET" "$output$stderr"
	eng outbox-relay --db "$CONN" --webhook "ftp://127.0.0.1/_webhook" --secret-file "$SECRET_FILE"
	[ "$status" -eq 78 ]
	eng outbox-relay --db "$CONN" --webhook "http://10.0.0.1/_webhook" --secret-file "$SECRET_FILE"
	[ "$status" -eq 78 ]
	refute_in "$SECRET" "$output$stderr"
	# nothing was published by any of these
	[ "$(unpublished)" -eq 1 ]
	# a run that works, with debug logging: still no secret anywhere
	start_standin
	relay_webhook --log-level debug
	[ "$status" -eq 0 ]
	refute_in "$SECRET" "$output$stderr"
}

@test "no phone number in any published payload after optout-set --phone changes" {
	user 1 +5511987654321
	user 2 +5521976543210
	eng optout-set --db "$CONN" --phone +5511987654321 --opt-out --source whatsapp
	[ "$(sj .outcome)" = applied ]
	eng optout-set --db "$CONN" --phone +5511987654321 --text "Ativar  Lembretes" --locale pt-BR --source whatsapp
	[ "$(sj .outcome)" = applied ]
	eng optout-set --db "$CONN" --phone +5521976543210 --text "stop reminders" --source web
	[ "$(sj .outcome)" = applied ]
	relay_stdout
	[ "$status" -eq 0 ]
	[ "$(jq -r 'select(.event_type == "preferences.reengagement_changed") | .event_id' <<<"$events" | grep -c .)" -eq 3 ]
	[ "$(jq -r .payload.user_id <<<"$events" | sort -u | paste -sd' ')" = "$(uid 1) $(uid 2)" ]
	for p in 5511987654321 5521976543210 987654321 976543210; do
		refute_in "$p" "$events"
		refute_in "$p" "$stderr"
	done
	# and not through the webhook either
	q "UPDATE engagement.outbox_events SET published_at = NULL" >/dev/null
	start_standin
	relay_webhook
	[ "$status" -eq 0 ]
	[ "$(sj .published)" -eq 3 ]
	refute_in_file 5511987654321 "$STANDIN_RECORD"
	refute_in_file 5521976543210 "$STANDIN_RECORD"
}

@test "credentials in a rejected --webhook URL are not echoed in logs or summary" {
	eng outbox-relay --db "$CONN" --webhook "http://relay:hunter2-pw@example.com/_webhook" --secret-file "$SECRET_FILE"
	[ "$status" -eq 78 ]
	refute_in hunter2-pw "$output$stderr"
}
