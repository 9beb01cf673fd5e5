#!/usr/bin/env bats
# engagement-status's report page (--format html, --html PATH): one
# self-contained HTML file whose figures are the summary's, rendered by a
# real browser (Debian's chromium, installed by scripts/deps.sh; missing,
# the test fails rather than skip). The last page and its screenshot are
# kept in the build's test-artifacts/ (status page, busy week).

load helpers
load status_helpers

setup() {
	new_db
	DIR=$(mktemp -d /tmp/eng-status-page.XXXXXX)
}

teardown() {
	chmod 755 "$DIR" 2>/dev/null || true
	rm -rf "$DIR"
	drop_dbs
}

# mq NUM TYPE STATUS CREATED_AGO [SET...]: a message of user NUM, its
# columns then set by SET (an UPDATE's SET list)
mq() {
	local id
	id=$(q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
	          idempotency_key, created_at)
	        VALUES ('$(uid "$1")', '$2', '$2',
	          CASE WHEN '$2' = 'weekly_review' THEN '{\"activity_count\": 4}'::jsonb ELSE '{}'::jsonb END,
	          'k:$1:$2:$RANDOM$RANDOM$RANDOM', now() - interval '$4') RETURNING id")
	if [ -n "${5:-}" ]; then
		q "UPDATE engagement.message_queue SET status = '$3', $5 WHERE id = $id" >/dev/null
	else
		q "UPDATE engagement.message_queue SET status = '$3' WHERE id = $id" >/dev/null
	fi
}

sent_cols() {
	printf "provider_message_id = 'wamid.%s', sent_at = created_at + interval '1 minute'%s" \
		"$RANDOM$RANDOM$RANDOM" "${1:+, $1}"
}

# A week of work: every part of the page has something to show.
busy_week() {
	user 1 101
	user 2 102
	user 3 103 dormant
	mq 1 goodbye sent '1 day' "$(sent_cols "delivery_status = 'read', delivered_at = now() - interval '23 hours', read_at = now() - interval '22 hours'")"
	mq 2 goodbye sent '2 days' "$(sent_cols "delivery_status = 'delivered', delivered_at = now() - interval '47 hours'")"
	mq 3 goodbye sent '3 days' "$(sent_cols "delivery_status = 'failed', delivery_error_code = '131047'")"
	mq 1 goodbye failed '4 days' "last_error_code = '131026'"
	mq 2 goodbye failed '5 days' "last_error_code = '131026'"
	mq 3 goodbye failed '6 days' "last_error_code = '131049'"
	mq 1 goodbye sent '10 days' "$(sent_cols)" # before the funnel's week
	mq 1 weekly_review queued '1 hour'
	mq 2 weekly_review blocked '2 hours'
	mq 3 weekly_review cancelled '3 hours'
	q "INSERT INTO engagement.message_counts (minute, kind, code, n) VALUES
	     (date_trunc('hour', now()) - interval '3 hours', 'sent', '', 5),
	     (date_trunc('hour', now()) - interval '3 hours', 'failed', '131026', 2),
	     (date_trunc('hour', now()) - interval '30 hours', 'sent', '', 7),
	     (date_trunc('day', now()) - interval '2 days', 'opt_out', 'whatsapp', 4),
	     (date_trunc('day', now()) - interval '2 days', 'opt_in', 'web', 1),
	     (date_trunc('minute', now()), 'priced', 'marketing', 3),
	     (date_trunc('minute', now()), 'billable', 'marketing', 2);
	   UPDATE engagement.message_templates SET provider_status = 'PAUSED', quality = 'RED',
	     status_changed_at = now() - interval '1 hour' WHERE template_key = 'goodbye' AND locale = 'en';
	   UPDATE engagement.message_templates SET provider_status = 'APPROVED', quality = 'GREEN'
	     WHERE template_key = 'weekly_review'" >/dev/null
	pause template goodbye '2 hours' meta
	pause type weekly_review '26 hours'
	limit_row TIER_250 250
	reached 2
	job_run engagement-daily '1 hour' ok 0
	job_run engagement-daily '25 hours' failed 1
	job_run queue-send '5 minutes' ok 0
}

# page ARGS: engagement-status --html $DIR/page.html ARGS; the summary in
# $DIR/summary.json, the page checked against it ($checked: its figures)
page() {
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$CONN" --html "$DIR/page.html" "$@"
	check_log_lines "$stderr"
	printf '%s\n' "$output" >"$DIR/summary.json"
	[ -s "$DIR/page.html" ]
	run python3 "$ENG_SRC/tests/bats/status_page.py" "$DIR/page.html" "$DIR/summary.json"
	echo "$output"
	[ "$status" -eq 0 ]
	checked=${lines[-1]}
}

