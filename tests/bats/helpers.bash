# Shared helpers for the black-box tests. Every test gets its own database,
bats_require_minimum_version 1.5.0
# cloned from the migrated template (or empty), dropped afterwards.
#
# eng PROGRAM ARGS...   runs build/PROGRAM; sets $status, $output (stdout)
#                       and $stderr, and checks the output contract: every
#                       stderr line is a JSON log object and stdout holds
#                       exactly one JSON object (unless --help/--version).

# shellcheck disable=SC1091
. "${ENG_PGSTATE:?run through ctest, or set ENG_PGSTATE}/env"
ENG_BIN=${ENG_BIN:?}
ENG_SRC=${ENG_SRC:?}
# Every program runs as a login granted its own role and nothing else
# (DESIGN.md §5; tests/pg/cluster.sh made the wrappers): a missing grant
# fails a test. ENG_BUILD is the build itself, for the rare test that must
# run a program as the schema owner.
ENG_BUILD=$ENG_BIN
ENG_BIN=${ENG_AS_ROLES:?the test cluster has no per-program logins}

# Secret files must be readable by their owner only (DESIGN.md §5): every
# file a test writes is, unless it says otherwise.
umask 077

_eng_dbs=()

# new_db [empty]: create a database; sets DB (its name) and CONN (conninfo).
new_db() {
	DB="t_${BATS_TEST_NUMBER:-0}_$$_${RANDOM}${RANDOM}"
	if [ "${1:-}" = empty ]; then
		createdb "$DB"
	else
		createdb -T engagement_tmpl "$DB"
	fi
	CONN="dbname=$DB"
	_eng_dbs+=("$DB")
}

drop_dbs() {
	local d
	for d in "${_eng_dbs[@]}"; do
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true
	done
	_eng_dbs=()
}

# q SQL: run a query in the test database, print unaligned values.
q() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1"
}

# Check that every line of $1 is a JSON log object with the common fields.
check_log_lines() {
	local line n=0
	while IFS= read -r line; do
		[ -z "$line" ] && continue
		n=$((n + 1))
		if ! jq -e 'type == "object" and has("ts") and has("level") and
			has("program") and has("run_id") and has("event")' \
			<<<"$line" >/dev/null 2>&1; then
			echo "stderr line is not a JSON log object: $line" >&2
			return 1
		fi
		if ! jq -e '.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$")' \
			<<<"$line" >/dev/null; then
			echo "bad ts in: $line" >&2
			return 1
		fi
	done <<<"$1"
}

check_one_object() {
	local n
	n=$(jq -s 'length' <<<"$1" 2>/dev/null) || {
		echo "stdout is not JSON: $1" >&2
		return 1
	}
	if [ "$n" != 1 ]; then
		echo "stdout holds $n JSON values, expected exactly one: $1" >&2
		return 1
	fi
	jq -e 'type == "object" and has("program") and has("run_id") and
		has("status") and has("exit_code") and has("duration_ms")' \
		<<<"$1" >/dev/null || {
		echo "summary lacks the common fields: $1" >&2
		return 1
	}
	# The summary's exit_code is the process's.
	local code
	code=$(jq -r '.exit_code' <<<"$1")
	if [ "$code" != "$status" ]; then
		echo "summary exit_code $code but process exited $status" >&2
		return 1
	fi
}

eng() {
	local prog=$1
	shift
	run --separate-stderr "$ENG_BIN/$prog" "$@"
	check_log_lines "$stderr"
	check_one_object "$output"
}

# Like eng, with stdin from a file: eng_in FILE PROGRAM ARGS...
eng_in() {
	local in=$1 prog=$2
	shift 2
	run --separate-stderr bash -c '"$0" "$@" <"'"$in"'"' "$ENG_BIN/$prog" "$@"
	check_log_lines "$stderr"
	check_one_object "$output"
}

# The number of non-empty stderr lines.
stderr_lines() {
	grep -c . <<<"$stderr" || true
}

# jq on the summary: sj FILTER
sj() {
	jq -r "$1" <<<"$output"
}

# The stderr log lines whose event is $1.
log_events() {
	local line
	while IFS= read -r line; do
		[ -z "$line" ] && continue
		jq -c "select(.event == \"$1\")" <<<"$line"
	done <<<"$stderr"
}

# start_standin [ARGS...]: the WhatsApp Cloud API stand-in on a free port,
# with a fresh token; exports the queue-send configuration for it. Its
# request log is $STANDIN_RECORD. Stopped by stop_standin (call it in
# teardown).
start_standin() {
	STANDIN_TOKEN="tok-$RANDOM$RANDOM-secret"
	STANDIN_RECORD="$BATS_TEST_TMPDIR/requests.jsonl"
	printf '%s\n' "$STANDIN_TOKEN" >"$BATS_TEST_TMPDIR/token"
	rm -f "$BATS_TEST_TMPDIR/port" "$STANDIN_RECORD"
	"$ENG_BIN/tests/wa-standin/wa-standin" --token-file "$BATS_TEST_TMPDIR/token" \
		--port 0 --port-file "$BATS_TEST_TMPDIR/port" \
		--record "$STANDIN_RECORD" --phone-number-id 1234567890 "$@" \
		2>"$BATS_TEST_TMPDIR/standin.log" &
	STANDIN_PID=$!
	local i
	for i in $(seq 100); do
		[ -s "$BATS_TEST_TMPDIR/port" ] && break
		sleep 0.05
	done
	[ -s "$BATS_TEST_TMPDIR/port" ] || { echo "wa-standin did not start" >&2; cat "$BATS_TEST_TMPDIR/standin.log" >&2; return 1; }
	export WHATSAPP_API_URL="http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/port")"
	export WHATSAPP_API_VERSION=v23.0
	export WHATSAPP_PHONE_NUMBER_ID=1234567890
	export WHATSAPP_ACCESS_TOKEN_FILE="$BATS_TEST_TMPDIR/token"
	unset WHATSAPP_ACCESS_TOKEN
}

stop_standin() {
	if [ -n "${STANDIN_PID:-}" ]; then
		kill "$STANDIN_PID" 2>/dev/null || true
		wait "$STANDIN_PID" 2>/dev/null || true
		STANDIN_PID=
	fi
}

# The number of requests the stand-in received (optionally matching a jq
# filter, e.g. 'select(.status == 200)'); the webhooks it posted itself
# (kind "webhook_out") are not requests.
requests() {
	[ -f "$STANDIN_RECORD" ] || { echo 0; return; }
	jq -c "select(.kind == null) | ${1:-.}" "$STANDIN_RECORD" | grep -c . || true
}
