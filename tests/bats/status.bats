#!/usr/bin/env bats
# engagement-status against the real test cluster (and the Cloud API
# stand-in, for outcomes that queue-send really wrote).

load helpers
load status_helpers

setup() {
	new_db
	TF_DIR=
}

teardown() {
	stop_standin
	if [ -n "$TF_DIR" ]; then
		chmod 755 "$TF_DIR" 2>/dev/null || true
		rm -rf "$TF_DIR"
	fi
	drop_dbs
}

ALL_FAMILIES="engagement_billable_messages
engagement_check_failed
engagement_delivery_funnel
engagement_job_last_duration_seconds
engagement_job_last_exit_code
engagement_job_last_run_timestamp_seconds
engagement_job_last_success_timestamp_seconds
engagement_job_running
engagement_message_errors
engagement_messages
engagement_messaging_limit_reached_24h
engagement_messaging_limit_recipients
engagement_messaging_limit_used_ratio
engagement_outbox_oldest_unpublished_seconds
engagement_outbox_unpublished_events
engagement_preference_changes
engagement_priced_messages
engagement_queue_expired_leases
engagement_queue_finished_messages_estimate
engagement_queue_messages
engagement_queue_oldest_due_seconds
engagement_send_failure_ratio
engagement_send_pause_oldest_age_seconds
engagement_send_pauses_active
engagement_status_duration_seconds
engagement_status_last_success_timestamp_seconds
engagement_templates_by_quality
engagement_templates_by_status
engagement_users
engagement_users_estimated
engagement_webhook_inbox_oldest_pending_seconds
engagement_webhook_inbox_pending"

# ---- bad input -----------------------------------------------------------------

@test "a database without the schema: exit 78, says to migrate" {
	new_db empty
	st
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *"migrate up"* ]]
}

@test "the schema, but older than the program's: exit 78" {
	q "DELETE FROM engagement.schema_migrations WHERE version = (SELECT max(version) FROM engagement.schema_migrations)" >/dev/null
	st
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *"migrate up"* ]]
}

@test "a threshold flag with a bad value: exit 64, one usage_error line, nothing read" {
	local bad
	for bad in "--max-daily-age abc" "--max-daily-age 0" "--max-daily-age 10x" "--max-daily-age -5h" \
		"--max-daily-age 366d" "--max-weekly-age 1week" "--max-due-age 500ms" "--max-due-age ''" \
		"--max-expired-leases -1" "--max-expired-leases 1.5" "--max-expired-leases many" \
		"--max-outbox-age 5m" "--max-failure-rate 101" "--max-failure-rate -1" \
		"--max-failure-rate five" "--min-sends 0" "--min-sends -3" "--max-inbox-age 2hours" \
		"--format xml" "--textfile ''" "--check=yes" "--bogus"; do
		eval "st $bad"
		[ "$status" -eq 64 ] || { echo "$bad: exit $status" >&2; return 1; }
		[ "$(stderr_lines)" -eq 1 ] || { echo "$bad: $stderr" >&2; return 1; }
		[ "$(log_events usage_error | jq -r .event)" = usage_error ]
		[ "$(sj .status)" = failed ]
	done
	# and the good spellings are taken
	st --check --max-daily-age 26h --max-weekly-age 8d --max-due-age 15min --max-expired-leases 0 \
		--max-outbox-age 300s --max-failure-rate 2.5 --min-sends 1 --max-inbox-age 120000ms
	[ "$status" -eq 1 ]
	[ "$(sj '.checks[] | select(.check == "send_failure_rate") | .threshold')" = 2.5 ]
	[ "$(sj '.checks[] | select(.check == "webhook_inbox_behind") | .threshold')" = 120 ]
}

@test "an unwritable textfile folder: exit 73, the previous file kept, nothing left behind" {
	TF_DIR=$(mktemp -d /tmp/eng-status-tf.XXXXXX)
	st --textfile "$TF_DIR/engagement.prom"
	[ "$status" -eq 0 ]
	cp "$TF_DIR/engagement.prom" "$BATS_TEST_TMPDIR/before"
	chmod 555 "$TF_DIR"
	fresh_jobs # the figures change: a rewrite would show
	# root writes anywhere: drop the capabilities that let it
	local as=()
	[ "$(id -u)" = 0 ] && as=(setpriv --bounding-set=-dac_override,-dac_read_search --)
	run --separate-stderr "${as[@]}" "$ENG_BIN/engagement-status" --db "$CONN" --textfile "$TF_DIR/engagement.prom"
	check_log_lines "$stderr"
	check_one_object "$output"
	[ "$status" -eq 73 ]
	[[ "$(sj .error)" == *"Permission denied"* ]]
	[[ "$(sj .error)" == *"previous file is kept"* ]]
	[ "$(log_events run_failed | jq -r .error_class)" = cannot_create ]
	cmp "$TF_DIR/engagement.prom" "$BATS_TEST_TMPDIR/before"
	[ "$(ls -A "$TF_DIR")" = engagement.prom ]
}

