# Fault-injection helpers for queue-send, shared by tests/faults/send.bats
# and bench/faults-send.sh (sourced by both; bash only, no bats).
#
# Needs: ENG_BIN (the build directory), a cluster's env sourced (PGHOST,
# PGPORT, ENG_PG_ROOT, ENG_PG_BIN) with the migrated template database
# engagement_tmpl (tests/pg/cluster.sh start DIR MIGRATE_BIN), jq, psql.
#
# Each trial (fs_trial_*) works in its own database and with its own
# stand-in, in a directory of its own, and prints ONE result line: a JSON
# object with its figures and "ok" (whether the guarantees held) and
# "problems" (what did not). Trials that do not restart the server may run
# in parallel; fs_trial_restart stops the whole cluster, so nothing else may
# use it meanwhile.
#
# Clocks: the stand-in's record has "ts", the arrival of each request, in
# wall-clock UTC milliseconds; fs_now_ms is the same wall clock.
umask 077 # secret files are readable by their owner only

# shellcheck shell=bash

FS_STANDIN="${ENG_BIN:?}/tests/wa-standin/wa-standin"

fs_now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}

fs_log() { [ -n "${FS_VERBOSE:-}" ] && echo "# $*" >&2; return 0; }

# fs_wait_pid PID TIMEOUT_S: wait for a child; past the timeout it is
# killed (SIGCONT first, in case it was stopped) and 124 returned.
fs_wait_pid() {
	local pid=$1 end=$(( $(fs_now_ms) + $2 * 1000 ))
	while kill -0 "$pid" 2>/dev/null; do
		if [ "$(fs_now_ms)" -ge "$end" ]; then
			kill -CONT "$pid" 2>/dev/null || true
			kill -9 "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
			echo "fs_wait_pid: $pid still running after $2 s: killed" >&2
			return 124
		fi
		sleep 0.05
	done
	wait "$pid"
}

# fs_bg DIR NAME CMD...: start CMD in the background, stdout to DIR/NAME.json,
# stderr to DIR/NAME.log, its pid in DIR/NAME.pid (for clean-up); sets FS_PID.
fs_bg() {
	local dir=$1 name=$2
	shift 2
	"$@" >"$dir/$name.json" 2>"$dir/$name.log" &
	FS_PID=$!
	echo "$FS_PID" >"$dir/$name.pid"
}

# fs_cleanup DIR: kill what a trial under DIR left running (stand-ins and
# queue-sends recorded in *.pid files), e.g. after a test failed midway.
fs_cleanup() {
	local f pid
	while IFS= read -r f; do
		pid=$(cat "$f" 2>/dev/null) || continue
		[ -n "$pid" ] || continue
		if grep -qaE 'queue-send|wa-standin' "/proc/$pid/cmdline" 2>/dev/null; then
			kill -CONT "$pid" 2>/dev/null || true
			kill -9 "$pid" 2>/dev/null || true
		fi
	done < <(find "$1" -name '*.pid' 2>/dev/null)
}

# fs_as_owner CMD...: the server's programs refuse to run as root.
fs_as_owner() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ---- the server ---------------------------------------------------------------

fs_pg_stop() {
	fs_as_owner "$ENG_PG_BIN/pg_ctl" -D "$ENG_PG_ROOT/data" -m fast -w -t 60 stop >/dev/null
}

fs_pg_start() {
	fs_as_owner "$ENG_PG_BIN/pg_ctl" -D "$ENG_PG_ROOT/data" -l "$ENG_PG_ROOT/server.log" \
		-o "-p $PGPORT" -w -t 60 start >/dev/null
}

# ---- databases ------------------------------------------------------------------

# fs_db_new NAME: a fresh migrated database.
fs_db_new() {
	createdb -T engagement_tmpl "$1"
}

