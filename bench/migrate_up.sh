#!/usr/bin/env bash
# How long `migrate up` takes on an empty database: N runs (default 5), each
# on a fresh database, on a throwaway cluster. Prints each run and the median
# (wall clock of the whole process, and the summary's duration_ms).
#   bench/migrate_up.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-5}
bin=build/default/migrate
[ -x "$bin" ] || { cmake --preset default >/dev/null && cmake --build --preset default -j "$(nproc)" >/dev/null; }
state=$PWD/build/bench-pg
tests/pg/cluster.sh start "$state" >/dev/null
trap 'tests/pg/cluster.sh stop "$state"' EXIT
# shellcheck disable=SC1091
. "$state/env"
walls=() inner=()
for i in $(seq "$n"); do
  createdb "bench_migrate_$i"
  t0=$(date +%s%N)
  ms=$("$bin" --db "dbname=bench_migrate_$i" --log-level warn up | jq .duration_ms)
  t1=$(date +%s%N)
  wall=$(( (t1 - t0) / 1000000 ))
  walls+=("$wall") inner+=("$ms")
  printf 'run %d: wall %d ms, summary duration_ms %d\n' "$i" "$wall" "$ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "migrate up on an empty database, median of $n: wall $(median "${walls[@]}") ms, duration_ms $(median "${inner[@]}") ms"