@test "a textfile in a missing folder, or a path that is a folder: exit 73, nothing left behind" {
	TF_DIR=$(mktemp -d /tmp/eng-status-tf.XXXXXX)
	st --textfile "$TF_DIR/missing/engagement.prom"
	[ "$status" -eq 73 ]
	[[ "$(sj .error)" == *"No such file"* ]]
	mkdir "$TF_DIR/engagement.prom"
	st --textfile "$TF_DIR/engagement.prom"
	[ "$status" -eq 73 ]
	[ "$(ls -A "$TF_DIR")" = engagement.prom ]
	[ -z "$(ls -A "$TF_DIR/engagement.prom")" ]
}

@test "the database unreachable: exit 75, the previous textfile untouched" {
	TF_DIR=$(mktemp -d /tmp/eng-status-tf.XXXXXX)
	st --textfile "$TF_DIR/engagement.prom"
	[ "$status" -eq 0 ]
	cp -p "$TF_DIR/engagement.prom" "$BATS_TEST_TMPDIR/before"
	ino=$(stat -c %i "$TF_DIR/engagement.prom")
	eng engagement-status --db 'host=/nonexistent' --textfile "$TF_DIR/engagement.prom" --check
	[ "$status" -eq 75 ]
	cmp "$TF_DIR/engagement.prom" "$BATS_TEST_TMPDIR/before"
	[ "$(stat -c %i "$TF_DIR/engagement.prom")" = "$ino" ]
	[ "$(ls -A "$TF_DIR")" = engagement.prom ]
	# with --format prometheus too: no exposition, the summary says why
	run --separate-stderr "$ENG_BIN/engagement-status" --db 'host=/nonexistent' --format prometheus \
		--textfile "$TF_DIR/engagement.prom"
	[ "$status" -eq 75 ]
	[ "$(sj .exit_code)" = 75 ]
	cmp "$TF_DIR/engagement.prom" "$BATS_TEST_TMPDIR/before"
}

# ---- an empty database ---------------------------------------------------------

@test "an empty database: every metric present and zero, with HELP and TYPE" {
	prom
	[ "$status" -eq 0 ]
	run families "$output"
	[ "$status" -eq 0 ]
	fams=$output
	# the exact set of families, each a gauge
	[ "$(cut -d' ' -f1 <<<"$fams" | sort)" = "$ALL_FAMILIES" ]
	[ -z "$(awk '$2 != "gauge"' <<<"$fams")" ]
	# each has samples, but the errors by code (a series per code seen) and
	# the preference changes (their own test below)
	[ -z "$(awk '$3 == 0 && $1 != "engagement_message_errors" && $1 != "engagement_preference_changes"' <<<"$fams")" ]
	prom
	# every sample zero, but: exit codes -1 (no run), the two job checks 1
	# (never ran), the six template rows Meta never reported on, and
	# engagement-status's own duration and timestamp
	nonzero=$(awk '!/^#/ && $2 != 0 { print $1 }' <<<"$output" | sort | paste -sd' ' -)
	expect=$(printf '%s\n' 'engagement_check_failed{check="daily_job_stale"}' \
		'engagement_check_failed{check="weekly_job_stale"}' \
		'engagement_job_last_exit_code{program="engagement-daily"}' \
		'engagement_job_last_exit_code{program="engagement-weekly"}' \
		'engagement_job_last_exit_code{program="outbox-relay"}' \
		'engagement_job_last_exit_code{program="queue-send"}' \
		'engagement_templates_by_quality{quality="unreported"}' \
		'engagement_templates_by_status{provider_status="unreported"}' \
		engagement_status_duration_seconds engagement_status_last_success_timestamp_seconds |
		sort | paste -sd' ' -)
	# the duration may round to 0
	nonzero=${nonzero/engagement_status_duration_seconds /}
	expect=${expect/engagement_status_duration_seconds /}
	[ "$nonzero" = "$expect" ]
	[ "$(metric 'engagement_job_last_exit_code{program="queue-send"}')" = -1 ]
	[ "$(metric 'engagement_users{state="dormant"}')" = 0 ]
	[ "$(metric 'engagement_queue_messages{status="queued",message_type="goodbye"}')" = 0 ]
	[ "$(metric 'engagement_queue_messages{status="sending",message_type="weekly_review"}')" = 0 ]
	[ "$(metric 'engagement_messages{outcome="failed",window="1h"}')" = 0 ]
	[ "$(metric 'engagement_delivery_funnel{stage="read"}')" = 0 ]
	now=$(q "SELECT extract(epoch FROM now())::bigint")
	ts=$(metric engagement_status_last_success_timestamp_seconds)
	# the time of that run: not after now, and recent (loosely: a loaded
	# machine is slow)
	[ $((now - ts)) -ge 0 ] && [ $((now - ts)) -le 60 ]
	# the JSON summary: the same zeros
	st
	[ "$status" -eq 0 ]
	[ "$(sj '[.queue.queued[], .queue.sending[], .queue.finished_estimate[], .queue.oldest_due_seconds,
	         .queue.expired_leases, .last_hour[], .last_day[], .outbox[], .webhook_inbox[],
	         (.users | del(.estimated))[]] | map(select(. != 0)) | length')" = 0 ]
	[ "$(sj '.users.estimated')" = false ]
	[ "$(sj '[.jobs[] | select(.last_status == null and .last_success == 0 and .success_age_seconds == -1)] | length')" = 4 ]
}

