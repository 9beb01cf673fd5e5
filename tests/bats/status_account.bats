#!/usr/bin/env bats
# engagement-status: the pauses in force and WhatsApp's account rules (the
# templates as Meta reports them, the messaging limit, pricing), against the
# real test cluster.

load helpers
load status_helpers

setup() {
	new_db
}

teardown() {
	drop_dbs
}

# ---- bad input -------------------------------------------------------------------

@test "--max-pause-age, --max-limit-use or --format with a bad value: exit 64, one line, nothing read" {
	for args in "--max-pause-age abc" "--max-pause-age -1h" "--max-pause-age 5parsecs" \
		"--max-pause-age 0" "--max-limit-use 101" "--max-limit-use -1" "--max-limit-use x" \
		"--format html5" "--format xml" "--html"; do
		# shellcheck disable=SC2086
		st $args
		[ "$status" -eq 64 ] || { echo "args: $args -> $status"; return 1; }
		[ "$(stderr_lines)" -eq 1 ]
		[ "$(jq -r .event <<<"$stderr")" = usage_error ]
		[ "$(sj .status)" = failed ]
	done
}

# ---- pauses ------------------------------------------------------------------------

@test "no pause: an empty list, every scope and source zero, no age" {
	st
	[ "$status" -eq 0 ]
	[ "$(sjc .pauses)" = '[]' ]
	prom
	[ "$(grep -c '^engagement_send_pauses_active{' <<<"$output")" = 6 ]
	[ -z "$(awk '/^engagement_send_pauses_active\{/ && $2 != 0' <<<"$output")" ]
	[ "$(metric engagement_send_pause_oldest_age_seconds)" = 0 ]
}

@test "pauses in force: listed oldest first, the reason masked; resumed and expired ones left out" {
	pause type weekly_review '2 hours'
	pause template goodbye '30 minutes' meta
	q "UPDATE engagement.send_pauses SET until = now() + interval '3 hours' WHERE source = 'meta';
	   INSERT INTO engagement.send_pauses (scope, reason, paused_at, resumed_at, resumed_by)
	     VALUES ('all', 'resumed', now() - interval '3 hours', now() - interval '1 hour', 'ops');
	   INSERT INTO engagement.send_pauses (scope, value, reason, paused_at, until)
	     VALUES ('type', 'goodbye', 'expired', now() - interval '5 hours', now() - interval '1 hour')" >/dev/null
	st
	[ "$status" -eq 0 ]
	[ "$(sj '.pauses | length')" = 2 ]
	[ "$(sjc '[.pauses[] | [.scope, .value, .source]]')" = '[["type","weekly_review","operator"],["template","goodbye","meta"]]' ]
	[ "$(sj '.pauses[0].until')" = null ]
	[[ "$(sj '.pauses[1].until')" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$ ]]
	[[ "$(sj '.pauses[0].paused_at')" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$ ]]
	[ "$(sj '.pauses[0].age_seconds | . >= 7200 and . < 7300')" = true ]
	[ "$(sj '.pauses[0].paused_by')" = postgres ]
	# a reason is words a person wrote: masked like a log value
	[[ "$output" != *5511987654321* ]]
	[[ "$(sj '.pauses[0].reason')" == "test: "*"asked" ]]
	prom
	[ "$(metric 'engagement_send_pauses_active{scope="type",source="operator"}')" = 1 ]
	[ "$(metric 'engagement_send_pauses_active{scope="template",source="meta"}')" = 1 ]
	[ "$(metric 'engagement_send_pauses_active{scope="all",source="operator"}')" = 0 ]
	age=$(metric engagement_send_pause_oldest_age_seconds)
	[ "${age%.*}" -ge 7200 ] && [ "${age%.*}" -lt 7300 ]
}

@test "--check: a pause older than --max-pause-age (24h) warns; a longer threshold does not" {
	fresh_jobs
	pause all '' '25 hours'
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = pause_too_old ]
	[ "$(log_events check_failed | jq -r .unit)" = "seconds since the pause began" ]
	[ "$(sj '.checks[] | select(.check == "pause_too_old") | .threshold')" = 86400 ]
	st --check --max-pause-age 2d
	[ "$status" -eq 0 ]
	[ -z "$(log_events check_failed)" ]
	st --check --max-pause-age 1h
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = pause_too_old ]
}

# ---- templates ------------------------------------------------------------------

