#!/usr/bin/env bash
# Benchmark queue-send against the local Cloud API stand-in.
#
#   bench/send.sh [N_MESSAGES] [RUNS]     (defaults: 50000 and 3)
#
# 1. N due messages drained with --rate 0 (no limit): messages per second,
#    end to end (claim, HTTP, write-back), median of RUNS;
# 2. --rate 80: the sustained rate the API saw (from the stand-in's request
#    timestamps), median of RUNS;
# 3. 1, 2 and 4 processes at once on N messages: aggregate messages/s;
# 4. two processes with --rate 80 each: the rate is shared, so together
#    they still send 80/s.
set -euo pipefail
umask 077 # the token file is readable by its owner only
cd "$(dirname "$0")/.."
n=${1:-50000}
runs=${2:-3}
bin=$PWD/build/default
[ -x "$bin/queue-send" ] && [ -x "$bin/tests/wa-standin/wa-standin" ] ||
  { cmake --preset default -DBUILD_TESTING=ON >/dev/null && cmake --build --preset default -j "$(nproc)" >/dev/null; }
state=$PWD/build/bench-pg
tmp=$(mktemp -d)
tests/pg/cluster.sh start "$state" "$bin/migrate" >/dev/null
standin_pid=
cleanup() {
  [ -n "$standin_pid" ] && kill "$standin_pid" 2>/dev/null
  tests/pg/cluster.sh stop "$state"
  rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck disable=SC1091
. "$state/env"

echo "bench-token-$RANDOM" >"$tmp/token"
start_standin() {
  [ -n "$standin_pid" ] && { kill "$standin_pid"; wait "$standin_pid" 2>/dev/null || true; }
  rm -f "$tmp/port" "$tmp/requests.jsonl"
  "$bin/tests/wa-standin/wa-standin" --token-file "$tmp/token" --port 0 \
    --port-file "$tmp/port" --record "$tmp/requests.jsonl" 2>/dev/null &
  standin_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
  export WHATSAPP_API_URL="http://127.0.0.1:$(cat "$tmp/port")"
}
export WHATSAPP_PHONE_NUMBER_ID=1234567890 WHATSAPP_ACCESS_TOKEN_FILE="$tmp/token"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# src_db NAME COUNT: a template database with COUNT due messages
src_db() {
  createdb -T engagement_tmpl "$1"
  psql -X -q -d "$1" -c "
    INSERT INTO engagement.users (id, phone_e164)
    SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
           '+55119' || lpad(i::text, 6, '0') || '00'
    FROM generate_series(1, $2) i;
    INSERT INTO engagement.message_queue (user_id, message_type, template_key, params, idempotency_key, next_attempt_at)
    SELECT id, 'weekly_review', 'weekly_review', '{\"activity_count\": 3}', id::text, now() - interval '1 minute'
    FROM engagement.users;" >/dev/null
  psql -X -q -d "$1" -c "VACUUM ANALYZE"
  psql -X -q -d postgres -c CHECKPOINT
}
clone() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $2" -c "CREATE DATABASE $2 TEMPLATE $1 STRATEGY FILE_COPY" 2>&1 | grep -v NOTICE || true; }
# the rate the API saw: requests between the first and last, per second
api_rate() {
  jq -r .ts "$tmp/requests.jsonl" | sort | awk '
    function t(s) { split(substr(s, 12, 12), a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
    NR == 1 { first = t($0) } { last = t($0); n++ }
    END { if (last > first) printf "%.1f", (n - 1) / (last - first); else print 0 }'
}

src_db big "$n"
echo "== queue-send, $n due messages, --rate 0 --concurrency 32 --batch 500"
rates=()
for r in $(seq "$runs"); do
  start_standin
  clone big run1
  t0=$(ms)
  "$bin/queue-send" --db dbname=run1 --rate 0 --concurrency 32 --batch 500 --log-level warn >"$tmp/out.json"
  t=$(( $(ms) - t0 ))
  sent=$(jq .sent "$tmp/out.json")
  rate=$(awk -v n="$sent" -v t="$t" 'BEGIN {printf "%d", n / (t / 1000)}')
  rates+=("$rate")
  echo "run $r: $sent sent in $t ms = $rate messages/s  $(jq -c '{latency_ms, requests}' "$tmp/out.json")  api saw $(api_rate)/s"
done
echo "unlimited median: $(median "${rates[@]}") messages/s"

m=1200
src_db paced "$m"
echo "== queue-send --rate 80, $m messages"
paced=()
for r in $(seq "$runs"); do
  start_standin
  clone paced run2
  "$bin/queue-send" --db dbname=run2 --rate 80 --log-level warn >"$tmp/out.json"
  got=$(api_rate)
  paced+=("$got")
  echo "run $r: the API saw $got messages/s ($(jq .sent "$tmp/out.json") sent, $(jq .duration_ms "$tmp/out.json") ms)"
done
echo "--rate 80 median: $(median "${paced[@]}") messages/s (target 80 +- 5%: 76 to 84)"

echo "== scaling: P processes at once on $n messages, --rate 0"
for p in 1 2 4; do
  start_standin
  clone big run3
  t0=$(ms)
  pids=()
  for w in $(seq "$p"); do
    "$bin/queue-send" --db dbname=run3 --rate 0 --concurrency $(( 32 / p )) --batch 500 --worker-id "w$w" \
      --log-level warn >"$tmp/w$w.json" &
    pids+=($!)
  done
  wait "${pids[@]}"
  t=$(( $(ms) - t0 ))
  total=0; for w in $(seq "$p"); do total=$(( total + $(jq .sent "$tmp/w$w.json") )); done
  dup=$(jq -r .biz_opaque_callback_data "$tmp/requests.jsonl" | sort | uniq -d | wc -l)
  echo "$p process(es): $total sent in $t ms = $(awk -v n="$total" -v t="$t" 'BEGIN {printf "%d", n / (t / 1000)}') messages/s, $dup sent twice"
done

echo "== two processes, --rate 80 each, $m messages: the limit is shared"
start_standin
clone paced run4
"$bin/queue-send" --db dbname=run4 --rate 80 --worker-id a --log-level warn >/dev/null &
pa=$!
"$bin/queue-send" --db dbname=run4 --rate 80 --worker-id b --log-level warn >/dev/null &
pb=$!
wait "$pa" "$pb"
echo "together the API saw $(api_rate) messages/s"
