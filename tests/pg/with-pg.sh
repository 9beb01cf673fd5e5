#!/usr/bin/env bash
# Run a command with the test cluster's environment: with-pg.sh STATE_DIR CMD...
set -euo pipefail
state=${1:?usage: with-pg.sh STATE_DIR CMD...}
shift
if [ ! -f "$state/env" ]; then
  echo "with-pg.sh: no test cluster in $state (the pg.start fixture failed?)" >&2
  exit 1
fi
# shellcheck disable=SC1091
. "$state/env"
exec "$@"