@test "templates: by Meta's status and quality, unreported where Meta never said, each row listed" {
	q "UPDATE engagement.message_templates SET provider_status = 'PAUSED', status_changed_at = now()
	     WHERE template_key = 'goodbye' AND locale = 'en';
	   UPDATE engagement.message_templates SET provider_status = 'APPROVED', quality = 'GREEN'
	     WHERE template_key = 'goodbye' AND locale <> 'en';
	   UPDATE engagement.message_templates SET provider_status = 'IN_APPEAL', quality = 'RED',
	     quality_changed_at = now() WHERE template_key = 'weekly_review' AND locale = 'es'" >/dev/null
	st
	[ "$status" -eq 0 ]
	[ "$(sjc .templates.by_status)" = '{"APPROVED":2,"DISABLED":0,"IN_APPEAL":1,"PAUSED":1,"PENDING":0,"REJECTED":0,"unreported":2}' ]
	[ "$(sjc .templates.by_quality)" = '{"GREEN":2,"RED":1,"UNKNOWN":0,"YELLOW":0,"unreported":3}' ]
	[ "$(sj '.templates.list | length')" = 6 ]
	[ "$(sjc '.templates.list[] | select(.template_key == "goodbye" and .locale == "en") | [.provider_status, .quality, .quality_changed_at]')" = '["PAUSED",null,null]' ]
	[[ "$(sj '.templates.list[] | select(.template_key == "goodbye" and .locale == "en") | .status_changed_at')" =~ Z$ ]]
	prom
	[ "$(metric 'engagement_templates_by_status{provider_status="PAUSED"}')" = 1 ]
	[ "$(metric 'engagement_templates_by_status{provider_status="IN_APPEAL"}')" = 1 ]
	[ "$(metric 'engagement_templates_by_status{provider_status="REJECTED"}')" = 0 ]
	[ "$(metric 'engagement_templates_by_quality{quality="RED"}')" = 1 ]
	[ "$(metric 'engagement_templates_by_quality{quality="unreported"}')" = 3 ]
}

@test "--check: a template PAUSED and one of quality RED, a line each" {
	fresh_jobs
	q "UPDATE engagement.message_templates SET provider_status = 'PAUSED' WHERE template_key = 'goodbye';
	   UPDATE engagement.message_templates SET quality = 'RED' WHERE template_key = 'weekly_review' AND locale = 'en'" >/dev/null
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = "template_paused template_quality_red" ]
	[ "$(log_events check_failed | jq -r 'select(.check == "template_paused") | .value')" = 3 ]
	[ "$(log_events check_failed | jq -r 'select(.check == "template_quality_red") | .value')" = 1 ]
	prom
	[ "$(metric 'engagement_check_failed{check="template_paused"}')" = 1 ]
	q "UPDATE engagement.message_templates SET provider_status = 'APPROVED', quality = 'YELLOW'" >/dev/null
	st --check
	[ "$status" -eq 0 ]
}

# ---- the messaging limit ---------------------------------------------------------

@test "the messaging limit not known: null, nothing used, the tier unknown" {
	st
	[ "$status" -eq 0 ]
	[ "$(sjc .messaging_limit)" = '{"changed_at":null,"max_recipients_24h":null,"reached_24h":0,"source":null,"tier":null,"unlimited":false,"used_percent":null}' ]
	prom
	[ "$(metric 'engagement_messaging_limit_recipients{tier="unknown"}')" = 0 ]
	[ "$(metric engagement_messaging_limit_used_ratio)" = 0 ]
}

@test "the messaging limit: the tier, the people reached in the last 24 hours (not before), the share used" {
	limit_row TIER_250 250
	reached 3 '1 hour'
	reached 2 '25 hours' 10
	st
	[ "$status" -eq 0 ]
	[ "$(sjc '.messaging_limit | [.tier, .max_recipients_24h, .unlimited, .source, .reached_24h, .used_percent]')" = '["TIER_250",250,false,"operator",3,1.2]' ]
	prom
	[ "$(metric 'engagement_messaging_limit_recipients{tier="TIER_250"}')" = 250 ]
	[ "$(metric engagement_messaging_limit_reached_24h)" = 3 ]
	[ "$(metric engagement_messaging_limit_used_ratio)" = 0.012 ]
}

@test "the messaging limit unlimited: no share, never crossed" {
	limit_row TIER_UNLIMITED NULL
	reached 5
	st --check --max-limit-use 0
	[ "$(sjc '.messaging_limit | [.tier, .max_recipients_24h, .unlimited, .reached_24h, .used_percent]')" = '["TIER_UNLIMITED",null,true,5,null]' ]
	[[ "$(failed_checks)" != *messaging_limit_used* ]]
}

