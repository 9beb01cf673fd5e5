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

# Two tiers: the full fault trials (scripts/test --all), and a few per
# program (FAULTS_QUICK=1: the quick tier of scripts/test).
fs_quick() { [ -n "${FAULTS_QUICK:-}" ]; }
# fs_tier FULL QUICK: FULL, or QUICK in the quick tier
fs_tier() { if fs_quick; then echo "$2"; else echo "$1"; fi; }
# fs_full_only: (in a bats test) skipped in the quick tier
fs_full_only() {
	if fs_quick; then skip "full fault trials only (scripts/test --all)"; fi
}

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

# fs_conn DB: a trial program's --db: dbname=DB on the test cluster, or,
# when FS_DB_HOSTS names a primary and its standby (the ff_ helpers), the
# multi-host string before it (libpq picks the one that takes writes).
fs_conn() { echo "${FS_DB_HOSTS:+$FS_DB_HOSTS }dbname=$1"; }

# fs_poll_start DB / fs_poll SQL / fs_poll_stop: one query (one line, one
# value) asked again and again on one open connection (a psql coprocess):
# a fraction of a millisecond each instead of a new psql every time, so
# that a fault placed by progress follows the commit it waits for at once.
fs_poll_start() {
	fs_poll_stop
	coproc FS_POLL { psql -X -q -At -v ON_ERROR_STOP=0 -d "$1" 2>&1; }
}
fs_poll() { # (sets FS_POLL_V: a coprocess is not reachable from $(...))
	FS_POLL_V=
	[ -n "${FS_POLL_PID:-}" ] || return 1
	echo "$1;" >&"${FS_POLL[1]}" || return 1
	IFS= read -r -t 10 FS_POLL_V <&"${FS_POLL[0]}" || return 1
}
fs_poll_stop() {
	if [ -n "${FS_POLL_PID:-}" ]; then
		exec {FS_POLL[1]}>&- 2>/dev/null || true
		wait "$FS_POLL_PID" 2>/dev/null || true
	fi
	FS_POLL_PID=
}

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

# fs_wait_requests_of RECORD N PID TIMEOUT_S: until the record holds N
# requests, or the program PID ended (it may finish first).
fs_wait_requests_of() {
	local end=$(( $(fs_now_ms) + $4 * 1000 ))
	while [ "$(fs_requests "$1")" -lt "$2" ]; do
		kill -0 "$3" 2>/dev/null || return 1
		[ "$(fs_now_ms)" -lt "$end" ] || return 1
		sleep 0.005
	done
}

# fs_standin_in_progress: requests the stand-in has begun and not yet
# answered and recorded (a slow answer; one a killed client left)
fs_standin_in_progress() {
	curl -s --max-time 5 "$WHATSAPP_API_URL/_standin/stats" | jq -r '.in_progress // 1'
}

# fs_wait_standin_busy N TIMEOUT_S: until N requests are open at once
fs_wait_standin_busy() {
	local end=$(( $(fs_now_ms) + $2 * 1000 ))
	while [ "$(fs_standin_in_progress)" -lt "$1" ]; do
		[ "$(fs_now_ms)" -lt "$end" ] || return 1
		sleep 0.01
	done
}

# fs_wait_standin_idle TIMEOUT_S: until every request the stand-in has
# begun is answered and in its record; 1 past the timeout
fs_wait_standin_idle() {
	local end=$(( $(fs_now_ms) + $1 * 1000 ))
	while [ "$(fs_standin_in_progress)" != 0 ]; do
		[ "$(fs_now_ms)" -lt "$end" ] || { echo "fs_wait_standin_idle: requests still open after $1 s" >&2; return 1; }
		sleep 0.01
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

# fs_trial_kill9 DIR SEED [MESSAGES] [CONCURRENCY] [LATENCY_MS] [LEASE_S]
#
# queue-send is killed with SIGKILL once the stand-in has recorded a
# random number of its requests (from SEED: 0 to three quarters of them,
# 0 being at once, while it starts), whatever the machine's speed; then
# queue-send runs again, each time once every lease ran out, until nothing
# is queued. Held: every message ends sent; each message the stand-in saw
# twice had a request recorded by the killed run whose outcome the database
# did not have (the request was in flight at the kill).
fs_trial_kill9() {
	local dir=$1 seed=$2 n=${3:-40} conc=${4:-4} lat=${5:-50} lease=${6:-5}
	local db="faults_k9_${seed}_$$_$RANDOM" delay pid rc killed=false inflight problems=()
	local rounds=0 rc2 twice dups bad sent lost requests mism after t0
	mkdir -p "$dir"
	RANDOM=$seed
	after=$(( (RANDOM * 32768 + RANDOM) % (n * 3 / 4) ))
	fs_db_new "$db"
	fs_seed "$db" "$n" 1
	fs_standin_start "$dir" --latency-ms "$lat" || return 1
	t0=$(fs_now_ms)
	fs_bg "$dir" killed "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
		--concurrency "$conc" --lease-seconds "$lease" --worker-id "k9-$seed"
	pid=$FS_PID
	fs_wait_requests_of "$FS_RECORD" "$after" "$pid" 60
	delay=$(( $(fs_now_ms) - t0 ))
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null && killed=true
	fi
	wait "$pid" && rc=0 || rc=$?
	# the killed run's last requests: their lines come with their answers
	fs_wait_standin_idle 30 || true
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
	fs_json seed "$seed" after_requests "$after" delay_ms "$delay" killed "$killed" killed_rc "$rc" messages "$n" \
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
	fs_bg "$dir" send "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 --concurrency 1 \
		--pair-interval 0 # one person, many messages: the opt-out, not the pair rate
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

# fs_trial_restart DIR DOWN_S [MESSAGES] [CONCURRENCY] [LATENCY_MS] [LEASE_S] [AFTER]
#
# The server is stopped (-m fast) while requests are in flight, kept down
# DOWN_S seconds and started again (the same port); DOWN_S 0 is one
# "pg_ctl restart -m fast"; DOWN_S "failover:S" is a failover instead (a
# primary and its standby, ff_ helpers: the primary stopped -m immediate,
# the standby promoted S seconds later; queue-send given the multi-host
# string; reach_ms: from the stop to the sender's database_reachable). The stop comes once the stand-in has recorded
# AFTER requests (default CONCURRENCY) and half a latency more (the next
# requests are then on the wire, their fence long committed). The outage
# is measured as it happened (outage_ms: from the stop to the server
# accepting connections again; sender_down_ms: what queue-send saw, from
# its log) and set against the lease (lease_ms). Held (DESIGN.md: an
# outage shorter than --lease-seconds causes no duplicate send and no lost
# outcome; and a sender never sends again what it knows it sent, so an
# outage longer than the lease that it survives costs nothing either):
# every message reached the stand-in exactly once and ends sent with the
# provider id it was answered; nothing left sending; exit 0; reconnects
# >= 1, outcomes_unrecorded 0. Should the run fail anyway, queue-send runs
# again once the leases ran out, as cron would, so that what it costs
# shows (messages sent twice). Also checked: outcomes_unrecorded equals the
# messages the log names in outcome_not_recorded lines (reason
# database_unreachable).
# Stops the whole cluster: nothing else may use it meanwhile.
fs_trial_restart() {
	local dir=$1 down=$2 n=${3:-30} conc=${4:-4} lat=${5:-500} lease=${6:-15} after=${7:-}
	local db="faults_rs_${down//:/_}_$$_$RANDOM" pid rc problems=() at_stop t0 t_stop t_up t_down
	local requests distinct sent withid sending reconnects unrec s logged twice rounds=0 rc2 unexplained
	local seen_down failover='' promote_ms=null reach_ms=null
	case $down in failover:*) failover=${down#failover:} ;; esac
	mkdir -p "$dir"
	[ -z "$failover" ] || ff_ready || return 1
	fs_db_new "$db"
	fs_seed "$db" "$n" 1
	fs_standin_start "$dir" --latency-ms "$lat" || return 1
	t0=$(fs_now_ms)
	fs_bg "$dir" send "$ENG_BIN/queue-send" --db "$(fs_conn "$db")" --rate 0 \
		--concurrency "$conc" --lease-seconds "$lease"
	pid=$FS_PID
	fs_wait_requests "$FS_RECORD" "${after:-$conc}" 60 || problems+=("no requests before the restart")
	sleep "0.$(printf '%03d' $((lat / 2 > 999 ? 999 : lat / 2)))"
	at_stop=$(fs_requests "$FS_RECORD")
	t_down=$(fs_now_ms)
	t_stop=$((t_down - t0))
	if [ -n "$failover" ]; then
		ff_failover "$failover" || problems+=("the failover failed")
		t_down=$FF_T_STOP
		promote_ms=$((FF_T_PROMOTED - FF_T_STOP))
	elif [ "$down" = 0 ]; then
		fs_as_owner "$ENG_PG_BIN/pg_ctl" -D "$ENG_PG_ROOT/data" -o "-p $PGPORT" \
			-l "$ENG_PG_ROOT/server.log" -w -t 60 restart -m fast >/dev/null
	else
		fs_pg_stop
		sleep "$down"
		fs_pg_start
	fi
	t_up=$(( $(fs_now_ms) - t0 ))
	fs_wait_pid "$pid" 120 && rc=0 || rc=$?
	[ -z "$failover" ] || reach_ms=$(ff_reach_ms "$dir/send.log" database_reachable "$t_down")
	s=$(cat "$dir/send.json")
	seen_down=$(jq -rn 'first(inputs | select(.event == "database_reachable") | .down_ms) // "null"' \
		"$dir/send.log" 2>/dev/null || echo null)
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
		fs_bg "$dir" "rerun$rounds" "$ENG_BIN/queue-send" --db "$(fs_conn "$db")" --rate 0 \
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
	fs_json down_s "$down" messages "$n" lease_ms "$((lease * 1000))" outage_ms "$((t0 + t_up - t_down))" \
		sender_down_ms "$seen_down" stop_at_ms "$t_stop" up_at_ms "$t_up" \
		promote_after_ms "$promote_ms" reach_ms "$reach_ms" \
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
	fs_wait_standin_idle 30 || true
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

# fs_trial_stall_recovered DIR [MESSAGES] [LATENCY_MS] [LEASE_S]
#
# Worker A (--concurrency 2, a slow API) is stopped with SIGSTOP once it
# has requests going; the stand-in answers them meanwhile. Once A's leases
# ran out, worker B recovers them (queue-send --max-seconds 0.001 recovers
# expired claims as it starts, then stops before claiming anything): A's
# messages are back in the queue, those whose answer A holds among them.
# Then A gets SIGCONT and finishes: it records the outcomes it holds though
# the claims are not its own any more, and claims the rest again. With a
# latency longer than the lease, A's requests are still on the wire when B
# recovers their claims: A claims them again before their answers come
# (claimed_again) and must not send them a second time. Held: no message
# reached the stand-in twice (a sender never sends again what it knows it
# sent, whatever became of its claim); every message ends sent with the
# wamid it was answered; nothing left sending; A and B exit 0; B recovered
# A's claims.
fs_trial_stall_recovered() {
	local dir=$1 n=${2:-20} lat=${3:-300} lease=${4:-5}
	local db="faults_sr_$$_$RANDOM" a rca rcb problems=() conc=2
	local requests twice sent sending mism held wire=0 recovered again
	mkdir -p "$dir"
	fs_db_new "$db"
	fs_seed "$db" "$n" 1
	fs_standin_start "$dir" --latency-ms "$lat" || return 1
	fs_bg "$dir" a "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 \
		--concurrency "$conc" --lease-seconds "$lease" --timeout "$((lat / 1000 + 10))s" \
		--worker-id A
	a=$FS_PID
	if [ "$lat" -gt $((lease * 1000)) ]; then
		# its requests still on the wire when the claims are recovered
		fs_wait_standin_busy "$conc" 30 || problems+=("A made no requests")
		kill -STOP "$a"
	else
		fs_wait_requests "$FS_RECORD" 2 30 || problems+=("A made no requests")
		kill -STOP "$a"
		# A's requests on the wire are answered meanwhile: A holds their outcome
		fs_wait_standin_idle 30 || true
	fi
	fs_wait_leases_out "$db" $((lease + 10)) || problems+=("A's leases did not run out")
	wire=$(fs_standin_in_progress)
	held=$(comm -12 <(fs_record_ids "$FS_RECORD" | sort -u) \
		<(fs_q "$db" "SELECT id FROM engagement.message_queue WHERE status = 'sending'" | sort -u) |
		grep -c . || true)
	fs_bg "$dir" b "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 --max-seconds 0.001 --worker-id B
	fs_wait_pid "$FS_PID" 60 && rcb=0 || rcb=$?
	recovered=$(jq -r '.leases_recovered // 0' "$dir/b.json" 2>/dev/null || echo 0)
	kill -CONT "$a"
	fs_wait_pid "$a" 120 && rca=0 || rca=$?
	fs_standin_stop
	requests=$(fs_requests "$FS_RECORD")
	twice=$(fs_dups "$FS_RECORD" | grep -c . || true)
	sent=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'")
	sending=$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue WHERE status = 'sending'")
	mism=$(fs_check_db_vs_record "$db" "$FS_RECORD" | grep -c . || true)
	[ "$rca" -eq 0 ] || problems+=("A exited $rca")
	[ "$rcb" -eq 0 ] || problems+=("B exited $rcb")
	again=$(grep -c '"event":"claimed_again"' "$dir/a.log" || true)
	[ "$recovered" -ge 1 ] || problems+=("B recovered no claim of A")
	[ $((held + wire)) -ge 1 ] || problems+=("A had no answer and no request on the wire when its claims were recovered")
	[ "$wire" -eq 0 ] || [ "$again" -ge 1 ] || problems+=("A did not claim again the messages it had on the wire")
	[ "$twice" -eq 0 ] || problems+=("$twice messages sent twice: $(fs_dups "$FS_RECORD" | tr '\n' ' ')")
	[ "$requests" -eq "$n" ] || problems+=("$requests requests for $n messages")
	[ "$sent" -eq "$n" ] || problems+=("$sent sent of $n: $(fs_status_counts "$db")")
	[ "$sending" -eq 0 ] || problems+=("$sending left sending")
	[ "$mism" -eq 0 ] || problems+=("$mism sent rows whose provider_message_id the stand-in never answered for them")
	fs_json messages "$n" lease_s "$lease" latency_ms "$lat" held_at_recovery "$held" \
		on_wire_at_recovery "$wire" b_recovered "$recovered" \
		requests "$requests" sent_twice "$twice" sent "$sent" sending "$sending" rc_a "$rca" rc_b "$rcb" \
		a_claimed_again "$again" \
		a_leases_lost "$(jq -r '.leases_lost // "null"' "$dir/a.json" 2>/dev/null)" \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db"
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}

# fs_trials P DIR SEED0 SPEC...: one trial per SPEC ("FUNC ARGS...", split
# into words), run as FUNC DIR/SEED SEED ARGS... with SEED = SEED0, SEED0+1,
# ...; P at a time; their result lines on stdout in SPEC order. A trial
# that printed nothing gets a failed line, with what stopped it.
fs_trials() {
	local p=$1 dir=$2 seed0=$3 i=0 pids=() spec pid fn
	shift 3
	mkdir -p "$dir"
	for spec in "$@"; do
		# a trial that stops on a failing command (errexit, as under bats or
		# set -e) says which one
		# shellcheck disable=SC2086
		( set -E
		  trap 'echo "stopped at ${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND (exit $?)" >&2' ERR
		  set -- $spec
		  fn=$1
		  shift
		  "$fn" "$dir/$((seed0 + i))" $((seed0 + i)) "$@" \
			>"$dir/$((seed0 + i)).result" 2>"$dir/$((seed0 + i)).err" ) &
		pids+=($!)
		i=$((i + 1))
		if [ ${#pids[@]} -ge "$p" ]; then
			wait "${pids[0]}" || true
			pids=("${pids[@]:1}")
		fi
	done
	for pid in "${pids[@]}"; do wait "$pid" || true; done
	i=0
	for spec in "$@"; do
		if [ -s "$dir/$((seed0 + i)).result" ]; then
			cat "$dir/$((seed0 + i)).result"
		else
			fs_json spec "$spec" seed $((seed0 + i)) ok false violations 1 \
				problems "no result: $(tail -n 3 "$dir/$((seed0 + i)).err" | tr '\n' ' ')"
		fi
		i=$((i + 1))
	done
}

# fs_trials_parallel P FUNC DIR SEED0 COUNT [ARGS...]: COUNT trials of
# "FUNC ARGS...", as fs_trials runs them.
fs_trials_parallel() {
	local p=$1 fn=$2 dir=$3 seed0=$4 count=$5 i specs=()
	shift 5
	for ((i = 0; i < count; i++)); do specs+=("$fn $*"); done
	fs_trials "$p" "$dir" "$seed0" "${specs[@]}"
}

# ==== fj_: the jobs, the batch tools and migrate (issue 15) =====================
# Shared by tests/faults/jobs.bats and bench/faults-jobs.sh. Everything here
# is prefixed fj_ and changes nothing above.
#
# Needs, besides the above: ENG_BIN pointing at the per-program wrappers
# ($ENG_AS_ROLES: each program runs as its own login, migrate as the
# owner), ENG_PGBOUNCER_PORT (the "bouncer" fault), FJ_DIR (a work folder,
# shared by the trials: bases, batch files and references live there).
#
# A scenario is a program, its starting database (a "base", built once and
# cloned for each trial) and the exact command cron would run:
#   daily          engagement-daily --now $FJ_NOW --batch-size 300, on
#                  FJ_USERS users of bench/gen_users.sql (10% due goodbyes,
#                  1% expired goodbyes, 1% due reminders, 5% opted out)
#   weekly         engagement-weekly --now $FJ_NOW --batch-size 500, same users
#   event_ids      engagement-event --batch F: every line with an "id";
#                  activities, goodbye replies and activities after them,
#                  by user_id and by phone, on the users after a daily run
#                  (so goodbyes are queued, and an activity cancels one)
#   event_noid     engagement-event --batch F: activities without "id", one
#                  per user (a replay adds activity rows: expected, counted)
#   optout         optout-set --batch F: opt-outs (blocking queued goodbyes),
#                  opt-ins, stale and unchanged changes, all with "id"
#   migrate_empty  migrate up, on an empty database
#   migrate_mid    migrate up, from version 8 with FJ_MID_MESSAGES queue rows,
#                  so that 0009 and 0011 (CREATE INDEX CONCURRENTLY, outside a
#                  transaction) take a while
# The reference of a scenario is one uninterrupted run on a clone of its
# base (the same starting database every trial clones): its fingerprint
# (fj_fp: final states, transitions, messages by idempotency key, outbox
# events modulo ids, activity rows, inbound event ids, preferences, audit
# rows; for migrate the schema as pg_dump -s prints it and the recorded
# versions), its duration, its summary.
#
# Faults (fj_trial DIR SEED SCENARIO FAULT), each placed by the run's
# progress, not by time: once the run has committed a random share of its
# work (fj_progress between the reference's start and end: in its first
# half), whatever the machine's speed:
#   kill9    SIGKILL, direct connection; then a bounded wait until the dead
#            client's server process has left pg_stat_activity (reported:
#            backend_at_kill, backend_wait_ms)
#   restart  pg_ctl restart -m fast (stops the whole cluster: nothing else
#            may use it meanwhile)
#   bouncer  the program works through PgBouncer (transaction pooling); its
#            server connections are terminated (pg_terminate_backend). Not
#            for migrate (it needs a direct connection).
# Then the same command runs again, as cron would, and the database is
# compared with the reference and checked (fj_invariants). One JSON line per
# trial: figures, "violations" (how many checks failed) and "problems".

FJ_NOW=2026-11-22T06:00:00Z
FJ_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FJ_USERS=${FJ_USERS:-30000}
FJ_MID_MESSAGES=${FJ_MID_MESSAGES:-200000}
# the event batch files name users 1..FJ_BATCH_USERS (and every
# FJ_ACTIVE_EVERY-th of the active ones), the opt-out file 1..FJ_OPTOUT_USERS
FJ_BATCH_USERS=${FJ_BATCH_USERS:-$FJ_USERS}
FJ_OPTOUT_USERS=${FJ_OPTOUT_USERS:-$FJ_BATCH_USERS}
FJ_ACTIVE_EVERY=${FJ_ACTIVE_EVERY:-5}
FJ_BACKEND_WAIT_S=${FJ_BACKEND_WAIT_S:-30}
# shellcheck disable=SC2034 # (bench/faults-jobs.sh runs them all)
FJ_SCENARIOS="daily weekly event_ids event_noid optout migrate_empty migrate_mid"

fj_ms_sleep() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# fj_scenario NAME: sets FJ_PROG (the program), FJ_LOGIN (its database
# login; empty for migrate, which runs as the owner), FJ_ARGS (the
# arguments after --db), FJ_BASE (the database trials clone), FJ_KIND (job,
# batch or migrate), FJ_IDS (1: a batch whose lines carry ids).
fj_scenario() {
	FJ_IDS=0
	case $1 in
	daily)
		FJ_PROG=engagement-daily FJ_LOGIN=eng_daily FJ_BASE=fj_users FJ_KIND=job
		FJ_ARGS=(--now "$FJ_NOW" --batch-size "${FJ_DAILY_BATCH:-300}") ;;
	weekly)
		FJ_PROG=engagement-weekly FJ_LOGIN=eng_weekly FJ_BASE=fj_users FJ_KIND=job
		FJ_ARGS=(--now "$FJ_NOW" --batch-size "${FJ_WEEKLY_BATCH:-500}") ;;
	event_ids)
		FJ_PROG=engagement-event FJ_LOGIN=eng_event FJ_BASE=fj_events FJ_KIND=batch FJ_IDS=1
		FJ_ARGS=(--batch "$FJ_DIR/files/events-ids.jsonl") ;;
	event_noid)
		FJ_PROG=engagement-event FJ_LOGIN=eng_event FJ_BASE=fj_events FJ_KIND=batch
		FJ_ARGS=(--batch "$FJ_DIR/files/events-noid.jsonl") ;;
	optout)
		FJ_PROG=optout-set FJ_LOGIN=eng_optout FJ_BASE=fj_events FJ_KIND=batch FJ_IDS=1
		FJ_ARGS=(--batch "$FJ_DIR/files/optout.jsonl") ;;
	migrate_empty)
		FJ_PROG=migrate FJ_LOGIN='' FJ_BASE=fj_empty FJ_KIND=migrate
		FJ_ARGS=(up) ;;
	migrate_mid)
		FJ_PROG=migrate FJ_LOGIN='' FJ_BASE=fj_mid FJ_KIND=migrate
		FJ_ARGS=(up) ;;
	*) echo "fj_scenario: unknown scenario $1" >&2; return 1 ;;
	esac
}

