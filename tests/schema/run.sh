#!/usr/bin/env bash
# Schema tests: pgTAP files in this folder, run by pg_prove against a fresh
# clone of the migrated template database.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
db="schema_$$_$RANDOM"
createdb -T engagement_tmpl "$db"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
psql -X -q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS pgtap"
pg_prove --ext .sql -d "$db" "$here"/*.sql
