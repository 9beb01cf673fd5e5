#!/usr/bin/env bash
# The layers are enforced by the compiler: with exactly the include folders
# a library of lib/ is built with (its own and those of the libraries it
# links), every header of the folders it may use is found and every header
# of any other folder is not, so an include that goes up, or across into
# another program's core, fails to compile.
#
#   check.sh CC LIBDIR "INCLUDE_DIRS;..." FOLDER...   (the folders it may use)
set -euo pipefail
cc=$1 libdir=$2 dirs=$3
shift 3
declare -A may
for f in "$@"; do may[$f]=1; done
flags=()
IFS=';' read -ra ds <<<"$dirs"
for d in "${ds[@]}"; do [ -n "$d" ] && flags+=("-I$d"); done
bad=0 seen=0
for h in "$libdir"/*/*.h; do
	folder=$(basename "$(dirname "$h")")
	name=$(basename "$h")
	seen=$((seen + 1))
	if printf '#include "%s"\n' "$name" | "$cc" -E -x c -o /dev/null "${flags[@]}" - 2>/dev/null; then
		found=1
	else
		found=0
	fi
	if [ -n "${may[$folder]:-}" ] && [ $found = 0 ]; then
		echo "layers: $name ($folder/) should be usable here but does not compile" >&2
		bad=1
	elif [ -z "${may[$folder]:-}" ] && [ $found = 1 ]; then
		echo "layers: $name ($folder/) is reachable from a layer that must not use it" >&2
		bad=1
	fi
done
[ $seen -gt 20 ] || { echo "layers: only $seen headers found under $libdir" >&2; exit 1; }
echo "layers: $seen headers checked, may use: $*"
exit $bad