# fj_conn DB direct|bouncer: the --db value (direct: fs_conn, both hosts
# of a pair in failover.bats).
fj_conn() {
	if [ "$2" = bouncer ]; then
		echo "host=127.0.0.1 port=${ENG_PGBOUNCER_PORT:?no PgBouncer in this cluster} dbname=$1"
	else
		fs_conn "$1"
	fi
}

# fj_clone BASE NEW
fj_clone() {
	psql -X -q -d postgres -c "CREATE DATABASE \"$2\" TEMPLATE \"$1\"" >/dev/null
}

fj_db_exists() {
	[ "$(fs_q postgres "SELECT count(*) FROM pg_database WHERE datname = '$1'")" = 1 ]
}

# ---- bases and batch files --------------------------------------------------------

# fj_base NAME: build a base database once (for the scenario that needs it).
fj_base() {
	local b=$1
	fj_db_exists "$b" && return 0
	fs_db_drop "$b.tmp"
	case $b in
	fj_users)
		createdb -T engagement_tmpl fj_users.tmp
		psql -X -q -d fj_users.tmp -v n="$FJ_USERS" -v now="$FJ_NOW" \
			-f "$FJ_SRC/bench/gen_users.sql" >/dev/null || return 1 ;;
	fj_events)
		fj_base fj_users
		fj_clone fj_users fj_events.tmp
		"$ENG_BIN/engagement-daily" --db dbname=fj_events.tmp --now "$FJ_NOW" \
			--log-level warn >"$FJ_DIR/fj_events.daily.json" ||
			{ echo "fj_base: the daily run on fj_events failed" >&2; return 1; } ;;
	fj_empty)
		createdb fj_empty.tmp ;;
	fj_mid)
		createdb fj_mid.tmp
		"$ENG_BIN/migrate" --db dbname=fj_mid.tmp --log-level warn up --to 8 >/dev/null || return 1
		fs_q fj_mid.tmp "
		  INSERT INTO engagement.users (id, phone_e164)
		  SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
		         '+5511' || lpad(i::text, 9, '0')
		  FROM generate_series(1, 20000) i;
		  INSERT INTO engagement.message_queue (user_id, message_type, template_key,
		      idempotency_key, status, provider_message_id, sent_at)
		  SELECT ('00000000-0000-4000-8000-' || lpad((1 + k % 20000)::text, 12, '0'))::uuid,
		         'weekly_review', 'weekly_review', 'mid:' || k,
		         CASE WHEN k % 10 = 0 THEN 'queued' ELSE 'sent' END,
		         CASE WHEN k % 10 = 0 THEN NULL ELSE 'wamid.' || k END,
		         CASE WHEN k % 10 = 0 THEN NULL ELSE now() END
		  FROM generate_series(1, $FJ_MID_MESSAGES) k" >/dev/null || return 1
		fs_q fj_mid.tmp "VACUUM ANALYZE" >/dev/null ;;
	*) echo "fj_base: unknown base $b" >&2; return 1 ;;
	esac
	psql -X -q -d postgres -c "ALTER DATABASE \"$b.tmp\" RENAME TO \"$b\"" >/dev/null
}

# fj_files: the batch files (deterministic for the FJ_ sizes). Users by i mod 100
# as bench/gen_users.sql makes them, after the base's daily run: 0-9
# goodbye_sent (the 5% opted out still active), 10-11 dormant, 12
# goodbye_sent, 13 help_flow, 14-15 dormant, 16 remind_later, the rest active.
fj_files() {
	local d=$FJ_DIR/files
	[ -s "$d/optout.jsonl" ] && return 0
	mkdir -p "$d"
	# events with ids: pass 1 at now+1h (goodbye replies from goodbye_sent
	# users, activities from everyone else, every fifth of the active);
	# pass 2 at now+3h: activities from half the repliers (back to active)
	fs_q postgres "
	  WITH u AS (
	    SELECT i, i % 100 AS m, (i::bigint * 7919) % 100 < 5 AS opted,
	           '00000000-0000-4000-8000-' || lpad(i::text, 12, '0') AS id,
	           '+5511' || lpad(i::text, 9, '0') AS phone
	    FROM generate_series(1, $FJ_BATCH_USERS) i),
	  who AS (SELECT *, CASE WHEN i % 7 = 0 THEN jsonb_build_object('phone', phone)
	                         ELSE jsonb_build_object('user_id', id) END AS ref,
	                    (m = 12 OR (m < 10 AND NOT opted)) AND i % 4 <> 3 AS replies
	          FROM u),
	  ev AS (
	    SELECT 1 AS pass, i, ref || CASE WHEN replies
	             THEN jsonb_build_object('goodbye_reply', 1 + i % 3)
	             ELSE '{\"activity\": true}' END
	           || jsonb_build_object('at', '$FJ_NOW'::timestamptz + interval '1 hour',
	                                 'id', 'ev1-' || i) AS j
	    FROM who WHERE m < 17 OR i % $FJ_ACTIVE_EVERY = 0
	    UNION ALL
	    SELECT 2, i, ref || jsonb_build_object('activity', true,
	             'at', '$FJ_NOW'::timestamptz + interval '3 hours', 'id', 'ev2-' || i)
	    FROM who WHERE replies AND i % 2 = 0)
	  SELECT j FROM ev ORDER BY pass, i" >"$d/events-ids.jsonl"
	fs_q postgres "
	  SELECT jsonb_build_object('user_id', '00000000-0000-4000-8000-' || lpad(i::text, 12, '0'),
	           'activity', true, 'at', '$FJ_NOW'::timestamptz + interval '1 hour')
	  FROM generate_series(1, $FJ_BATCH_USERS) i WHERE i % 100 < 17 OR i % $FJ_ACTIVE_EVERY = 0
	  ORDER BY i" >"$d/events-noid.jsonl"
	# opt-outs (every 4th user, now+1h: blocks queued goodbyes; the 5% who
	# had opted out 30 days ago are unchanged), opt-ins (every 8th, now+2h),
	# stale opt-outs (every 16th, now+90min, older than the opt-in), and
	# opt-ins dated 40 days back (stale for those who opted out 30 days ago)
	fs_q postgres "
	  WITH u AS (
	    SELECT i, '00000000-0000-4000-8000-' || lpad(i::text, 12, '0') AS id,
	           '+5511' || lpad(i::text, 9, '0') AS phone FROM generate_series(1, $FJ_OPTOUT_USERS) i),
	  who AS (SELECT *, CASE WHEN i % 7 = 0 THEN jsonb_build_object('phone', phone)
	                         ELSE jsonb_build_object('user_id', id) END AS ref FROM u),
	  ch AS (
	    SELECT 1 AS pass, i, ref || jsonb_build_object('opt_out', true, 'source', 'web',
	             'at', '$FJ_NOW'::timestamptz + interval '1 hour', 'id', 'oo1-' || i) AS j
	    FROM who WHERE i % 4 = 0
	    UNION ALL
	    SELECT 2, i, ref || jsonb_build_object('opt_out', false, 'source', 'whatsapp',
	             'at', '$FJ_NOW'::timestamptz + interval '2 hours', 'id', 'oo2-' || i)
	    FROM who WHERE i % 8 = 0
	    UNION ALL
	    SELECT 3, i, ref || jsonb_build_object('opt_out', true, 'source', 'cli',
	             'at', '$FJ_NOW'::timestamptz + interval '90 minutes', 'id', 'oo3-' || i,
	             'reason', 'late')
	    FROM who WHERE i % 16 = 0
	    UNION ALL
	    SELECT 4, i, ref || jsonb_build_object('opt_out', false, 'source', 'api',
	             'at', '$FJ_NOW'::timestamptz - interval '40 days', 'id', 'oo4-' || i)
	    FROM who WHERE i % 100 IN (1, 2, 3))
	  SELECT j FROM ch ORDER BY pass, i" >"$d/optout.jsonl.tmp"
	mv "$d/optout.jsonl.tmp" "$d/optout.jsonl"
}

