#!/usr/bin/env bats
# queue-send honours pauses (DESIGN.md §2.3, "Pauses"), black-box: the real
# server, the Cloud API stand-in, queue-send as its login, and the pauses
# made by the operator's login (eng_operator, granted engagement_operator
# only) through engagement.pause_sending and engagement.resume_sending, as
# engagement-ctl makes them. A paused message is not sent: the claim skips
# it, or the fence's verdict "paused" hands it back to queued uncharged; it
# waits until the pause ends (resume, or its until). A pause takes effect
# for requests not yet started within a second of its commit.
#
# Pauses are checked against the database's clock, not --now: these runs
# use no --now, and their messages are due an hour ago.

load helpers

setup() {
	new_db
}

teardown() {
	stop_standin
	drop_dbs
}

uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }
# phone NUM [SUFFIX]: the stand-in answers by the last three digits (908:
# after --slow-ms)
phone() { printf '+55119%05d%s' "$1" "${2:-000}"; }

# users FROM TO [SUFFIX]: people FROM..TO, one message each at most
users() {
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
	          '+55119' || lpad(i::text, 5, '0') || '${3:-000}'
	   FROM generate_series($1, $2) i;
	   INSERT INTO engagement.user_preferences (user_id)
	   SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid
	   FROM generate_series($1, $2) i" >/dev/null
}

# msg NUM TYPE [TEMPLATE] [SECONDS]: a message for person NUM, due an hour
# ago (plus SECONDS: the claim's order); its id
msg() {
	local type=$2 tpl=${3:-$2}
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
	     idempotency_key, next_attempt_at)
	   VALUES ('$(uid "$1")', '$type', '$tpl',
	     CASE WHEN '$type' = 'weekly_review' THEN '{\"activity_count\": 4}'::jsonb ELSE '{}'::jsonb END,
	     '$(uid "$1"):$type:$RANDOM$RANDOM', now() - interval '1 hour' + interval '${4:-0} seconds')
	   RETURNING id"
}

row() { q "SELECT $2 FROM engagement.message_queue WHERE id = $1"; }
# status_of TYPE: "status:attempts:n,..." of that type's messages
status_of() {
	q "SELECT string_agg(s, ',' ORDER BY s) FROM (
	     SELECT status || ':' || attempts || ':' || count(*) AS s FROM engagement.message_queue
	     WHERE message_type = '$1' GROUP BY status, attempts) x"
}

# op SQL: as the operator's login (granted engagement_operator only)
op() {
	psql -X -q -At -v ON_ERROR_STOP=1 -U eng_operator -d "$DB" -c "$1"
}
pause() { op "SELECT pause_id FROM engagement.pause_sending($1, 'incident 22')"; }
resume() { op "SELECT count(*) FROM engagement.resume_sending($1, 'fixed')"; }

send() { eng queue-send --db "$CONN" "$@"; }

# requests_for TEMPLATE: requests the stand-in saw for that template
requests_for() { requests "select(.template == \"$1\")"; }
# the message ids requested more than once
dup_requests() {
	jq -r 'select(.kind == null) | .biz_opaque_callback_data' "$STANDIN_RECORD" | sort | uniq -d
}
stats() { curl -s --max-time 5 "$WHATSAPP_API_URL/_standin/stats"; }
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}
# jq: a request line's arrival in Unix milliseconds
JQ_MS='def ms: (.ts[0:19] + "Z" | fromdate) * 1000 + (.ts[20:23] | tonumber);'

