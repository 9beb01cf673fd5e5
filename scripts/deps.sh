#!/usr/bin/env bash
# Install what building, testing and the demo need, from Debian's packages.
# Idempotent and quiet when everything is present. As a non-root user it
# uses sudo when it can, and otherwise prints the command to run.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config ca-certificates
  libpq-dev libcurl4-openssl-dev libjansson-dev libssl-dev
  libmicrohttpd-dev libcmocka-dev
  postgresql pgtap pgbouncer
  bats jq scdoc valgrind procps psmisc curl python3 openssl
  prometheus
  # tests/bats/status_page.bats: engagement-status's page in a real browser
  chromium
  nginx wrk systemd
  # tests/package: cpack's DEB generator (dpkg-shlibdeps, file)
  dpkg-dev file
  # scripts/fuzz: clang, its libFuzzer runtime, llvm-symbolizer (stacks)
  clang libclang-rt-dev llvm
)

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "deps: run as root: apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package may start a system cluster; ours are
# throwaway ones on other ports, so it is left alone.