# fj_prepare SCENARIO: its base and batch files.
fj_prepare() {
	fj_scenario "$1" || return 1
	mkdir -p "$FJ_DIR"
	[ "$FJ_KIND" = batch ] && fj_files
	fj_base "$FJ_BASE"
}

# ---- what a database holds ----------------------------------------------------------

# fj_fp DB KIND: the fingerprint, one row a line, section first (unsorted).
# Ids, run ids and wall-clock times are left out: two runs of one command
# on two clones agree on everything else.
fj_fp() {
	if [ "$2" = migrate ]; then
		# (not the comments, nor pg_dump's random \restrict key)
		pg_dump -s -d "$1" | grep -Ev '^(--|\\(un)?restrict )' | sed '/^$/d' | sed 's/^/schema\t/'
		if [ -n "$(fs_q "$1" "SELECT to_regclass('engagement.schema_migrations')")" ]; then
			psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 -d "$1" <<-'SQL'
			SELECT 'version', version, name, checksum FROM engagement.schema_migrations;
			SELECT 'grant', programs, privileges, object FROM engagement.program_grants;
			SELECT 'template', template_key, locale, provider_name, provider_language, param_names,
			       is_active FROM engagement.message_templates;
			SELECT 'queue_rows', count(*), sum(hashtext(idempotency_key || status)) FROM engagement.message_queue;
			SQL
		fi
		return 0
	fi
	psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 -d "$1" <<-'SQL'
	SET TimeZone = 'UTC';
	SELECT 'state', user_id, state, last_activity_at, goodbye_sent_at, goodbye_expires_at,
	       remind_at, state_changed_at, state_trigger FROM engagement.engagement_states;
	SELECT 'transition', user_id, from_state, to_state, trigger, metadata, created_at
	FROM engagement.state_transitions;
	SELECT 'message', idempotency_key, user_id, message_type, template_key, params, status,
	       scheduled_for, next_attempt_at, expires_at, attempts, last_error_code
	FROM engagement.message_queue;
	SELECT 'outbox', o.aggregate_type, o.event_type,
	       CASE WHEN o.aggregate_type = 'message' THEN coalesce(m.idempotency_key, '?' || o.aggregate_id)
	            ELSE o.aggregate_id END,
	       o.payload - 'message_id' - 'transition_id', o.user_id
	FROM engagement.outbox_events o
	LEFT JOIN engagement.message_queue m ON o.aggregate_type = 'message' AND m.id::text = o.aggregate_id;
	SELECT 'activity', user_id, occurred_at, kind FROM engagement.activity_events;
	SELECT 'inbound', event_id, kind, user_id, outcome, detail FROM engagement.inbound_events;
	SELECT 'pref', user_id, reengagement_opt_out, reengagement_opt_out_updated_at,
	       reengagement_opt_out_source FROM engagement.user_preferences;
	SELECT 'audit', a.user_id, m.idempotency_key, a.event, a.source, a.details
	FROM engagement.audit_log a LEFT JOIN engagement.message_queue m ON m.id = a.message_id;
	SQL
}

# fj_fp_sorted DB KIND OUT
fj_fp_sorted() {
	fj_fp "$1" "$2" | LC_ALL=C sort >"$3"
}

# fj_progress DB SCENARIO: a count that grows as the scenario's work is
# committed (transitions, messages, event ids, activity rows; for migrate,
# versions recorded x 1000 + the schema's relations and functions, so that
# an index built by a killed run's server process counts too).
fj_progress() {
	fs_q "$1" "$(fj_progress_sql "$2")"
}

# fj_progress_sql SCENARIO: the query of fj_progress (one line)
fj_progress_sql() {
	case $1 in
	daily) echo "SELECT count(*) FROM engagement.state_transitions" ;;
	weekly) echo "SELECT count(*) FROM engagement.message_queue" ;;
	event_ids | optout) echo "SELECT count(*) FROM engagement.inbound_events" ;;
	event_noid) echo "SELECT count(*) FROM engagement.activity_events" ;;
	migrate_*)
		echo "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace" \
		     " WHERE n.nspname = 'engagement')" \
		     " + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace" \
		     " WHERE n.nspname = 'engagement')" \
		     " + CASE WHEN to_regclass('engagement.schema_migrations') IS NULL THEN 0" \
		     " ELSE (xpath('//n/text()', query_to_xml(" \
		     " 'SELECT count(*) AS n FROM engagement.schema_migrations', false, false, '')" \
		     " ))[1]::text::int * 1000 END" ;;
	esac
}

# fj_wait_progress DB SCENARIO TARGET PID: until the run (PID) has
# committed up to TARGET (fj_progress's query, asked again and again on one
# connection: a fraction of a millisecond each, so the fault follows the
# commit it waits for at once), or ended; 120 s at most. The poller stays
# open (fs_poll on DB) until fs_poll_stop.
fj_wait_progress() {
	local end=$(( $(fs_now_ms) + 120000 )) sql
	sql=$(fj_progress_sql "$2")
	fs_poll_start "$1" || return 1
	while kill -0 "$4" 2>/dev/null && [ "$(fs_now_ms)" -lt "$end" ]; do
		fs_poll "$sql" || break
		[ "${FS_POLL_V:-0}" -ge "$3" ] 2>/dev/null && return 0
	done
	return 1
}

# fj_invalid_indexes DB: indexes not valid (an interrupted CREATE INDEX
# CONCURRENTLY), any schema.
fj_invalid_indexes() {
	fs_q "$1" "SELECT count(*) FROM pg_index WHERE NOT indisvalid"
}

# fj_invariants DB SCENARIO: "check<TAB>count" for each check that fails
# (count > 0), from the database alone.
fj_invariants() {
	local db=$1 sc=$2
	if [[ $sc == migrate_* ]]; then
		fs_q "$db" "
		  SELECT 'invalid_index', count(*) FROM pg_index WHERE NOT indisvalid
		  UNION ALL
		  SELECT 'advisory_lock_held', count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
		  WHERE l.locktype = 'advisory' AND d.datname = current_database()" |
			awk -F'|' '$2 > 0 { print $1 "\t" $2 }'
		return 0
	fi
	psql -X -q -At -F $'\t' -v ON_ERROR_STOP=1 -d "$db" -v noid="$([ "$sc" = event_noid ] && echo 1 || echo 0)" <<-'SQL' |
	-- each user's state is their last transition's to_state
	SELECT 'state_is_not_last_transition', count(*) FROM engagement.engagement_states s
	JOIN (SELECT DISTINCT ON (user_id) user_id, to_state FROM engagement.state_transitions
	      ORDER BY user_id, id DESC) l USING (user_id) WHERE l.to_state <> s.state;
	-- one row per state change: each from_state is the previous to_state
	SELECT 'transition_chain_broken', count(*) FROM (
	  SELECT from_state, to_state, lag(to_state) OVER (PARTITION BY user_id ORDER BY id) AS prev
	  FROM engagement.state_transitions) x
	WHERE (prev IS NOT NULL AND prev <> from_state) OR from_state = to_state;
	-- every committed change announced, once
	SELECT 'transition_not_announced_once', count(*) FROM engagement.state_transitions t
	LEFT JOIN (SELECT (payload->>'transition_id')::bigint AS id, count(*) AS n
	           FROM engagement.outbox_events WHERE event_type = 'engagement.state_changed'
	           GROUP BY 1) o USING (id)
	WHERE coalesce(o.n, 0) <> 1;
	SELECT 'queued_message_not_announced_once', count(*) FROM engagement.message_queue m
	LEFT JOIN (SELECT aggregate_id::bigint AS id, count(*) AS n FROM engagement.outbox_events
	           WHERE event_type = 'message.queued' GROUP BY 1) o USING (id)
	WHERE m.run_id IS NOT NULL AND coalesce(o.n, 0) <> 1;
	SELECT 'cancelled_message_not_announced_once', count(*) FROM engagement.message_queue m
	LEFT JOIN (SELECT aggregate_id::bigint AS id, count(*) AS n FROM engagement.outbox_events
	           WHERE event_type = 'message.cancelled' GROUP BY 1) o USING (id)
	WHERE m.status = 'cancelled' AND coalesce(o.n, 0) <> 1;
	SELECT 'preference_change_not_announced', count(*) FROM engagement.inbound_events e
	WHERE e.kind = 'preference' AND e.outcome = 'applied' AND NOT EXISTS (
	  SELECT 1 FROM engagement.outbox_events o
	  WHERE o.event_type = 'preferences.reengagement_changed' AND o.user_id = e.user_id
	    AND o.payload->'at' = e.detail->'at' AND o.payload->'opt_out' = e.detail->'opt_out');
	-- a goodbye goes with its transition, and no message is queued twice
	SELECT 'goodbye_without_its_transition', count(*) FROM engagement.message_queue m
	WHERE m.message_type = 'goodbye' AND NOT EXISTS (
	  SELECT 1 FROM engagement.state_transitions t
	  WHERE t.user_id = m.user_id AND t.trigger = 'inactivity_14d'
	    AND m.idempotency_key = t.user_id || ':goodbye_sent:'
	        || to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
	SELECT 'goodbye_transition_without_message', count(*) FROM engagement.state_transitions t
	WHERE t.trigger = 'inactivity_14d' AND NOT EXISTS (
	  SELECT 1 FROM engagement.message_queue m
	  WHERE m.idempotency_key = t.user_id || ':goodbye_sent:'
	        || to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
	SELECT 'idempotency_key_twice', count(*) - count(DISTINCT idempotency_key)
	FROM engagement.message_queue;
	SELECT 'message_type_twice_per_user_and_day', count(*) FROM (
	  SELECT 1 FROM engagement.message_queue
	  GROUP BY user_id, message_type, (scheduled_for AT TIME ZONE 'UTC')::date
	  HAVING count(*) > 1) x;
	-- no inbound event applied twice
	SELECT 'activity_recorded_twice', count(*) FROM (
	  SELECT 1 FROM engagement.activity_events GROUP BY user_id, occurred_at, kind
	  HAVING count(*) > 1) x WHERE :noid = 0;
	-- the schema, the runs and the leases
	SELECT 'invalid_index', count(*) FROM pg_index WHERE NOT indisvalid;
	SELECT 'job_run_left_running', count(*) FROM engagement.job_runs WHERE status = 'running';
	SELECT 'lease_held', count(*) FROM engagement.job_locks;
	SQL
		awk -F'\t' '$2 > 0 { print $1 "\t" $2 }'
}

# ---- references ------------------------------------------------------------------------

# fj_ref SCENARIO: the uninterrupted run, once (cached in $FJ_DIR/ref):
# SCENARIO.fp (sorted fingerprint), .ms (duration), .json (summary), .base
# and .done (fj_progress before and after).
fj_ref() {
	local sc=$1 d=$FJ_DIR/ref db t0 rc
	[ -s "$d/$sc.done" ] && return 0
	fj_prepare "$sc" || return 1
	mkdir -p "$d"
	db="fj_ref_${sc}_$$"
	fj_clone "$FJ_BASE" "$db"
	fj_progress "$db" "$sc" >"$d/$sc.base"
	t0=$(fs_now_ms)
	"$ENG_BIN/$FJ_PROG" --db "$(fj_conn "$db" direct)" "${FJ_ARGS[@]}" >"$d/$sc.json" 2>"$d/$sc.log" &&
		rc=0 || rc=$?
	echo $(( $(fs_now_ms) - t0 )) >"$d/$sc.ms"
	if [ "$rc" -ne 0 ]; then
		echo "fj_ref: the uninterrupted $sc run exited $rc: $(cat "$d/$sc.json")" >&2
		fs_db_drop "$db"
		return 1
	fi
	fj_fp_sorted "$db" "$FJ_KIND" "$d/$sc.fp"
	fj_progress "$db" "$sc" >"$d/$sc.done.tmp"
	fs_db_drop "$db"
	mv "$d/$sc.done.tmp" "$d/$sc.done"
}

# fj_ref_bouncer SCENARIO: the same uninterrupted run through PgBouncer,
# once: .bouncer_ms, and .bouncer_same (1 when it left the same database).
fj_ref_bouncer() {
	local sc=$1 d=$FJ_DIR/ref db t0 rc
	[ -s "$d/$sc.bouncer_same" ] && return 0
	fj_ref "$sc" || return 1
	fj_scenario "$sc"
	db="fj_refb_${sc}_$$"
	fj_clone "$FJ_BASE" "$db"
	t0=$(fs_now_ms)
	"$ENG_BIN/$FJ_PROG" --db "$(fj_conn "$db" bouncer)" "${FJ_ARGS[@]}" \
		>"$d/$sc.bouncer.json" 2>"$d/$sc.bouncer.log" && rc=0 || rc=$?
	echo $(( $(fs_now_ms) - t0 )) >"$d/$sc.bouncer_ms"
	fj_fp_sorted "$db" "$FJ_KIND" "$d/$sc.bouncer.fp"
	if [ "$rc" -eq 0 ] && cmp -s "$d/$sc.fp" "$d/$sc.bouncer.fp"; then
		echo 1 >"$d/$sc.bouncer_same.tmp"
	else
		echo 0 >"$d/$sc.bouncer_same.tmp"
	fi
	rm -f "$d/$sc.bouncer.fp"
	fs_db_drop "$db"
	mv "$d/$sc.bouncer_same.tmp" "$d/$sc.bouncer_same"
}

# ---- a trial ----------------------------------------------------------------------------

# fj_wait_backends DB TIMEOUT_S: until no client backend is connected to DB
# (a killed client's server process lingers until it next writes to it).
# Sets FJ_WAIT_MS (how long it took) and FJ_FOUND (whether there was one
# at first); returns 1 past the timeout.
fj_wait_backends() {
	local db=$1 t0 end n first=1
	t0=$(fs_now_ms)
	end=$((t0 + $2 * 1000))
	FJ_FOUND=false
	while :; do
		n=$(fs_q postgres "SELECT count(*) FROM pg_stat_activity
		                   WHERE datname = '$db' AND backend_type = 'client backend'")
		[ "$first" = 1 ] && [ "$n" != 0 ] && FJ_FOUND=true
		first=0
		[ "$n" = 0 ] && break
		if [ "$(fs_now_ms)" -ge "$end" ]; then
			FJ_WAIT_MS=$(( $(fs_now_ms) - t0 ))
			return 1
		fi
		sleep 0.02
	done
	FJ_WAIT_MS=$(( $(fs_now_ms) - t0 ))
}

# fj_json KEY VALUE ...: as fs_json (numbers, true/false, strings), with
# one jq for all.
fj_json() {
	local args=()
	while [ $# -gt 0 ]; do
		args+=(--arg "$1" "$2")
		shift 2
	done
	jq -cn "${args[@]}" '$ARGS.named | map_values(
	  if . == "true" then true elif . == "false" then false
	  elif test("^-?[0-9]+$") then tonumber else . end)'
}

# fj_cleanup DIR: kill what a trial under DIR left running (the programs
# recorded in *.pid files), e.g. after a test failed midway.
fj_cleanup() {
	local f pid
	while IFS= read -r f; do
		pid=$(cat "$f" 2>/dev/null) || continue
		[ -n "$pid" ] || continue
		if grep -qaE 'engagement-(daily|weekly|event)|optout-set|migrate' "/proc/$pid/cmdline" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	done < <(find "$1" -name '*.pid' 2>/dev/null)
}

# fj_drop_trial_dbs: every trial database left behind (not the bases).
fj_drop_trial_dbs() {
	local d
	for d in $(fs_q postgres "SELECT datname FROM pg_database WHERE datname LIKE 'fj\_t\_%'"); do
		fs_db_drop "$d"
	done
}

# fj_run DIR NAME DB MODE: the scenario's command (fj_scenario first), in
# the background (fs_bg: DIR/NAME.json, .log, .pid); sets FS_PID.
fj_run() {
	fs_bg "$1" "$2" "$ENG_BIN/$FJ_PROG" --db "$(fj_conn "$3" "$4")" "${FJ_ARGS[@]}"
}

# fj_rerun DIR NAME DB MODE: the command again, to the end (120 s at most);
# sets FJ_RC and FJ_MS.
fj_rerun() {
	local t0
	t0=$(fs_now_ms)
	fj_run "$@"
	fs_wait_pid "$FS_PID" 120 && FJ_RC=0 || FJ_RC=$?
	FJ_MS=$(( $(fs_now_ms) - t0 ))
}

# fj_summary_ok FILE RC: FILE holds exactly one JSON object whose exit_code
# is RC.
fj_summary_ok() {
	[ "$(jq -s "length == 1 and .[0].exit_code == $2" "$1" 2>/dev/null)" = true ]
}

# fj_trial DIR SEED SCENARIO FAULT
#
# A clone of the scenario's base; the scenario's command, interrupted by
# FAULT once it committed a random share of its work (from SEED); the same
# command again (as cron
# would), to the end; for a batch with ids, once more (every line must be
# a duplicate, and nothing change). Held:
#  - the interrupted run exits 137 (killed), or 0/75 (restart, bouncer)
#    with one summary on stdout, and (a job) its job_runs row says so: a
#    run that lost its database records its end once it is back; the next
#    run exits 0 at once (no lease or lock left to wait out on a direct
#    connection);
#  - the database ends as the reference (the same command run once,
#    uninterrupted, on a clone of the same base): nothing lost (rows of the
#    reference missing), nothing duplicated (rows it lacks), the same final
#    states and preferences; for event_noid, the replayed activities of
#    the lines committed before the fault are the only extra rows;
#  - fj_invariants (transitions vs states, outbox, idempotency, invalid
#    indexes, job_runs left running, leases held); a killed run's job_runs
#    row is marked died;
#  - the next run of a batch with ids reports as duplicates exactly the
#    lines committed before the fault;
#  - migrate: `migrate verify` exits 0, no invalid index, the same schema
#    (pg_dump -s), versions and seed rows as the reference.
# fj_trial DIR SEED SCENARIO FAULT: one trial (fj_trial_once). A kill that
# missed the work (the run had already finished when the signal landed: on
# a busy machine the poller can notice the target late) proves nothing
# either way, so that trial is made again on a fresh clone, another fault
# point drawn, up to 4 attempts; its line says how many it took. The same
# for a failover (failover.bats) that found the run already over.
fj_trial() {
	local k line
	for k in 1 2 3 4; do
		line=$(FJ_ATTEMPT=$k fj_trial_once "$@")
		case $4 in
		kill9) jq -e '.mid_run == true or .ok != true' <<<"$line" >/dev/null 2>&1 && break ;;
		# (a failover the run did not notice: again, on a fresh standby)
		failover) jq -e '.mid_run == true or .ok != true' <<<"$line" >/dev/null 2>&1 && break ;;
		*) break ;;
		esac
	done
	jq -c --argjson k "$k" '. + {attempts: $k}' <<<"$line"
}