@test "a pause by type: only the other type is sent; the paused stay queued, uncharged, unrequested; after resume the next run sends them" {
	start_standin
	users 1 6
	g1=$(msg 1 goodbye); g2=$(msg 2 goodbye); g3=$(msg 3 goodbye)
	msg 4 weekly_review >/dev/null; msg 5 weekly_review >/dev/null; msg 6 weekly_review >/dev/null
	run op "SELECT created, waited FROM engagement.pause_sending('type', 'goodbye', NULL, 'incident 22')"
	[ "$status" -eq 0 ]
	[ "$output" = "t|0" ]
	# the pause and its audit row name the operator's login
	[ "$(q "SELECT scope || '/' || value || '/' || source || '/' || paused_by FROM engagement.send_pauses")" = type/goodbye/operator/eng_operator ]
	[ "$(q "SELECT login || '/' || (details->>'reason') FROM engagement.audit_log WHERE event = 'sending_paused'")" = "eng_operator/incident 22" ]

	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 3 ]
	[ "$(sj .claimed)" -eq 3 ]
	[ "$(sj .paused)" -eq 0 ] # never claimed, so never fenced
	[ "$(status_of weekly_review)" = "sent:1:3" ]
	[ "$(status_of goodbye)" = "queued:0:3" ]
	for id in $g1 $g2 $g3; do
		run row "$id" "status, attempts, locked_by IS NULL, cardinality(claimed_by)"
		[ "$output" = "queued|0|t|0" ]
	done
	[ "$(requests)" -eq 3 ]
	[ "$(requests_for engagement_weekly_review)" -eq 3 ]
	[ "$(requests_for engagement_goodbye)" -eq 0 ]

	# a second run while paused changes nothing
	send
	[ "$status" -eq 0 ]
	[ "$(sj .claimed)" -eq 0 ]
	[ "$(status_of goodbye)" = "queued:0:3" ]

	run resume "'type', 'goodbye'"
	[ "$output" = 1 ]
	[ "$(q "SELECT resumed_at IS NOT NULL AND resumed_by = 'eng_operator' FROM engagement.send_pauses")" = t ]
	[ "$(q "SELECT login || '/' || (details->>'reason') FROM engagement.audit_log WHERE event = 'sending_resumed'")" = eng_operator/fixed ]
	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 3 ]
	[ "$(status_of goodbye)" = "sent:1:3" ]
	[ "$(requests_for engagement_goodbye)" -eq 3 ]
	[ "$(requests)" -eq 6 ]
	[ -z "$(dup_requests)" ]
}

@test "a pause by template key holds that template only; a pause of all claims nothing; each ends with its resume" {
	start_standin
	# a second template for weekly reviews: the type is the same, the key not
	q "INSERT INTO engagement.message_templates (template_key, locale, provider_name, provider_language, param_names)
	   SELECT 'review_v2', locale, 'engagement_review_v2', provider_language, param_names
	   FROM engagement.message_templates WHERE template_key = 'weekly_review'" >/dev/null
	users 1 4
	g=$(msg 1 goodbye); r1=$(msg 2 weekly_review); r2=$(msg 3 weekly_review review_v2)
	pause "'template', 'review_v2', NULL" >/dev/null
	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 2 ]
	[ "$(row "$g" status)" = sent ]
	[ "$(row "$r1" status)" = sent ]
	run row "$r2" "status, attempts, locked_by IS NULL"
	[ "$output" = "queued|0|t" ]
	[ "$(requests_for engagement_review_v2)" -eq 0 ]
	[ "$(requests)" -eq 2 ]

	# everything paused, then the template's pause ended: still nothing goes
	g2=$(msg 4 goodbye)
	pause "'all', NULL, NULL" >/dev/null
	[ "$(resume "'template', 'review_v2'")" = 1 ]
	send
	[ "$status" -eq 0 ]
	[ "$(sj .claimed)" -eq 0 ]
	[ "$(sj .sent)" -eq 0 ]
	[ "$(requests)" -eq 2 ]
	run q "SELECT count(*) FROM engagement.message_queue WHERE id IN ($r2, $g2)
	       AND status = 'queued' AND attempts = 0 AND cardinality(claimed_by) = 0"
	[ "$output" = 2 ]

	[ "$(resume "'all', NULL")" = 1 ]
	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 2 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent' AND attempts = 1")" -eq 4 ]
	[ "$(requests_for engagement_review_v2)" -eq 1 ]
	[ "$(requests)" -eq 4 ]
	[ -z "$(dup_requests)" ]
}