fs_db_drop() {
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# fs_q DB SQL: unaligned values.
fs_q() {
	psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

fs_uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }

# fs_seed DB USERS PER_USER [TYPE] [TEMPLATE] [PARAMS_JSON]: USERS users with
# preferences (en, UTC, no quiet hours), PER_USER due messages each.
fs_seed() {
	local db=$1 users=$2 per=$3 type=${4:-goodbye} tpl=${5:-${4:-goodbye}} params=${6:-'{}'}
	fs_q "$db" "
	  INSERT INTO engagement.users (id, phone_e164)
	  SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
	         '+55119' || lpad(i::text, 5, '0') || '000'
	  FROM generate_series(1, $users) i;
	  INSERT INTO engagement.user_preferences (user_id, locale, timezone)
	  SELECT id, 'en', 'UTC' FROM engagement.users;
	  INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
	      idempotency_key, next_attempt_at)
	  SELECT u.id, '$type', '$tpl', '$params'::jsonb, u.id || ':$type:' || k,
	         now() - interval '1 minute'
	  FROM engagement.users u CROSS JOIN generate_series(1, $per) k
	  ORDER BY u.id, k" >/dev/null
}

# fs_live_leases DB: claims whose lease has not run out yet.
fs_live_leases() {
	fs_q "$1" "SELECT count(*) FROM engagement.message_queue
	           WHERE status = 'sending' AND locked_until >= clock_timestamp()"
}