fj_trial_once() {
	local dir=$1 seed=$2 sc=$3 fault=$4
	local d=$FJ_DIR/ref db mode=direct ref_ms span share target delay pid rc killed=false problems=()
	local found=false t0 run_ms wait_ms=0 restart_ms=0 cut=0 at_fault='' progress base fin pct mid
	local rerun_rc rerun_ms rid rstatus=none dups='' noop_rc='' noop_dups='' noop_applied=''
	local lost=0 duplicated=0 replayed=0 mismatch=0 inv invalid_before=0 verify_rc=
	local committed sec miss extra line reach_ms=null promote_ms=null
	mkdir -p "$dir"
	[ "$fault" != failover ] || ff_ready || { fj_json program "$sc" scenario "$sc" fault "$fault" \
		seed "$seed" trials 1 violations 1 ok false problems "no synchronous standby"; return 0; }
	{ fj_ref "$sc" && { [ "$fault" != bouncer ] || fj_ref_bouncer "$sc"; }; } || { fj_json program "$sc" scenario "$sc" fault "$fault" seed "$seed" trials 1 \
		violations 1 ok false problems "no reference run"; return 0; }
	fj_scenario "$sc"
	[ "$fault" = bouncer ] && mode=bouncer
	db="fj_t_${sc}_${fault}_${seed}_$$_$RANDOM"
	fj_clone "$FJ_BASE" "$db"
	base=$(cat "$d/$sc.base")
	fin=$(cat "$d/$sc.done")
	ref_ms=$(cat "$d/$sc.ms")
	[ "$mode" = bouncer ] && ref_ms=$(cat "$d/$sc.bouncer_ms")
	RANDOM=$((seed + 7919 * (${FJ_ATTEMPT:-1} - 1)))
	# The fault lands when the run has committed a random share of its
	# work (fj_progress, from the reference: base to fin), whatever the
	# machine's speed: somewhere in its first half, so that a good part of
	# the work is still to do when it strikes (commits come in batches).
	span=$((fin - base))
	share=$((span / 2))
	[ "$share" -ge 1 ] || share=1
	target=$((base + 1 + (RANDOM * 32768 + RANDOM) % share))

	# the run, and the fault
	t0=$(fs_now_ms)
	fj_run "$dir" run "$db" "$mode"
	pid=$FS_PID
	fj_wait_progress "$db" "$sc" "$target" "$pid"
	delay=$(( $(fs_now_ms) - t0 ))
	# what the program's server process was doing (a transaction open?),
	# asked on the poller's connection: no time lost before the fault
	if [ "$fault" = kill9 ] && fs_poll "SELECT coalesce(string_agg(coalesce(state, '-'), ','), '')
	        FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend'
	        AND pid <> pg_backend_pid()"; then
		at_fault=$FS_POLL_V
	fi
	case $fault in
	kill9)
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null && killed=true
		fi ;;
	restart)
		kill -0 "$pid" 2>/dev/null && killed=true
		local r0
		r0=$(fs_now_ms)
		fs_as_owner "$ENG_PG_BIN/pg_ctl" -D "$ENG_PG_ROOT/data" -o "-p $PGPORT" \
			-l "$ENG_PG_ROOT/server.log" -w -t 60 restart -m fast >/dev/null ||
			problems+=("pg_ctl restart failed")
		restart_ms=$(( $(fs_now_ms) - r0 )) ;;
	failover)
		# the primary stopped -m immediate, the standby promoted (ff.sh)
		kill -0 "$pid" 2>/dev/null && killed=true
		ff_failover "${FF_PROMOTE_S:-1}" || problems+=("the failover failed")
		promote_ms=$((FF_T_PROMOTED - FF_T_STOP))
		restart_ms=$(( $(fs_now_ms) - FF_T_STOP )) ;;
	bouncer)
		kill -0 "$pid" 2>/dev/null && killed=true
		fs_poll "SELECT count(*) || '|' || coalesce(string_agg(coalesce(state, '-'), ','), '')
		         FROM (SELECT state, pg_terminate_backend(pid) FROM pg_stat_activity
		               WHERE datname = '$db' AND usename = '$FJ_LOGIN') x" ||
			problems+=("could not cut the connections")
		line=$FS_POLL_V
		cut=${line%%|*}
		at_fault=${line#*|} ;;
	esac
	fs_poll_stop
	fs_wait_pid "$pid" 120 && rc=0 || rc=$?
	run_ms=$(( $(fs_now_ms) - t0 ))
	# how long the run took to reach the new primary (to go on, or to
	# record its end)
	[ "$fault" != failover ] || reach_ms=$(ff_reach_ms "$dir/run.log" reconnected "$FF_T_STOP")
	if [ "$mode" = bouncer ] && [ "$(cat "$d/$sc.bouncer_same" 2>/dev/null)" != 1 ]; then
		problems+=("the uninterrupted run through PgBouncer left another database than the direct one")
	fi
	case $fault in
	kill9)
		if $killed; then
			[ "$rc" -eq 137 ] || problems+=("killed run exited $rc")
		else
			[ "$rc" -eq 0 ] || problems+=("run (finished before the kill) exited $rc")
		fi
		# a dead client's server process may finish its statement first
		fj_wait_backends "$db" "$FJ_BACKEND_WAIT_S" ||
			problems+=("the killed run's server process still there after ${FJ_BACKEND_WAIT_S}s")
		wait_ms=$FJ_WAIT_MS found=$FJ_FOUND ;;
	*)
		case $rc in 0 | 75) ;; *) problems+=("interrupted run exited $rc, expected 0 or 75") ;; esac
		fj_summary_ok "$dir/run.json" "$rc" ||
			problems+=("interrupted run: not one summary with exit_code $rc on stdout") ;;
	esac
	rid=$(jq -rn 'first(inputs | select(.run_id != null) | .run_id)' "$dir/run.log" 2>/dev/null || true)
	# a run that lost its database records its end once the database is
	# back (before the next run could mark it died)
	if [ "$FJ_KIND" = job ] && [ "$fault" != kill9 ] && [ -n "$rid" ]; then
		line=$(fs_q "$db" "SELECT status || '/' || coalesce(exit_code::text, '-')
		                   FROM engagement.job_runs WHERE run_id = '$rid'")
		case $line in
		"" | "failed/$rc" | "ok/$rc" | "partial/$rc") ;;
		*) problems+=("the interrupted run's job_runs row is $line after it exited $rc") ;;
		esac
	fi
	progress=$(fj_progress "$db" "$sc")
	[ "$FJ_KIND" = migrate ] && invalid_before=$(fj_invalid_indexes "$db")
	if [ "$fin" -gt "$base" ]; then
		pct=$(( (progress - base) * 100 / (fin - base) ))
	else
		pct=0
	fi
	mid=false
	# the fault hit a run at work: the run noticed a restart or a cut
	# (exit 75); a kill: part of its work committed, an index left half
	# built, its server process in a statement or a transaction just before
	# the kill, or still busy after it
	if $killed && [ "$rc" -ne 0 ] && { [ "$fault" != kill9 ] ||
		[ "$progress" -gt "$base" ] && [ "$progress" -lt "$fin" ] ||
		[ "$invalid_before" -gt 0 ] || $found || [[ $at_fault == *active* ]] ||
		[[ $at_fault == *transaction* ]]; }; then
		mid=true
	fi
	committed=$((progress - base))

	# what cron would run next
	fj_rerun "$dir" rerun "$db" "$mode"
	rerun_rc=$FJ_RC rerun_ms=$FJ_MS
	if [ "$rerun_rc" -ne 0 ]; then
		problems+=("the next run exited $rerun_rc: $(jq -r '.error // empty' "$dir/rerun.json" 2>/dev/null | cut -c1-160)")
		if [ "$rerun_rc" -eq 75 ]; then
			# a lease or lock it should not have had to wait for: finish
			# the job anyway (after the lease's time to live) so that the
			# rest is still checked
			sleep "${FJ_LEASE_WAIT_S:-62}"
			fj_rerun "$dir" rerun2 "$db" "$mode"
			[ "$FJ_RC" -eq 0 ] || problems+=("the run after it exited $FJ_RC too")
		fi
	fi
	fj_summary_ok "$dir/rerun.json" "$rerun_rc" || problems+=("next run: not one summary on stdout")
	if [ "$FJ_IDS" = 1 ] && [ "$rerun_rc" -eq 0 ]; then
		dups=$(jq -r '.duplicates // "null"' "$dir/rerun.json")
		[ "$dups" = "$committed" ] ||
			problems+=("the next run reported $dups duplicates, but $committed lines had been committed")
		# once more: all of it is a duplicate now, and nothing changes
		fj_rerun "$dir" noop "$db" "$mode"
		noop_rc=$FJ_RC
		noop_dups=$(jq -r '.duplicates // "null"' "$dir/noop.json" 2>/dev/null)
		noop_applied=$(jq -r '(.applied // 0) + (.unchanged // 0) + (.stale // 0) + (.failed // 0)' "$dir/noop.json" 2>/dev/null)
		[ "$noop_rc" -eq 0 ] || problems+=("the batch run a third time exited $noop_rc")
		[ "$noop_dups" = "$(jq -r .lines "$d/$sc.json")" ] && [ "$noop_applied" = 0 ] ||
			problems+=("the batch run a third time: $noop_dups duplicates, $noop_applied applied, of $(jq -r .lines "$d/$sc.json") lines")
	fi

	# the database against the reference
	fj_fp_sorted "$db" "$FJ_KIND" "$dir/final.fp"
	LC_ALL=C comm -23 "$d/$sc.fp" "$dir/final.fp" | cut -f1 | sort | uniq -c >"$dir/missing.txt"
	LC_ALL=C comm -13 "$d/$sc.fp" "$dir/final.fp" | cut -f1 | sort | uniq -c >"$dir/extra.txt"
	while read -r miss sec; do
		case $sec in
		state | pref | schema | version | grant | template | queue_rows) mismatch=$((mismatch + miss)) ;;
		*) lost=$((lost + miss)) ;;
		esac
		problems+=("$miss $sec rows of the reference missing")
	done <"$dir/missing.txt"
	while read -r extra sec; do
		case $sec in
		state | pref | schema | version | grant | template | queue_rows) ;;
		activity)
			if [ "$sc" = event_noid ]; then
				replayed=$extra
				continue
			fi
			duplicated=$((duplicated + extra)) ;;
		*) duplicated=$((duplicated + extra)) ;;
		esac
		problems+=("$extra $sec rows the reference does not have")
	done <"$dir/extra.txt"
	if [ "$sc" = event_noid ] && [ "$replayed" -ne "$committed" ]; then
		problems+=("$replayed activity rows replayed, but $committed lines had been committed")
	fi
	[ -s "$dir/missing.txt" ] || [ -s "$dir/extra.txt" ] || rm -f "$dir/final.fp"

	# the database alone
	while IFS=$'\t' read -r inv line; do
		[ -n "$inv" ] && problems+=("$inv: $line")
	done < <(fj_invariants "$db" "$sc")
	if [ "$FJ_KIND" = job ] && [ -n "$rid" ]; then
		rstatus=$(fs_q "$db" "SELECT status FROM engagement.job_runs WHERE run_id = '$rid'")
		rstatus=${rstatus:-none}
		# killed: marked died by the next run, or never recorded, or (killed
		# as it exited) recorded as finished with all its work committed
		if [ "$fault" = kill9 ] && $killed && [ "$rstatus" != died ] && [ "$rstatus" != none ] &&
			! { [ "$rstatus" = ok ] && [ "$progress" = "$fin" ]; }; then
			problems+=("the killed run's job_runs row is $rstatus, not died")
		fi
	fi
	if [ "$FJ_KIND" = migrate ]; then
		"$ENG_BIN/migrate" --db "dbname=$db" --log-level warn verify >"$dir/verify.json" 2>"$dir/verify.log" &&
			verify_rc=0 || verify_rc=$?
		[ "$verify_rc" -eq 0 ] || problems+=("migrate verify exited $verify_rc: $(jq -r '.error // empty' "$dir/verify.json" | cut -c1-160)")
	fi

	fj_json program "$FJ_PROG" scenario "$sc" fault "$fault" seed "$seed" trials 1 \
		delay_ms "$delay" ref_ms "$ref_ms" progress_target "$((target - base))" hit "$killed" rc "$rc" run_ms "$run_ms" \
		mid_run "$mid" progress_pct "$pct" committed "$committed" \
		invalid_indexes_left "$invalid_before" backend_at_kill "$found" backend_wait_ms "$wait_ms" restart_ms "$restart_ms" \
		connections_cut "$cut" server_state_at_fault "$at_fault" killed_run "$rstatus" \
		promote_after_ms "$promote_ms" reach_ms "$reach_ms" \
		rerun_rc "$rerun_rc" rerun_ms "$rerun_ms" rerun_duplicates "$dups" \
		noop_rc "$noop_rc" noop_duplicates "$noop_dups" \
		verify_rc "$verify_rc" lost "$lost" duplicated "$duplicated" \
		replayed "$replayed" state_mismatch "$mismatch" violations "${#problems[@]}" \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "$(printf '%s; ' "${problems[@]}" | sed 's/; $//')" db "$db"
	if [ -z "${FS_KEEP_DB:-}" ] && { [ ${#problems[@]} -eq 0 ] || [ -z "${FJ_KEEP_FAILED:-}" ]; }; then
		fs_db_drop "$db"
	fi
}

# fj_trials P DIR SEED0 COUNT SCENARIO FAULT: COUNT trials, P at a time
# (restart: always one at a time); result lines in seed order.
fj_trials() {
	local p=$1 dir=$2 seed0=$3 count=$4 sc=$5 fault=$6
	[ "$fault" = restart ] || [ "$fault" = failover ] && p=1
	fj_ref "$sc" >&2 || return 1
	if [ "$fault" = bouncer ]; then fj_ref_bouncer "$sc" >&2 || return 1; fi
	fs_trials_parallel "$p" fj_trial "$dir" "$seed0" "$count" "$sc" "$fault"
}

# fj_table RESULTS: the Markdown table of a results file (one trial a line).
fj_table() {
	jq -rs '
	  def name: {daily: "engagement-daily", weekly: "engagement-weekly",
	             event_ids: "engagement-event --batch (ids)",
	             event_noid: "engagement-event --batch (no ids)",
	             optout: "optout-set --batch (ids)", migrate_empty: "migrate up (from empty)",
	             migrate_mid: "migrate up (from 8, CONCURRENTLY pending)"}[.];
	  def fname: {kill9: "kill -9", restart: "pg_ctl restart -m fast",
	              bouncer: "PgBouncer server connections cut"}[.];
	  def order: [{daily: 1, weekly: 2, event_ids: 3, event_noid: 4, optout: 5,
	               migrate_empty: 6, migrate_mid: 7}[.scenario],
	              {kill9: 1, restart: 2, bouncer: 3}[.fault]];
	  def sum(f): map(f // 0) | add // 0;
	  def med(f): map(f // 0) | sort | .[length / 2 | floor] // 0;
	  def maxof(f): map(f // 0) | max // 0;
	  def exits: group_by(.rc) | map("\(.[0].rc)×\(length)") | join(", ");
	  def lingered: map(select(.backend_at_kill == true)) |
	    if length == 0 then "-" else "\(length), \(maxof(.backend_wait_ms)) ms" end;
	  "| program | fault | trials | hit mid-run | interrupted run exited | lost | duplicated | invariant violations | next run, median / max (ms) | server process still there after the kill (trials, longest wait) |",
	  "|---|---|---:|---:|---|---:|---:|---:|---:|---:|",
	  (map(select(.scenario != null)) | group_by([.scenario, .fault]) | sort_by(.[0] | order)
	   | .[] | . as $g
	   | "| \($g[0].scenario | name) | \($g[0].fault | fname) | \($g | length) | \($g | map(select(.mid_run == true)) | length) | \($g | exits) | \($g | sum(.lost)) | \($g | sum(.duplicated))\(if $g[0].scenario == "event_noid" then " (+\($g | sum(.replayed)) activities replayed: no ids)" else "" end) | \($g | sum(.violations)) | \($g | med(.rerun_ms)) / \($g | maxof(.rerun_ms)) | \(if $g[0].fault == "kill9" then ($g | lingered) else "-" end) |")
	' "$1"
}

# ==== delivery faults (fd_): outbox-relay, engagement-webhook, queue-send ======
# against a misbehaving sink, receiver or API. Shared by
# tests/faults/delivery.bats and bench/faults-delivery.sh. Everything below
# is prefixed fd_; it uses the fs_ helpers above and three Python helpers
# next to this file: fd_sink.py (a Standard Webhooks receiver that
# misbehaves on demand, and a slow reader of --stdout), fd_poster.py (a
# signed poster of Meta's webhook that retries what is not answered 200, as
# Meta does) and fd_check.py (the invariants, from what a trial left).
#
# Each fd_trial_* prints ONE JSON line: program, fault, trials (1), lost,
# duplicated, violations, problems, ok, duration_ms and the trial's own
# figures. Trials that restart the server (fault "restart") must run alone.

FD_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FD_SINK="$FD_HERE/fd_sink.py"
FD_POSTER="$FD_HERE/fd_poster.py"
FD_CHECK="$FD_HERE/fd_check.py"

# fd_sleep_ms MS
fd_sleep_ms() {
	[ "$1" -gt 0 ] && sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"
	return 0
}

# fd_ms DURATION: 300ms or 2s in ms
fd_ms() { case $1 in *ms) echo "${1%ms}" ;; *s) echo $((${1%s} * 1000)) ;; *) echo "$1" ;; esac; }

# fd_rand N: FD_R, a number in [0, N) from bash's RANDOM (seeded by the
# trial; not in a $(...) subshell, where bash reseeds RANDOM)
fd_rand() { FD_R=$(((RANDOM * 32768 + RANDOM) % $1)); }

# fd_pg_restart: pg_ctl restart -m fast (the same port, every session cut)
fd_pg_restart() {
	fs_as_owner "$ENG_PG_BIN/pg_ctl" -D "$ENG_PG_ROOT/data" -o "-p $PGPORT" \
		-l "$ENG_PG_ROOT/server.log" -w -t 60 restart -m fast >/dev/null
}

# fd_cut DB APP [USER]: pg_terminate_backend for APP's sessions in DB (or,
# with USER, that login's: through PgBouncer the server sessions are the
# pool's); prints how many
fd_cut() {
	local cond="application_name = '$2'"
	[ -n "${3:-}" ] && cond="usename = '$3'"
	psql -X -q -At -d postgres -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	                               WHERE datname = '$1' AND $cond AND pid <> pg_backend_pid()" 2>/dev/null || echo 0
}

# fd_sessions DB APP: APP's sessions in DB
fd_sessions() {
	psql -X -q -At -d postgres -c "SELECT count(*) FROM pg_stat_activity
	                               WHERE datname = '$1' AND application_name = '$2'" 2>/dev/null || echo 0
}

# fd_wait_gone DB APP TIMEOUT_S: until a killed program's sessions ended
fd_wait_gone() {
	local end=$(($(fs_now_ms) + $3 * 1000))
	while [ "$(fd_sessions "$1" "$2")" != 0 ]; do
		[ "$(fs_now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

# fd_cleanup DIR: kill what a trial under DIR left running (the pids in its
# *.pid files, when they are still one of our programs or helpers)
fd_cleanup() {
	local f pid
	while IFS= read -r f; do
		pid=$(cat "$f" 2>/dev/null) || continue
		[ -n "$pid" ] || continue
		if grep -qaE 'outbox-relay|engagement-webhook|queue-send|wa-standin|fd_sink|fd_poster' \
			"/proc/$pid/cmdline" 2>/dev/null; then
			kill -CONT "$pid" 2>/dev/null || true
			kill -9 "$pid" 2>/dev/null || true
		fi
	done < <(find "$1" -name '*.pid' 2>/dev/null)
}

# fd_secret FILE: a Standard Webhooks secret (whsec_ + base64 of 24 random
# bytes), mode 600
fd_secret() {
	(umask 077 && printf 'whsec_%s\n' "$(head -c 24 /dev/urandom | base64 -w0)" >"$1")
}

# fd_sink_start DIR [fd_sink.py webhook OPTIONS]: the misbehaving Standard
# Webhooks receiver on a free port, keys DIR/secret, records DIR/sink.jsonl;
# sets FD_SINK_URL (no path) and FD_SINK_PID
fd_sink_start() {
	local dir=$1 i
	shift
	rm -f "$dir/sink.port"
	python3 "$FD_SINK" webhook --secret-file "$dir/secret" --port-file "$dir/sink.port" \
		--out "$dir/sink.jsonl" "$@" 2>"$dir/sink.err" &
	FD_SINK_PID=$!
	echo "$FD_SINK_PID" >"$dir/sink.pid"
	for i in $(seq 200); do
		[ -s "$dir/sink.port" ] && break
		sleep 0.025
	done
	[ -s "$dir/sink.port" ] || { echo "fd_sink.py did not start" >&2; cat "$dir/sink.err" >&2; return 1; }
	touch "$dir/sink.jsonl"
	FD_SINK_URL="http://127.0.0.1:$(cat "$dir/sink.port")"
}

fd_sink_stop() {
	if [ -n "${FD_SINK_PID:-}" ]; then
		kill "$FD_SINK_PID" 2>/dev/null || true
		wait "$FD_SINK_PID" 2>/dev/null || true
		FD_SINK_PID=
	fi
}

# ---- outbox-relay --------------------------------------------------------------------

# fd_events DB N TAG [PAD]: N outbox events in one statement (payload
# {"n": i, "pad": PAD x's})
fd_events() {
	fs_q "$1" "INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
	           SELECT 'fault', '$3-' || g, 'test.$3',
	                  jsonb_build_object('n', g, 'pad', repeat('x', ${4:-0}))
	           FROM generate_series(1, $2) g" >/dev/null
}

# fd_produce DB N INTERVAL_MS: N events ("live-1".."live-N"), one committed
# transaction each, INTERVAL_MS apart (one DO block that commits after each
# insert); when the server goes away, it starts again after the last one
# committed, every 100 ms for up to 60 s. Run it in the background.
fd_produce() {
	local db=$1 n=$2 iv=$3 next=1 end
	end=$(($(fs_now_ms) + 60000))
	while :; do
		if psql -X -q -d "$(fs_conn "$db")" -c "DO \$\$ BEGIN FOR i IN $next..$n LOOP
		        INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload)
		        VALUES ('fault', 'live-' || i, 'test.live', jsonb_build_object('n', i));
		        COMMIT; PERFORM pg_sleep($iv / 1000.0); END LOOP; END \$\$" >/dev/null 2>&1; then
			echo "producer: $n events"
			return 0
		fi
		if [ "$(fs_now_ms)" -ge "$end" ]; then
			echo "producer: gave up after event $((next - 1))"
			return 1
		fi
		sleep 0.1
		next=$(psql -X -q -At -d "$(fs_conn "$db")" -c "SELECT coalesce(max((payload->>'n')::int), 0) + 1
		        FROM engagement.outbox_events WHERE event_type = 'test.live'" 2>/dev/null) || next=1
		[ -n "$next" ] || next=1
	done
}

# fd_relay_start DIR K SINK CONN ARGS...: run K of outbox-relay, in the
# background: the webhook sink posts to $FD_SINK_URL/rK (so that the record
# tells the runs apart), stdout goes through a pipe to a slow reader
# (fd_sink.py stdout, $FD_READ_DELAY_MS per line) that writes DIR/rK.out.
# Logs DIR/rK.log; sets FD_PID (and FD_READER_PID).
fd_relay_start() {
	local dir=$1 k=$2 sink=$3 conn=$4
	shift 4
	FD_READER_PID=
	if [ "$sink" = webhook ]; then
		"$ENG_BIN/outbox-relay" --db "$conn" --webhook "$FD_SINK_URL/r$k" \
			--secret-file "$dir/secret" "$@" >"$dir/r$k.json" 2>"$dir/r$k.log" &
		FD_PID=$!
	else
		rm -f "$dir/r$k.fifo"
		mkfifo "$dir/r$k.fifo"
		python3 "$FD_SINK" stdout --out "$dir/r$k.out" --delay-ms "${FD_READ_DELAY_MS:-1}" \
			<"$dir/r$k.fifo" 2>"$dir/r$k.reader.err" &
		FD_READER_PID=$!
		echo "$FD_READER_PID" >"$dir/r$k.reader.pid"
		"$ENG_BIN/outbox-relay" --db "$conn" --stdout "$@" >"$dir/r$k.fifo" 2>"$dir/r$k.log" &
		FD_PID=$!
	fi
	echo "$FD_PID" >"$dir/r$k.pid"
}

# fd_relay_summary DIR K SINK: the run's summary line (or empty)
fd_relay_summary() {
	local f="$1/r$2.json"
	[ "$3" = stdout ] && f="$1/r$2.out"
	jq -c 'select(type == "object" and has("program") and has("exit_code"))' "$f" 2>/dev/null | tail -n 1
}

# fd_relay_meta DIR K SINK RC: append run K's line to DIR/runs.jsonl
fd_relay_meta() {
	local dir=$1 k=$2 sink=$3 rc=$4 s
	s=$(fd_relay_summary "$dir" "$k" "$sink")
	jq -cn --argjson k "$k" --arg path "/r$k" --arg out "$dir/r$k.out" --arg log "$dir/r$k.log" --argjson rc "$rc" \
		--argjson rec "$(jq -r '.reconnects // 0' <<<"${s:-{\}}" 2>/dev/null || echo 0)" \
		--arg run_id "$(head -n 1 "$dir/r$k.log" 2>/dev/null | jq -r '.run_id // ""' 2>/dev/null)" \
		--arg summary "$s" \
		'{k: $k, path: $path, out: $out, log: $log, rc: $rc, reconnects: $rec, run_id: $run_id, summary: $summary}' \
		>>"$dir/runs.jsonl"
}

# fd_wait_log LOG EVENT TIMEOUT_S: until a program logged EVENT
fd_wait_log() {
	local end=$(($(fs_now_ms) + $3 * 1000))
	until grep -q "\"event\":\"$2\"" "$1" 2>/dev/null; do
		[ "$(fs_now_ms)" -lt "$end" ] || return 1
		sleep 0.02
	done
}

# fd_unpublished DB
fd_unpublished() {
	fs_q "$1" "SELECT count(*) FROM engagement.outbox_events WHERE published_at IS NULL"
}

# fd_wait_published DB N PID TIMEOUT_S: until N events are published, or
# the relay PID ended
fd_wait_published() {
	local end=$(($(fs_now_ms) + $4 * 1000))
	fs_poll_start "$1" || return 1
	while kill -0 "$3" 2>/dev/null && [ "$(fs_now_ms)" -lt "$end" ]; do
		fs_poll "SELECT count(*) FROM engagement.outbox_events WHERE published_at IS NOT NULL" || break
		[ "${FS_POLL_V:-0}" -ge "$2" ] 2>/dev/null && { fs_poll_stop; return 0; }
	done
	fs_poll_stop
	return 1
}

# fd_wait_caught_up DB PRODUCER_PID TIMEOUT_S: until the producer is done
# and nothing is unpublished
fd_wait_caught_up() {
	local end=$(($(fs_now_ms) + $3 * 1000))
	while { [ "$2" != - ] && kill -0 "$2" 2>/dev/null; } || [ "$(fd_unpublished "$1")" != 0 ]; do
		[ "$(fs_now_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# fd_trial_relay DIR SEED SINK MODE FAULT
#
# SINK webhook or stdout; MODE oneshot or follow; FAULT one of
#   kill9        kill -9 once a random number of the events there at the
#                start were published
#   restart      pg_ctl restart -m fast after a random delay (alone!)
#   cut          pg_terminate_backend of its session, 3 times
#   bouncer-cut  (oneshot) through PgBouncer, the pool's server sessions cut 3 times
#   recv-5xx     (webhook) the receiver answers 500/503/429/408 at random (30%)
#   recv-4xx     (webhook, oneshot) a 400 after a few batches: a refusal
#   recv-slow    (webhook) 25% answered after --timeout
#   recv-junk    (webhook) 200 or 202 with a body that is not JSON: 2xx accepts
#   recv-garbage (webhook) 30% answered with bytes that are not HTTP
#   recv-drop    (webhook) 25% closed without an answer, 5% never answered
#   recv-mix     (webhook) all of those at once
# (each recv- fault hits the second request at least: the first faults are
# planned, the rest drawn from SEED)
# Events are there before the run, and more are committed while it runs
# (one producer, each insert its own transaction). The run is then re-run
# as cron (oneshot: the same command until it exits 0) or systemd (follow:
# the same command until caught up, then SIGTERM) would. Held: see
# fd_check.py relay; also no lease left, no job_runs row left running, a
# killed run marked died, and exit codes as documented (fault run: 137
# killed, 0 or 75 for a lost database or an unavailable sink, 69 for a 4xx;
# reruns end 0; a --follow run stops with 75 on SIGTERM).
fd_trial_relay() {
	local dir=$1 seed=$2 sink=$3 mode=$4 fault=$5
	local db="fd_rl_${seed}_$$_$RANDOM" conn t0 problems=() k=1 rc pid prod
	local n0 produce=20 piv=30 batch=5 pad=0 delay=40 after=0 timeout=2s attempts=3
	local recv=() killed=false at=0 cuts=0 rr follow=() reruns=0 s i t_run durs=()
	local promote_ms=null reach_ms=null
	mkdir -p "$dir"
	: >"$dir/runs.jsonl"
	RANDOM=$seed
	t0=$(fs_now_ms)
	conn=$(fs_conn "$db")
	[ "$fault" = bouncer-cut ] && conn="host=127.0.0.1 port=${ENG_PGBOUNCER_PORT:?no PgBouncer} dbname=$db"
	[ "$mode" = follow ] && follow=(--follow)
	if [ "$sink" = stdout ]; then
		# 300 events of ~450 bytes, read 3 ms a line: past the first 64 KiB
		# the relay waits on a full pipe, in the middle of a batch of 18 KB
		n0=300 pad=300 batch=40
		export FD_READ_DELAY_MS=${FD_READ_DELAY_MS:-3}
	else
		n0=40
	fi
	case $fault in
	recv-5xx) recv=(--plan "ok,s503" --random "s503=0.15,s500=0.1,s429=0.03,s408=0.02" --delay-ms 10) n0=20 ;;
	recv-4xx) fd_rand 3; recv=(--plan "ok*$((1 + FD_R)),s400" --delay-ms 10) n0=20 ;;
	recv-slow) recv=(--plan "ok,slow" --random "slow=0.25" --slow-s 1 --delay-ms 10) timeout=300ms n0=20 ;;
	recv-junk) recv=(--plan "junk,ok202" --random "junk=0.5,ok202=0.3" --delay-ms 10) n0=20 ;;
	recv-garbage) recv=(--plan "ok,garbage" --random "garbage=0.3" --delay-ms 10) n0=20 ;;
	recv-drop) recv=(--plan "ok,drop" --random "drop=0.25,hang=0.05" --slow-s 1 --delay-ms 10) timeout=300ms n0=20 ;;
	recv-mix) recv=(--plan "ok,s500,junk,drop" --random "s503=0.1,slow=0.05,junk=0.1,garbage=0.05,drop=0.1,hang=0.02" \
		--slow-s 1 --delay-ms 10) timeout=300ms n0=20 ;;
	*) recv=(--delay-ms "$delay") ;;
	esac
	fs_db_new "$db"
	fd_events "$db" "$n0" init "$pad"
	fd_secret "$dir/secret"
	if [ "$sink" = webhook ]; then
		fd_sink_start "$dir" --seed "$seed" "${recv[@]}" || return 1
	fi
	fd_produce "$db" "$produce" "$piv" >"$dir/producer.log" 2>&1 &
	prod=$!
	t_run=$(fs_now_ms)
	fd_relay_start "$dir" 1 "$sink" "$conn" "${follow[@]}" --batch "$batch" \
		--timeout "$timeout" --max-attempts "$attempts"
	pid=$FD_PID
	# a database fault hits a relay that is connected and working
	case $fault in
	restart | cut | bouncer-cut | failover)
		fd_wait_log "$dir/r1.log" job_started 20 || problems+=("run 1 did not start")
		;;
	esac
	case $fault in
	kill9)
		# once a random number of the events there at the start are
		# published (committed), whatever the machine's speed
		fd_rand $((n0 * 3 / 4)); after=$((1 + FD_R))
		fd_wait_published "$db" "$after" "$pid" 60
		at=$(($(fs_now_ms) - t_run))
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null && killed=true
		fi
		;;
	restart)
		fd_rand 500; at=$((50 + FD_R))
		fd_sleep_ms "$at"
		fd_pg_restart || problems+=("pg_ctl restart failed")
		;;
	failover)
		# (failover.bats, ff.sh) once a random number of the events
		# there at the start are published: the primary stopped -m
		# immediate, the standby promoted
		fd_rand $((n0 / 2)); after=$((1 + FD_R))
		fd_wait_published "$db" "$after" "$pid" 60
		at=$(($(fs_now_ms) - t_run))
		ff_failover "${FF_PROMOTE_S:-1}" || problems+=("the failover failed")
		promote_ms=$((FF_T_PROMOTED - FF_T_STOP))
		;;
	cut | bouncer-cut)
		fd_rand 200; at=$FD_R
		fd_sleep_ms "$at"
		for i in 1 2 3; do
			if [ "$fault" = cut ]; then
				cuts=$((cuts + $(fd_cut "$db" outbox-relay)))
			else
				cuts=$((cuts + $(fd_cut "$db" "" eng_relay)))
			fi
			fd_rand 250; fd_sleep_ms $((50 + FD_R))
		done
		;;
	esac
	if [ "$mode" = follow ] && ! $killed; then
		# it comes back by itself (in the same run) after losing the database
		if [ "$fault" = restart ] || [ "$fault" = failover ] || { [ "$fault" = cut ] && [ "$cuts" -gt 0 ]; }; then
			fd_wait_log "$dir/r1.log" reconnected 30 ||
				problems+=("--follow did not reconnect within 30 s of the $fault")
		fi
		[ "$fault" != failover ] || reach_ms=$(ff_reach_ms "$dir/r1.log" reconnected "$FF_T_STOP")
		fd_wait_caught_up "$db" "$prod" 60 || problems+=("--follow did not catch up within 60 s: $(fd_unpublished "$db") unpublished")
		kill -TERM "$pid" 2>/dev/null || true
		fs_wait_pid "$pid" 15 2>>"$dir/wait.err" && rc=0 || rc=$?
		[ "$rc" = 75 ] || problems+=("--follow exited $rc on SIGTERM, not 75")
	else
		fs_wait_pid "$pid" 120 2>>"$dir/wait.err" && rc=0 || rc=$?
	fi
	if [ -n "$FD_READER_PID" ]; then
		fs_wait_pid "$FD_READER_PID" 30 || problems+=("the stdout reader of run 1 hung")
	fi
	durs+=($(($(fs_now_ms) - t_run)))
	fd_relay_meta "$dir" 1 "$sink" "$rc"
	# what the fault run may exit with (docs/outbox-relay.1.scd)
	if [ "$mode" = oneshot ]; then
		case $fault:$rc in
		kill9:137 | kill9:0 | restart:0 | restart:75 | cut:0 | cut:75 | bouncer-cut:0 | bouncer-cut:75) ;;
		failover:0 | failover:75) ;;
		recv-4xx:69 | recv-5xx:0 | recv-5xx:75 | recv-slow:0 | recv-slow:75 | recv-junk:0 | \
			recv-garbage:0 | recv-garbage:75 | recv-drop:0 | recv-drop:75 | recv-mix:0 | recv-mix:75) ;;
		*) problems+=("run 1 ($fault) exited $rc") ;;
		esac
	fi
	if [ "$rc" != 137 ]; then
		s=$(fd_relay_summary "$dir" 1 "$sink")
		[ -n "$s" ] || problems+=("run 1 printed no summary")
		[ -z "$s" ] || [ "$(jq -r .exit_code <<<"$s")" = "$rc" ] ||
			problems+=("run 1 exited $rc, its summary says $(jq -r .exit_code <<<"$s")")
	fi
	local left1 retries1 reconn1
	left1=$(fd_unpublished "$db")
	retries1=$(jq -r '.retries // 0' <<<"${s:-{\}}" 2>/dev/null || echo 0)
	reconn1=$(jq -r '.reconnects // 0' <<<"${s:-{\}}" 2>/dev/null || echo 0)
	# the producer is done before the re-runs: everything it committed must go
	fs_wait_pid "$prod" 90 || problems+=("the producer hung")
	grep -q "producer: $produce events" "$dir/producer.log" || problems+=("$(cat "$dir/producer.log")")
	# re-run the same command, as cron or systemd would
	while :; do
		k=$((k + 1))
		reruns=$((reruns + 1))
		if [ "$reruns" -gt 10 ]; then
			problems+=("still not published after 10 re-runs")
			break
		fi
		# a killed run's session ends when the server notices (at once when idle)
		[ "$fault" = bouncer-cut ] || fd_wait_gone "$db" outbox-relay 20 ||
			problems+=("the sessions of a killed relay did not end")
		t_run=$(fs_now_ms)
		fd_relay_start "$dir" "$k" "$sink" "$conn" "${follow[@]}" --batch "$batch" \
			--timeout "$timeout" --max-attempts "$attempts"
		pid=$FD_PID
		if [ "$mode" = follow ]; then
			fd_wait_caught_up "$db" - 60 || problems+=("re-run $k did not catch up within 60 s")
			kill -TERM "$pid" 2>/dev/null || true
			fs_wait_pid "$pid" 15 2>>"$dir/wait.err" && rr=0 || rr=$?
			[ "$rr" = 75 ] || problems+=("--follow re-run exited $rr on SIGTERM, not 75")
		else
			fs_wait_pid "$pid" 120 2>>"$dir/wait.err" && rr=0 || rr=$?
		fi
		if [ -n "$FD_READER_PID" ]; then
			fs_wait_pid "$FD_READER_PID" 30 || problems+=("the stdout reader of run $k hung")
		fi
		durs+=($(($(fs_now_ms) - t_run)))
		fd_relay_meta "$dir" "$k" "$sink" "$rr"
		s=$(fd_relay_summary "$dir" "$k" "$sink")
		[ -n "$s" ] || problems+=("run $k printed no summary")
		[ -z "$s" ] || [ "$(jq -r .exit_code <<<"$s")" = "$rr" ] ||
			problems+=("run $k exited $rr, its summary says $(jq -r .exit_code <<<"$s")")
		if [ "$rr" = 75 ] && [ "$(jq -r '.reason // ""' <<<"${s:-{\}}")" = already_running ]; then
			problems+=("run $k: already_running, though the last run's session was gone")
		fi
		[ "$mode" = follow ] && break
		[ "$rr" = 0 ] && break
		case $fault:$rr in
		recv-5xx:75 | recv-slow:75 | recv-garbage:75 | recv-drop:75 | recv-mix:75) ;;
		*) problems+=("re-run $k exited $rr") ;;
		esac
	done
	fd_sink_stop
	# the invariants
	fs_q "$db" "SELECT id || '|' || coalesce(extract(epoch FROM published_at)::text, '')
	            FROM engagement.outbox_events ORDER BY id" >"$dir/events.db"
	python3 "$FD_CHECK" relay --sink "$sink" --runs "$dir/runs.jsonl" --db-events "$dir/events.db" \
		--records "$dir/sink.jsonl" --batch "$batch" --timeout-ms "$(fd_ms "$timeout")" \
		>"$dir/check.json" 2>"$dir/check.err" ||
		problems+=("fd_check.py failed: $(tail -n 2 "$dir/check.err" | tr '\n' ' ')")
	local c locks running rid
	c=$(cat "$dir/check.json" 2>/dev/null)
	[ -n "$c" ] || c='{"violations":1,"problems":"no check"}'
	[ "$(jq -r .violations <<<"$c")" = 0 ] || problems+=("$(jq -r .problems <<<"$c")")
	locks=$(fs_q "$db" "SELECT count(*) FROM engagement.job_locks WHERE job = 'outbox-relay'")
	running=$(fs_q "$db" "SELECT count(*) FROM engagement.job_runs
	                      WHERE program = 'outbox-relay' AND status = 'running'")
	[ "$locks" = 0 ] || problems+=("the run lease is still held: $(fs_q "$db" "SELECT run_id, holder, expires_at FROM engagement.job_locks")")
	[ "$running" = 0 ] || problems+=("$running job_runs rows left running")
	if $killed; then
		rid=$(jq -rn 'first(inputs | select(.event == "job_started") | .run_id)' "$dir/r1.log" 2>/dev/null || true)
		if [ -n "$rid" ]; then
			[ "$(fs_q "$db" "SELECT status FROM engagement.job_runs WHERE run_id = '$rid'")" = died ] ||
				problems+=("the killed run $rid is not marked died: $(fs_q "$db" "SELECT status FROM engagement.job_runs WHERE run_id = '$rid'")")
		fi
	fi
	local out
	out=$(fs_json program outbox-relay fault "$fault" sink "$sink" mode "$mode" trials 1 seed "$seed" \
		at_ms "$at" after_published "$after" killed "$killed" cuts "$cuts" rc "$rc" retries_run1 "$retries1" reconnects_run1 "$reconn1" \
		unpublished_after_run1 "$left1" reruns "$reruns" promote_after_ms "$promote_ms" reach_ms "$reach_ms" \
		last_rc "${rr:-null}" durations_ms "${durs[*]}" \
		duration_ms $(($(fs_now_ms) - t0)) lease_left "$locks" running_left "$running" \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db")
	# the checker's figures, then ours (violations counts every problem)
	jq -cn --argjson c "$(jq -c 'del(.violations, .problems)' <<<"$c")" --argjson o "$out" \
		--argjson n "${#problems[@]}" '$c + $o + {violations: $n}'
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}

# ---- engagement-webhook ----------------------------------------------------------------

# fd_wh_seed DB PEOPLE T: PEOPLE dormant people (last active 20 days
# before T), each with a sent weekly review whose wamid is wamid.OUT<i>
fd_wh_seed() {
	fs_q "$1" "
	  INSERT INTO engagement.users (id, phone_e164)
	  SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
	         '+55119' || lpad(i::text, 5, '0') || '000'
	  FROM generate_series(1, $2) i;
	  INSERT INTO engagement.user_preferences (user_id) SELECT id FROM engagement.users;
	  INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, state_changed_at)
	  SELECT id, 'dormant', to_timestamp($3) - interval '20 days', to_timestamp($3) - interval '5 days'
	  FROM engagement.users;
	  INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
	      status, provider_message_id, sent_at, attempts)
	  SELECT id, 'weekly_review', 'weekly_review', id || ':w', 'sent',
	         'wamid.OUT' || right(id::text, 12)::int, to_timestamp($3) - interval '20 minutes', 1
	  FROM engagement.users" >/dev/null
}