@test "until: a pause whose end is ahead (the database's clock) holds; once its until has passed the next run sends, without a resume" {
	start_standin
	users 1 2
	g=$(msg 1 goodbye); r=$(msg 2 weekly_review)
	id=$(op "SELECT pause_id FROM engagement.pause_sending('type', 'goodbye',
	           clock_timestamp() + interval '1 hour', 'for a while')")
	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 1 ]
	[ "$(row "$r" status)" = sent ]
	run row "$g" "status, attempts, locked_by IS NULL"
	[ "$output" = "queued|0|t" ]
	[ "$(requests_for engagement_goodbye)" -eq 0 ]

	# pausing the same again moves its end: a second ahead, then waited out
	# (the condition itself, on the database's clock)
	[ "$(op "SELECT pause_id || '/' || created FROM engagement.pause_sending('type', 'goodbye',
	           clock_timestamp() + interval '1 second', 'nearly over')")" = "$id/false" ]
	until=$(op "SELECT until FROM engagement.send_pauses WHERE id = $id")
	wait_q "SELECT now() > '$until'" t
	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 1 ]
	run row "$g" "status, attempts"
	[ "$output" = "sent|1" ]
	[ "$(requests_for engagement_goodbye)" -eq 1 ]
	# nobody resumed it: it ended by itself, and no longer lists as active
	[ "$(q "SELECT resumed_at IS NULL FROM engagement.send_pauses")" = t ]
	[ "$(op "SELECT count(*) FROM engagement.send_pauses WHERE resumed_at IS NULL
	         AND (until IS NULL OR until > now())")" -eq 0 ]
}

