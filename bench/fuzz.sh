#!/usr/bin/env bash
# Run every fuzzer for SECONDS (default 600, ten minutes) one after the
# other, each on a fresh copy of its seed corpus after replaying its
# regression inputs (fuzz/run.sh, as the CTest tests do), and print a
# Markdown table for docs/reliability.md: executions, executions per
# second, coverage (libFuzzer's cov: edges and ft: features) reached by
# the seeds alone and at the end, the corpus grown, and what was found
# (libFuzzer stops at the first crash: its input is in the work folder).
#
#   bench/fuzz.sh [SECONDS]
#
# Work folders (corpus, artifacts, log): build/fuzz/bench/NAME. Takes
# SECONDS x 11 plus the build; one fuzzer at a time, so that exec/s is
# the machine's for one core.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
case $secs in '' | *[!0-9]*) echo "usage: bench/fuzz.sh [SECONDS]" >&2; exit 64 ;; esac

scripts/deps.sh
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$(nproc)" >/dev/null

names=$(sed -n 's/^set(ENG_FUZZERS \(.*\))$/\1/p' fuzz/CMakeLists.txt)
out=build/fuzz/bench
mkdir -p "$out"
rows=()
for n in $names; do
	work=$out/$n
	echo "fuzz_$n: ${secs} s ..." >&2
	rc=0
	fuzz/run.sh "build/fuzz/fuzz/fuzz_$n" fuzz "$n" "$work" "$secs" >"$out/$n.out" 2>&1 || rc=$?
	log=$work/log
	figure() { grep -o "stat::$1: *[0-9]*" "$log" | grep -o '[0-9]*$' || echo '?'; }
	seed=$(grep -m1 'INITED' "$log" || true)
	last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1 || true)
	field() { sed -n "s/.* $1: \([0-9]*\).*/\1/p" <<<"$2"; }
	corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
	seeds=$(find "fuzz/corpus/$n" -type f | wc -l)
	[ "$n" != sql ] || seeds=$((seeds + $(find sql -name '*.sql' | wc -l)))
	found=$(find "$work/artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' \
		-o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
	what=$found
	[ "$found" = 0 ] || what="$found ($(find "$work/artifacts" -type f | sed 's|.*/||; s|-.*||' | sort -u | paste -sd, -))"
	grep -q 'a regression input fails' "$out/$n.out" && what="$what; regression fails"
	rows+=("| fuzz_$n | $(figure number_of_executed_units) | $(figure average_exec_per_sec) \
| $(field cov "$seed") → $(field cov "$last") | $(field ft "$seed") → $(field ft "$last") \
| $seeds → ${corp:-?} | $what |")
	[ "$rc" = 0 ] || echo "fuzz_$n: exit $rc, see $out/$n.out" >&2
done

echo
echo "Each fuzzer ${secs} s on one core ($(nproc) cores, $(clang --version | head -n 1)), $(date -u +%Y-%m-%d):"
echo
echo "| fuzzer | executions | exec/s | cov: seeds → end | ft: seeds → end | corpus: seeds → end | crashes |"
echo "|---|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
