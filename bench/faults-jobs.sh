#!/usr/bin/env bash
# Fault trials for the jobs, the batch tools and migrate, many more times
# than tests/faults/jobs.bats runs them (the same trials: the fj_ section of
# tests/faults/lib.sh).
#
#   bench/faults-jobs.sh [KILLS]        (default 50)
#
# On a private throwaway cluster (tests/pg/cluster.sh, with PgBouncer), every
# program running as its own login, for each scenario (engagement-daily,
# engagement-weekly, engagement-event --batch with ids and without,
# optout-set --batch, migrate up from empty and from version 8):
#   kill -9   KILLS trials: SIGKILL after a random delay within the
#             uninterrupted run's duration; PARALLEL at a time;
#   restart   RESTARTS trials (default KILLS/2): pg_ctl restart -m fast
#             after a random delay; one at a time;
#   bouncer   BOUNCERS trials (default KILLS/2; not migrate): the program
#             works through PgBouncer (transaction pooling) and its server
#             connections are terminated after a random delay.
# After each fault the same command runs again (as cron would) and the
# database is compared with an uninterrupted run of the command on a clone
# of the same starting database, and checked. Then a Markdown table:
# program x fault -> trials, how many hit the program mid-run, rows lost,
# rows duplicated, invariant violations, the next run's duration, the
# longest wait for a killed client's server process to go. Every trial's
# JSON line is kept in the results file named at the end.
#
# Environment: FAULTS_SEED (first seed; default random), RESTARTS, BOUNCERS,
# PARALLEL (default 2), SCENARIOS (default all: daily weekly event_ids
# event_noid optout migrate_empty migrate_mid), FJ_USERS (default 50000),
# FJ_BATCH_USERS (default 20000), FJ_OPTOUT_USERS (default 20000),
# FJ_MID_MESSAGES (default 200000), BUILD (default build/default),
# KEEP=1 (keep the work folder). One trial again, e.g. the daily job's kill
# with seed 4200: SCENARIOS=daily FAULTS_SEED=4200 RESTARTS=0 BOUNCERS=0
# bench/faults-jobs.sh 1 (the same sizes as the run that found it).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-50}
restarts=${RESTARTS:-$(( kills / 2 > 0 ? kills / 2 : 1 ))}
bouncers=${BOUNCERS:-$(( kills / 2 > 0 ? kills / 2 : 1 ))}
par=${PARALLEL:-2}
seed0=${FAULTS_SEED:-$(( RANDOM * 100 ))}
export FJ_USERS=${FJ_USERS:-50000}
export FJ_BATCH_USERS=${FJ_BATCH_USERS:-20000} FJ_OPTOUT_USERS=${FJ_OPTOUT_USERS:-20000}
export FJ_MID_MESSAGES=${FJ_MID_MESSAGES:-200000}
build=${BUILD:-$PWD/build/default}
case $build in /*) ;; *) build=$PWD/$build ;; esac
progs="migrate engagement-daily engagement-weekly engagement-event optout-set"
for p in $progs; do
  if ! [ -x "$build/$p" ]; then
    cmake --preset default -B "$build" >/dev/null
    cmake --build "$build" -j "$(nproc)" >/dev/null
    break
  fi
done

work=$(mktemp -d /tmp/faults-jobs.XXXXXX)
state=$work/pg
cleanup() {
  if [ -n "${FJ_LOADED:-}" ]; then fj_cleanup "$work"; fi
  tests/pg/cluster.sh stop "$state" || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tests/pg/cluster.sh start "$state" "$build/migrate" >/dev/null
# shellcheck disable=SC1091
. "$state/env"
[ -n "${ENG_PGBOUNCER_PORT:-}" ] || { echo "no PgBouncer (apt-get install pgbouncer): the bouncer trials need it" >&2; exit 1; }
# every program as its own login (migrate as the owner)
export ENG_BIN=$ENG_AS_ROLES
export FJ_DIR=$work/fj
# shellcheck source=tests/faults/lib.sh
. tests/faults/lib.sh
FJ_LOADED=1
results=$work/results.jsonl
[ -n "${KEEP:-}" ] || results=$(mktemp /tmp/faults-jobs-results.XXXXXX.jsonl)
scenarios=${SCENARIOS:-$FJ_SCENARIOS}

t0=$(fs_now_ms)
for sc in $scenarios; do
  echo "$sc: preparing (base, reference run)" >&2
  fj_ref "$sc"
  echo "$sc: kill -9, $kills trials, $par at a time, seeds $seed0.." >&2
  fj_trials "$par" "$work/$sc/k9" "$seed0" "$kills" "$sc" kill9 >>"$results"
  echo "$sc: restart, $restarts trials, seeds $seed0.." >&2
  fj_trials 1 "$work/$sc/rs" "$seed0" "$restarts" "$sc" restart >>"$results"
  if [[ $sc != migrate_* ]]; then
    echo "$sc: PgBouncer cuts, $bouncers trials, seeds $seed0.." >&2
    fj_trials "$par" "$work/$sc/pb" "$seed0" "$bouncers" "$sc" bouncer >>"$results"
  fi
  fj_drop_trial_dbs
done
secs=$(( ($(fs_now_ms) - t0) / 1000 ))

echo
echo "command: $0 $kills   (FAULTS_SEED=$seed0 RESTARTS=$restarts BOUNCERS=$bouncers PARALLEL=$par SCENARIOS=\"$scenarios\" FJ_USERS=$FJ_USERS FJ_BATCH_USERS=$FJ_BATCH_USERS FJ_OPTOUT_USERS=$FJ_OPTOUT_USERS FJ_MID_MESSAGES=$FJ_MID_MESSAGES)"
echo "build: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes'), $(nproc) cores, ${secs}s"
echo
echo "Populations: $FJ_USERS users (bench/gen_users.sql at $FJ_NOW; daily --batch-size 300, weekly --batch-size 500);"
echo "batches: $(wc -l <"$FJ_DIR/files/events-ids.jsonl" 2>/dev/null || echo '-') event lines with ids, $(wc -l <"$FJ_DIR/files/events-noid.jsonl" 2>/dev/null || echo '-') without, $(wc -l <"$FJ_DIR/files/optout.jsonl" 2>/dev/null || echo '-') opt-out lines; migrate from 8 over $FJ_MID_MESSAGES queue rows."
echo
fj_table "$results"
echo
echo "hit mid-run: the fault found the program at work (part of its work committed, an index half built, or its server process busy)."
echo "lost / duplicated: rows of the uninterrupted run missing / rows it does not have (transitions, messages, outbox events, activity rows, inbound event ids, audit rows), after the next run."
echo
failed=$(jq -s 'map(select(.ok != true)) | length' "$results")
if [ "$failed" -gt 0 ]; then
  echo "failed trials (reproduce with FAULTS_SEED=<seed> and the scenario):"
  jq -c 'select(.ok != true) | {scenario, fault, seed, delay_ms, rc, rerun_rc, problems}' "$results"
fi
echo "results: $results"
[ "$failed" -eq 0 ]
