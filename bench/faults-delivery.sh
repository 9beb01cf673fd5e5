#!/usr/bin/env bash
# Fault trials for delivery, many more times than tests/faults/delivery.bats
# runs them (the same trials: the fd_ helpers of tests/faults/lib.sh):
# outbox-relay, engagement-webhook and queue-send against kill -9, database
# restarts, cut connections and a misbehaving receiver or API.
#
#   bench/faults-delivery.sh [TRIALS]        (default 50 per row)
#
# On a private throwaway cluster (tests/pg/cluster.sh), with PgBouncer when
# installed. One row per program x fault (the sink and mode of outbox-relay
# in the fault's name); each trial prints one JSON line (kept in the results
# file named at the end); then a Markdown table for docs/reliability.md:
# trials, events or deliveries or messages, lost, duplicated (documented
# at-least-once), invariant violations, failed trials, median and max trial
# duration.
#
# Environment: FAULTS_SEED (first seed; default random), PARALLEL (trials at
# a time, default 3; restarts always run alone), ROWS (an extended regular
# expression: only the rows whose name matches, e.g. 'relay.*kill'),
# KEEP=1 (keep the work folder), ENG_BIN (the build; default build/default).
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${1:-50}
par=${PARALLEL:-3}
seed0=${FAULTS_SEED:-$((RANDOM * 100))}
rows_re=${ROWS:-.}
build=${ENG_BIN:-$PWD/build/default}
if ! [ -x "$build/outbox-relay" ] || ! [ -x "$build/engagement-webhook" ] ||
	! [ -x "$build/queue-send" ] || ! [ -x "$build/tests/wa-standin/wa-standin" ]; then
	cmake --preset default -DBUILD_TESTING=ON >/dev/null
	cmake --build --preset default -j "$(nproc)" >/dev/null
	build=$PWD/build/default
fi

work=$(mktemp -d /tmp/faults-delivery.XXXXXX)
state=$work/pg
cleanup() {
	if [ -n "${FD_LOADED:-}" ]; then fd_cleanup "$work"; fi
	tests/pg/cluster.sh stop "$state" >/dev/null 2>&1 || true
	[ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tests/pg/cluster.sh start "$state" "$build/migrate" >/dev/null
# shellcheck disable=SC1091
. "$state/env"
# every program runs as its own login (DESIGN.md 5), as in the tests
export ENG_BIN=${ENG_AS_ROLES:?the cluster has no per-program logins}
# shellcheck source=tests/faults/lib.sh
. tests/faults/lib.sh
FD_LOADED=1
results=$work/results.jsonl
[ -n "${KEEP:-}" ] || results=$(mktemp /tmp/faults-delivery-results.XXXXXX.jsonl)

# row NAME PARALLEL FUNC ARGS...: TRIALS trials of FUNC, tagged with the row
n=0
row() {
	local name=$1 p=$2 fn=$3
	shift 3
	[[ "$name" =~ $rows_re ]] || return 0
	n=$((n + 1))
	echo "$(date +%T) $name: $trials trials" >&2
	fs_trials_parallel "$p" "$fn" "$work/r$n" $((seed0 + n * 1000)) "$trials" "$@" |
		jq -c --arg row "$name" '. + {row: $row}' >>"$results"
}

t0=$(fs_now_ms)
bouncer=${ENG_PGBOUNCER_PORT:-}
for sm in "webhook oneshot" "stdout oneshot" "webhook follow" "stdout follow"; do
	read -r sink mode <<<"$sm"
	label="--$sink"; [ "$mode" = follow ] && label="$label --follow"
	row "outbox-relay|kill -9 ($label)" "$par" fd_trial_relay "$sink" "$mode" kill9
	row "outbox-relay|db restart ($label)" 1 fd_trial_relay "$sink" "$mode" restart
	row "outbox-relay|sessions terminated ($label)" "$par" fd_trial_relay "$sink" "$mode" cut
	if [ "$mode" = oneshot ] && [ -n "$bouncer" ]; then
		row "outbox-relay|server sessions terminated via PgBouncer ($label)" "$par" \
			fd_trial_relay "$sink" "$mode" bouncer-cut
	fi
done
for f in recv-5xx recv-4xx recv-slow recv-junk recv-garbage recv-drop recv-mix; do
	case $f in
	recv-5xx) d="receiver 5xx/429/408 (30%)" ;;
	recv-4xx) d="receiver 400 after 1-3 batches" ;;
	recv-slow) d="receiver slower than --timeout (25%)" ;;
	recv-junk) d="receiver 200/202 with a non-JSON body" ;;
	recv-garbage) d="receiver answers non-HTTP bytes (30%)" ;;
	recv-drop) d="receiver drops (25%) or never answers (5%)" ;;
	recv-mix) d="receiver: all of those" ;;
	esac
	row "outbox-relay|$d (--webhook)" "$par" fd_trial_relay webhook oneshot "$f"