# fd_wh_bodies PEOPLE T FILE: four deliveries per person, one per line, in
# Meta's envelope, entry[0].id "fdkey-<n>" telling them apart in the inbox:
# two texts (at T and T+1) and the statuses delivered (T+2) and read (T+3)
# of the person's message
fd_wh_bodies() {
	jq -cn --argjson n "$1" --arg t "$2" '
	  def env(k; v): {object: "whatsapp_business_account",
	    entry: [{id: "fdkey-\(k)", changes: [{field: "messages",
	      value: ({messaging_product: "whatsapp",
	               metadata: {display_phone_number: "15550783881",
	                          phone_number_id: "106540352242922"}} + v)}]}]};
	  def ts(d): ($t | tonumber + d | tostring);
	  range(1; $n + 1) as $i | ("55119" + ("00000" + ($i | tostring))[-5:] + "000") as $f
	  | env("\($i)-a"; {contacts: [{profile: {name: "P\($i)"}, wa_id: $f}],
	        messages: [{from: $f, id: "wamid.IN\($i)A", timestamp: ts(0), type: "text", text: {body: "one"}}]}),
	    env("\($i)-b"; {contacts: [{profile: {name: "P\($i)"}, wa_id: $f}],
	        messages: [{from: $f, id: "wamid.IN\($i)B", timestamp: ts(1), type: "text", text: {body: "two"}}]}),
	    env("\($i)-d"; {statuses: [{id: "wamid.OUT\($i)", status: "delivered", timestamp: ts(2), recipient_id: $f}]}),
	    env("\($i)-r"; {statuses: [{id: "wamid.OUT\($i)", status: "read", timestamp: ts(3), recipient_id: $f}]})' >"$3"
}

