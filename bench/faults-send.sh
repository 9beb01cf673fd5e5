#!/usr/bin/env bash
# Fault trials for queue-send, many more times than tests/faults/send.bats
# runs them (the same trials: tests/faults/lib.sh).
#
#   bench/faults-send.sh [TRIALS]        (default 50)
#
# On a private throwaway cluster (tests/pg/cluster.sh) and the Cloud API
# stand-in:
#   kill -9   TRIALS runs of 40 messages (--concurrency 4, --latency-ms 50,
#             --lease-seconds 5) killed after a random delay, then run again
#             until nothing is queued; 4 trials at a time;
#   opt-out   TRIALS/5 runs of one user with 6 messages (--concurrency 1,
#             --latency-ms 700) opted out after the 1st..5th request;
#   restart   TRIALS/5 runs of 30 messages (--concurrency 4, --latency-ms
#             500, --lease-seconds 15) with the server restarted under them,
#             down 0 (pg_ctl restart), 2, 5 or 10 s, stopped while requests
#             are in flight or (every other trial) at a random instant
#             0.3-3 s into the run; one at a time.
# Then a table: trials, messages, sent twice (and how many requests were in
# flight at the faults, which bounds it), lost, sent after opt-out, failed
# trials. Every trial's JSON line is kept in the results file named at the end.
#
# Environment: FAULTS_SEED (first seed; default random), OPTOUTS and
# RESTARTS (trial counts), PARALLEL (kill -9 trials at a time, default 4),
# KEEP=1 (keep the work folder).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-50}
optouts=${OPTOUTS:-$(( trials / 5 > 0 ? trials / 5 : 1 ))}
restarts=${RESTARTS:-$(( trials / 5 > 0 ? trials / 5 : 1 ))}
par=${PARALLEL:-4}
seed0=${FAULTS_SEED:-$(( RANDOM * 100 ))}
export ENG_BIN=$PWD/build/default
if ! [ -x "$ENG_BIN/queue-send" ] || ! [ -x "$ENG_BIN/optout-set" ] ||
   ! [ -x "$ENG_BIN/tests/wa-standin/wa-standin" ]; then
  cmake --preset default -DBUILD_TESTING=ON >/dev/null
  cmake --build --preset default -j "$(nproc)" >/dev/null
fi

work=$(mktemp -d /tmp/faults-send.XXXXXX)
state=$work/pg
cleanup() {
  if [ -n "${FS_LOADED:-}" ]; then fs_cleanup "$work"; fi
  tests/pg/cluster.sh stop "$state" || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tests/pg/cluster.sh start "$state" "$ENG_BIN/migrate" >/dev/null
# shellcheck disable=SC1091
. "$state/env"
# shellcheck source=tests/faults/lib.sh
. tests/faults/lib.sh
FS_LOADED=1
results=$work/results.jsonl
[ -n "${KEEP:-}" ] || results=$(mktemp /tmp/faults-send-results.XXXXXX.jsonl)

t0=$(fs_now_ms)
echo "kill -9: $trials trials, $par at a time, seeds $seed0.." >&2
fs_trials_parallel "$par" fs_trial_kill9 "$work/k9" "$seed0" "$trials" 40 4 50 5 |
  jq -c '. + {kind: "kill9"}' >>"$results"

echo "opt-out: $optouts trials" >&2
optout_one() { fs_trial_optout "$1" $(( ($2 % 5) + 1 )) 6 700; }
fs_trials_parallel "$par" optout_one "$work/oo" 0 "$optouts" | jq -c '. + {kind: "optout"}' >>"$results"

echo "restart: $restarts trials" >&2
downs=(0 2 5 10)
for ((i = 0; i < restarts; i++)); do
  d=${downs[$((i % ${#downs[@]}))]}
  # every other trial stops the server at a random instant (fences included)
  at=
  [ $((i % 2)) -eq 1 ] && at=$(( 300 + (RANDOM % 2700) ))
  fs_trial_restart "$work/rs/$i" "$d" 30 4 500 15 $at 2>>"$work/rs.err" | jq -c '. + {kind: "restart"}' >>"$results" ||
    fs_json kind restart ok false problems "trial $i did not finish" >>"$results"
done
secs=$(( ($(fs_now_ms) - t0) / 1000 ))

echo
echo "command: $0 $trials   (FAULTS_SEED=$seed0 OPTOUTS=$optouts RESTARTS=$restarts PARALLEL=$par)"
echo "queue-send: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes'), $(nproc) cores, ${secs}s"
echo
jq -rs '
  def row(k; name; params):
    [ .[] | select(.kind == k) ] as $t |
    [ name, ($t | length),
      ($t | map(.messages // 0) | add // 0),
      ($t | map(.sent_twice // 0) | add // 0),
      (if k == "kill9" then ($t | map(.in_flight // 0) | add // 0 | tostring)
       elif k == "restart" then "0 (expected)" else "-" end),
      ($t | map(.lost // ((.messages // 0) - (.sent // 0) - (.blocked // 0))) | add // 0),
      (if k == "optout" then ($t | map(.after_optout // 0) | add // 0 | tostring) else "-" end),
      ($t | map(select(.ok != true)) | length),
      params ] | @tsv;
  (["fault", "trials", "messages", "sent twice", "bound (in flight)", "lost", "sent after opt-out", "failed", "parameters"] | @tsv),
  row("kill9"; "kill -9"; "40 msgs, --concurrency 4, --latency-ms 50, --lease-seconds 5, kill after 0-600 ms"),
  row("optout"; "opt-out"; "1 user x 6 msgs, --concurrency 1, --latency-ms 700, opt-out after request 1-5"),
  row("restart"; "db restart"; "30 msgs, --concurrency 4, --latency-ms 500, --lease-seconds 15, down 0/2/5/10 s, stop after 4 requests or at 0.3-3 s")
' "$results" | column -t -s $'\t'
echo
failed=$(jq -s 'map(select(.ok != true)) | length' "$results")
if [ "$failed" -gt 0 ]; then
  echo "failed trials:"
  jq -c 'select(.ok != true) | {kind, seed, down_s, after, problems}' "$results"
fi
echo "results: $results"
[ "$failed" -eq 0 ]
