#!/usr/bin/env bash
# The Debian package, as an operator gets it: build it with cpack, install
# it with apt (dpkg -i, dependencies resolved), run every program's
# --version from /usr/bin, check the man pages, units and documentation it
# installed, migrate a throwaway database with the installed migrate, then
# remove it. Needs root (it installs into /usr); CI runs it (.ci/run).
#
#   tests/package/run.sh [BUILD_DIR]     default build/package
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
build=${1:-build/package}
if [ "$(id -u)" != 0 ]; then
  echo "package test: needs root (it installs the package into /usr)" >&2
  exit 1
fi

programs="migrate engagement-daily engagement-weekly engagement-event queue-send
  optout-set outbox-relay engagement-webhook engagement-status engagement-ctl"

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DBUILD_TESTING=OFF -DCMAKE_COMPILE_WARNING_AS_ERROR=ON >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null
rm -f "$build"/engagement_*.deb
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/engagement_*.deb)
echo "package: $(basename "$deb")"
dpkg-deb --info "$deb" | sed -n 's/^ *\(Package\|Version\|Architecture\|Depends\): /  \1: /p'

cleanup() {
  dpkg -r engagement >/dev/null 2>&1 || true
  [ -n "${state:-}" ] && "$src/tests/pg/cluster.sh" stop "$state" >/dev/null 2>&1 || true
  rm -rf "${tmp:-}"
}
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$PWD/$deb" >/dev/null
fail() { echo "package test: $*" >&2; exit 1; }

# every program, from /usr/bin
for p in $programs; do
  out=$("/usr/bin/$p" --version) || fail "/usr/bin/$p --version failed"
  [[ "$out" =~ ^$p\ [0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "/usr/bin/$p --version said: $out"
  [ -f "/usr/share/man/man1/$p.1.gz" ] || [ -f "/usr/share/man/man1/$p.1" ] ||
    fail "no man page for $p"
done
[ -f /usr/share/man/man7/engagement.7.gz ] || [ -f /usr/share/man/man7/engagement.7 ] ||
  fail "no engagement(7)"
echo "programs: $(echo $programs | wc -w) ran --version from /usr/bin, man pages present"

# documentation and contrib files
for f in README.md crontab.example runbook.md contrib/prometheus/engagement.rules.yml \
         contrib/nginx/engagement-webhook.conf; do
  [ -f "/usr/share/doc/engagement/$f" ] || fail "missing /usr/share/doc/engagement/$f"
done

# systemd units and timers, with the installed path, valid for systemd
units=$(dpkg -L engagement | grep -E '^(/usr)?/lib/systemd/system/.*\.(service|timer)$' | sort || true)
[ "$(wc -l <<<"$units")" -ge 9 ] || fail "expected the units and timers, got: $units"
! grep -l /usr/local/bin $units || fail "a unit still names /usr/local/bin"
if command -v systemd-analyze >/dev/null; then
  # verify checks syntax, directives and that ExecStart exists; without a
  # running systemd (a container) it cannot load dependencies: ignore those
  out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no $units 2>&1 |
        grep -v -e 'Failed to .* bus' -e 'not found' -e 'No such file' || true)
  [ -z "$out" ] || fail "systemd-analyze verify: $out"
  echo "units: $(wc -l <<<"$units") verified with systemd-analyze"
fi

# migrate up with the installed migrate, on a throwaway cluster
tmp=$(mktemp -d)
state="$tmp/pg"
"$src/tests/pg/cluster.sh" start "$state" >/dev/null
# shellcheck disable=SC1091
. "$state/env"
createdb pkg
out=$(/usr/bin/migrate --db dbname=pkg --log-level warn up)
[ "$(jq -r .status <<<"$out")" = ok ] || fail "migrate up: $out"
/usr/bin/migrate --db dbname=pkg --log-level warn verify >/dev/null || fail "migrate verify failed"
/usr/bin/engagement-status --db dbname=pkg --format prometheus --log-level warn |
  grep -q '^engagement_queue_oldest_due_seconds 0$' || fail "engagement-status after migrate"
echo "migrate up: schema $(jq -r .current <<<"$out") on a throwaway cluster; engagement-status reads it"

dpkg -r engagement >/dev/null
[ ! -e /usr/bin/migrate ] || fail "dpkg -r left /usr/bin/migrate"
echo "package test: ok"