@test "a pause committed mid-run: within a second of its commit no request for a paused message starts; they wait queued and uncharged, and after resume each is sent once" {
	# 40 goodbyes and 40 weekly reviews, alternating in the claim's order,
	# each answered after 250 ms (908), four at a time, claims of 10: a run
	# of 5 s or more. The pause of goodbyes commits once 8 requests were
	# answered.
	local n=40 conc=4
	start_standin --slow-ms 250
	users 1 $((2 * n)) 908
	for i in $(seq 1 $((2 * n))); do
		if [ $((i % 2)) -eq 1 ]; then msg "$i" goodbye "" "$i"; else msg "$i" weekly_review "" "$i"; fi
	done >/dev/null
	"$ENG_BIN/queue-send" --db "$CONN" --rate 0 --concurrency $conc --batch 10 --worker-id midrun \
		>"$BATS_TEST_TMPDIR/run.json" 2>"$BATS_TEST_TMPDIR/run.log" &
	pid=$!
	wait_for 60 '[ "$(requests)" -ge 8 ]'
	t0=$(now_ms)
	op "SELECT * FROM engagement.pause_sending('type', 'goodbye', NULL, 'incident 22')" \
		>"$BATS_TEST_TMPDIR/pause.out"
	t1=$(now_ms) # the pause committed before this
	wire=$(stats | jq .in_progress)
	wait "$pid" && rc=0 || rc=$?
	[ "$rc" -eq 0 ]
	check_log_lines "$(cat "$BATS_TEST_TMPDIR/run.log")"
	output=$(cat "$BATS_TEST_TMPDIR/run.json")

	# goodbye requests by their arrival at the stand-in: before the call,
	# during it, after it returned (at most the requests on the wire then,
	# one per slot), and more than a second after
	count_g() {
		jq -c "$JQ_MS"' select(.kind == null and .template == "engagement_goodbye" and ('"$1"'))' \
			"$STANDIN_RECORD" | grep -c . || true
	}
	before=$(count_g "ms < $t0")
	during=$(count_g "ms >= $t0 and ms <= $t1")
	after=$(count_g "ms > $t1")
	late=$(count_g "ms > $t1 + 1000")
	last=$(jq -r "$JQ_MS"' select(.kind == null and .template == "engagement_goodbye") | ms' \
		"$STANDIN_RECORD" | sort -n | tail -n 1)
	paused=$(sj .paused)
	queued=$(q "SELECT count(*) FROM engagement.message_queue WHERE message_type = 'goodbye' AND status = 'queued'")
	unclaimed=$(q "SELECT count(*) FROM engagement.message_queue WHERE message_type = 'goodbye'
	               AND status = 'queued' AND cardinality(claimed_by) = 0")
	echo "# pause call ${t0}..${t1} ms ($((t1 - t0)) ms, waited for $(cut -d'|' -f3 "$BATS_TEST_TMPDIR/pause.out") claimed); in_progress after it: $wire" >&3
	echo "# goodbye requests: $before before the call, $during during it, $after after it returned, $late more than 1 s after; last arrival $((${last:-$t1} - t1)) ms after the call returned" >&3
	echo "# run: $(jq -c '{claimed, sent, paused, handed_back, requests}' <<<"$output"); goodbyes left queued $queued: $paused handed back paused, $unclaimed never claimed" >&3
	echo "# handed back: $(q "SELECT coalesce(string_agg(r || ' ' || n, ', '), 'none') FROM (SELECT details->>'reason' r, count(*) n FROM engagement.audit_log WHERE event = 'message_handed_back' GROUP BY 1) x")" >&3

	# (no clock in the verdict: after the pause's commit, only the requests
	# already on the wire may still arrive, at most one per slot)
	[ "$after" -le "$conc" ]
	# every review sent once; every goodbye sent or back in the queue, uncharged
	[ "$(status_of weekly_review)" = "sent:1:$n" ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE message_type = 'goodbye' AND status = 'sent' AND attempts = 1")" -eq "$(requests_for engagement_goodbye)" ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE message_type = 'goodbye'
	        AND status = 'queued' AND attempts = 0 AND locked_by IS NULL")" -eq "$queued" ]
	[ "$queued" -gt 0 ]
	[ $((queued + $(requests_for engagement_goodbye))) -eq "$n" ]
	# each left in the queue was handed back by the fence (paused) or never claimed
	[ "$queued" -eq $((paused + unclaimed)) ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log a JOIN engagement.message_queue m ON m.id = a.message_id
	        WHERE a.event = 'message_handed_back' AND a.details->>'reason' = 'paused'
	          AND m.status = 'queued' AND m.message_type = 'goodbye'")" -eq "$paused" ]
	[ "$(sj .handed_back)" -eq "$paused" ]
	[ -z "$(dup_requests)" ]

	[ "$(resume "'type', 'goodbye'")" = 1 ]
	send --rate 0
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq "$queued" ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent' AND attempts = 1")" -eq $((2 * n)) ]
	[ "$(requests)" -eq $((2 * n)) ]
	[ -z "$(dup_requests)" ]
}

@test "claimed before the pause, fenced after it: handed back uncharged, audit message_handed_back with reason paused" {
	# six goodbyes claimed at once; one request at a time, each answered
	# after 1.5 s: the pause commits while the first is on the wire, and the
	# rest, claimed and waiting for their fence, meet it there
	start_standin --slow-ms 1500
	users 1 6 908
	for i in 1 2 3 4 5 6; do msg "$i" goodbye "" "$i"; done >/dev/null
	"$ENG_BIN/queue-send" --db "$CONN" --rate 0 --concurrency 1 --worker-id fenced \
		>"$BATS_TEST_TMPDIR/run.json" 2>"$BATS_TEST_TMPDIR/run.log" &
	pid=$!
	wait_for 60 '[ "$(stats | jq .in_progress)" = 1 ]'
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending' AND locked_by LIKE 'fenced/%'")" -eq 6 ]
	pause "'type', 'goodbye', NULL" >/dev/null
	t1=$(now_ms)
	wait "$pid" && rc=0 || rc=$?
	[ "$rc" -eq 0 ]
	output=$(cat "$BATS_TEST_TMPDIR/run.json")
	echo "# run: $(jq -c '{claimed, sent, paused, handed_back, requests}' <<<"$output")" >&3
	[ "$(sj .claimed)" -eq 6 ]
	sent=$(sj .sent)
	[ "$sent" -ge 1 ]
	[ "$(sj .paused)" -eq $((6 - sent)) ]
	[ "$(sj .paused)" -ge 1 ]
	[ "$(requests)" -eq "$sent" ]
	[ "$(jq -c "$JQ_MS"' select(.kind == null and ms > '"$t1"')' "$STANDIN_RECORD" | grep -c . || true)" -eq 0 ]
	# each one handed back: queued, uncharged, unlocked, once claimed by this run
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'queued' AND attempts = 0
	        AND locked_by IS NULL AND claimed_by[1] LIKE 'fenced/%'")" -eq $((6 - sent)) ]
	run q "SELECT string_agg(DISTINCT a.source || '/' || (a.details->>'reason') || '/' || (a.details->>'attempts'), ',')
	       || ' ' || count(*) FROM engagement.audit_log a JOIN engagement.message_queue m ON m.id = a.message_id
	       WHERE a.event = 'message_handed_back' AND m.status = 'queued'"
	[ "$output" = "queue-send/paused/0 $((6 - sent))" ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log WHERE event = 'message_handed_back'")" -eq $((6 - sent)) ]

	# and the claim skips them while the pause lasts
	send --rate 0
	[ "$(sj .claimed)" -eq 0 ]
	[ "$(resume "'type', 'goodbye'")" = 1 ]
	stop_standin
	start_standin
	send --rate 0
	[ "$(sj .sent)" -eq $((6 - sent)) ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent' AND attempts = 1")" -eq 6 ]
}