# fd_wh_start DIR NAME DB [PORT]: engagement-webhook on 127.0.0.1:PORT (0:
# a free one), keys DIR/app_secret and DIR/verify_token; writes the URL to
# DIR/url; sets FD_HOOK_PID and FD_HOOK_PORT
fd_wh_start() {
	local dir=$1 name=$2 db=$3 port=${4:-0} i
	"$ENG_BIN/engagement-webhook" --db "${FD_WH_CONN:-$(fs_conn "$db")}" --listen "127.0.0.1:$port" \
		--app-secret-file "$dir/app_secret" --verify-token-file "$dir/verify_token" \
		>"$dir/$name.json" 2>"$dir/$name.log" &
	FD_HOOK_PID=$!
	echo "$FD_HOOK_PID" >"$dir/$name.pid"
	FD_HOOK_PORT=
	for i in $(seq 200); do
		FD_HOOK_PORT=$(jq -rn 'first(inputs | select(.event == "listening") | .port)' "$dir/$name.log" 2>/dev/null || true)
		[ -n "$FD_HOOK_PORT" ] && break
		kill -0 "$FD_HOOK_PID" 2>/dev/null || break
		sleep 0.025
	done
	[ -n "$FD_HOOK_PORT" ] || { echo "engagement-webhook did not start: $(tail -n 3 "$dir/$name.log")" >&2; return 1; }
	echo "http://127.0.0.1:$FD_HOOK_PORT/" >"$dir/url.tmp"
	mv "$dir/url.tmp" "$dir/url"
}

