# Shared helpers for the black-box tests. Every test gets its own database,
bats_require_minimum_version 1.5.0
# cloned from the migrated template (or empty), dropped afterwards.
#
# A test never sleeps in the hope that something has happened by then: it
# waits for the thing itself (wait_for), with a deadline generous enough for
# a slow, loaded machine; the deadline only costs time when the test fails.
#
# wait_for TIMEOUT_S CMD [ARG...]
#                       until CMD succeeds (every 20 ms, TIMEOUT_S at most);
#                       one argument is a shell condition (eval'd), more are
#                       a command and its arguments (a condition sees the
#                       caller's variables, but not its $1, $2...). On
#                       timeout it says what it waited for and returns 1.
wait_for() {
	# (names of its own: an eval'd condition sees the caller's variables)
	local _wf_timeout=$1 _wf_deadline
	shift
	_wf_deadline=$((SECONDS + _wf_timeout + 1))
	while :; do
		if [ $# -eq 1 ]; then
			eval "$1" && return 0
		else
			"$@" && return 0
		fi
		if [ "$SECONDS" -ge "$_wf_deadline" ]; then
			echo "timed out after ${_wf_timeout}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.02
	done
}

# A file that needs no database (standin.bats) loads only the above:
# ENG_HELPERS_NO_DB=1 before `load helpers`.
if [ -n "${ENG_HELPERS_NO_DB:-}" ]; then
	return 0
fi

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
# (found through the wrappers' link to the build's tests/: bats sources this
# file more than once, and ENG_BIN may already be the wrappers')
ENG_BUILD=$(cd -P "$ENG_BIN/tests/.." && pwd)
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
	sessions_end
	for d in "${_eng_dbs[@]}"; do
		psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true
	done
	_eng_dbs=()
}

# q SQL: run a query in the test database, print unaligned values.
q() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" -c "$1"
}

# q_is SQL VALUE / q_ge SQL N: the query prints VALUE / a number >= N (for
# wait_for).
q_is() { [ "$(q "$1")" = "$2" ]; }
q_ge() {
	local v
	v=$(q "$1")
	[ -n "$v" ] && [ "$v" -ge "$2" ]
}

# wait_q SQL VALUE [TIMEOUT_S]: until the query prints VALUE (30 s at most).
wait_q() {
	wait_for "${3:-30}" q_is "$1" "$2" || {
		echo "wanted [$2], last got [$(q "$1")]" >&2
		return 1
	}
}

# ---- sessions of the test's own ----------------------------------------------
# session_open NAME: a psql session on the test database, application_name
# NAME, that reads its commands from a FIFO: a test holds a lock or a
# transaction open, or LISTENs, for exactly as long as it wants, whatever the
# machine's speed. What psql prints goes to $BATS_TEST_TMPDIR/NAME.out.
#   session NAME SQL       run SQL in it; returns once it has run (30 s at most)
#   session_send NAME SQL  send SQL and return at once (SQL that blocks)
#   session_close NAME     end it, once what was sent has run (an open
#                          transaction is rolled back: COMMIT first to keep it)
# drop_dbs ends those still open. A session idle for 5 minutes is ended by the
# server, so that a test that hangs cannot hold its locks for ever.
_eng_sessions=()
_eng_session_marks=0

session_open() {
	local name=$1 fifo="$BATS_TEST_TMPDIR/$1.fifo" fd
	rm -f "$fifo"
	mkfifo "$fifo"
	PGAPPNAME=$name PGOPTIONS="-c idle_session_timeout=300s -c idle_in_transaction_session_timeout=300s" \
		psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" <"$fifo" >"$BATS_TEST_TMPDIR/$name.out" 2>&1 3>&- &
	printf -v "_eng_session_pid_$name" %s "$!"
	exec {fd}>"$fifo" # returns once psql has opened its end
	printf -v "_eng_session_fd_$name" %s "$fd"
	_eng_sessions+=("$name")
}

session_send() {
	local fdv="_eng_session_fd_$1" pidv="_eng_session_pid_$1"
	[ -n "${!fdv:-}" ] || { echo "no session $1" >&2; return 1; }
	kill -0 "${!pidv}" 2>/dev/null || {
		echo "session $1 has ended: $(cat "$BATS_TEST_TMPDIR/$1.out")" >&2
		return 1
	}
	local sql=$2
	[[ "$sql" =~ \;[[:space:]]*$ ]] || sql="$sql;"
	# in a subshell: a write to a session that just ended must not kill the test
	(printf '%s\n' "$sql" >&"${!fdv}") 2>/dev/null
}

session() {
	local name=$1 mark pidv="_eng_session_pid_$1" ran
	_eng_session_marks=$((_eng_session_marks + 1))
	mark="session_mark_$_eng_session_marks"
	session_send "$name" "$2"
	# the mark, run after SQL, is the last query of an idle session once SQL
	# has run (an error ends the session: ON_ERROR_STOP)
	session_send "$name" "SELECT '$mark';"
	ran="SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
		AND application_name = '$name' AND state <> 'active' AND query LIKE '%''$mark''%'"
	wait_for 30 '! kill -0 "${!pidv}" 2>/dev/null || q_is "$ran" 1' && q_is "$ran" 1 || {
		echo "session $name did not run: $2; it printed: $(cat "$BATS_TEST_TMPDIR/$name.out")" >&2
		return 1
	}
}

# _session_forget NAME
_session_forget() {
	local keep=() s
	for s in "${_eng_sessions[@]}"; do
		[ "$s" = "$1" ] || keep+=("$s")
	done
	_eng_sessions=("${keep[@]}")
	unset "_eng_session_fd_$1" "_eng_session_pid_$1"
}

session_close() {
	local name=$1 fdv="_eng_session_fd_$1" pidv="_eng_session_pid_$1" fd pid
	fd=${!fdv:-}
	pid=${!pidv:-}
	[ -n "$fd" ] || return 0
	(printf '\\q\n' >&"$fd") 2>/dev/null || true
	exec {fd}>&-
	wait "$pid" 2>/dev/null || true
	_session_forget "$name"
}

# sessions_end: end every session still open, at once (teardown).
sessions_end() {
	local name fdv pidv fd
	for name in "${_eng_sessions[@]}"; do
		fdv="_eng_session_fd_$name"
		pidv="_eng_session_pid_$name"
		fd=${!fdv:-}
		[ -n "$fd" ] && exec {fd}>&-
		kill "${!pidv}" 2>/dev/null || true
		wait "${!pidv}" 2>/dev/null || true
		unset "$fdv" "$pidv"
	done
	_eng_sessions=()
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
