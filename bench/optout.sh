#!/usr/bin/env bash
# Benchmark the preference sync.
#
#   bench/optout.sh [RUNS]    (default 3)
#
# 1. optout-set invocations per second, one process per change (as a web
#    backend calls it): 500 changes in a row, and with 4 callers at once;
# 2. optout-set --batch: 20,000 changes (10,000 users, twice each);
# 3. the time from an optout-set commit to its event leaving
#    `outbox-relay --follow`: p50/p99 over 1,000 changes (the relay measures
#    each event from its created_at, the committing transaction's start).
# Medians of RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
bin=$PWD/build/default
[ -x "$bin/optout-set" ] || { cmake --preset default >/dev/null && cmake --build --preset default -j "$(nproc)" >/dev/null; }
state=$PWD/build/bench-pg
tmp=$(mktemp -d)
tests/pg/cluster.sh start "$state" "$bin/migrate" >/dev/null
trap 'tests/pg/cluster.sh stop "$state"; rm -rf "$tmp"' EXIT
# shellcheck disable=SC1091
. "$state/env"
export DATABASE_URL="dbname=bench"
createdb -T engagement_tmpl bench
psql -X -q -d bench -c "
  INSERT INTO engagement.users (id, phone_e164)
  SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, '+5511' || lpad(i::text, 9, '0')
  FROM generate_series(1, 10000) i"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }

echo "== optout-set, one process per change"
seq_rates=() par_rates=()
for r in $(seq "$runs"); do
  t0=$(ms)
  for i in $(seq 1 500); do
    v=$([ $((i % 2)) -eq 0 ] && echo --opt-out || echo --opt-in)
    "$bin/optout-set" --user "$(uid $(( (i * 7) % 10000 + 1 )))" $v --source web --log-level warn >/dev/null
  done
  t=$(( $(ms) - t0 ))
  seq_rates+=("$(awk -v t="$t" 'BEGIN {printf "%d", 500 / (t / 1000)}')")
  t0=$(ms)
  for w in 1 2 3 4; do
    (for i in $(seq "$w" 4 500); do
       "$bin/optout-set" --user "$(uid $(( (i * 13) % 10000 + 1 )))" --opt-out --source api --log-level warn >/dev/null
     done) &
  done
  wait
  t=$(( $(ms) - t0 ))
  par_rates+=("$(awk -v t="$t" 'BEGIN {printf "%d", 500 / (t / 1000)}')")
  echo "run $r: ${seq_rates[-1]} invocations/s in a row, ${par_rates[-1]}/s with 4 callers"
done
echo "invocations median: $(median "${seq_rates[@]}")/s in a row, $(median "${par_rates[@]}")/s with 4 callers"
if [ -n "${ENG_PGBOUNCER_PORT:-}" ] && command -v hyperfine >/dev/null; then
  echo "one invocation, direct and through PgBouncer (hyperfine, 200 runs each):"
  hyperfine -N --warmup 10 --runs 200 \
    "$bin/optout-set --user $(uid 1) --opt-out --source web --log-level warn" \
    "$bin/optout-set --db 'host=127.0.0.1 port=$ENG_PGBOUNCER_PORT dbname=bench' --user $(uid 1) --opt-out --source web --log-level warn" \
    2>&1 | grep -E 'Time \(mean'
fi

echo "== optout-set --batch, 20000 changes"
for i in $(seq 1 10000); do
  printf '{"user_id":"%s","opt_out":true,"source":"api"}\n' "$(uid "$i")"
done >"$tmp/a"
for i in $(seq 1 10000); do
  printf '{"phone":"+5511%09d","opt_out":false,"source":"whatsapp"}\n' "$i"
done >>"$tmp/a"
batch=()
for r in $(seq "$runs"); do
  t0=$(ms)
  "$bin/optout-set" --batch "$tmp/a" --log-level warn >"$tmp/out.json"
  t=$(( $(ms) - t0 ))
  batch+=("$(awk -v t="$t" 'BEGIN {printf "%d", 20000 / (t / 1000)}')")
  echo "run $r: $t ms = ${batch[-1]} changes/s $(jq -c '{applied, unchanged, stale, failed}' "$tmp/out.json")"
done
echo "--batch median: $(median "${batch[@]}") changes/s"

echo "== outbox-relay --follow, 1000 changes made one by one"
p50s=() p99s=()
for r in $(seq "$runs"); do
  "$bin/outbox-relay" --stdout --log-level warn >/dev/null 2>&1 || true  # drain
  "$bin/outbox-relay" --follow --stdout --log-level warn >"$tmp/events" 2>"$tmp/relay.log" &
  relay=$!
  sleep 0.5
  for i in $(seq 1 1000); do
    v=$([ $(( (i + r) % 2 )) -eq 0 ] && echo --opt-out || echo --opt-in)
    "$bin/optout-set" --user "$(uid $(( (i * 3) % 10000 + 1 )))" $v --source web --log-level warn >/dev/null
  done
  sleep 1
  kill -TERM "$relay"
  wait "$relay" || true
  summary=$(tail -n 1 "$tmp/events")
  p50s+=("$(jq .lag_ms.p50 <<<"$summary")")
  p99s+=("$(jq .lag_ms.p99 <<<"$summary")")
  echo "run $r: $(jq -c '{published, lag_ms}' <<<"$summary")"
done
echo "follow latency median: p50 $(median "${p50s[@]}") ms, p99 $(median "${p99s[@]}") ms (target p99 < 100 ms)"