@test "an empty database: opt-outs and opt-ins by channel are present, as zero" {
	prom
	[ "$status" -eq 0 ]
	local change source
	for change in opt_out opt_in; do
		for source in whatsapp web cli api; do
			v=$(metric "engagement_preference_changes{change=\"$change\",source=\"$source\"}") || {
				echo "no sample engagement_preference_changes{change=\"$change\",source=\"$source\"}" >&2
				return 1
			}
			[ "$v" = 0 ]
		done
	done
}

@test "an empty database: --check reports the jobs that never ran, exit 1" {
	st --check
	[ "$status" -eq 1 ]
	[ "$(sj .status)" = partial ]
	[ "$(failed_checks)" = "daily_job_stale weekly_job_stale" ]
	[ "$(log_events check_failed | jq -r .value | sort -u)" = never ]
	[ "$(log_events check_failed | jq -r 'select(.check == "daily_job_stale") | .threshold')" = 93600 ]
	[ "$(log_events check_failed | jq -r 'select(.check == "weekly_job_stale") | .threshold')" = 691200 ]
	[ "$(log_events check_failed | jq -r .level | sort -u)" = warn ]
	[ "$(sj '[.checks[] | select(.crossed)] | map(.check) | join(" ")')" = "daily_job_stale weekly_job_stale" ]
	[ "$(sj '.checks[] | select(.check == "daily_job_stale") | .value')" = null ]
	# without --check the same figures, exit 0 and no check_failed line
	st
	[ "$status" -eq 0 ]
	[ -z "$(log_events check_failed)" ]
	[ "$(sj '[.checks[] | select(.crossed)] | length')" = 2 ]
}

# ---- figures ---------------------------------------------------------------------

@test "the queue: by status and type, the oldest due message, expired leases" {
	user 1; user 2; user 3
	msg 1 goodbye queued "now() - interval '20 minutes'"
	msg 2 goodbye queued "now() - interval '1 minute'"
	msg 3 goodbye queued "now() + interval '2 hours'"   # not due
	msg 1 weekly_review queued "now() - interval '5 minutes'"
	msg 2 weekly_review sending "now() - interval '30 minutes'" "now() + interval '1 hour'"
	msg 3 goodbye sending "now() - interval '30 minutes'" "now() - interval '10 seconds'"
	msg 3 weekly_review sending "now() - interval '30 minutes'" "now() - interval '2 minutes'"
	msg 1 custom_nudge queued "now() - interval '1 minute'"   # a type with no template
	for i in $(seq 1 10); do msg 1 goodbye sent "now() - interval '1 day'"; done
	msg 2 goodbye failed "now() - interval '1 day'"; msg 2 goodbye failed "now() - interval '1 day'"
	msg 2 goodbye blocked "now() - interval '1 day'"; msg 3 goodbye blocked "now() - interval '1 day'"
	q "ANALYZE engagement.message_queue" >/dev/null
	st
	[ "$status" -eq 0 ]
	[ "$(sjc .queue.queued)" = '{"custom_nudge":1,"goodbye":3,"weekly_review":1}' ]
	[ "$(sjc .queue.sending)" = '{"custom_nudge":0,"goodbye":1,"weekly_review":2}' ]
	[ "$(sj '.queue.oldest_due_seconds >= 1199 and .queue.oldest_due_seconds < 1260')" = true ]
	[ "$(sj .queue.expired_leases)" = 2 ]
	# finished ones: the planner's estimate (its most common values), exact
	# on a table this small for a status seen more than once
	[ "$(sjc .queue.finished_estimate)" = '{"blocked":2,"cancelled":0,"failed":2,"sent":10}' ]
	prom
	[ "$(metric 'engagement_queue_messages{status="queued",message_type="goodbye"}')" = 3 ]
	[ "$(metric 'engagement_queue_messages{status="queued",message_type="custom_nudge"}')" = 1 ]
	[ "$(metric 'engagement_queue_messages{status="sending",message_type="weekly_review"}')" = 2 ]
	[ "$(metric engagement_queue_expired_leases)" = 2 ]
	[ "$(metric 'engagement_queue_finished_messages_estimate{status="sent"}')" = 10 ]
	awk '{ exit !($1 >= 1199 && $1 < 1260) }' <<<"$(metric engagement_queue_oldest_due_seconds)"
	# nothing due: the oldest due is 0
	q "UPDATE engagement.message_queue SET next_attempt_at = now() + interval '1 hour' WHERE status = 'queued'" >/dev/null
	st
	[ "$(sj .queue.oldest_due_seconds)" = 0 ]
}

