#!/usr/bin/env bash
# Benchmark engagement-daily, engagement-weekly and engagement-event --batch
# on a generated population, against hand-written set-based SQL doing the
# same work (reference_daily.sql, reference_weekly.sql). Each run uses a
# fresh copy of the same database; ours and the reference alternate.
#
#   bench/jobs.sh [N_USERS] [RUNS]      (defaults: 1000000 and 3)
#
# Prints each run and the medians. Needs the default build (built if not).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
runs=${2:-3}
now=2026-11-22T06:00:00Z
bin=$PWD/build/default
[ -x "$bin/engagement-daily" ] || { cmake --preset default >/dev/null && cmake --build --preset default -j "$(nproc)" >/dev/null; }
state=$PWD/build/bench-pg
tests/pg/cluster.sh start "$state" "$bin/migrate" >/dev/null
trap 'tests/pg/cluster.sh stop "$state"' EXIT
# shellcheck disable=SC1091
. "$state/env"

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
clone() { psql -X -q -d postgres -c "CREATE DATABASE $2 TEMPLATE $1 STRATEGY FILE_COPY"; }
drop() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $1"; }
outcome() {
  psql -X -At -d "$1" -c "SELECT (SELECT count(*) FILTER (WHERE state = 'goodbye_sent') || '/' || count(*) FILTER (WHERE state = 'dormant') FROM engagement.engagement_states)
    || ' msgs=' || (SELECT count(*) FROM engagement.message_queue)
    || ' transitions=' || (SELECT count(*) FROM engagement.state_transitions)
    || ' outbox=' || (SELECT count(*) FROM engagement.outbox_events)"
}
generate() {
  local db=$1 users=$2 t0
  createdb -T engagement_tmpl "$db"
  t0=$(ms)
  psql -X -q -d "$db" -v n="$users" -v now="$now" -f bench/gen_users.sql >/dev/null
  psql -X -q -d postgres -c "CHECKPOINT"
  echo "generated $users users in $(( $(ms) - t0 )) ms" >&2
}

generate src "$n"

echo "== engagement-daily, $n users (10% due goodbyes, 1% expired goodbyes, 1% due reminders, 5% opted out)"
ours=() ref=()
for r in $(seq "$runs"); do
  clone src d_ours; t0=$(ms)
  "$bin/engagement-daily" --db dbname=d_ours --now "$now" --log-level warn >/tmp/bench-daily.json
  t=$(( $(ms) - t0 )); ours+=("$t"); o1=$(outcome d_ours); drop d_ours
  clone src d_ref; t0=$(ms)
  psql -X -q -d d_ref -v now="$now" -v run="$(cat /proc/sys/kernel/random/uuid)" -f bench/reference_daily.sql
  t2=$(( $(ms) - t0 )); ref+=("$t2"); o2=$(outcome d_ref); drop d_ref
  echo "run $r: ours ${t} ms, reference SQL ${t2} ms   [ours: $o1] [ref: $o2]"
  [ "$o1" = "$o2" ] || echo "  WARNING: the two did different work"
done
mo=$(median "${ours[@]}"); mr=$(median "${ref[@]}")
echo "daily median: ours $mo ms, reference $mr ms, ratio $(awk -v a="$mo" -v b="$mr" 'BEGIN {printf "%.2f", a / b}')"
jq -c '{processed, succeeded, skipped, failed, messages_queued, checks: (.checks | map_values(.duration_ms))}' /tmp/bench-daily.json

echo "== engagement-weekly, $n users (30% active in the last 7 days)"
ours=() ref=()
for r in $(seq "$runs"); do
  clone src w_ours; t0=$(ms)
  "$bin/engagement-weekly" --db dbname=w_ours --now "$now" --log-level warn >/tmp/bench-weekly.json
  t=$(( $(ms) - t0 )); ours+=("$t"); o1=$(psql -X -At -d w_ours -c "SELECT count(*) FROM engagement.message_queue"); drop w_ours
  clone src w_ref; t0=$(ms)
  psql -X -q -d w_ref -v now="$now" -v run="$(cat /proc/sys/kernel/random/uuid)" -v week="$(jq -r .week /tmp/bench-weekly.json)" -f bench/reference_weekly.sql
  t2=$(( $(ms) - t0 )); ref+=("$t2"); o2=$(psql -X -At -d w_ref -c "SELECT count(*) FROM engagement.message_queue"); drop w_ref
  echo "run $r: ours ${t} ms, reference SQL ${t2} ms   [messages ours $o1, ref $o2]"
done
mo=$(median "${ours[@]}"); mr=$(median "${ref[@]}")
echo "weekly median: ours $mo ms, reference $mr ms, ratio $(awk -v a="$mo" -v b="$mr" 'BEGIN {printf "%.2f", a / b}')"

echo "== engagement-event --batch, 20000 events (18000 activities, 2000 goodbye replies)"
events=/tmp/bench-events.jsonl
{
  # activities for 18000 distinct users in every state; goodbye replies
  # for 2000 users whose goodbye is still open (i mod 100 = 12)
  for k in $(seq 1 18000); do
    printf '{"user_id":"00000000-0000-4000-8000-%012d","activity":true,"at":"2026-11-22T05:00:00Z"}\n' $(( (k * 7919) % n + 1 ))
  done
  for k in $(seq 0 1999); do
    printf '{"phone":"+5511%09d","goodbye_reply":%d,"at":"2026-11-22T05:30:00Z"}\n' $(( (k * 100 + 12) % n )) $(( 1 + k % 3 ))
  done
} >"$events"
rates=()
for r in $(seq "$runs"); do
  clone src e_ours; t0=$(ms)
  "$bin/engagement-event" --db dbname=e_ours --now "$now" --log-level warn --batch "$events" >/tmp/bench-events.json 2>/tmp/bench-events.log || true
  t=$(( $(ms) - t0 )); drop e_ours
  rate=$(awk -v n="$(wc -l <"$events")" -v t="$t" 'BEGIN {printf "%d", n / (t / 1000)}')
  rates+=("$rate")
  echo "run $r: $t ms, $rate events/s $(jq -c '{applied, failed, transitions, activities}' /tmp/bench-events.json)"
done
echo "event --batch median: $(median "${rates[@]}") events/s"

if [ "$n" -ne 10000 ]; then
  echo "== engagement-daily, 10000 users"
  generate small 10000
  small=()
  for r in $(seq "$runs"); do
    clone small s_ours; t0=$(ms)
    "$bin/engagement-daily" --db dbname=s_ours --now "$now" --log-level warn >/dev/null
    t=$(( $(ms) - t0 )); small+=("$t"); drop s_ours
    echo "run $r: $t ms"
  done
  echo "daily 10000 users median: $(median "${small[@]}") ms"
fi
