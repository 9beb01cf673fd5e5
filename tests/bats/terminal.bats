#!/usr/bin/env bats
# What a person at a terminal sees (issue 14): readable log lines and an
# indented summary on a terminal, the JSON contract everywhere else. The
# terminal is a pseudo-terminal from util-linux's script(1).

load helpers

setup() {
	new_db
}

teardown() {
	drop_dbs
}

# tty CMD...: run CMD with stdin, stdout and stderr on a pseudo-terminal;
# $output gets what the terminal showed (CR LF line ends made LF).
tty() {
	local cmd
	printf -v cmd '%q ' "$@"
	run bash -c "set -o pipefail; script -qec $(printf %q "$cmd") /dev/null | tr -d '\r'"
}

# tty_err CMD...: the same with stdout to $BATS_TEST_TMPDIR/out (a file),
# so that $output is what stderr showed on the terminal.
tty_err() {
	local cmd
	printf -v cmd '%q ' "$@"
	run bash -c "set -o pipefail; script -qec $(printf %q "$cmd >$BATS_TEST_TMPDIR/out") /dev/null | tr -d '\r'"
}

@test "a usage error on a terminal: GNU's two plain lines, then the summary indented" {
	tty "$ENG_BIN/queue-send" --bogus
	[ "$status" -eq 64 ]
	[ "${lines[0]}" = "queue-send: unrecognized option '--bogus'" ]
	[ "${lines[1]}" = "Try 'queue-send --help' for more information." ]
	[ "${lines[2]}" = "{" ]
	[[ "$output" == *'  "exit_code": 64,'* ]]
	jq -e '.exit_code == 64 and .status == "failed"' <<<"$(printf '%s\n' "${lines[@]:2}")" >/dev/null
}

@test "log lines on a terminal are text: local time, level, event: message, then key=value" {
	tty_err "$ENG_BIN/engagement-daily" --db "$CONN" --now 2026-11-22T06:00:00Z
	[ "$status" -eq 0 ]
	[ -n "$output" ]
	# no JSON on stderr
	! grep -q '^{' <<<"$output"
	grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2} .*INFO.* job_started dry_run=false$' <<<"$output"
	grep -Eq 'check_finished check=inactivity processed=0 ' <<<"$output"
	# stdout was a file: one JSON line, as ever
	[ "$(wc -l <"$BATS_TEST_TMPDIR/out")" -eq 1 ]
	jq -e '.status == "ok"' "$BATS_TEST_TMPDIR/out" >/dev/null
}

@test "colour only on a terminal, and never with NO_COLOR or TERM=dumb" {
	export TERM=xterm
	unset NO_COLOR
	tty_err "$ENG_BIN/engagement-daily" --db "$CONN"
	[[ "$output" == *$'\e['* ]]
	NO_COLOR=1 tty_err "$ENG_BIN/engagement-daily" --db "$CONN"
	[[ "$output" != *$'\e['* ]]
	[[ "$output" == *"job_finished status=ok"* ]]
	TERM=dumb tty_err "$ENG_BIN/engagement-daily" --db "$CONN"
	[[ "$output" != *$'\e['* ]]
	# forced text without a terminal: text, never colour
	run --separate-stderr "$ENG_BIN/engagement-daily" --db "$CONN" --log-format text
	[ "$status" -eq 0 ]
	[[ "$stderr" == *"job_finished status=ok"* ]]
	[[ "$stderr" != *$'\e['* ]]
}

@test "without a terminal: JSON lines, byte for byte what --log-format json writes" {
	norm() { sed -E 's/"ts":"[^"]*"/"ts":"T"/; s/"run_id":"[^"]*"/"run_id":"R"/; s/"duration_ms":[0-9]+/"duration_ms":0/g; s/"now":"[^"]*"/"now":"N"/'; }
	run --separate-stderr "$ENG_BIN/engagement-event" --db "$CONN" --phone +5511987654321 --activity
	[ "$status" -eq 67 ]
	check_log_lines "$stderr"
	a=$(norm <<<"$stderr")
	run --separate-stderr "$ENG_BIN/engagement-event" --db "$CONN" --phone +5511987654321 --activity --log-format json
	b=$(norm <<<"$stderr")
	[ -n "$a" ]
	[ "$a" = "$b" ]
	# the same through ENGAGEMENT_LOG_FORMAT, and the summary
	ENGAGEMENT_LOG_FORMAT=json run --separate-stderr "$ENG_BIN/engagement-event" --db "$CONN" --phone +5511987654321 --activity
	[ "$(norm <<<"$stderr")" = "$a" ]
	[ "$(wc -l <<<"$output")" -eq 1 ]
}

@test "phone numbers are masked in both formats" {
	tty_err "$ENG_BIN/engagement-event" --db "$CONN" --phone +5511987654321 --activity
	[ "$status" -eq 67 ]
	[[ "$output" == *"+55*********21"* ]]
	[[ "$output" != *987654* ]]
	run --separate-stderr "$ENG_BIN/engagement-event" --db "$CONN" --phone +5511987654321 --activity
	[[ "$stderr" == *"+55*********21"* ]]
	[[ "$stderr" != *987654* ]]
}

@test "a value with newlines and control bytes cannot forge a line in text mode" {
	printf '%s\n' '{"phone": "+5511900000001", "activity": true, "oops\n2026-01-01 00:00:00 ERROR forged: yes\u001b[2J": 1}' >"$BATS_TEST_TMPDIR/in"
	run --separate-stderr "$ENG_BIN/engagement-event" --db "$CONN" --batch "$BATS_TEST_TMPDIR/in" --log-format text
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"line_failed: unknown field"* ]]
	# the forged text stays inside the line_failed line, escaped
	! grep -q '^2026-01-01 00:00:00 ERROR forged' <<<"$stderr"
	[ "$(grep -c 'forged' <<<"$stderr")" -eq 1 ]
	[[ "$stderr" != *$'\e'* ]]
}

@test "the summary: indented on a terminal, one line otherwise, --summary-format forces either" {
	tty "$ENG_BIN/engagement-weekly" --db "$CONN" --log-level error
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "{" ]
	[[ "${lines[1]}" == '  "program": "engagement-weekly",' ]]
	tty "$ENG_BIN/engagement-weekly" --db "$CONN" --log-level error --summary-format json
	[ "${#lines[@]}" -eq 1 ]
	jq -e '.program == "engagement-weekly"' <<<"${lines[0]}" >/dev/null
	run --separate-stderr "$ENG_BIN/engagement-weekly" --db "$CONN" --summary-format pretty
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = "{" ]
	jq -e '.status == "ok"' <<<"$output" >/dev/null
}

@test "bad format options and environment exit 64" {
	eng engagement-daily --log-format xml
	[ "$status" -eq 64 ]
	[[ "$(sj .error)" == *"--log-format"* ]]
	eng engagement-daily --summary-format yaml
	[ "$status" -eq 64 ]
	ENGAGEMENT_LOG_FORMAT=fancy eng engagement-daily --db "$CONN"
	[ "$status" -eq 64 ]
	[[ "$(sj .error)" == *ENGAGEMENT_LOG_FORMAT* ]]
}