@test "after a queue-send run: the hour's and day's outcomes, errors by code, the failure ratio" {
	start_standin
	user 1; user 2; user 3 901; user 4 911; user 5 910
	for i in 1 2 3 4 5; do msg "$i" weekly_review queued "now() - interval '1 minute'"; done
	eng queue-send --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(sj .sent)" -eq 2 ]
	st
	[ "$status" -eq 0 ]
	[ "$(sjc '.last_hour | {sent, failed, retried, deferred, blocked, cancelled, handed_back}')" = \
		'{"blocked":0,"cancelled":0,"deferred":1,"failed":1,"handed_back":0,"retried":1,"sent":2}' ]
	[ "$(sjc .last_day)" = "$(sjc .last_hour)" ]
	[ "$(sj '.jobs["queue-send"].last_status')" = ok ]
	[ "$(sjc .queue.queued)" = '{"goodbye":0,"weekly_review":2}' ]   # the retried and the deferred
	prom
	[ "$(metric 'engagement_messages{outcome="sent",window="1h"}')" = 2 ]
	[ "$(metric 'engagement_messages{outcome="sent",window="24h"}')" = 2 ]
	[ "$(metric 'engagement_message_errors{outcome="failed",code="131026",window="1h"}')" = 1 ]
	[ "$(metric 'engagement_message_errors{outcome="deferred",code="131049",window="1h"}')" = 1 ]
	[ "$(metric 'engagement_message_errors{outcome="retried",code="131000",window="24h"}')" = 1 ]
	[ "$(metric engagement_send_failure_ratio)" = 0.3333333333 ]
	[ "$(metric 'engagement_delivery_funnel{stage="sent"}')" = 2 ]
	[ "$(metric 'engagement_job_last_exit_code{program="queue-send"}')" = 0 ]
	ok_at=$(metric 'engagement_job_last_success_timestamp_seconds{program="queue-send"}')
	[ "$ok_at" = "$(q "SELECT floor(extract(epoch FROM finished_at))::bigint FROM engagement.job_runs WHERE program = 'queue-send'")" ] ||
		[ "$ok_at" = "$(q "SELECT round(extract(epoch FROM finished_at))::bigint FROM engagement.job_runs WHERE program = 'queue-send'")" ]
	# a refused token: exit 69 is the last exit code, the last success stays.
	# (The retried message waits: its full-jitter backoff may be ~0 s.)
	q "UPDATE engagement.message_queue SET next_attempt_at = now() + interval '1 hour'
	   WHERE status = 'queued'" >/dev/null
	user 6; msg 6 weekly_review queued "now() - interval '1 minute'"
	echo not-the-token >"$BATS_TEST_TMPDIR/wrong"
	WHATSAPP_ACCESS_TOKEN_FILE="$BATS_TEST_TMPDIR/wrong" eng queue-send --db "$CONN"
	[ "$status" -eq 69 ]
	prom
	[ "$(metric 'engagement_job_last_exit_code{program="queue-send"}')" = 69 ]
	[ "$(metric 'engagement_job_last_success_timestamp_seconds{program="queue-send"}')" = "$ok_at" ]
	[ "$(metric 'engagement_messages{outcome="handed_back",window="1h"}')" = 1 ]
	st
	[ "$(sj '.jobs["queue-send"].last_status')" = failed ]
}

@test "delivery statuses and preference changes: the funnel and the changes by channel" {
	user 1; user 2
	# what engagement-webhook writes with the statuses it applies
	q "INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('minute', now()), 'sent', '', 10),
	     (date_trunc('minute', now()) - interval '3 hours', 'sent', '', 5),
	     (date_trunc('minute', now()), 'delivered', '', 8),
	     (date_trunc('minute', now()) - interval '2 hours', 'read', '', 4),
	     (date_trunc('minute', now()), 'undelivered', '131049', 1),
	     (date_trunc('minute', now()) - interval '25 hours', 'read', '', 100)" >/dev/null
	eng optout-set --db "$CONN" --user "$(uid 1)" --opt-out --source web
	[ "$status" -eq 0 ]
	eng optout-set --db "$CONN" --user "$(uid 2)" --opt-out --source cli
	eng optout-set --db "$CONN" --user "$(uid 2)" --opt-in --source cli
	st
	[ "$status" -eq 0 ]
	[ "$(sjc '.last_day | {sent, delivered, read, undelivered}')" = '{"delivered":8,"read":4,"sent":15,"undelivered":1}' ]
	[ "$(sjc '.last_hour | {sent, delivered, read, undelivered}')" = '{"delivered":8,"read":0,"sent":10,"undelivered":1}' ]
	[ "$(sj .preference_changes_last_day.opt_out_web)" = 1 ]
	[ "$(sj .preference_changes_last_day.opt_out_cli)" = 1 ]
	[ "$(sj .preference_changes_last_day.opt_in_cli)" = 1 ]
	prom
	[ "$(metric 'engagement_delivery_funnel{stage="sent"}')" = 15 ]
	[ "$(metric 'engagement_delivery_funnel{stage="delivered"}')" = 8 ]
	[ "$(metric 'engagement_delivery_funnel{stage="read"}')" = 4 ]
	[ "$(metric 'engagement_delivery_funnel{stage="undelivered"}')" = 1 ]
	[ "$(metric 'engagement_message_errors{outcome="undelivered",code="131049",window="24h"}')" = 1 ]
	[ "$(metric 'engagement_preference_changes{change="opt_out",source="web"}')" = 1 ]
	[ "$(metric 'engagement_preference_changes{change="opt_in",source="cli"}')" = 1 ]
	# deliveries are not sends: no failure ratio from them
	[ "$(metric engagement_send_failure_ratio)" = 0 ]
}

