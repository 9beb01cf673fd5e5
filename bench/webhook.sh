#!/usr/bin/env bash
# Benchmark engagement-webhook against the receiver a team would write by
# hand (../shared/bench/peer-webhook.js: Node, pg, verify, INSERT the raw
# body, 200), under the same load, in one run, alternating ours / peer.
#
#   bench/webhook.sh [SECONDS] [CONNECTIONS] [ROUNDS]    (defaults: 10 64 3)
#
# The load: wrk (Debian's) on loopback, CONNECTIONS keep-alive connections,
# each with one request in flight, replaying pre-signed deliveries
# (bench/webhook/bodies.py, bench/webhook/replay.lua): realistic Meta
# envelopes, mostly one delivery status each, some inbound messages (from
# users, from strangers, quick-reply taps), a few with two statuses; every
# wamid distinct, so none is a repeat. The database: a throwaway cluster
# (tests/pg/cluster.sh) on this machine, made durable for the run (fsync,
# synchronous_commit and full_page_writes on: an answer 200 means the
# delivery is on disk, for both receivers), USERS users and the queue's
# sent messages the statuses are about. Each run gets a fresh copy of that
# database. Both receivers reach it over the same Unix socket.
#
# Per run: requests/s, latency p50/p99 (wrk --latency), errors and non-2xx;
# for ours also the lag from acknowledgement to applied (inbox received_at to
# applied_at, p50/p99), and checks that every acknowledged delivery was stored
# and applied (each status moved its message, each user's message recorded);
# for the peer, that every acknowledged delivery was stored. At the end the
# medians, the ratio ours/peer and the targets (>= 5000/s, p99 < 50 ms, the
# lag to applied p99 < 2 s), and one line per paced run (its lag, the
# target p99 < 1 s, and the applier's rate over the load and the drain).
#
# Then a run of ours held to each rate of PACED_RATE requests/s (default
# 5000, the target; "5000 2500" for two runs; 0 skips them): the
# acknowledgement latency and the lag to applied at a given load rather than
# flat out.
#
# The machine may be shared: before each run the script waits (up to
# QUIET_WAIT seconds, default 120) until at most QUIET_PCT % (default 10) of
# it is busy, and each run reports the CPU its receiver, its PostgreSQL, wrk
# and every other process used; a run during which other processes took
# more than NOISY_PCT % of a core (default 25) is not counted and is run
# again, up to RETRIES times (default 3; then it is counted, and said so).
#
# PROFILE=1: for ours, perf record -a -g during the load and
# pg_stat_statements over the load and until the inbox is applied; after
# each such run, the hottest symbols per process and the statements that
# took the most time (perf must be installed).
#
# Environment: USERS (default 20000), BODIES (pre-signed deliveries, default
# 30000 per second of a run, more than are sent, so none repeats),
# WRK_THREADS (default 2), THREADS (engagement-webhook --threads, default 2),
# OURS_ARGS (more engagement-webhook options, e.g. "--batch 1000"; ROUNDS 0
# runs only the paced runs),
# PEER_POOL (the peer's pg pool, default its own 16), DURABLE=0 (keep the
# cluster's test settings: fsync and synchronous_commit off),
# PEER_WEBHOOK_JS (default ../shared/bench/peer-webhook.js), KEEP=1 (keep
# the work folder, with every run's output).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
users=${USERS:-20000}
wthreads=${WRK_THREADS:-2}
nbodies=${BODIES:-$(( 30000 * secs ))}
paced=${PACED_RATE:-5000}
durable=${DURABLE:-1}
peer_js=${PEER_WEBHOOK_JS:-$PWD/../shared/bench/peer-webhook.js}
cmdline="$0 $*"
bin=$PWD/build/bench

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v wrk >/dev/null; then
  as_root apt-get install -y -qq wrk >/dev/null 2>&1 ||
    { as_root apt-get update -qq && as_root apt-get install -y -qq wrk >/dev/null; }
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  as_root apt-get install -y -qq nodejs npm >/dev/null
fi
[ -f "$peer_js" ] || { echo "webhook.sh: no peer receiver at $peer_js (set PEER_WEBHOOK_JS)" >&2; exit 1; }
# always (incrementally): the figures are those of the sources as they are
[ -f build/bench/CMakeCache.txt ] || cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/bench -j "$(nproc)" --target engagement-webhook migrate >/dev/null
# the peer's one dependency, in a scratch folder of its own
peer_dir=$PWD/build/bench/peer-webhook
if ! [ -d "$peer_dir/node_modules/pg" ]; then
  mkdir -p "$peer_dir"
  (cd "$peer_dir" && npm install --silent --no-audit --no-fund pg@8 >/dev/null)
