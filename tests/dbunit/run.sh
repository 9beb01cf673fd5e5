#!/usr/bin/env bash
# Run a DB-backed cmocka suite: creates the databases it expects (an empty
# one, a fully migrated clone, one migrated to version 2) and drops them.
#   run.sh MIGRATE_BIN TEST_BIN
set -euo pipefail
migrate=$1
test_bin=$2
tag="dbu_$$_$RANDOM"
export ENG_TEST_DB="${tag}_full" ENG_TEST_DB_EMPTY="${tag}_empty" ENG_TEST_DB_V2="${tag}_v2"
cleanup() {
  for d in "$ENG_TEST_DB" "$ENG_TEST_DB_EMPTY" "$ENG_TEST_DB_V2"; do
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
createdb -T engagement_tmpl "$ENG_TEST_DB"
createdb "$ENG_TEST_DB_EMPTY"
createdb "$ENG_TEST_DB_V2"
"$migrate" --db "dbname=$ENG_TEST_DB_V2" --log-level warn up --to 2 >/dev/null
"$test_bin"
