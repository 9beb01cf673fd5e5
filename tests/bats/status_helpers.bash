# shellcheck shell=bash
# The helpers of the engagement-status tests (status.bats, status_account.bats,
# status_page.bats), loaded after helpers.bash.
uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }
# phone NUM [SUFFIX]: the stand-in answers by the last three digits
phone() { printf '+55119%05d%s' "$1" "${2:-000}"; }

# user NUM [SUFFIX] [STATE]: a user with preferences and an engagement state
user() {
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('$(uid "$1")', '$(phone "$1" "${2:-000}")');
	   INSERT INTO engagement.user_preferences (user_id) VALUES ('$(uid "$1")');
	   INSERT INTO engagement.engagement_states (user_id, state) VALUES ('$(uid "$1")', '${3:-active}')" >/dev/null
}

# msg NUM TYPE STATUS NEXT_ATTEMPT_SQL [LOCKED_UNTIL_SQL]: a queue row
msg() {
	local lb=NULL lu=NULL wamid=NULL sent=NULL
	if [ -n "${5:-}" ]; then lb="'w1'"; lu=$5; fi
	if [ "$3" = sent ]; then wamid="'wamid.$RANDOM$RANDOM'"; sent="now()"; fi
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
	     idempotency_key, status, next_attempt_at, locked_by, locked_until, provider_message_id, sent_at)
	   VALUES ('$(uid "$1")', '$2', '$2',
	     CASE WHEN '$2' = 'weekly_review' THEN '{\"activity_count\": 4}'::jsonb ELSE '{}'::jsonb END,
	     'k:$1:$2:$RANDOM$RANDOM$RANDOM', '$3', $4, $lb, $lu, $wamid, $sent)" >/dev/null
}

# job_run PROGRAM FINISHED_AGO STATUS EXIT_CODE: a finished job_runs row
job_run() {
	q "INSERT INTO engagement.job_runs (run_id, program, started_at, finished_at, status, exit_code)
	   VALUES (gen_random_uuid(), '$1', now() - interval '$2' - interval '3 seconds',
	           now() - interval '$2', '$3', $4)" >/dev/null
}

# fresh_jobs: the daily and weekly jobs succeeded a minute ago
fresh_jobs() {
	job_run engagement-daily '1 minute' ok 0
	job_run engagement-weekly '1 minute' ok 0
}

st() { eng engagement-status --db "$CONN" "$@"; }

# pause SCOPE VALUE AGO [SOURCE]: a pause in force since AGO (VALUE '' for all)
pause() {
	q "INSERT INTO engagement.send_pauses (scope, value, reason, source, paused_at)
	   VALUES ('$1', NULLIF('$2', ''), 'test: +5511987654321 asked', '${4:-operator}',
	           now() - interval '$3')" >/dev/null
}

# limit_row TIER MAX: the messaging limit (MAX NULL: unlimited)
limit_row() {
	q "INSERT INTO engagement.messaging_limits (phone_number_id, tier, max_recipients_24h, source, changed_at)
	     VALUES ('*', '$1', $2, 'operator', now())" >/dev/null
}

# reached N [AGO] [FIRST]: people FIRST.. FIRST+N-1 (default 1..N), each
# reached AGO (default 1 hour ago) under the messaging limit
reached() {
	local first=${3:-1}
	q "INSERT INTO engagement.users (id, phone_e164)
	     SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, '+5521' || lpad(i::text, 9, '0')
	     FROM generate_series($first, $first + $1 - 1) i;
	   INSERT INTO engagement.limit_reached (user_id, reached_at, message_id)
	     SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid,
	            now() - interval '${2:-1 hour}', i
	     FROM generate_series($first, $first + $1 - 1) i" >/dev/null
}

# prom ARGS: engagement-status --format prometheus; $output is the
# exposition, the log lines are checked
prom() {
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$CONN" --format prometheus "$@"
	check_log_lines "$stderr"
}

# metric 'NAME{LABELS}' [FILE]: the sample's value, in $output or FILE;
# fails when there is no such sample (label values may hold spaces)
metric() {
	local prog='BEGIN { k = ENVIRON["METRIC_KEY"] " " }
		substr($0, 1, length(k)) == k { print $NF; f = 1 } END { exit !f }'
	if [ -n "${2:-}" ]; then
		METRIC_KEY=$1 awk "$prog" "$2"
	else
		METRIC_KEY=$1 awk "$prog" <<<"$output"
	fi
}

# jq -c with sorted keys on the summary
sjc() {
	jq -cS "$1" <<<"$output"
}

# the checks named by check_failed log lines, sorted, one line
failed_checks() {
	log_events check_failed | jq -r .check | sort | paste -sd' ' -
}

# promtool is part of the suite (Debian's prometheus package, in
# scripts/deps.sh): missing, the test fails
promtool_check() {
	command -v promtool >/dev/null || {
		echo "promtool not found: install Debian's prometheus package (scripts/deps.sh)" >&2
		return 1
	}
	promtool check metrics <"$1"
}

# the families of an exposition: "NAME TYPE SAMPLES" per line, checking
# that each has one HELP and one TYPE line, before its samples
families() {
	awk '
	/^# HELP / { help[$3]++; next }
	/^# TYPE / { if (!($3 in help)) { print "TYPE before HELP: " $3 > "/dev/stderr"; bad = 1 }
	             type[$3] = $4; order[++n] = $3; next }
	/^#/ { next }
	{ name = $1; sub(/\{.*/, "", name)
	  if (!(name in type)) { print "sample without TYPE: " $0 > "/dev/stderr"; bad = 1 }
	  samples[name]++ }
	END { for (i = 1; i <= n; i++) {
	        f = order[i]
	        if (help[f] != 1) { print "HELP lines for " f ": " help[f] > "/dev/stderr"; bad = 1 }
	        print f, type[f], samples[f] + 0 }
	      exit bad }' <<<"$1"
}