@test "people by state: counted on small tables, the planner's estimate on large ones" {
	for i in $(seq 1 7); do user "$i" 000 active; done
	for i in $(seq 8 10); do user "$i" 000 dormant; done
	user 11 000 help_flow; user 12 000 help_flow
	st
	[ "$(sjc .users)" = '{"active":7,"dormant":3,"estimated":false,"goodbye_sent":0,"help_flow":2,"remind_later":0}' ]
	# the planner's statistics of a large table: 12 million rows in the same
	# shares (every state here appears twice or more: all in the MCV list)
	q "ANALYZE engagement.engagement_states" >/dev/null
	q "UPDATE pg_class SET reltuples = 12000000 WHERE oid = 'engagement.engagement_states'::regclass" >/dev/null
	st
	[ "$(sjc .users)" = '{"active":7000000,"dormant":3000000,"estimated":true,"goodbye_sent":0,"help_flow":2000000,"remind_later":0}' ]
	prom
	[ "$(metric engagement_users_estimated)" = 1 ]
	[ "$(metric 'engagement_users{state="active"}')" = 7000000 ]
}

@test "after engagement-daily and engagement-weekly runs: each job's last run and last success" {
	eng engagement-daily --db "$CONN"
	[ "$status" -eq 0 ]
	eng engagement-weekly --db "$CONN"
	[ "$status" -eq 0 ]
	st --check
	[ "$status" -eq 0 ]
	[ -z "$(log_events check_failed)" ]
	for j in engagement-daily engagement-weekly; do
		[ "$(sj ".jobs[\"$j\"].last_status")" = ok ]
		fin=$(q "SELECT extract(epoch FROM finished_at) FROM engagement.job_runs WHERE program = '$j'")
		[ "$(jq --argjson f "$fin" ".jobs[\"$j\"].last_success - \$f | fabs < 1" <<<"$output")" = true ]
		[ "$(sj ".jobs[\"$j\"].success_age_seconds | . >= 0 and . < 60")" = true ]
	done
	[ "$(sj '.jobs["queue-send"].last_status')" = null ]
	prom
	for j in engagement-daily engagement-weekly; do
		started=$(q "SELECT extract(epoch FROM started_at) FROM engagement.job_runs WHERE program = '$j'")
		awk -v a="$(metric "engagement_job_last_run_timestamp_seconds{program=\"$j\"}")" -v b="$started" \
			'BEGIN { d = a - b; exit !(d > -1 && d < 1) }'
		[ "$(metric "engagement_job_last_exit_code{program=\"$j\"}")" = 0 ]
		[ "$(metric "engagement_job_running{program=\"$j\"}")" = 0 ]
		[ "$(metric "engagement_check_failed{check=\"${j#engagement-}_job_stale\"}")" = 0 ]
	done
	# a later failed run: the last run and its exit code change, the last success does not
	ok_at=$(metric 'engagement_job_last_success_timestamp_seconds{program="engagement-daily"}')
	q "INSERT INTO engagement.job_runs (run_id, program, started_at, finished_at, status, exit_code)
	   VALUES (gen_random_uuid(), 'engagement-daily', clock_timestamp(), clock_timestamp(), 'partial', 1)" >/dev/null
	prom
	[ "$(metric 'engagement_job_last_exit_code{program="engagement-daily"}')" = 1 ]
	[ "$(metric 'engagement_job_last_success_timestamp_seconds{program="engagement-daily"}')" = "$ok_at" ]
	# a run in progress
	q "INSERT INTO engagement.job_runs (run_id, program, started_at) VALUES (gen_random_uuid(), 'outbox-relay', now() - interval '90 seconds')" >/dev/null
	prom
	[ "$(metric 'engagement_job_running{program="outbox-relay"}')" = 1 ]
	[ "$(metric 'engagement_job_last_exit_code{program="outbox-relay"}')" = -1 ]
	awk '{ exit !($1 >= 90 && $1 < 150) }' <<<"$(metric 'engagement_job_last_duration_seconds{program="outbox-relay"}')"
	st
	[ "$(sj '.jobs["outbox-relay"].last_status')" = running ]
}

@test "outbox and webhook inbox backlogs" {
	user 1
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, created_at, published_at)
	   SELECT 'test', 'a' || g, 'test.happened', now() - interval '1 hour', now() FROM generate_series(1, 5) g;
	   INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, created_at)
	   SELECT 'test', 'b' || g, 'test.happened', now() - make_interval(secs => 100 - g) FROM generate_series(1, 3) g;
	   INSERT INTO engagement.webhook_inbox (received_at, body, applied_at)
	   SELECT now() - interval '1 hour', '{}', now() FROM generate_series(1, 4);
	   INSERT INTO engagement.webhook_inbox (received_at, body) VALUES (now() - interval '45 seconds', '{}'), (now(), '{}')" >/dev/null
	st
	[ "$(sj .outbox.unpublished)" = 3 ]
	# ages: at least those written, plus the time the test took since
	[ "$(sj '.outbox.oldest_seconds | . >= 99 and . < 160')" = true ]
	[ "$(sj .webhook_inbox.pending)" = 2 ]
	[ "$(sj '.webhook_inbox.oldest_seconds | . >= 45 and . < 105')" = true ]
	prom
	[ "$(metric engagement_outbox_unpublished_events)" = 3 ]
	[ "$(metric engagement_webhook_inbox_pending)" = 2 ]
}

# ---- --check ---------------------------------------------------------------------

@test "--check: nothing crossed, exit 0 and no check_failed line" {
	fresh_jobs
	user 1
	# well inside the thresholds, however long the test takes to get there
	msg 1 goodbye queued "now() - interval '10 minutes'"
	msg 1 weekly_review sending "now() - interval '1 minute'" "now() + interval '10 minutes'"
	q "INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('minute', now()), 'sent', '', 100), (date_trunc('minute', now()), 'failed', '131026', 5);
	   UPDATE engagement.message_templates SET provider_status = 'APPROVED', quality = 'YELLOW',
	     status_changed_at = now(), quality_changed_at = now()" >/dev/null
	pause type weekly_review '1 hour'
	limit_row TIER_250 250
	reached 200
	st --check
	[ "$status" -eq 0 ]
	[ "$(sj .status)" = ok ]
	[ -z "$(log_events check_failed)" ]
	[ "$(sj '[.checks[] | select(.crossed)] | length')" = 0 ]
	[ "$(sj '.checks | length')" = 11 ]
}

@test "--check: an old due message crosses --max-due-age (15min)" {
	fresh_jobs
	user 1
	msg 1 goodbye queued "now() - interval '20 minutes'"
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = queue_due_too_old ]
	l=$(log_events check_failed)
	[ "$(jq '.value >= 1199 and .value < 1260' <<<"$l")" = true ]
	[ "$(jq .threshold <<<"$l")" = 900 ]
	[ "$(jq -r .unit <<<"$l")" = seconds ]
	st --check --max-due-age 30min
	[ "$status" -eq 0 ]
	[ -z "$(log_events check_failed)" ]
}

@test "--check: an expired lease crosses --max-expired-leases (0)" {
	fresh_jobs
	user 1
	msg 1 goodbye sending "now() - interval '1 minute'" "now() - interval '5 seconds'"
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = expired_leases ]
	[ "$(log_events check_failed | jq .value)" = 1 ]
	st --check --max-expired-leases 1
	[ "$status" -eq 0 ]
}

@test "--check: an unpublished outbox event older than --max-outbox-age (5min)" {
	fresh_jobs
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type)
	   VALUES ('test', 'a1', 'test.happened'), ('test', 'a2', 'test.happened')" >/dev/null
	st --check
	[ "$status" -eq 0 ]
	q "UPDATE engagement.outbox_events SET created_at = now() - interval '10 minutes'
	   WHERE id = (SELECT min(id) FROM engagement.outbox_events)" >/dev/null
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = outbox_behind ]
	[ "$(log_events check_failed | jq '.value >= 600 and .value < 660')" = true ]
	st --check --max-outbox-age 15min
	[ "$status" -eq 0 ]
	# published, it no longer counts
	q "UPDATE engagement.outbox_events SET published_at = now()" >/dev/null
	st --check
	[ "$status" -eq 0 ]
}