# fd_wh_answered DIR: the keys of the deliveries the poster has had 200 for
fd_wh_answered() {
	jq -r 'select(.status == 200) | .key' "$1/posts.jsonl" 2>/dev/null | sort -u
}

# fd_wh_wait_answered DIR N POSTER_PID TIMEOUT_S: until the poster has had N
# deliveries answered 200, or ended
fd_wh_wait_answered() {
	local end=$(($(fs_now_ms) + $4 * 1000))
	while kill -0 "$3" 2>/dev/null && [ "$(fs_now_ms)" -lt "$end" ]; do
		[ "$(fd_wh_answered "$1" | grep -c .)" -ge "$2" ] && return 0
		sleep 0.01
	done
	return 1
}

# fd_wh_keys DB [applied]: the keys of the deliveries in the inbox (applied ones)
fd_wh_keys() {
	fs_q "$1" "SELECT DISTINCT body::jsonb -> 'entry' -> 0 ->> 'id' FROM engagement.webhook_inbox
	           ${2:+WHERE applied_at IS NOT NULL}" | sort -u
}

# fd_wh_facts DB T: what the checker needs, one JSON object
fd_wh_facts() {
	fs_q "$1" "SELECT json_build_object(
	  'inbox_rows', (SELECT count(*) FROM engagement.webhook_inbox),
	  'pending', (SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NULL),
	  'broken', (SELECT count(*) FROM engagement.webhook_inbox WHERE result ? 'error'),
	  'stored_keys', (SELECT coalesce(json_agg(DISTINCT body::jsonb -> 'entry' -> 0 ->> 'id'), '[]')
	                  FROM engagement.webhook_inbox),
	  'applied_keys', (SELECT coalesce(json_agg(DISTINCT body::jsonb -> 'entry' -> 0 ->> 'id'), '[]')
	                   FROM engagement.webhook_inbox WHERE applied_at IS NOT NULL),
	  'activity_events', (SELECT count(*) FROM engagement.activity_events),
	  'inbound_events', (SELECT count(*) FROM engagement.inbound_events WHERE kind = 'event'),
	  'transitions', (SELECT count(*) FROM engagement.state_transitions),
	  'active_at_last', (SELECT count(*) FROM engagement.engagement_states
	                     WHERE state = 'active' AND last_activity_at = to_timestamp($2 + 1)),
	  'read', (SELECT count(*) FROM engagement.message_queue WHERE delivery_status = 'read'),
	  'read_ordered', (SELECT count(*) FROM engagement.message_queue WHERE delivery_status = 'read'
	                   AND delivered_at IS NOT NULL AND delivered_at <= read_at),
	  'outbox_delivered', (SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'message.delivered'),
	  'outbox_read', (SELECT count(*) FROM engagement.outbox_events WHERE event_type = 'message.read'),
	  'max_activity_per_wamid', (SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c
	                   FROM engagement.inbound_events GROUP BY event_id) s),
	  'max_outbox_per_message_status', (SELECT coalesce(max(c), 0) FROM (SELECT count(*) AS c
	                   FROM engagement.outbox_events WHERE event_type IN ('message.delivered', 'message.read')
	                   GROUP BY aggregate_id, event_type) s))"
}

# fd_trial_webhook DIR SEED FAULT [PEOPLE]
#
# engagement-webhook receives 4 x PEOPLE signed deliveries (texts and
# statuses, fd_wh_bodies) from fd_poster.py (4 connections, in a shuffled
# order, each retried until answered 200, as Meta does) while FAULT hits,
# once a random number of them (1 to PEOPLE) were answered 200:
#   kill9        kill -9; restarted on the same port
#   kill9-drain  the same, then engagement-webhook --drain before the restart
#   restart      the server restarted under it (pg_ctl restart -m fast, or
#                stopped for 1-3 s), deliveries answered 503 meanwhile
#   cut          its database sessions terminated 3 times
#   bouncer-cut  it works through PgBouncer (transaction pooling); the
#                pool's server sessions terminated 3 times
#   term-db-down the server stopped, then SIGTERM: the receiver must exit 0
#                (DESIGN.md 2.3); the server back, the receiver restarted
#                (alone!)
# Held (fd_check.py webhook): every delivery answered 200 was in the inbox
# at once (checked right after the kill, before anything restarts) and is
# applied in the end (after --drain: at once), none broken, each person's
# messages applied exactly once and statuses moved forward once; the
# receiver exits 0 on SIGTERM, --drain exits 0.
fd_trial_webhook() {
	local dir=$1 seed=$2 fault=$3 people=${4:-15}
	local db="fd_wh_${seed}_$$_$RANDOM" t0 T problems=() poster at=0 rc drc=-1
	local at_kill=0 lost_at_kill=0 unapplied_drain=0 k cuts=0 down=0 i restarted=0 trc=-1
	local promote_ms=null reach_ms=null
	mkdir -p "$dir"
	RANDOM=$seed
	t0=$(fs_now_ms)
	fs_db_new "$db"
	T=$(fs_q "$db" "SELECT extract(epoch FROM date_trunc('second', now()))::bigint - 600")
	fd_wh_seed "$db" "$people" "$T"
	# bouncer-cut: the receiver works through PgBouncer (transaction
	# pooling), and the pool's server sessions are cut
	local FD_WH_CONN=
	[ "$fault" = bouncer-cut ] && FD_WH_CONN="host=127.0.0.1 port=${ENG_PGBOUNCER_PORT:?no PgBouncer} dbname=$db"
	fd_wh_bodies "$people" "$T" "$dir/bodies.jsonl"
	(umask 077 && printf 'app-secret-%s%s\n' "$RANDOM" "$RANDOM" >"$dir/app_secret" &&
		printf 'verify-%s\n' "$RANDOM" >"$dir/verify_token")
	fd_wh_start "$dir" hook1 "$db" || return 1
	python3 "$FD_POSTER" --url-file "$dir/url" --secret-file "$dir/app_secret" \
		--bodies "$dir/bodies.jsonl" --out "$dir/posts.jsonl" --conns 4 --interval-ms 40 \
		--deadline-s 60 --seed "$seed" 2>"$dir/poster.err" &
	poster=$!
	echo "$poster" >"$dir/poster.pid"
	# every fault lands once 1..PEOPLE deliveries were answered 200 (of
	# 4 x PEOPLE), whatever the machine's speed
	fd_rand "$people"; k=$((1 + FD_R))
	fd_wh_wait_answered "$dir" "$k" "$poster" 30
	at=$(($(fs_now_ms) - t0))
	case $fault in
	kill9 | kill9-drain)
		kill -9 "$FD_HOOK_PID"
		wait "$FD_HOOK_PID" 2>/dev/null || true
		# 200 means committed: all of them are in the inbox now
		fd_wh_answered "$dir" >"$dir/answered_at_kill"
		fd_wh_keys "$db" >"$dir/stored_at_kill"
		at_kill=$(grep -c . "$dir/answered_at_kill" || true)
		lost_at_kill=$(comm -23 "$dir/answered_at_kill" "$dir/stored_at_kill" | grep -c . || true)
		[ "$lost_at_kill" = 0 ] || problems+=("$lost_at_kill deliveries answered 200 were not in the inbox after the kill: $(comm -23 "$dir/answered_at_kill" "$dir/stored_at_kill" | head -n 5 | tr '\n' ' ')")
		fd_wait_gone "$db" engagement-webhook 20 || problems+=("the killed receiver's sessions did not end")
		if [ "$fault" = kill9-drain ]; then
			"$ENG_BIN/engagement-webhook" --db "dbname=$db" --drain >"$dir/drain.json" 2>"$dir/drain.log" &&
				drc=0 || drc=$?
			[ "$drc" = 0 ] || problems+=("--drain exited $drc: $(jq -r '.error // empty' "$dir/drain.json")")
			fd_wh_keys "$db" applied >"$dir/applied_after_drain"
			unapplied_drain=$(comm -23 "$dir/answered_at_kill" "$dir/applied_after_drain" | grep -c . || true)
			[ "$unapplied_drain" = 0 ] || problems+=("$unapplied_drain deliveries answered 200 not applied by --drain")
			[ "$(fs_q "$db" "SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NULL")" = 0 ] ||
				problems+=("--drain left deliveries pending")
		fi
		# restarted on the same port (Meta keeps calling one URL)
		if ! fd_wh_start "$dir" hook2 "$db" "$FD_HOOK_PORT" 2>>"$dir/restart.err"; then
			fd_wh_start "$dir" hook2 "$db" || problems+=("the receiver did not start again")
			echo "restarted on another port" >>"$dir/restart.err"
		fi
		restarted=1
		;;
	restart)
		fd_rand 4; down=$FD_R
		if [ "$down" = 0 ]; then
			fd_pg_restart || problems+=("pg_ctl restart failed")
		else
			fs_pg_stop
			sleep "$down"
			fs_pg_start
		fi
		;;
	failover)
		# (failover.bats, ff.sh) the primary stopped -m immediate, the
		# standby promoted; reach_ms: from the stop to the first 200
		# answered after it
		ff_failover "${FF_PROMOTE_S:-1}" || problems+=("the failover failed")
		promote_ms=$((FF_T_PROMOTED - FF_T_STOP))
		down=${FF_PROMOTE_S:-1}
		;;
	term-db-down)
		# the database goes away, then the service is told to stop
		fs_pg_stop
		down=1
		sleep 0.3
		kill -TERM "$FD_HOOK_PID"
		fs_wait_pid "$FD_HOOK_PID" 30 2>>"$dir/wait.err" && trc=0 || trc=$?
		[ "$trc" = 0 ] || problems+=("engagement-webhook exited $trc on SIGTERM with the database down, not 0 (DESIGN.md 2.3 and engagement-webhook(1): SIGTERM exits 0): $(jq -r '.error // empty' "$dir/hook1.json" 2>/dev/null | cut -c1-80)")
		sleep 0.7
		fs_pg_start
		if ! fd_wh_start "$dir" hook2 "$db" "$FD_HOOK_PORT" 2>>"$dir/restart.err"; then
			fd_wh_start "$dir" hook2 "$db" || problems+=("the receiver did not start again")
		fi
		restarted=1
		;;
	cut | bouncer-cut)
		for i in 1 2 3; do
			if [ "$fault" = cut ]; then
				cuts=$((cuts + $(fd_cut "$db" engagement-webhook)))
			else
				cuts=$((cuts + $(fd_cut "$db" "" eng_webhook)))
			fi
			fd_rand 300; fd_sleep_ms $((100 + FD_R))
		done
		;;
	esac
	fs_wait_pid "$poster" 90 || problems+=("the poster did not finish")
	if [ "$fault" = failover ]; then
		reach_ms=$(jq -rn --argjson t "$FF_T_STOP" '[inputs | select(.status == 200 and .t_sent * 1000 >= $t)
		           | .t_done * 1000 | floor | select(. >= $t)] | if length == 0 then null
		           else (min - $t) end' "$dir/posts.jsonl" 2>/dev/null || echo null)
	fi
	# every delivery stored is applied within a second or so
	for i in $(seq 100); do
		[ "$(fs_q "$db" "SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NULL")" = 0 ] && break
		sleep 0.1
	done
	kill -TERM "$FD_HOOK_PID" 2>/dev/null || true
	fs_wait_pid "$FD_HOOK_PID" 30 && rc=0 || rc=$?
	[ "$rc" = 0 ] || problems+=("engagement-webhook exited $rc on SIGTERM: $(jq -r '.error // empty' "$dir/hook$((1 + restarted)).json" 2>/dev/null)")
	fd_wh_facts "$db" "$T" >"$dir/facts.json"
	python3 "$FD_CHECK" webhook --posts "$dir/posts.jsonl" --db "$dir/facts.json" \
		--people "$people" --deliveries $((4 * people)) >"$dir/check.json" 2>"$dir/check.err" ||
		problems+=("fd_check.py failed: $(tail -n 2 "$dir/check.err" | tr '\n' ' ')")
	local c out
	c=$(cat "$dir/check.json" 2>/dev/null)
	[ -n "$c" ] || c='{"violations":1,"problems":"no check"}'
	[ "$(jq -r .violations <<<"$c")" = 0 ] || problems+=("$(jq -r .problems <<<"$c")")
	out=$(fs_json program engagement-webhook fault "$fault" trials 1 seed "$seed" people "$people" \
		at_ms "$at" down_s "$down" cuts "$cuts" answered_at_kill "$at_kill" lost_at_kill "$lost_at_kill" \
		promote_after_ms "$promote_ms" reach_ms "$reach_ms" \
		drain_rc "$drc" unapplied_after_drain "$unapplied_drain" rc "$rc" term_rc_db_down "$trc" \
		duration_ms $(($(fs_now_ms) - t0)) \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db")
	jq -cn --argjson c "$(jq -c 'del(.violations, .problems)' <<<"$c")" --argjson o "$out" \
		--argjson n "${#problems[@]}" '$c + $o + {lost: ($c.lost + $o.lost_at_kill), duplicated: 0, violations: $n}'
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}

