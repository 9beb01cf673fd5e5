#!/usr/bin/env bash
# The Prometheus alerting rules: promtool check rules, promtool test rules
# (tests/prometheus/engagement.rules.test.yml), and what promtool cannot
# see: every alert has a summary, a description and a runbook_url whose
# anchor is a heading of docs/runbook.md, and every engagement_* metric the
# rules read is one engagement-status writes.
#
#   tests/prometheus/run.sh [PROMTOOL]
#
# promtool comes with Debian's prometheus package (scripts/deps.sh); without
# it this fails: CI installs it, a skip would hide a broken rule.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
promtool=${1:-promtool}
rules=$src/contrib/prometheus/engagement.rules.yml
tests=$src/tests/prometheus/engagement.rules.test.yml
runbook=$src/docs/runbook.md
report_c=("$src"/lib/report/*.c)

if ! command -v "$promtool" >/dev/null 2>&1; then
  echo "prometheus.rules: promtool not found; install Debian's prometheus package (scripts/deps.sh)" >&2
  exit 1
fi

"$promtool" check rules "$rules"
(cd "$(dirname "$tests")" && "$promtool" test rules "$(basename "$tests")")

fail=0
# GitHub's anchors: lower case, punctuation dropped, spaces to hyphens
anchors=$(grep -E '^#{1,6} ' "$runbook" | sed -E 's/^#+ +//' | tr '[:upper:]' '[:lower:]' |
  sed -E 's/[^a-z0-9 _-]//g; s/ /-/g')
alerts=$(grep -cE '^ *- alert: ' "$rules")
for field in summary description runbook_url; do
  n=$(grep -cE "^ +$field: " "$rules")
  if [ "$n" != "$alerts" ]; then
    echo "prometheus.rules: $alerts alerts but $n $field annotations" >&2
    fail=1
  fi
done
while read -r url; do
  case $url in
    docs/runbook.md\#*) ;;
    *) echo "prometheus.rules: runbook_url $url is not docs/runbook.md#ANCHOR" >&2; fail=1; continue ;;
  esac
  if ! grep -qxF "${url#*#}" <<<"$anchors"; then
    echo "prometheus.rules: runbook_url $url: no such heading in docs/runbook.md" >&2
    fail=1
  fi
done < <(sed -nE 's/^ +runbook_url: +//p' "$rules")
# each alert's own section (the alert name as a heading)
while read -r alert; do
  if ! grep -qxF "$(tr '[:upper:]' '[:lower:]' <<<"$alert")" <<<"$anchors"; then
    echo "prometheus.rules: docs/runbook.md has no section $alert" >&2
    fail=1
  fi
done < <(sed -nE 's/^ *- alert: +//p' "$rules")
while read -r m; do
  if ! grep -q "\"$m\"" "${report_c[@]}"; then
    echo "prometheus.rules: the rules read $m, which engagement-status does not write" >&2
    fail=1
  fi
done < <(grep -v '^ *#' "$rules" | grep -oE 'engagement_[a-z_]+' | sort -u)
[ "$fail" = 0 ] && echo "prometheus.rules: $alerts alerts, runbook sections and metric names check out"
exit "$fail"