@test "--check: a failure rate over --max-failure-rate (5%) from --min-sends (20) sends" {
	fresh_jobs
	# 19 sends in the hour, 5 of them failed: too few to judge
	q "INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('minute', now()), 'sent', '', 14),
	     (date_trunc('minute', now()) - interval '30 minutes', 'failed', '131026', 3),
	     (date_trunc('minute', now()) - interval '30 minutes', 'failed', '131047', 2),
	     (date_trunc('minute', now()) - interval '2 hours', 'failed', '131026', 50)" >/dev/null
	st --check
	[ "$status" -eq 0 ]
	q "UPDATE engagement.message_counts SET n = 15 WHERE kind = 'sent'" >/dev/null
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = send_failure_rate ]
	[ "$(log_events check_failed | jq .value)" = 25 ]
	[ "$(log_events check_failed | jq .threshold)" = 5 ]
	st --check --max-failure-rate 30
	[ "$status" -eq 0 ]
	st --check --min-sends 21
	[ "$status" -eq 0 ]
	prom
	[ "$(metric engagement_send_failure_ratio)" = 0.25 ]
}

@test "--check: a webhook delivery pending longer than --max-inbox-age (2min)" {
	fresh_jobs
	q "INSERT INTO engagement.webhook_inbox (received_at, body) VALUES (now() - interval '10 minutes', '{}')" >/dev/null
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = webhook_inbox_behind ]
	st --check --max-inbox-age 15min
	[ "$status" -eq 0 ]
	q "UPDATE engagement.webhook_inbox SET applied_at = now()" >/dev/null
	st --check
	[ "$status" -eq 0 ]
}