fi
cp "$peer_js" "$peer_dir/peer-webhook.js"

work=$(mktemp -d /tmp/bench-webhook.XXXXXX)
state=$work/pg
rx_pid=
cleanup() {
  if [ -n "$rx_pid" ]; then kill "$rx_pid" 2>/dev/null || true; wait "$rx_pid" 2>/dev/null || true; fi
  tests/pg/cluster.sh stop "$state" || true
  if [ -n "${KEEP:-}" ]; then echo "kept: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tests/pg/cluster.sh start "$state" "$bin/migrate" >/dev/null
# shellcheck disable=SC1091
. "$state/env"
sql() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
if [ -n "${PROFILE:-}" ]; then
  sql -d postgres -c "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  if [ "$(id -u)" = 0 ]; then pg_owner=(runuser -u postgres --); else pg_owner=(); fi
  "${pg_owner[@]}" "$ENG_PG_BIN/pg_ctl" -D "$ENG_PG_ROOT/data" -w -l "$ENG_PG_ROOT/server.log" restart >/dev/null
  sql -d postgres -c "CREATE EXTENSION pg_stat_statements" \
    -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
fi
if [ "$durable" = 1 ]; then
  sql -d postgres -c "ALTER SYSTEM SET fsync = on" -c "ALTER SYSTEM SET synchronous_commit = on" \
    -c "ALTER SYSTEM SET full_page_writes = on" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.5
fi
pgconf=$(sql -d postgres -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_sync_method')")
pgver=$(sql -d postgres -c "SHOW server_version")

umask 077
printf 'bench-app-secret-%s\n' "$RANDOM$RANDOM" >"$work/app-secret"
printf 'bench-verify-%s\n' "$RANDOM" >"$work/verify-token"
umask 022

echo "== engagement-webhook vs peer-webhook.js: $cmdline"
echo "   sources: $(git describe --always --dirty 2>/dev/null || echo unknown), build/bench (RelWithDebInfo)"
echo "   $rounds round(s) of ${secs}s each, $conns connections, wrk -t$wthreads, $(nproc) cores;" \
  "PostgreSQL $pgver ($pgconf)"
gen=$(python3 bench/webhook/bodies.py "$nbodies" "$users" "$work/app-secret" "$work/bodies.txt")
nmsgs=$(jq .messages <<<"$gen")
echo "   $nbodies pre-signed deliveries ($(jq .bytes_avg <<<"$gen") bytes on average," \
  "$(jq .status_items <<<"$gen") status items about $nmsgs sent messages), $users users"

# The source database: users (1 in 20 waiting for their goodbye answer) and
# the sent messages the statuses are about; each run clones it.
createdb -T engagement_tmpl bench_src
sql -d bench_src -v users="$users" -v nmsgs="$nmsgs" -f bench/webhook/seed.sql
sql -d bench_src -c "VACUUM ANALYZE"
sql -d postgres -c "CHECKPOINT"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
hz=$(getconf CLK_TCK)
ncpu=$(nproc)
quiet_pct=${QUIET_PCT:-10}
quiet_wait=${QUIET_WAIT:-120}
tick() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null; } # user + system
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
# quiet: this machine may be shared; wait (up to QUIET_WAIT seconds) until
# at most QUIET_PCT % of it was busy over a second, and say so if it never was
quiet() {
  local b0 b1 pct waited=0
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    pct=$(( 100 * (b1 - b0) / hz / ncpu ))
    [ "$pct" -le "$quiet_pct" ] && break
    waited=$((waited + 1))
    if [ "$waited" -ge "$quiet_wait" ]; then
      echo "       note: other work kept the machine ${pct}% busy; ran anyway after ${waited}s"
      return
    fi
  done
  [ "$waited" = 0 ] || echo "       (waited ${waited}s for other work on this machine to stop)"
}
# sample_cpu OUT SECONDS RECEIVER_PID WRK_PID READY: the CPU used in the
# middle of the run (from 1 s after wrk has loaded its requests, when it
# creates READY, to 1 s before its end), in % of one core: "RECEIVER
# POSTGRES WRK OTHERS MACHINE%" (POSTGRES: every process of this run's
# cluster, those that start during the window included; OTHERS: whatever
# else ran on the machine meanwhile; MACHINE%: of all cores)
sample_cpu() {
  local out=$1 s=$(( $2 - 2 )) rx=$3 wk=$4 ready=$5 pm p v b0 b1 rxd wkd pgd=0
  [ "$s" -ge 1 ] || { echo "- - - - -" >"$out"; return; }
  while ! [ -e "$ready" ]; do kill -0 "$wk" 2>/dev/null || { echo "- - - - -" >"$out"; return; }; sleep 0.05; done
  sleep 1
  pm=$(head -1 "$ENG_PG_ROOT/data/postmaster.pid")
  local -A t0
  for p in "$rx" "$wk" "$pm" $(pgrep -P "$pm"); do t0[$p]=$(tick "$p"); done
  b0=$(busy_ticks)
  sleep "$s"
  b1=$(busy_ticks)
  # a process that started in the window: all of its time (0 before it)
  d() { v=$(tick "$1"); if [ -n "$v" ]; then echo $(( v - ${t0[$1]:-0} )); else echo 0; fi; }
  rxd=$(d "$rx"); wkd=$(d "$wk")
  for p in "$pm" $(pgrep -P "$pm"); do pgd=$(( pgd + $(d "$p") )); done
  awk -v rx="$rxd" -v wk="$wkd" -v pg="$pgd" -v all=$(( b1 - b0 )) -v hz="$hz" -v s="$s" -v n="$ncpu" \
    'BEGIN { f = 100 / hz / s; o = all - rx - wk - pg; if (o < 0) o = 0
             printf "%.0f %.0f %.0f %.0f %.0f\n", rx * f, pg * f, wk * f, o * f, all * f / n }' >"$out"
}
wait_http() { # URL: until it answers at all
  for _ in $(seq 200); do
    curl -s -o /dev/null "$1" && return 0
    kill -0 "$rx_pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
stop_rx() {
  kill -TERM "$rx_pid" 2>/dev/null || true
  wait "$rx_pid" 2>/dev/null || true
  rx_pid=
}
# jf FILE KEY: a field of a run's WRK line
jf() { jq -r ".$2" "$1"; }

declare -A rps p50 p99
rps=([ours]="" [peer]="")
p50=([ours]="" [peer]="")
p99=([ours]="" [peer]="")
lag50=()
lag99=()
paced_lines=() # one line per paced run, printed again at the end
problems=0

# pgss_snapshot OUT: the statements that took the most time since the
# reset before the run (the load and the drain), before the checks add theirs
pgss_snapshot() {
  sql -d postgres -F ' | ' -c "
    SELECT lpad(round(total_exec_time)::text, 7) || ' ms', lpad(calls::text, 7) || ' calls',
      lpad(round(total_exec_time::numeric / greatest(calls, 1), 2)::text, 8) || ' ms/call',
      lpad(rows::text, 8) || ' rows', left(regexp_replace(query, '\s+', ' ', 'g'), 110)
    FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
      AND query NOT LIKE 'SELECT EXISTS (SELECT FROM engagement.webhook_inbox%'
    ORDER BY total_exec_time DESC LIMIT 14" >"$1.pgss"
}
# profile_report OUT: where the time went in the run just done
profile_report() {
  echo "       -- statements by total time (pg_stat_statements, the load and the drain):"
  sed 's/^/         /' "$1.pgss"
  local data=$1.perf.data rx_comms=engagement-webh,MHD-worker,MHD-listen
  echo "       -- CPU by process during the load (perf, all CPUs):"
  perf report -i "$data" --no-children --sort comm --stdio 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -8 | sed 's/^/        /' || true
  echo "       -- the receiver's threads (the lowest tid runs the applier):"
  perf report -i "$data" --no-children --comms "$rx_comms" --sort pid --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -6 | sed 's/^/        /' || true
  echo "       -- the receiver's hottest functions (self):"
  perf report -i "$data" --no-children --comms "$rx_comms" --sort dso,sym --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -15 | sed 's/^/        /' || true
  echo "       -- PostgreSQL's hottest functions (self):"
  perf report -i "$data" --no-children --comms postgres --sort dso,sym --stdio -g none 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -15 | sed 's/^/        /' || true
}

# run SIDE ROUND [RATE]: one wrk run against a fresh database (RATE: paced)
run() {
  local side=$1 r=$2 rate=${3:-} db="run_$1_$2" port out="$work/$1-$2"
  rm -f "$out".*
  sql -d postgres -c "CREATE DATABASE $db TEMPLATE bench_src STRATEGY FILE_COPY"
  port=$(free_port)
  if [ "$side" = ours ]; then
    "$bin/engagement-webhook" --db "dbname=$db" --listen "127.0.0.1:$port" \
      --app-secret-file "$work/app-secret" --verify-token-file "$work/verify-token" \
      --threads "${THREADS:-2}" --log-format json "${ours_args[@]}" >"$out.summary.json" 2>"$out.log" &
    rx_pid=$!
  else
    (cd "$peer_dir" && PGURL="postgres:///$db" APP_SECRET="$(cat "$work/app-secret")" PORT=$port \
      ${PEER_POOL:+POOL=$PEER_POOL} exec node peer-webhook.js) >"$out.log" 2>&1 &
    rx_pid=$!
  fi
  local probe="http://127.0.0.1:$port/"
  [ "$side" = ours ] && probe+="?hub.mode=subscribe&hub.challenge=1&hub.verify_token=$(cat "$work/verify-token")"
  wait_http "$probe" || { echo "$side did not start:" >&2; cat "$out.log" >&2; exit 1; }
  if [ "$side" = peer ]; then # it creates its table at start
    for _ in $(seq 100); do
      [ "$(sql -d "$db" -c "SELECT to_regclass('peer_inbox') IS NOT NULL")" = t ] && break
      sleep 0.05
    done
  fi
  sql -d postgres -c "CHECKPOINT"
  quiet
  local perf_pid=
  if [ -n "${PROFILE:-}" ] && [ "$side" = ours ]; then
    sql -d postgres -c "SELECT pg_stat_statements_reset()" >/dev/null
    perf record -q -F 499 -a -g -o "$out.perf.data" -- sleep "$secs" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  wrk -t "$wthreads" -c "$conns" -d "${secs}s" --latency -s bench/webhook/replay.lua \
    "http://127.0.0.1:$port/" -- "$work/bodies.txt" "$wthreads" "${rate:-0}" "$out.ready" \
    >"$out.wrk.txt" 2>&1 &
  local wrk_pid=$!
  sample_cpu "$out.cpu" "$secs" "$rx_pid" "$wrk_pid" "$out.ready" &
  local sampler=$!
  wait "$wrk_pid" || true
  wait "$sampler"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  grep '^WRK ' "$out.wrk.txt" | sed 's/^WRK //' >"$out.wrk.json" ||
    { echo "wrk failed:" >&2; cat "$out.wrk.txt" >&2; exit 1; }
  local f=$out.wrk.json requests non2xx errs acked
  requests=$(jf "$f" requests)
  non2xx=$(jf "$f" non2xx)
  errs=$(jq '.connect + .read + .write + .timeout' "$f")
  acked=$(( requests - non2xx ))
  local c_rx c_pg c_wrk c_other busy label="round $r"
  [ -n "$rate" ] && label="at $rate/s"
  read -r c_rx c_pg c_wrk c_other busy <"$out.cpu"
  printf '%-4s %-10s: %6.0f req/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms  non-2xx %d  errors %d\n' \
    "$side" "$label" "$(jf "$f" rps)" "$(jf "$f" p50_ms)" "$(jf "$f" p99_ms)" "$(jf "$f" max_ms)" \
    "$non2xx" "$errs"
  printf '       cpu (100%% = a core): receiver %s%%, its postgres %s%%, wrk %s%%, other processes %s%%; machine %s%% busy\n' \
    "$c_rx" "$c_pg" "$c_wrk" "$c_other" "$busy"
  noisy=0
  if [ "$c_other" != - ] && [ "$c_other" -gt "$noisy_pct" ]; then
    if [ "$tries_left" -gt 0 ]; then
      echo "       other processes took ${c_other}% of a core: not counted, run again"
      noisy=1
      stop_rx
      sql -d postgres -c "DROP DATABASE $db"
      return
    fi
    echo "       other processes took ${c_other}% of a core (counted: no retries left)"
    noisy_kept=$((noisy_kept + 1))
  fi
  if [ -z "$rate" ]; then
    rps[$side]+="$(jf "$f" rps) "
    p50[$side]+="$(jf "$f" p50_ms) "
    p99[$side]+="$(jf "$f" p99_ms) "
  fi
  if [ "$(jf "$f" slice_repeats)" != 0 ]; then
    echo "       note: wrk ran out of distinct deliveries ($(jf "$f" slice_repeats) repeats): raise BODIES"
  fi

  local stored issued
  issued=$(jf "$f" issued)
  if [ "$side" = ours ]; then
    # applied within a second of the answer, say the docs: give it time
    local pending t0
    t0=$(date +%s)
    while :; do # cheap: this runs while the receiver catches up
      pending=$(sql -d "$db" -c "SELECT EXISTS (SELECT FROM engagement.webhook_inbox WHERE applied_at IS NULL)")
      [ "$pending" = f ] && break
      [ $(( $(date +%s) - t0 )) -ge 300 ] && break
      sleep 0.5
    done
    local drain_s=$(( $(date +%s) - t0 ))
    [ -z "${PROFILE:-}" ] || pgss_snapshot "$out"
    stop_rx
    local lag
    lag=$(sql -d "$db" -F ' ' -c "
      SELECT count(*), count(applied_at), count(*) FILTER (WHERE result ? 'error'),
        round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)) * 1000)::numeric, 1),
        round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - received_at)) * 1000)::numeric, 1),
        round((max(extract(epoch FROM applied_at - received_at)) * 1000)::numeric, 1)
      FROM engagement.webhook_inbox")
    local applied broken l50 l99 lmax
    read -r stored applied broken l50 l99 lmax <<<"$lag"
    if [ -z "$rate" ]; then lag50+=("$l50"); lag99+=("$l99"); fi
    # what the stored deliveries should have done, against what they did
    local chk
    chk=$(sql -d "$db" -F ' ' -c "
      WITH s AS (
        SELECT x->>'id' AS wamid, x->>'status' AS st FROM engagement.webhook_inbox i,
          jsonb_path_query(i.body::jsonb, '\$.entry[*].changes[*].value.statuses[*]') x
      ), want AS (
        SELECT wamid, CASE WHEN bool_or(st = 'read') THEN 'read'
          WHEN bool_or(st = 'delivered') THEN 'delivered'
          WHEN bool_or(st = 'failed') THEN 'failed' ELSE 'sent' END AS want
        FROM s GROUP BY wamid
      ), m AS (
        SELECT x->>'id' AS wamid, '+' || (x->>'from') AS phone FROM engagement.webhook_inbox i,
          jsonb_path_query(i.body::jsonb, '\$.entry[*].changes[*].value.messages[*]') x
      )
      SELECT (SELECT count(*) FROM s), (SELECT count(*) FROM want w
          LEFT JOIN engagement.message_queue q ON q.provider_message_id = w.wamid
          WHERE q.delivery_status IS DISTINCT FROM w.want),
        (SELECT count(*) FROM m), (SELECT count(*) FROM m JOIN engagement.users u ON u.phone_e164 = m.phone),
        (SELECT count(*) FROM m JOIN engagement.users u ON u.phone_e164 = m.phone
          WHERE NOT EXISTS (SELECT 1 FROM engagement.inbound_events e
                            WHERE e.event_id = m.wamid AND e.kind = 'event')),
        (SELECT count(*) FROM engagement.outbox_events)")
    local nst wrong nmsg known missing outbox
    read -r nst wrong nmsg known missing outbox <<<"$chk"
    local ok=yes effects=yes rejected
    if [ "$stored" -lt "$acked" ] || [ "$stored" -gt "$issued" ] || [ "$applied" != "$stored" ] ||
       [ "$broken" != 0 ]; then
      ok=NO; problems=$((problems + 1))
    fi
    if [ "$wrong" != 0 ] || [ "$missing" != 0 ]; then effects=NO; wrong_effects=$((wrong_effects + 1)); fi
    rejected=$(jq -r '.rejected_events // 0' "$out.summary.json" 2>/dev/null || echo '?')
    printf '       acked %d, stored %d, applied %d (%d s after the load), broken %d: %s; lag to applied p50 %s ms, p99 %s ms, max %s ms\n' \
      "$acked" "$stored" "$applied" "$drain_s" "$broken" "$ok" "$l50" "$l99" "$lmax"
    if [ -n "$rate" ]; then
      paced_lines+=("$(printf 'ours at %s/s: %.0f req/s, ack p99 %.2f ms, lag to applied p50 %s ms, p99 %s ms (target p99 < 1000 ms: %s); applier %.0f deliveries/s' \
        "$rate" "$(jf "$f" rps)" "$(jf "$f" p99_ms)" "$l50" "$l99" \
        "$(awk -v a="$l99" 'BEGIN {print (a < 1000) ? "met" : "MISSED"}')" \
        "$(awk -v n="$applied" -v s="$secs" -v d="$drain_s" 'BEGIN {print n / (s + d)}')")")
    fi
    printf '       effects: %d status items, %d messages not in their expected delivery_status; %d inbound messages (%d from users), %d without their event (%s rejected: message_rejected in its log); %d outbox events: %s\n' \
      "$nst" "$wrong" "$nmsg" "$known" "$missing" "$rejected" "$outbox" "$effects"
    printf '       its own summary: %s\n' \
      "$(jq -c '{received, stored, applied, unavailable, activities, goodbye_replies, preferences, duplicates, unknown_users, delivered, read, undelivered, unmatched_statuses, ack_ms}' "$out.summary.json" 2>/dev/null || echo '(none)')"
    [ -z "${PROFILE:-}" ] || profile_report "$out"
  else
    stop_rx
    stored=$(sql -d "$db" -c "SELECT count(*) FROM peer_inbox")
    local ok=yes
    if [ "$stored" -lt "$acked" ] || [ "$stored" -gt "$issued" ]; then ok=NO; problems=$((problems + 1)); fi
    printf '       acked %d, stored %d (nothing applied: it only stores); ok: %s\n' "$acked" "$stored" "$ok"
  fi
  sql -d postgres -c "DROP DATABASE $db"
}

