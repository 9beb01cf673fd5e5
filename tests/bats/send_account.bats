#!/usr/bin/env bats
# shellcheck disable=SC2016 # jq filters are single-quoted
# queue-send and WhatsApp's rules for the business (issue 23): templates as
# Meta reports them, the first 132015, the messaging limit, the pair rate.
# Against the real test cluster and the Cloud API stand-in; the account's
# changes are applied with engagement.apply_account_changes, the function
# engagement-webhook calls (webhook.bats delivers them signed).

load helpers
load send_helpers

NOW=2026-11-22T15:00:00Z

setup() {
	new_db
	start_standin
}

teardown() {
	stop_standin
	drop_dbs
}

# change FIELD VALUE [AGO_S]: an account change dated AGO_S (default 60) seconds ago.
change() {
	local t
	t=$(q "SELECT extract(epoch FROM now())::bigint - ${3:-60}")
	q "SELECT outcome FROM engagement.apply_account_changes(
	     jsonb_build_array(jsonb_build_object('field', '$1', 'time', $t, 'value', '$2'::jsonb)),
	     gen_random_uuid())"
}

# tpl_event EVENT NAME [AGO_S]: a template status update (language en).
tpl_event() {
	change message_template_status_update "{\"event\": \"$1\", \"message_template_name\": \"$2\",
		\"message_template_language\": \"en\", \"reason\": \"NONE\"}" "${3:-60}"
}

count() { q "SELECT count(*) FROM engagement.$1 ${2:+WHERE $2}"; }

# of TEMPLATE: requests the stand-in saw for that template.
of() { requests "select(.template == \"$1\")"; }

@test "a PAUSED template: none of its messages is requested, others go; APPROVED: they go" {
	for i in 1 2 3; do user "$i"; done
	a=$(msg 1 weekly_review); b=$(msg 2 weekly_review); c=$(msg 3 goodbye)
	[ "$(tpl_event PAUSED engagement_weekly_review)" = applied ]
	send
	[ "$status" -eq 0 ]
	[ "$(of engagement_weekly_review)" -eq 0 ]
	[ "$(of engagement_goodbye)" -eq 1 ]
	[ "$(row "$a" "status || ' ' || attempts")" = "queued 0" ]
	[ "$(row "$b" "status || ' ' || attempts")" = "queued 0" ]
	[ "$(row "$c" status)" = sent ]
	[ "$(tpl_event APPROVED engagement_weekly_review 30)" = applied ]
	send
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 2 ]
	[ "$(of engagement_weekly_review)" -eq 2 ]
}

@test "a template reported but not approved (PENDING, FLAGGED) is held, uncharged; one never reported is sent" {
	user 1; user 2
	a=$(msg 1 weekly_review); b=$(msg 2 goodbye)
	q "UPDATE engagement.message_templates SET provider_status = 'PENDING'
	   WHERE template_key = 'weekly_review'" >/dev/null
	send
	[ "$status" -eq 0 ]
	[ "$(requests)" -eq 1 ]
	[ "$(row "$a" "status || ' ' || attempts || ' ' || (next_attempt_at > '$NOW')")" = "queued 0 true" ]
	[ "$(row "$b" status)" = sent ]
}

# standin POST PATH JSON: a control of the stand-in (it must answer 200).
standin() {
	curl -sS --fail-with-body --max-time 10 -H 'Content-Type: application/json' \
		--data-binary "$2" "$WHATSAPP_API_URL/_standin/$1" >/dev/null
}

# asked TEMPLATE: requests the stand-in counted for TEMPLATE (language en).
asked() {
	curl -sS --max-time 10 "$WHATSAPP_API_URL/_standin/account" |
		jq -r --arg t "$1" '.templates[$t].en.requests // 0'
}

@test "the first 132015 pauses the template: six queued, concurrency 1, one request; the rest wait uncharged" {
	# Meta paused it and no webhook said so: the stand-in answers 132015
	standin template '{"name": "engagement_weekly_review", "status": "PAUSED"}'
	for i in 1 2 3 4 5 6; do user "$i"; done
	for i in 1 2 3 4 5 6; do msg "$i" weekly_review >/dev/null; done
	user 7; g=$(msg 7 goodbye)
	send --concurrency 1
	[ "$status" -eq 0 ]
	[ "$(of engagement_weekly_review)" -eq 1 ]
	[ "$(asked engagement_weekly_review)" -eq 1 ]
	[ "$(row "$g" status)" = sent ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue
	        WHERE message_type = 'weekly_review' AND status = 'queued' AND attempts = 0")" -eq 6 ]
	[ "$(q "SELECT count(*) FROM engagement.send_pauses WHERE scope = 'template'
	        AND value = 'weekly_review' AND source = 'meta' AND resumed_at IS NULL
	        AND until > now() + interval '2 hours 59 minutes'")" -eq 1 ]
	[ "$(log_events template_paused | jq -r .template_key)" = weekly_review ]
	# a second run asks nothing of it while the pause lasts
	send --concurrency 1
	[ "$(of engagement_weekly_review)" -eq 1 ]
}

@test "a template DISABLED between claim and request: failed template_disabled at the fence, uncharged" {
	user 1
	a=$(msg 1 weekly_review)
	# as if the webhook's DISABLED committed after the claim: the row only
	q "UPDATE engagement.message_templates SET provider_status = 'DISABLED'
	   WHERE template_key = 'weekly_review'" >/dev/null
	send
	[ "$status" -eq 0 ]
	[ "$(requests)" -eq 0 ]
	[ "$(row "$a" "status || ' ' || attempts || ' ' || last_error_code")" = "failed 0 template_disabled" ]
}