@test "--check: jobs not successful for --max-daily-age (26h) and --max-weekly-age (8d)" {
	job_run engagement-daily '27 hours' ok 0
	job_run engagement-daily '1 hour' partial 1   # ran, but did not succeed
	job_run engagement-weekly '9 days' ok 0
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = "daily_job_stale weekly_job_stale" ]
	[ "$(log_events check_failed | jq 'select(.check == "daily_job_stale") | .value >= 97200 and .value < 97260')" = true ]
	[ "$(log_events check_failed | jq 'select(.check == "weekly_job_stale") | .value >= 777600 and .value < 777660')" = true ]
	st --check --max-daily-age 28h --max-weekly-age 10d
	[ "$status" -eq 0 ]
}

@test "--check: everything crossed at once, a line each; the textfile still written" {
	user 1
	msg 1 goodbye queued "now() - interval '1 hour'"
	msg 1 weekly_review sending "now() - interval '1 hour'" "now() - interval '1 minute'"
	q "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, created_at)
	     VALUES ('test', 'a', 'test.happened', now() - interval '1 hour');
	   INSERT INTO engagement.webhook_inbox (received_at, body) VALUES (now() - interval '1 hour', '{}');
	   INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('minute', now()), 'failed', '131026', 30);
	   UPDATE engagement.message_templates SET provider_status = 'PAUSED'
	     WHERE template_key = 'goodbye' AND locale = 'en';
	   UPDATE engagement.message_templates SET quality = 'RED'
	     WHERE template_key = 'weekly_review' AND locale = 'es'" >/dev/null
	pause all '' '25 hours'
	limit_row TIER_250 250
	reached 201
	TF_DIR=$(mktemp -d /tmp/eng-status-tf.XXXXXX)
	st --check --textfile "$TF_DIR/engagement.prom"
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = "daily_job_stale expired_leases messaging_limit_used outbox_behind pause_too_old queue_due_too_old send_failure_rate template_paused template_quality_red webhook_inbox_behind weekly_job_stale" ]
	[ "$(log_events check_failed | grep -c .)" = 11 ]
	[ "$(sj .status)" = partial ]
	[ "$(sj '[.checks[] | select(.crossed)] | length')" = 11 ]
	[ -z "$(awk '/^engagement_check_failed/ && $2 != 1' "$TF_DIR/engagement.prom")" ]
	[ "$(grep -c '^engagement_check_failed' "$TF_DIR/engagement.prom")" = 11 ]
}

# ---- the Prometheus exposition and the textfile ---------------------------------

@test "--format prometheus passes promtool check metrics, empty and with data" {
	prom
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/empty.prom"
	promtool_check "$BATS_TEST_TMPDIR/empty.prom"
	# data in every family, label values that need escaping
	user 1
	msg 1 goodbye queued "now() - interval '20 minutes'"
	msg 1 goodbye sending "now() - interval '20 minutes'" "now() - interval '1 minute'"
	q "INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('minute', now()), 'sent', '', 7),
	     (date_trunc('minute', now()), 'failed', '131026', 2),
	     (date_trunc('minute', now()), 'retried', 'http_500', 1),
	     (date_trunc('minute', now()), 'retried', 'odd \"code\" \\ here', 1),
	     (date_trunc('minute', now()), 'opt_out', 'whatsapp', 1);
	   INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type) VALUES ('t', 'a', 't.x');
	   INSERT INTO engagement.webhook_inbox (body) VALUES ('{}')" >/dev/null
	job_run engagement-daily '2 minutes' ok 0
	job_run queue-send '1 minute' failed 69
	prom --check
	[ "$status" -eq 1 ]
	printf '%s\n' "$output" >"$BATS_TEST_TMPDIR/data.prom"
	promtool_check "$BATS_TEST_TMPDIR/data.prom"
	[ "$(metric 'engagement_message_errors{outcome="retried",code="odd \"code\" \\ here",window="1h"}')" = 1 ]
	[ "$(metric 'engagement_preference_changes{change="opt_out",source="whatsapp"}')" = 1 ]
	run families "$output"
	[ "$status" -eq 0 ]
}