done
row "outbox-relay|receiver: all of those (--webhook --follow)" "$par" fd_trial_relay webhook follow recv-mix
row "engagement-webhook|kill -9 after 200s, restarted" "$par" fd_trial_webhook kill9
row "engagement-webhook|kill -9 after 200s, --drain, restarted" "$par" fd_trial_webhook kill9-drain
row "engagement-webhook|db restart mid-stream (down 0-3 s)" 1 fd_trial_webhook restart
row "engagement-webhook|sessions terminated mid-stream" "$par" fd_trial_webhook cut
row "engagement-webhook|server sessions cut through PgBouncer" "$par" fd_trial_webhook bouncer-cut
row "engagement-webhook|SIGTERM while the db is down (exit 0 expected)" 1 fd_trial_webhook term-db-down
row "queue-send|API drops connections (909)" "$par" fd_trial_send drop
row "queue-send|API stalls past --timeout (908)" "$par" fd_trial_send stall
row "queue-send|kill -9 among 909/908/906/920" "$par" fd_trial_send mix-kill9
secs=$((($(fs_now_ms) - t0) / 1000))

echo
echo "command: $0 $trials   (FAULTS_SEED=$seed0 PARALLEL=$par${ROWS:+ ROWS='$ROWS'})"
echo "build: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo '+changes'), $(nproc) cores, ${secs}s"
echo
jq -rs '
  def median: sort | if length == 0 then 0 else .[(length / 2 | floor)] end;
  def units: if .program == "outbox-relay" then (.events // 0)
             elif .program == "engagement-webhook" then (.deliveries // 0)
             else (.messages // 0) end;
  (["program", "fault", "trials", "events / deliveries / messages", "lost",
    "duplicated (documented at-least-once)", "invariant violations", "failed trials",
    "median s", "max s"] | "| " + join(" | ") + " |"),
  ("|" + ([range(10)] | map("---") | join("|")) + "|"),
  (group_by(.row) | sort_by(.[0].row | split("|") | [.[0], .[1]]) | .[]
   | (.[0].row | split("|")) as $r
   | ["`" + $r[0] + "`", $r[1], length, (map(units) | add),
      (map(.lost // 0) | add), (map(.duplicated // 0) | add),
      (map(.violations // 1) | add), (map(select(.ok != true)) | length),
      ((map(.duration_ms // 0) | median) / 1000 | . * 10 | round / 10),
      ((map(.duration_ms // 0) | max) / 1000 | . * 10 | round / 10)]
   | map(tostring) | "| " + join(" | ") + " |")
' "$results"
echo
echo "Duplicated: outbox-relay, events accepted by the sink twice because a kill"
echo "or a lost database hit between the acceptance and the mark (at most the"
echo "batch in hand); engagement-webhook, none may be applied twice (0);"
echo "queue-send, messages the API took more than once: a request in flight at"
echo "the kill, or one that timed out after the API had taken it (908)."
echo "queue-send requests re-sent by libcurl itself on a keep-alive connection"
echo "closed without an answer (909; not in queue-send's own count): $(jq -s 'map(.curl_resends // 0 | numbers) | add // 0' "$results")."
echo
failed=$(jq -s 'map(select(.ok != true)) | length' "$results")
if [ "$failed" -gt 0 ]; then
	echo "failed trials:"
	jq -c 'select(.ok != true) | {row, seed, problems}' "$results"
fi
echo "results: $results"
[ "$failed" -eq 0 ]