@test "TIER_250: 250 people a day at most, goodbyes first, people already reached not counted again, the rest wait uncharged" {
	[ "$(change phone_number_quality_update '{"event": "DOWNGRADE", "current_limit": "TIER_250"}')" = applied ]
	# and Meta enforces it: past 250 people, 131049
	standin limits '{"messaging_limit": 250}'

	# three people reached by an earlier run
	for i in 1 2 3; do user "$i"; msg "$i" goodbye >/dev/null; done
	send --pair-interval 0
	[ "$(sj .sent)" -eq 3 ]
	[ "$(count limit_reached)" -eq 3 ]
	# 3 of them again, and 270 new: 250 reviews queued first, then 20 goodbyes
	for i in 1 2 3; do msg "$i" weekly_review >/dev/null; done
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT format('00000000-0000-4000-8000-%s', lpad(i::text, 12, '0'))::uuid,
	          format('+55119%s000', lpad(i::text, 5, '0'))
	   FROM generate_series(1001, 1270) i;
	   INSERT INTO engagement.user_preferences (user_id)
	   SELECT format('00000000-0000-4000-8000-%s', lpad(i::text, 12, '0'))::uuid FROM generate_series(1001, 1270) i;
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
	     idempotency_key, next_attempt_at)
	   SELECT format('00000000-0000-4000-8000-%s', lpad(i::text, 12, '0'))::uuid,
	          CASE WHEN i > 1250 THEN 'goodbye' ELSE 'weekly_review' END,
	          CASE WHEN i > 1250 THEN 'goodbye' ELSE 'weekly_review' END,
	          CASE WHEN i > 1250 THEN '{}' ELSE '{\"activity_count\": 4}' END::jsonb,
	          'k' || i, timestamptz '2026-11-22T13:00:00Z' + make_interval(secs => i)
	   FROM generate_series(1001, 1270) i" >/dev/null
	send --pair-interval 0
	[ "$status" -eq 0 ]
	# 247 new people (3 of the 250 were used) and the 3 already reached
	[ "$(requests)" -eq $((3 + 250)) ]
	[ "$(count limit_reached "reached_at > now() - interval '24 hours'")" -eq 250 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE message_type = 'goodbye' AND status = 'sent'")" -eq 23 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue m JOIN engagement.users u ON u.id = m.user_id
	        WHERE u.phone_e164 < '+5511901001' AND m.status = 'sent'")" -eq 6 ]
	[ "$(q "SELECT count(*) || ' ' || sum(attempts) || ' ' || bool_and(next_attempt_at > '$NOW')
	        FROM engagement.message_queue WHERE status = 'queued'")" = "23 0 true" ]
	# never asked past the limit: Meta refused nothing
	[ "$(requests 'select(.status != 200)')" -eq 0 ]
	[ "$(curl -sS "$WHATSAPP_API_URL/_standin/account" | jq -c '[.limit_used, .refusals]')" = '[250,{}]' ]
}

@test "the pair rate: two messages to one person in one run, one request; the other waits --pair-interval" {
	user 1; user 2
	standin limits '{"pair_interval_ms": 6000}'   # Meta's 131056
	msg 1 goodbye >/dev/null; msg 1 weekly_review >/dev/null; c=$(msg 2 goodbye)
	# (a minute, so that no test timing comes near it)
	eng queue-send --db "$CONN" --pair-interval 60s
	[ "$status" -eq 0 ]
	[ "$(requests)" -eq 2 ]
	[ "$(requests 'select(.error_code == 131056)')" -eq 0 ]
	[ "$(row "$c" status)" = sent ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE user_id = '$(uid 1)' AND status = 'sent'")" -eq 1 ]
	waited=$(q "SELECT id FROM engagement.message_queue WHERE user_id = '$(uid 1)' AND status = 'queued'")
	sent=$(q "SELECT id FROM engagement.message_queue WHERE user_id = '$(uid 1)' AND status = 'sent'")
	[ "$(q "SELECT w.next_attempt_at - s.sent_at BETWEEN interval '50 seconds' AND interval '61 seconds'
	          AND w.attempts = 0
	        FROM engagement.message_queue w, engagement.message_queue s
	        WHERE w.id = $waited AND s.id = $sent")" = t ]
	# another run within the interval: the fence holds it (verdict pair)
	q "UPDATE engagement.message_queue SET next_attempt_at = now() - interval '1 second' WHERE id = $waited" >/dev/null
	eng queue-send --db "$CONN" --pair-interval 60s
	[ "$status" -eq 0 ]
	[ "$(sj .deferred)" -eq 1 ]
	[ "$(requests)" -eq 2 ]
	[ "$(row "$waited" "status || ' ' || attempts")" = "queued 0" ]
	# --pair-interval 0: no spacing (Meta's own rule off too, for the test)
	standin limits '{"pair_interval_ms": 0}'
	q "UPDATE engagement.message_queue SET next_attempt_at = now() - interval '1 second' WHERE id = $waited" >/dev/null
	eng queue-send --db "$CONN" --pair-interval 0
	[ "$(requests)" -eq 3 ]
	[ "$(row "$waited" status)" = sent ]
}

@test "--pair-interval: a bad value is a usage error (64), nothing claimed" {
	user 1; a=$(msg 1 goodbye)
	for bad in -1 abc 2h 6x; do
		eng queue-send --db "$CONN" --pair-interval "$bad"
		[ "$status" -eq 64 ]
		[ "$(echo "$stderr" | grep -c .)" -eq 1 ]
	done
	[ "$(row "$a" "status || ' ' || attempts")" = "queued 0" ]
	[ "$(requests)" -eq 0 ]
}