@test "--check: the messaging limit more than --max-limit-use (80%) used" {
	fresh_jobs
	limit_row TIER_250 250
	reached 201
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = messaging_limit_used ]
	[ "$(log_events check_failed | jq -r .value)" = 80.4 ]
	st --check --max-limit-use 90
	[ "$status" -eq 0 ]
	prom
	[ "$(metric 'engagement_check_failed{check="messaging_limit_used"}')" = 1 ]
}

# ---- pricing ---------------------------------------------------------------------

@test "pricing: sent and billable by category over the last day, from the statuses' prices; not error codes" {
	user 1
	for i in 1 2 3 4; do
		q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
		     idempotency_key, status, provider_message_id, sent_at)
		   VALUES ('$(uid 1)', 'goodbye', 'goodbye', '{}', 'k:p$i', 'sent', 'wamid.p$i', now())" >/dev/null
	done
	# p1 priced twice (a status, then a later one): counted once; older
	# counts left out of the day; record_pricing (receivers built before
	# 0021) counts the same way
	q "SELECT engagement.apply_delivery_statuses('[
	     {\"wamid\": \"wamid.p1\", \"status\": \"delivered\", \"at\": \"2026-01-01T00:00:00Z\", \"category\": \"marketing\", \"billable\": true},
	     {\"wamid\": \"wamid.p2\", \"status\": \"delivered\", \"at\": \"2026-01-01T00:00:00Z\", \"category\": \"marketing\", \"billable\": false},
	     {\"wamid\": \"wamid.p3\", \"status\": \"delivered\", \"at\": \"2026-01-01T00:00:00Z\", \"category\": \"utility\", \"billable\": true}]', NULL);
	   SELECT engagement.apply_delivery_statuses('[
	     {\"wamid\": \"wamid.p1\", \"status\": \"read\", \"at\": \"2026-01-01T00:01:00Z\", \"category\": \"marketing\", \"billable\": true}]', NULL);
	   SELECT engagement.record_pricing('[
	     {\"wamid\": \"wamid.p4\", \"category\": \"marketing_lite\", \"billable\": true}]', NULL);
	   INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('minute', now() - interval '25 hours'), 'priced', 'marketing', 50),
	     (date_trunc('minute', now() - interval '25 hours'), 'billable', 'marketing', 50)" >/dev/null
	st
	[ "$status" -eq 0 ]
	[ "$(sjc .pricing_last_day)" = '{"authentication":{"billable":0,"sent":0},"marketing":{"billable":1,"sent":2},"marketing_lite":{"billable":1,"sent":1},"service":{"billable":0,"sent":0},"utility":{"billable":1,"sent":1}}' ]
	prom
	[ "$(metric 'engagement_priced_messages{category="marketing"}')" = 2 ]
	[ "$(metric 'engagement_billable_messages{category="marketing"}')" = 1 ]
	[ "$(metric 'engagement_priced_messages{category="marketing_lite"}')" = 1 ]
	[ "$(metric 'engagement_billable_messages{category="authentication"}')" = 0 ]
	# pricing is not an error code
	[ -z "$(grep -E '^engagement_message_errors\{outcome="(priced|billable)"' <<<"$output")" ]
}

@test "everything at once passes promtool check metrics" {
	pause all '' '1 hour'
	limit_row TIER_2K 2000
	reached 4
	q "UPDATE engagement.message_templates SET provider_status = 'PAUSED', quality = 'RED';
	   INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('minute', now()), 'priced', 'utility', 3)" >/dev/null
	prom
	[ "$status" -eq 0 ]
	f=$(mktemp)
	printf '%s\n' "$output" >"$f"
	run promtool_check "$f"
	rm -f "$f"
	[ "$status" -eq 0 ]
}

@test "--format html: the page on stdout instead of the summary, every figure readable by its role" {
	pause type goodbye '1 hour'
	limit_row TIER_250 250
	reached 2
	run --separate-stderr "$ENG_AS_ROLES/engagement-status" --db "$CONN" --format html
	[ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
	[[ "$output" == "<!DOCTYPE html>"* ]]
	run --separate-stderr "$ENG_AS_ROLES/engagement-status" --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(jq -r '.pauses | length' <<<"$output")" = 1 ]
	[ "$(jq -r '.messaging_limit.reached_24h' <<<"$output")" = 2 ]
}