noisy_pct=${NOISY_PCT:-25}
[ -z "${PROFILE:-}" ] || noisy_pct=${NOISY_PCT:-60} # perf itself counts as other
read -r -a ours_args <<<"${OURS_ARGS:-}"
wrong_effects=0
noisy_kept=0
# attempt SIDE ROUND [RATE]: run, again while other processes disturbed it
attempt() {
  tries_left=${RETRIES:-3}
  while :; do
    run "$@"
    [ "$noisy" = 1 ] || break
    tries_left=$((tries_left - 1))
  done
}
for r in $(seq "$rounds"); do
  # alternate, and alternate which goes first
  if [ $((r % 2)) = 1 ]; then attempt ours "$r"; attempt peer "$r"; else attempt peer "$r"; attempt ours "$r"; fi
done
k=0
for rate in $paced; do
  [ "$rate" = 0 ] && continue
  k=$((k + 1))
  echo "== ours held to $rate requests/s ($conns connections)"
  attempt ours "p$k" "$rate"
done

[ "${#paced_lines[@]}" = 0 ] || { echo "== paced"; printf '%s\n' "${paced_lines[@]}"; }
if [ "$rounds" = 0 ]; then # only the paced runs
  echo "command: $cmdline  (USERS=$users BODIES=$nbodies WRK_THREADS=$wthreads THREADS=${THREADS:-2} DURABLE=$durable PACED_RATE=$paced${OURS_ARGS:+ OURS_ARGS=$OURS_ARGS})"
  [ "$problems" = 0 ]
  exit
