#!/usr/bin/env bash
# One fuzzer as a CTest test:
#   run.sh BINARY FUZZDIR NAME WORKDIR SECONDS
# Replays every input in FUZZDIR/regressions/NAME (each once: a fixed bug
# stays fixed), then fuzzes a fresh copy of the seed corpus FUZZDIR/corpus/NAME
# (for sql, with the repository's migrations) in WORKDIR for SECONDS (the repository's corpus is never written to).
# Fails when either found a crash, leak, UBSan report, timeout or
# out-of-memory; what libFuzzer saved is left in WORKDIR/artifacts, its
# output in WORKDIR/log (bench/fuzz.sh reads the figures from there).
set -euo pipefail
bin=$1 dir=$2 name=$3 work=$4 secs=$5

rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp -- "$dir/corpus/$name"/* "$work/corpus/"
# the migration splitter's best seeds are the migrations themselves: taken
# from sql/ as they are now, not kept as copies
[ "$name" != sql ] || cp -- "$dir"/../sql/*.sql "$work/corpus/"
opts=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/artifacts/")
case $name in
event | optout | meta | wa) opts+=(-dict="$dir/dict/json.dict") ;;
sql) opts+=(-dict="$dir/dict/sql.dict") ;;
esac

shopt -s nullglob
regressions=("$dir/regressions/$name"/*)
rrc=0
if [ ${#regressions[@]} -gt 0 ]; then
	echo "fuzz_$name: replaying ${#regressions[@]} regression input(s)"
	"$bin" "${opts[@]}" "${regressions[@]}" || rrc=$?
	[ "$rrc" = 0 ] || echo "fuzz_$name: a regression input fails (exit $rrc)"
fi

echo "fuzz_$name: fuzzing for ${secs} s"
rc=0
"$bin" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
	"$work/corpus" 2>&1 | tee "$work/log" || rc=$?
# Coverage reached by the seeds alone, then at the end.
seed=$(grep -m1 -o 'INITED cov: [0-9]* ft: [0-9]*' "$work/log" || true)
last=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$work/log" | tail -n 1 || true)
execs=$(grep -o 'number_of_executed_units: [0-9]*' "$work/log" | grep -o '[0-9]*$' || true)
echo "fuzz_$name: ${execs:-?} runs; seeds ${seed#INITED }; end ${last}"
[ "$rc" = 0 ] || echo "fuzz_$name: fuzzing found a problem (exit $rc), see $work/artifacts"
[ "$rrc" = 0 ] && exit "$rc"
exit "$rrc"