# ---- queue-send against a misbehaving API ---------------------------------------------

# fd_qs_seed DB USERS EVERY SUFFIXES: USERS users with one due goodbye
# each; every EVERY-th user's phone ends in the next of SUFFIXES (a
# space-separated list of the stand-in's chosen recipients, e.g. "909 908"),
# the others in 000 (ordinary)
fd_qs_seed() {
	local db=$1 n=$2 every=$3 arr
	# shellcheck disable=SC2086 # a list of suffixes
	arr=$(printf "'%s'," $4)
	fs_seed "$db" "$n" 1
	fs_q "$db" "UPDATE engagement.users u SET phone_e164 = left(u.phone_e164, -3) ||
	              CASE WHEN s.i % $every = 0
	                   THEN (ARRAY[${arr%,}])[((s.i / $every - 1) % $(wc -w <<<"$4")) + 1]
	                   ELSE '000' END
	            FROM (SELECT id, right(id::text, 12)::int AS i FROM engagement.users) s
	            WHERE s.id = u.id" >/dev/null
}

# fd_qs_time_passes DB: what is queued for later is due now (the backoff of
# a retry is 30 s and more: the trials do not wait for it)
fd_qs_time_passes() {
	fs_q "$1" "UPDATE engagement.message_queue SET next_attempt_at = now() - interval '1 second'
	           WHERE status = 'queued' AND next_attempt_at > now()" >/dev/null
}

# fd_qs_rc_ok RUN RC: a queue-send run's exit code is one the contract
# allows here: 0, 1 (some failed), or 75 when it stopped because the API
# looked unreachable (docs/queue-send.1.scd: consecutive transport errors;
# the messages not yet answered are handed back, uncharged)
fd_qs_rc_ok() {
	case $2 in
	0 | 1) return 0 ;;
	75) jq -e '(.error // "") | test("API is unreachable")' "$1.json" >/dev/null 2>&1 ;;
	*) return 1 ;;
	esac
}

# fd_trial_send DIR SEED FAULT
#
# queue-send against the Cloud API stand-in misbehaving:
#   drop       every 3rd recipient's connection is closed unanswered (909)
#   stall      every 3rd recipient's answer comes after --slow-ms 1000,
#              beyond queue-send --timeout 300ms (908)
#   mix-kill9  every 2nd recipient is 909, 908, 906 (500 not JSON) or 920
#              (fails once), every answer 50 ms late, and queue-send is
#              killed with SIGKILL once the stand-in recorded a random
#              number of its requests
# queue-send (--concurrency 4, --lease-seconds 3) runs again and again, as
# cron would, until nothing is queued; between runs the backoff is skipped
# (fd_qs_time_passes). Held:
# - every ordinary message (and 920) ends sent, with the wamid the stand-in
#   answered for it; 909, 908 and 906 end failed after max_attempts, never
#   sent; nothing is left sending;
# - the stand-in accepted a message (answered it a wamid) more than once
#   only when its earlier request was in flight at the kill (recorded by
#   the killed run, its row still sending) or timed out (908: the API took
#   it, the sender never heard): "duplicated (documented at-least-once)",
#   at most one per recorded timeout;
# - requests per message never exceed its attempts (plus one in flight at
#   the kill): a dropped connection is not silently re-sent;
# - each run exits 0 or 1 (some failed) and none hangs.
fd_trial_send() {
	local dir=$1 seed=$2 fault=$3
	local db="fd_qs_${seed}_$$_$RANDOM" t0 problems=() n=24 every=3 specials lat=0 slow=1000
	local timeout=2s lease=5 at=0 killed=false rc rr runs=0 pid durs=() t_run
	mkdir -p "$dir"
	RANDOM=$seed
	t0=$(fs_now_ms)
	case $fault in
	drop) specials="909" ;;
	stall) specials="908" timeout=300ms ;;
	mix-kill9) specials="909 908 906 920" every=2 lat=50 timeout=300ms ;;
	*) echo "fd_trial_send: unknown fault $fault" >&2; return 1 ;;
	esac
	fs_db_new "$db"
	fd_qs_seed "$db" "$n" "$every" "$specials"
	fs_standin_start "$dir" --latency-ms "$lat" --slow-ms "$slow" || return 1
	: >"$dir/inflight.ids"
	t_run=$(fs_now_ms)
	fs_bg "$dir" run0 "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 --concurrency 4 \
		--timeout "$timeout" --lease-seconds "$lease" --worker-id "fd-$seed-0"
	pid=$FS_PID
	if [ "$fault" = mix-kill9 ]; then
		# once the stand-in recorded a random number of its requests
		fd_rand $((n / 2)); local after=$FD_R
		fs_wait_requests_of "$FS_RECORD" "$after" "$pid" 60
		at=$(($(fs_now_ms) - t_run))
		if kill -0 "$pid" 2>/dev/null; then
			kill -9 "$pid" 2>/dev/null && killed=true
		fi
		wait "$pid" 2>/dev/null && rc=0 || rc=$?
		# its claims stay as they were until the leases run out; a 908
		# request is recorded when its wait ends
		fs_q "$db" "SELECT id FROM engagement.message_queue WHERE status = 'sending'" | sort -u >"$dir/sending.ids"
		fs_wait_standin_idle 30 || true
		fs_record_ids "$FS_RECORD" | sort -u >"$dir/killed.ids"
		comm -12 "$dir/killed.ids" "$dir/sending.ids" >"$dir/inflight.ids"
	else
		fs_wait_pid "$pid" 60 && rc=0 || rc=$?
		fd_qs_rc_ok "$dir/run0" "$rc" || problems+=("run 0 exited $rc: $(jq -r '.error // empty' "$dir/run0.json" 2>/dev/null)")
	fi
	durs+=($(($(fs_now_ms) - t_run)))
	while [ "$(fs_q "$db" "SELECT count(*) FROM engagement.message_queue
	                       WHERE status IN ('queued', 'sending')")" -gt 0 ]; do
		runs=$((runs + 1))
		if [ "$runs" -gt 12 ]; then
			problems+=("still queued after 12 runs: $(fs_status_counts "$db")")
			break
		fi
		fs_wait_leases_out "$db" $((lease + 10)) || { problems+=("leases still live"); break; }
		fd_qs_time_passes "$db"
		t_run=$(fs_now_ms)
		fs_bg "$dir" "run$runs" "$ENG_BIN/queue-send" --db "dbname=$db" --rate 0 --concurrency 4 \
			--timeout "$timeout" --lease-seconds "$lease" --worker-id "fd-$seed-$runs"
		fs_wait_pid "$FS_PID" 60 && rr=0 || rr=$?
		durs+=($(($(fs_now_ms) - t_run)))
		fd_qs_rc_ok "$dir/run$runs" "$rr" || problems+=("run $runs exited $rr: $(jq -r '.error // empty' "$dir/run$runs.json" 2>/dev/null)")
	done
	fs_wait_standin_idle 30 || true # the last 908 waits end (and are recorded)
	fs_standin_stop
	# per message: its suffix, status, attempts, last error class, provider
	# id; the stand-in's requests and wamids for it
	fs_q "$db" "SELECT m.id, right(u.phone_e164, 3), m.status, m.attempts, m.max_attempts,
	                   coalesce(m.last_error_code, ''), coalesce(m.provider_message_id, ''),
	                   (SELECT count(*) FROM engagement.audit_log a
	                    WHERE a.message_id = m.id AND a.event = 'message_handed_back')
	            FROM engagement.message_queue m JOIN engagement.users u ON u.id = m.user_id
	            ORDER BY m.id" >"$dir/rows"
	jq -c 'select(.kind == null and .biz_opaque_callback_data != null)
	       | {id: (.biz_opaque_callback_data | ltrimstr("mq:") | tonumber), wamid}' "$FS_RECORD" |
		jq -s 'group_by(.id) | map({key: (.[0].id | tostring),
		       value: {requests: length, wamids: [.[].wamid | select(. != null)]}}) | from_entries' >"$dir/api.json"
	local c
	c=$(jq -nR --slurpfile api "$dir/api.json" --rawfile inflight "$dir/inflight.ids" '
	  ($inflight | split("\n") | map(select(length > 0))) as $inf
	  | [inputs | split("|") | {id: .[0], sfx: .[1], status: .[2], attempts: (.[3] | tonumber),
	       max: (.[4] | tonumber), err: .[5], pid: .[6], back: (.[7] | tonumber)}]
	  | map(. as $m | ($api[0][$m.id] // {requests: 0, wamids: []}) as $a
	      | $m + {requests: $a.requests, api_sends: ($a.wamids | length),
	              pid_ok: ($m.pid == "" or (($a.wamids | index($m.pid)) != null)),
	              inflight: (($inf | index($m.id)) != null)})
	  | map(. + {expect: (if .sfx == "000" or .sfx == "920" then "sent" else "failed" end)}) as $ms
	  | {messages: ($ms | length),
	     lost: ($ms | map(select(.expect == "sent" and .status != "sent")) | length),
	     wrong_end: ($ms | map(select(.status != .expect)) | map("\(.id):\(.sfx):\(.status)")),
	     sending: ($ms | map(select(.status == "sending")) | length),
	     sent_unanswered: ($ms | map(select(.status == "sent" and (.pid_ok | not))) | map(.id)),
	     duplicated: ($ms | map(select(.api_sends > 1)) | length),
	     dup_unexplained: ($ms | map(select(.api_sends > 1
	         and (.api_sends > .attempts + (if .inflight then 1 else 0 end)
	              or (.inflight | not) and .err != "timeout" and .sfx != "908")))
	         | map("\(.id):\(.sfx):\(.api_sends) sends/\(.attempts) attempts")),
	     extra_requests: ($ms | map(select(.sfx != "909"
	             and .requests > .attempts + .back + (if .inflight then 1 else 0 end)))
	         | map("\(.id):\(.sfx):\(.requests) requests/\(.attempts) attempts+\(.back) handed back")),
	     handed_back_unreachable: ($ms | map(.back) | add),
	     timeouts_accepted: ($ms | map(select(.sfx == "908")) | map(.api_sends) | add // 0),
	     in_flight: ($inf | length),
	     requests: ($ms | map(.requests) | add)}' "$dir/rows")
	[ "$(jq '.wrong_end | length' <<<"$c")" = 0 ] || problems+=("messages that did not end as they should: $(jq -c .wrong_end <<<"$c")")
	[ "$(jq .sending <<<"$c")" = 0 ] || problems+=("$(jq .sending <<<"$c") left sending")
	[ "$(jq '.sent_unanswered | length' <<<"$c")" = 0 ] || problems+=("sent with a provider id the stand-in never answered for them: $(jq -c .sent_unanswered <<<"$c")")
	[ "$(jq '.dup_unexplained | length' <<<"$c")" = 0 ] || problems+=("accepted twice by the API without a kill or a timeout to explain it: $(jq -c .dup_unexplained <<<"$c")")
	[ "$(jq '.extra_requests | length' <<<"$c")" = 0 ] || problems+=("more requests than attempts: $(jq -c .extra_requests <<<"$c")")
	# every request the stand-in saw is one queue-send counted, but for
	# libcurl's own re-send of a request whose reused keep-alive connection
	# was closed without a byte of answer (909): reported as curl_resends
	# (not known after a kill: the killed run printed no count)
	local counted unreachable resends=null
	counted=$(cat "$dir"/run*.json 2>/dev/null | jq -s 'map(.requests // 0) | add // 0')
	unreachable=$(cat "$dir"/run*.json 2>/dev/null | jq -s 'map(select((.error // "") | test("API is unreachable"))) | length')
	if ! $killed; then
		resends=$(($(jq .requests <<<"$c") - counted))
		[ "$resends" -ge 0 ] || problems+=("the runs counted $counted requests, the stand-in saw $(jq .requests <<<"$c")")
		[ "$resends" -eq 0 ] || [ "$fault" = drop ] ||
			problems+=("$resends requests the runs did not count, without dropped connections")
	fi
	local out
	out=$(fs_json program queue-send fault "$fault" trials 1 seed "$seed" at_ms "$at" killed "$killed" \
		rc "$rc" reruns "$runs" requests_counted "$counted" curl_resends "$resends" runs_unreachable "$unreachable" durations_ms "${durs[*]}" duration_ms $(($(fs_now_ms) - t0)) \
		ok "$([ ${#problems[@]} -eq 0 ] && echo true || echo false)" \
		problems "${problems[*]:-}" db "$db")
	jq -cn --argjson c "$c" --argjson o "$out" --argjson n "${#problems[@]}" \
		'($c | .wrong_end |= length | .sent_unanswered |= length | .dup_unexplained |= length
		     | .extra_requests |= length) + $o + {violations: $n}'
	[ -n "${FS_KEEP_DB:-}" ] || fs_db_drop "$db"
}