fi
# shellcheck disable=SC2086
{
  mo=$(median ${rps[ours]}); mp=$(median ${rps[peer]})
  o50=$(median ${p50[ours]}); o99=$(median ${p99[ours]})
  q50=$(median ${p50[peer]}); q99=$(median ${p99[peer]})
}
echo "== medians of $rounds round(s)"
printf 'ours: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  lag to applied p50 %s ms, p99 %s ms\n' \
  "$mo" "$o50" "$o99" "$(median "${lag50[@]}")" "$(median "${lag99[@]}")"
printf 'peer: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms\n' "$mp" "$q50" "$q99"
printf 'ours/peer: %.2fx the throughput, %.2fx the p99\n' \
  "$(awk -v a="$mo" -v b="$mp" 'BEGIN {print a / b}')" "$(awk -v a="$o99" -v b="$q99" 'BEGIN {print a / b}')"
t_rate=$(awk -v a="$mo" 'BEGIN {print (a >= 5000) ? "met" : "MISSED"}')
t_p99=$(awk -v a="$o99" 'BEGIN {print (a < 50) ? "met" : "MISSED"}')
t_lag=$(awk -v a="$(median "${lag99[@]}")" 'BEGIN {print (a < 2000) ? "met" : "MISSED"}')
echo "targets: >= 5000 signed deliveries/s acknowledged: $t_rate; p99 < 50 ms: $t_p99; lag to applied p99 < 2 s: $t_lag;" \
  "every delivery stored and applied: $([ "$problems" = 0 ] && echo yes || echo "NO ($problems run(s))");" \
  "with the expected effects: $([ "$wrong_effects" = 0 ] && echo yes || echo "NO ($wrong_effects run(s))")"
[ "$noisy_kept" = 0 ] || echo "note: $noisy_kept run(s) counted although other processes disturbed them"
echo "command: $cmdline  (USERS=$users BODIES=$nbodies WRK_THREADS=$wthreads THREADS=${THREADS:-2} DURABLE=$durable PACED_RATE=$paced${PEER_POOL:+ PEER_POOL=$PEER_POOL}${OURS_ARGS:+ OURS_ARGS=$OURS_ARGS})"
[ "$problems" = 0 ]