@test "--textfile is written atomically: renamed into place, nothing left behind" {
	TF_DIR=$(mktemp -d /tmp/eng-status-tf.XXXXXX)
	f=$TF_DIR/engagement.prom
	prom --textfile "$f"
	[ "$status" -eq 0 ]
	# the same exposition on stdout and in the file
	[ "$(cat "$f")" = "$output" ]
	promtool_check "$f"
	[ "$(ls -A "$TF_DIR")" = engagement.prom ]
	ino=$(stat -c %i "$f")
	# with the JSON summary on stdout; the file replaced, not rewritten in place
	fresh_jobs
	st --textfile "$f"
	[ "$status" -eq 0 ]
	[ "$(stat -c %i "$f")" != "$ino" ]
	[ "$(ls -A "$TF_DIR")" = engagement.prom ]
	[ "$(metric 'engagement_check_failed{check="daily_job_stale"}' "$f")" = 0 ]
	# a reader never sees a partial file: many runs, a reader in a loop
	# (the writer starts once the reader reads: the two overlap, and the
	# reader reads at least once, whatever the machine's speed)
	(
		wait_for 30 test -e "$BATS_TEST_TMPDIR/reading"
		for i in $(seq 1 15); do "$ENG_BIN/engagement-status" --db "$CONN" --textfile "$f" >/dev/null 2>&1; done
	) &
	writer=$!
	n=0
	while kill -0 "$writer" 2>/dev/null; do
		[ "$(tail -n 1 "$f" | cut -d' ' -f1)" = engagement_status_last_success_timestamp_seconds ] ||
			{ echo "partial file seen" >&2; return 1; }
		n=$((n + 1))
		[ "$n" -gt 1 ] || : >"$BATS_TEST_TMPDIR/reading"
	done
	wait "$writer"
	[ "$n" -gt 0 ]
	[ "$(ls -A "$TF_DIR")" = engagement.prom ]
}

@test "a job whose job_runs rows were deleted: its last success carried forward from the textfile" {
	TF_DIR=$(mktemp -d /tmp/eng-status-tf.XXXXXX)
	f=$TF_DIR/engagement.prom
	eng engagement-daily --db "$CONN"
	[ "$status" -eq 0 ]
	st --textfile "$f"
	[ "$status" -eq 0 ]
	was=$(metric 'engagement_job_last_success_timestamp_seconds{program="engagement-daily"}' "$f")
	[ "$was" -gt 0 ]
	q "DELETE FROM engagement.job_runs WHERE program = 'engagement-daily'" >/dev/null
	# into a later second: a last success taken from this run, not carried,
	# would differ
	sleep 1
	job_run engagement-weekly '1 minute' ok 0
	st --check --textfile "$f"
	# the daily job's success is carried: only nothing crossed
	[ "$status" -eq 0 ]
	[ "$(metric 'engagement_job_last_success_timestamp_seconds{program="engagement-daily"}' "$f")" = "$was" ]
	[ "$(sj '.jobs["engagement-daily"].last_success')" = "$was" ]
	[ "$(sj '.jobs["engagement-daily"].success_age_seconds | . >= 0 and . < 300')" = true ]
	[ "$(sj '.jobs["engagement-daily"].last_status')" = null ]
	# and again from the file it wrote itself
	st --textfile "$f"
	[ "$(metric 'engagement_job_last_success_timestamp_seconds{program="engagement-daily"}' "$f")" = "$was" ]
	# without the textfile there is nothing to carry: never
	st --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = daily_job_stale ]
	[ "$(sj '.jobs["engagement-daily"].last_success')" = 0 ]
}

@test "through PgBouncer in transaction-pooling mode: the same figures" {
	[ -n "${ENG_PGBOUNCER_PORT:-}" ] || skip "no PgBouncer in the test cluster"
	fresh_jobs
	user 1
	msg 1 goodbye queued "now() - interval '20 minutes'"
	st
	direct=$(sjc '{queue: .queue | del(.oldest_due_seconds), users, outbox, jobs: (.jobs | map_values(.last_status))}')
	eng engagement-status --db "host=127.0.0.1 port=$ENG_PGBOUNCER_PORT dbname=$DB" --check
	[ "$status" -eq 1 ]
	[ "$(failed_checks)" = queue_due_too_old ]
	[ "$(sjc '{queue: .queue | del(.oldest_due_seconds), users, outbox, jobs: (.jobs | map_values(.last_status))}')" = "$direct" ]
}