# browse: chromium renders the page (its DOM on stdout) and screenshots it
browse() {
	local chrome
	chrome=$(command -v chromium || command -v chromium-browser || true)
	[ -n "$chrome" ] || {
		echo "chromium not found: install Debian's chromium package (scripts/deps.sh)" >&2
		return 1
	}
	local flags=(--headless --no-sandbox --disable-gpu --no-first-run --disable-extensions
		--user-data-dir="$DIR/chrome" --window-size=1200,4000)
	run timeout 120 "$chrome" "${flags[@]}" --dump-dom "file://$DIR/page.html"
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >"$DIR/dom.html"
	run timeout 120 "$chrome" "${flags[@]}" --screenshot="$DIR/page.png" "file://$DIR/page.html"
	[ "$status" -eq 0 ]
	[ "$(head -c 8 "$DIR/page.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
	# kept next to the build's tests/ (as-roles/tests links there)
	[ "${KEEP:-yes}" = yes ] || return 0
	local keep
	keep=$(readlink -f "$ENG_AS_ROLES/tests")/../test-artifacts
	mkdir -p "$keep"
	cp "$DIR/page.html" "$DIR/page.png" "$keep/"
}

@test "a busy week: the page parses, holds no script, address or phone, and shows the summary's figures" {
	busy_week
	page
	[ "$checked" -ge 150 ]
	s=$(cat "$DIR/summary.json")
	# the funnel of the last 7 days: the message of 10 days ago left out
	[ "$(jq -cS '.funnel_7d[] | select(.message_type == "goodbye") | del(.failed_by_code, .undelivered_by_code)' <<<"$s")" = \
		'{"blocked":0,"cancelled":0,"delivered":2,"failed":3,"message_type":"goodbye","queued":6,"read":1,"sent":3,"undelivered":1,"waiting":0}' ]
	[ "$(jq -c '.funnel_7d[] | select(.message_type == "goodbye") | .failed_by_code' <<<"$s")" = \
		'[{"code":"131026","messages":2},{"code":"131049","messages":1}]' ]
	[ "$(jq -c '.funnel_7d[] | select(.message_type == "goodbye") | .undelivered_by_code' <<<"$s")" = \
		'[{"code":"131047","messages":1}]' ]
	[ "$(jq -c '.funnel_7d[] | select(.message_type == "weekly_review") | [.queued, .waiting, .blocked, .cancelled]' <<<"$s")" = '[3,1,1,1]' ]
	# 48 hours, 14 days, the last runs newest first
	[ "$(jq '.hourly_48h | length' <<<"$s")" = 48 ]
	[ "$(jq '[.hourly_48h[].sent] | add' <<<"$s")" = 12 ]
	[ "$(jq '.hourly_48h[-4] | [.sent, .failed] | @csv' -r <<<"$s")" = 5,2 ]
	[ "$(jq '.preference_changes_14d | length' <<<"$s")" = 14 ]
	[ "$(jq -c '.preference_changes_14d[-3] | [.opt_out, .opt_in]' <<<"$s")" = '[4,1]' ]
	[ "$(jq -c '.recent_runs[0] | [.program, (.runs | map(.status))]' <<<"$s")" = '["engagement-daily",["ok","failed"]]' ]
	[ "$(jq -c '.recent_runs[0].runs[1] | [.exit_code, .duration_seconds]' <<<"$s")" = '[1,3]' ]
	[ "$(jq -c '[.recent_runs[].program]' <<<"$s")" = '["engagement-daily","engagement-weekly","queue-send","outbox-relay"]' ]
	# every section, the charts as inline SVG (48 hours x 2, 14 days x 2)
	for id in checks funnel hourly queue preferences pauses templates limit jobs people; do
		grep -q "<section id=\"$id\">" "$DIR/page.html" || { echo "no section $id"; return 1; }
	done
	[ "$(grep -o '<rect x=' "$DIR/page.html" | wc -l)" = $((48 * 2 + 14 * 2)) ]
	# the crossed checks and the paused, red template stand out
	grep -q '<tr class="bad"><td class="t" data-figure="/checks/[0-9]*/check" data-format="text">template_paused</td>' "$DIR/page.html"
	grep -q '<tr class="bad"><td class="t" data-figure="/templates/list/0/template_key"' "$DIR/page.html"
	# the pauses' reasons masked, as in the summary
	! grep -q 987654321 "$DIR/page.html"
	browse
	# the browser's DOM: every section and figure, nothing added
	[ "$(grep -o 'data-figure=' "$DIR/dom.html" | wc -l)" = "$checked" ]
	[ "$(grep -o '<section id=' "$DIR/dom.html" | wc -l)" = 10 ]
	! grep -qi '<script' "$DIR/dom.html"
}

@test "an empty database: the page still renders, every figure the summary's" {
	page
	grep -q 'Sending is not paused.' "$DIR/page.html"
	grep -q 'Never ran.' "$DIR/page.html"
	KEEP=no browse
}

@test "--format html: the page on stdout, the same sections as --html's" {
	busy_week
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$CONN" --format html
	[ "$status" -eq 0 ]
	check_log_lines "$stderr"
	[[ "$output" == '<!DOCTYPE html>'* ]]
	[[ "$output" == *'</html>' ]]
	[ "$(grep -o '<section id=' <<<"$output" | wc -l)" = 10 ]
	# the summary is not printed (the page is stdout)
	! grep -q '"run_id"' <<<"$output"
}

@test "--html is written atomically: an unwritable folder exits 73, the previous page kept, nothing left behind" {
	echo previous >"$DIR/page.html"
	chmod 555 "$DIR"
	# root writes anywhere: drop the capabilities that let it
	local as=()
	[ "$(id -u)" = 0 ] && as=(setpriv --bounding-set=-dac_override,-dac_read_search --)
	run --separate-stderr "${as[@]}" "$ENG_BIN/engagement-status" --db "$CONN" --html "$DIR/page.html"
	[ "$status" -eq 73 ]
	check_log_lines "$stderr"
	[[ "$(sj .error)" == *"previous file is kept"* ]]
	[ "$(cat "$DIR/page.html")" = previous ]
	[ "$(ls "$DIR")" = page.html ]
	chmod 755 "$DIR"
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$CONN" --html "$DIR/page.html"
	[ "$status" -eq 0 ]
	[[ "$(head -c 15 "$DIR/page.html")" == '<!DOCTYPE html>' ]]
	[ "$(ls "$DIR")" = page.html ]
}