# fs_wait_leases_out DB TIMEOUT_S: until every claim's lease ran out.
fs_wait_leases_out() {
	local db=$1 end=$(( $(fs_now_ms) + $2 * 1000 ))
	while [ "$(fs_live_leases "$db")" -gt 0 ]; do
		[ "$(fs_now_ms)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# fs_status_counts DB: {"sent":N,...} of the queue.
fs_status_counts() {
	fs_q "$1" "SELECT coalesce(json_object_agg(status, n), '{}') FROM (
	             SELECT status, count(*) AS n FROM engagement.message_queue GROUP BY status) s"
}

# ---- the stand-in ---------------------------------------------------------------------

# fs_standin_start DIR [ARGS...]: the Cloud API stand-in on a free port,
# recording to DIR/requests.jsonl; exports the queue-send configuration.
# Sets FS_STANDIN_PID and FS_RECORD.
fs_standin_start() {
	local dir=$1 i
	shift
	mkdir -p "$dir"
	printf 'tok-%s%s-secret\n' "$RANDOM" "$RANDOM" >"$dir/token"
	FS_RECORD="$dir/requests.jsonl"
	rm -f "$dir/port" "$FS_RECORD"
	"$FS_STANDIN" --token-file "$dir/token" --port 0 --port-file "$dir/port" \
		--record "$FS_RECORD" --phone-number-id 1234567890 "$@" \
		2>"$dir/standin.log" &
	FS_STANDIN_PID=$!
	echo "$FS_STANDIN_PID" >"$dir/standin.pid"
	for i in $(seq 200); do
		[ -s "$dir/port" ] && break
		sleep 0.025
	done
	[ -s "$dir/port" ] || { echo "wa-standin did not start" >&2; cat "$dir/standin.log" >&2; return 1; }
	touch "$FS_RECORD"
	WHATSAPP_API_URL="http://127.0.0.1:$(cat "$dir/port")"
	export WHATSAPP_API_URL
	export WHATSAPP_API_VERSION=v23.0
	export WHATSAPP_PHONE_NUMBER_ID=1234567890
	export WHATSAPP_ACCESS_TOKEN_FILE="$dir/token"
	unset WHATSAPP_ACCESS_TOKEN
}

fs_standin_stop() {
	if [ -n "${FS_STANDIN_PID:-}" ]; then
		kill "$FS_STANDIN_PID" 2>/dev/null || true
		wait "$FS_STANDIN_PID" 2>/dev/null || true
		FS_STANDIN_PID=
	fi
}

# fs_requests RECORD: API requests recorded (webhook lines left out).
fs_requests() {
	jq -c 'select(.kind == null)' "$1" 2>/dev/null | grep -c . || true
}

# fs_wait_requests RECORD N TIMEOUT_S: until the record holds N requests.
fs_wait_requests() {
	local end=$(( $(fs_now_ms) + $3 * 1000 ))
	while [ "$(fs_requests "$1")" -lt "$2" ]; do
		[ "$(fs_now_ms)" -lt "$end" ] || return 1
		sleep 0.01
	done
}

# fs_wait_quiet RECORD MS: until the record has not grown for MS ms.
fs_wait_quiet() {
	local n m
	n=$(wc -l <"$1")
	while :; do
		sleep "0.$(printf '%03d' "$2")"
		m=$(wc -l <"$1")
		[ "$m" = "$n" ] && return 0
		n=$m
	done
}

# jq: the arrival of a record line in epoch ms.
FS_JQ_MS='def ms: (.ts[0:19] + "Z" | fromdate) * 1000 + (.ts[20:23] | tonumber);'

# fs_record_ids RECORD: one message id per request (mq:<id>), in order.
fs_record_ids() {
	jq -r 'select(.kind == null and .biz_opaque_callback_data != null)
	       | .biz_opaque_callback_data | ltrimstr("mq:")' "$1"
}

# fs_dups RECORD: ids that reached the stand-in more than once.
fs_dups() {
	fs_record_ids "$1" | sort -n | uniq -d
}

# fs_check_db_vs_record DB RECORD: every sent row's provider_message_id is
# a wamid the stand-in answered for that very message; prints mismatches.
fs_check_db_vs_record() {
	local db=$1 rec=$2
	jq -r 'select(.kind == null and .wamid != null)
	       | [(.biz_opaque_callback_data | ltrimstr("mq:")), .wamid] | @tsv' "$rec" | sort >"$rec.wamids"
	fs_q "$db" "SELECT id, provider_message_id FROM engagement.message_queue WHERE status = 'sent'" |
		tr '|' '\t' | sort >"$rec.db"
	comm -13 "$rec.wamids" "$rec.db"
}

# ---- trials -----------------------------------------------------------------------------

# fs_json KEY VALUE ...: a compact JSON object of numbers/strings/booleans.
fs_json() {
	local args=() k v
	while [ $# -gt 0 ]; do
		k=$1 v=$2
		shift 2
		args+=(--argjson "$k" "$(jq -cn --arg v "$v" '$v | (tonumber? // (if . == "true" or . == "false" then test("true") else . end))')")
	done
	jq -cn "${args[@]}" '$ARGS.named'
}

# fs_trial_kill9 DIR SEED [MESSAGES] [CONCURRENCY] [LATENCY_MS] [LEASE_S] [MAX_DELAY_MS]
#
# queue-send is killed with SIGKILL after a random delay (from SEED); then
# queue-send runs again, each time once every lease ran out, until nothing
# is queued. Held: every message ends sent; each message the stand-in saw
# twice had a request recorded by the killed run whose outcome the database
# did not have (the request was in flight at the kill).
fs_trial_kill9() {
	local dir=$1 seed=$2 n=${3:-40} conc=${4:-4} lat=${5:-50} lease=${6:-5} maxd=${7:-700}
	local db="faults_k9_${seed}_$$_$RANDOM" delay pid rc killed=false inflight problems=()
	local rounds=0 rc2 twice dups bad sent lost requests mism
	mkdir -p "$dir"
	RANDOM=$seed
	delay=$(( (RANDOM * 32768 + RANDOM) % maxd ))
	fs_db_new "$db"
	fs_seed "$db" "$n" 1
	fs_standin_start "$dir" --latency-ms "$lat" || return 1
	fs_bg "$dir" killed "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
		--concurrency "$conc" --lease-seconds "$lease" --worker-id "k9-$seed"
	pid=$FS_PID
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null && killed=true
	fi
	wait "$pid" && rc=0 || rc=$?
	# the killed run's last requests: their lines come with their answers
	fs_wait_quiet "$FS_RECORD" $((lat * 3 > 150 ? lat * 3 : 150))
	cp "$FS_RECORD" "$dir/killed.jsonl"
	# in flight at the kill: recorded, and the database has no outcome
	fs_record_ids "$dir/killed.jsonl" | sort -nu >"$dir/killed.ids"
	fs_q "$db" "SELECT id FROM engagement.message_queue WHERE status = 'sending'" | sort -n >"$dir/sending.ids"
	comm -12 <(sort "$dir/killed.ids") <(sort "$dir/sending.ids") | sort -n >"$dir/inflight.ids"
	inflight=$(grep -c . "$dir/inflight.ids" || true)
	fs_log "trial $seed: killed=$killed after ${delay}ms; claimed left $(grep -c . "$dir/sending.ids" || true), in flight $inflight"
	# the next runs, each once the leases ran out
	while [ "$rounds" -lt 6 ]; do
		if ! fs_wait_leases_out "$db" $((lease + 10)); then
			problems+=("leases still live $((lease + 10))s after the kill")
			break
		fi
		[ "$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue
		                  WHERE status IN ('queued', 'sending')")" -eq 0 ] && break
		rounds=$((rounds + 1))
		fs_bg "$dir" "rerun$rounds" "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
			--concurrency "$conc" --lease-seconds "$lease" --worker-id "k9-$seed-r$rounds"
		fs_wait_pid "$FS_PID" 120 && rc2=0 || rc2=$?
		[ "$rc2" -eq 0 ] || problems+=("rerun $rounds exited $rc2")
	done
	fs_standin_stop
	requests=$(fs_requests "$FS_RECORD")
	fs_dups "$FS_RECORD" >"$dir/dups.ids"
	twice=$(grep -c . "$dir/dups.ids" || true)
	dups=$(tr '\n' ' ' <"$dir/dups.ids")
	# a message sent twice that was not in flight at the kill
	bad=$(comm -23 <(sort "$dir/dups.ids") <(sort "$dir/inflight.ids") | grep -c . || true)
	sent=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'")
	lost=$((n - sent))
	mism=$(fs_check_db_vs_record "$db" "$FS_RECORD" | grep -c . || true)
	[ "$lost" -eq 0 ] || problems+=("$lost messages not sent: $(fs_status_counts "$db")")
	[ "$twice" -le "$inflight" ] || problems+=("$twice sent twice, but $inflight were in flight at the kill")
	[ "$bad" -eq 0 ] || problems+=("$bad sent twice without being in flight at the kill")
	[ "$mism" -eq 0 ] || problems+=("$mism sent rows whose provider_message_id the stand-in never answered for them")
	fs_json seed "$seed" delay_ms "$delay" killed "$killed" killed_rc "$rc" messages "$n" \
		requests "$requests" in_flight "$inflight" sent_twice "$twice" dup_ids "$dups" \
		lost "$lost" reruns "$rounds" ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db"
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}

# fs_trial_optout DIR AFTER [MESSAGES] [LATENCY_MS]
#
# One user, MESSAGES queued, a slow API, queue-send --concurrency 1. Once the
# stand-in has recorded AFTER requests, optout-set --opt-out. Held: at most
# one request arrived after the opt-out committed (the one on the wire);
# every message not sent ends blocked; exit 0; nothing left sending.
fs_trial_optout() {
	local dir=$1 after=$2 n=${3:-6} lat=${4:-700}
	local db="faults_oo_${after}_$$_$RANDOM" pid rc ort t0 t1 problems=()
	local before late sent blocked sending requests counts
	mkdir -p "$dir"
	fs_db_new "$db"
	fs_seed "$db" 1 "$n"
	fs_standin_start "$dir" --latency-ms "$lat" || return 1
	fs_bg "$dir" send "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 --concurrency 1
	pid=$FS_PID
	if ! fs_wait_requests "$FS_RECORD" "$after" 30; then
		problems+=("the stand-in never saw $after requests")
	fi
	t0=$(fs_now_ms)
	"$ENG_BIN/optout-set" --db "dbname=$db" --user "$(fs_uid 1)" --opt-out --source cli \
		>"$dir/optout.json" 2>"$dir/optout.log" && ort=0 || ort=$?
	t1=$(fs_now_ms) # the commit happened before this
	fs_wait_pid "$pid" 120 && rc=0 || rc=$?
	fs_standin_stop
	[ "$ort" -eq 0 ] || problems+=("optout-set exited $ort")
	[ "$(jq -r .outcome "$dir/optout.json")" = applied ] || problems+=("opt-out not applied: $(cat "$dir/optout.json")")
	requests=$(fs_requests "$FS_RECORD")
	# arrivals after the commit returned (ms truncated on both sides)
	late=$(jq -c "$FS_JQ_MS"' select(.kind == null and ms > '"$t1"')' "$FS_RECORD" | grep -c . || true)
	before=$(jq -c "$FS_JQ_MS"' select(.kind == null and ms <= '"$t1"')' "$FS_RECORD" | grep -c . || true)
	counts=$(fs_status_counts "$db")
	sent=$(jq '.sent // 0' <<<"$counts")
	blocked=$(jq '.blocked // 0' <<<"$counts")
	sending=$(jq '.sending // 0' <<<"$counts")
	[ "$rc" -eq 0 ] || problems+=("queue-send exited $rc")
	[ "$late" -le 1 ] || problems+=("$late requests arrived after the opt-out committed")
	[ "$sent" -le $((before + 1)) ] || problems+=("$sent sent, only $before requested before the opt-out")
	[ "$sent" -eq "$requests" ] || problems+=("$sent sent but $requests requests")
	[ $((sent + blocked)) -eq "$n" ] || problems+=("not sent and not blocked: $counts")
	[ "$sending" -eq 0 ] || problems+=("$sending left sending")
	[ "$(fs_dups "$FS_RECORD" | grep -c . || true)" -eq 0 ] || problems+=("a message was sent twice")
	fs_json after "$after" messages "$n" optout_ms "$((t1 - t0))" requests "$requests" \
		before_optout "$before" after_optout "$late" sent "$sent" blocked "$blocked" \
		sending "$sending" rc "$rc" \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db"
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}

# fs_trial_restart DIR DOWN_S [MESSAGES] [CONCURRENCY] [LATENCY_MS] [LEASE_S] [STOP_AT_MS]
#
# The server is stopped (-m fast) while requests are in flight, kept down
# DOWN_S seconds and started again (the same port); DOWN_S 0 is one
# "pg_ctl restart -m fast". The stop comes once the stand-in has recorded
# CONCURRENCY requests and half a latency more (the next requests are then
# on the wire, their fence long committed) or, with STOP_AT_MS, that long
# after queue-send started. Held (DESIGN.md: an outage shorter than --lease-seconds causes
# no duplicate send and no lost outcome): every message reached the
# stand-in exactly once and ends sent with the provider id it was answered;
# nothing left sending; exit 0; reconnects >= 1, outcomes_unrecorded 0.
# Should the run fail anyway, queue-send runs again once the leases ran out,
# as cron would, so that what it costs shows (messages sent twice).
# Also checked: outcomes_unrecorded equals the messages the log names in
# outcome_not_recorded lines (reason database_unreachable).
# Stops the whole cluster: nothing else may use it meanwhile.
fs_trial_restart() {
	local dir=$1 down=$2 n=${3:-30} conc=${4:-4} lat=${5:-500} lease=${6:-15} stop_at=${7:-}
	local db="faults_rs_${down}_$$_$RANDOM" pid rc problems=() at_stop t0 t_stop t_up
	local requests distinct sent withid sending reconnects unrec s logged twice rounds=0 rc2 unexplained
	mkdir -p "$dir"
	fs_db_new "$db"
	fs_seed "$db" "$n" 1
	fs_standin_start "$dir" --latency-ms "$lat" || return 1
	t0=$(fs_now_ms)
	fs_bg "$dir" send "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
		--concurrency "$conc" --lease-seconds "$lease"
	pid=$FS_PID
	if [ -n "$stop_at" ]; then
		sleep "$(printf '%d.%03d' $((stop_at / 1000)) $((stop_at % 1000)))"
	else
		fs_wait_requests "$FS_RECORD" "$conc" 30 || problems+=("no requests before the restart")
		sleep "0.$(printf '%03d' $((lat / 2 > 999 ? 999 : lat / 2)))"
	fi
	at_stop=$(fs_requests "$FS_RECORD")
	t_stop=$(( $(fs_now_ms) - t0 ))
	if [ "$down" = 0 ]; then
		fs_as_owner "$ENG_PG_BIN/pg_ctl" -D "$ENG_PG_ROOT/data" -o "-p $PGPORT" \
			-l "$ENG_PG_ROOT/server.log" -w -t 60 restart -m fast >/dev/null
	else
		fs_pg_stop
		sleep "$down"
		fs_pg_start
	fi
	t_up=$(( $(fs_now_ms) - t0 ))
	fs_wait_pid "$pid" 120 && rc=0 || rc=$?
	s=$(cat "$dir/send.json")
	reconnects=$(jq -r '.reconnects // "null"' <<<"$s" 2>/dev/null || echo null)
	unrec=$(jq -r '.outcomes_unrecorded // "null"' <<<"$s" 2>/dev/null || echo null)
	jq -r 'select(.event == "outcome_not_recorded" and .reason == "database_unreachable")
	       | .message_id' "$dir/send.log" 2>/dev/null | sort -u >"$dir/unrecorded.ids"
	logged=$(grep -c . "$dir/unrecorded.ids" || true)
	# if the run gave up, finish as the next cron run would
	while [ "$rc" -ne 0 ] && [ "$rounds" -lt 3 ] &&
		[ "$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue
		                 WHERE status IN ('queued', 'sending')")" -gt 0 ]; do
		rounds=$((rounds + 1))
		fs_wait_leases_out "$db" $((lease + 10)) || break
		fs_bg "$dir" "rerun$rounds" "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
			--concurrency "$conc" --lease-seconds "$lease"
		fs_wait_pid "$FS_PID" 120 && rc2=0 || rc2=$?
		[ "$rc2" -eq 0 ] || problems+=("rerun $rounds exited $rc2")
	done
	fs_standin_stop
	requests=$(fs_requests "$FS_RECORD")
	distinct=$(fs_record_ids "$FS_RECORD" | sort -u | grep -c . || true)
	fs_dups "$FS_RECORD" | sort >"$dir/dups.ids"
	twice=$(grep -c . "$dir/dups.ids" || true)
	# sent twice though its outcome was not reported lost
	unexplained=$(comm -23 "$dir/dups.ids" "$dir/unrecorded.ids" | grep -c . || true)
	sent=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'")
	withid=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue
	                     WHERE status = 'sent' AND provider_message_id LIKE 'wamid.%'")
	sending=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending'")
	[ "$rc" -eq 0 ] || problems+=("queue-send exited $rc: $(jq -r '.error // empty' <<<"$s" 2>/dev/null | cut -c1-120)")
	[ "$requests" -eq "$n" ] || problems+=("$requests requests for $n messages")
	[ "$distinct" -eq "$n" ] || problems+=("$distinct distinct messages reached the stand-in, of $n")
	[ "$twice" -eq 0 ] || problems+=("$twice messages sent twice")
	[ "$sent" -eq "$n" ] || problems+=("$sent sent of $n: $(fs_status_counts "$db")")
	[ "$withid" -eq "$n" ] || problems+=("$withid sent with a provider id, of $n")
	[ "$sending" -eq 0 ] || problems+=("$sending left sending")
	[ "$reconnects" != null ] && [ "$reconnects" -ge 1 ] || problems+=("reconnects $reconnects")
	[ "$unrec" = 0 ] || problems+=("outcomes_unrecorded $unrec")
	[ "$unrec" = "$logged" ] || problems+=("outcomes_unrecorded $unrec but the log names $logged messages")
	[ "$(fs_check_db_vs_record "$db" "$FS_RECORD" | grep -c . || true)" -eq 0 ] ||
		problems+=("a provider_message_id the stand-in did not answer for that message")
	fs_json down_s "$down" messages "$n" lease_s "$lease" stop_at_ms "$t_stop" up_at_ms "$t_up" \
		requests_at_stop "$at_stop" requests "$requests" distinct "$distinct" \
		sent_twice "$twice" sent_twice_unexplained "$unexplained" \
		dup_ids "$(sort -n "$dir/dups.ids" | tr '\n' ' ')" sent "$sent" sending "$sending" rc "$rc" \
		reconnects "$reconnects" outcomes_unrecorded "$unrec" unrecorded_logged "$logged" \
		unrecorded_ids "$(sort -n "$dir/unrecorded.ids" | tr '\n' ' ')" reruns "$rounds" \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db"
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}

# fs_trial_stall DIR [MESSAGES] [STOP_S] [LATENCY_MS] [LEASE_S]
#
# Worker A (--concurrency 2, a slow API) is stopped with SIGSTOP once it
# has requests going, for STOP_S seconds (longer than its lease). Once A's
# leases ran out, worker B runs to the end: it recovers A's claims and
# sends them. Then A gets SIGCONT and finishes. Held: only messages whose
# request A had made and whose outcome A had not written when it was
# stopped reached the stand-in twice (those on the wire, at most its
# concurrency, plus answers waiting for the batched write-back; with
# FS_STRICT_STALL set, at most its concurrency, 2, in all);
# every message ends sent with a wamid the stand-in answered for it;
# nothing left sending; B exits 0.
fs_trial_stall() {
	local dir=$1 n=${2:-20} stop=${3:-8} lat=${4:-300} lease=${5:-6}
	local db="faults_st_$$_$RANDOM" a rca rcb t_stop problems=() conc=2
	local requests twice dups early mism sending sent left inflight bad
	mkdir -p "$dir"
	fs_db_new "$db"
	fs_seed "$db" "$n" 1
	fs_standin_start "$dir" --latency-ms "$lat" || return 1
	fs_bg "$dir" a "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
		--concurrency "$conc" --lease-seconds "$lease" --worker-id A
	a=$FS_PID
	fs_wait_requests "$FS_RECORD" 2 30 || problems+=("A made no requests")
	kill -STOP "$a"
	t_stop=$(fs_now_ms)
	# A's requests still on the wire are answered (and recorded) meanwhile;
	# then: which requests A made have no outcome in the database?
	fs_wait_quiet "$FS_RECORD" $((lat + 100 > 999 ? 999 : lat + 100))
	fs_record_ids "$FS_RECORD" | sort -u >"$dir/a.ids"
	fs_q "$db" "SELECT id FROM engagement.message_queue WHERE status = 'sending'" | sort -u >"$dir/sending.ids"
	comm -12 "$dir/a.ids" "$dir/sending.ids" | sort -n >"$dir/inflight.ids"
	inflight=$(grep -c . "$dir/inflight.ids" || true)
	fs_log "A stopped at $t_stop: $(grep -c . "$dir/a.ids") requests made, $inflight without an outcome in the database"
	fs_wait_leases_out "$db" $((lease + 10)) || problems+=("A's leases did not run out")
	fs_bg "$dir" b "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
		--concurrency "$conc" --lease-seconds "$lease" --worker-id B
	fs_wait_pid "$FS_PID" 120 && rcb=0 || rcb=$?
	left=$(( t_stop + stop * 1000 - $(fs_now_ms) ))
	[ "$left" -gt 0 ] && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
	kill -CONT "$a"
	fs_wait_pid "$a" 120 && rca=0 || rca=$?
	fs_standin_stop
	requests=$(fs_requests "$FS_RECORD")
	fs_dups "$FS_RECORD" >"$dir/dups.ids"
	twice=$(grep -c . "$dir/dups.ids" || true)
	dups=$(tr '\n' ' ' <"$dir/dups.ids")
	# each message sent twice must have had a request arrive before the stop
	early=0
	local id
	while IFS= read -r id; do
		[ "$(jq -n "$FS_JQ_MS"' [inputs | select(.kind == null and
		        .biz_opaque_callback_data == "mq:'"$id"'" and ms <= '"$t_stop"')] | length' \
		        "$FS_RECORD")" -gt 0 ] && early=$((early + 1))
	done <"$dir/dups.ids"
	sent=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'")
	sending=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending'")
	mism=$(fs_check_db_vs_record "$db" "$FS_RECORD" | grep -c . || true)
	[ "$rcb" -eq 0 ] || problems+=("B exited $rcb")
	bad=$(comm -23 <(sort "$dir/dups.ids") <(sort "$dir/inflight.ids") | grep -c . || true)
	[ "$twice" -le "$inflight" ] || problems+=("$twice sent twice, but $inflight of A's requests were unrecorded at the stop")
	[ "$bad" -eq 0 ] || problems+=("$bad sent twice without being A's unrecorded requests at the stop")
	[ -z "${FS_STRICT_STALL:-}" ] || [ "$twice" -le "$conc" ] ||
		problems+=("$twice messages sent twice, more than A's concurrency ($conc)")
	# (a request A had let through its gate just before the stop arrives only
	# after SIGCONT, so "early" is reported, not required)
	local areq
	areq=$(jq -r '.requests // 0' "$dir/a.json" 2>/dev/null || echo 0)
	[ "$twice" -le "$areq" ] || problems+=("$twice sent twice, but A made only $areq requests")
	[ "$requests" -eq $((n + twice)) ] || problems+=("$requests requests for $n messages and $twice repeats")
	[ "$sent" -eq "$n" ] || problems+=("$sent sent of $n: $(fs_status_counts "$db")")
	[ "$sending" -eq 0 ] || problems+=("$sending left sending")
	[ "$mism" -eq 0 ] || problems+=("$mism sent rows whose provider_message_id the stand-in never answered for them")
	[ "$(fs_record_ids "$FS_RECORD" | sort -u | grep -c . || true)" -eq "$n" ] ||
		problems+=("not every message reached the stand-in")
	fs_json messages "$n" stopped_s "$stop" requests "$requests" sent_twice "$twice" \
		unrecorded_at_stop "$inflight" dup_ids "$dups" dups_before_stop "$early" sent "$sent" sending "$sending" \
		rc_a "$rca" rc_b "$rcb" a_requests "$areq" a_sent "$(jq -r '.sent // "null"' "$dir/a.json" 2>/dev/null)" \
		a_leases_lost "$(jq -r '.leases_lost // "null"' "$dir/a.json" 2>/dev/null)" \
		b_sent "$(jq -r '.sent // "null"' "$dir/b.json" 2>/dev/null)" \
		b_recovered "$(jq -r '.leases_recovered // "null"' "$dir/b.json" 2>/dev/null)" \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db"
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}

# fs_trials_parallel P FUNC DIR SEED0 COUNT [ARGS...]: COUNT trials of FUNC,
# P at a time, in DIR/SEED; their result lines on stdout in seed order.
fs_trials_parallel() {
	local p=$1 fn=$2 dir=$3 seed0=$4 count=$5 i pids=() seed
	shift 5
	mkdir -p "$dir"
	for ((i = 0; i < count; i++)); do
		seed=$((seed0 + i))
		( "$fn" "$dir/$seed" "$seed" "$@" >"$dir/$seed.result" 2>"$dir/$seed.err" ) &
		pids+=($!)
		if [ ${#pids[@]} -ge "$p" ]; then
			wait "${pids[0]}" || true
			pids=("${pids[@]:1}")
		fi
	done
	for i in "${pids[@]}"; do wait "$i" || true; done
	for ((i = 0; i < count; i++)); do
		seed=$((seed0 + i))
		if [ -s "$dir/$seed.result" ]; then
			cat "$dir/$seed.result"
		else
			fs_json seed "$seed" ok false problems "no result: $(tail -n 3 "$dir/$seed.err" | tr '\n' ' ')"
		fi
	done
}
