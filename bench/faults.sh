#!/usr/bin/env bash
# Every fault trial, many more times than the suite runs them: the figures
# of docs/reliability.md.
#
#   bench/faults.sh [TRIALS]        (default 50)
#
# Runs, one after the other (each on its own throwaway cluster):
#   bench/faults-send.sh TRIALS      queue-send: kill -9, opt-out during a
#                                    run, database restarts
#   bench/faults-jobs.sh TRIALS      engagement-daily, engagement-weekly,
#                                    engagement-event --batch, optout-set
#                                    --batch, migrate up: kill -9, restart,
#                                    PgBouncer cuts, compared with an
#                                    uninterrupted run
#   bench/faults-delivery.sh TRIALS  outbox-relay, engagement-webhook,
#                                    queue-send against a misbehaving API
# and prints their tables (program x fault -> trials, lost, duplicated,
# invariant violations). Exits 1 if any trial failed. The environment of
# each script applies (FAULTS_SEED, PARALLEL, ...); ONLY=send|jobs|delivery
# runs one of them.
set -uo pipefail
cd "$(dirname "$0")/.."
trials=${1:-50}
rc=0
for part in send jobs delivery; do
	[ -z "${ONLY:-}" ] || [ "$ONLY" = "$part" ] || continue
	echo "## bench/faults-$part.sh $trials"
	bash "bench/faults-$part.sh" "$trials" || rc=1
	echo
done
exit "$rc"
