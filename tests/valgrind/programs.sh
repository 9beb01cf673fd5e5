#!/usr/bin/env bash
# Run the programs under valgrind memcheck against a real database: any
# memory error or definite leak fails. programs.sh BIN_DIR
set -euo pipefail
bin=$1
db="vg_$$_$RANDOM"
createdb "$db"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
vg() {
  valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --track-origins=yes "$@"
}
expect() {
  local want=$1; shift
  local rc=0
  vg "$@" >/dev/null 2>"$TMPDIR_VG/err" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "valgrind: '$*' exited $rc, expected $want" >&2
    grep -v '^{' "$TMPDIR_VG/err" >&2 || true
    exit 1
  fi
}
TMPDIR_VG=$(mktemp -d)
trap 'rm -rf "$TMPDIR_VG"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
c="dbname=$db"
expect 0 "$bin/migrate" --db "$c" up
expect 0 "$bin/migrate" --db "$c" status
expect 0 "$bin/migrate" --db "$c" verify
expect 0 "$bin/migrate" --db "$c" down --steps 2
expect 0 "$bin/migrate" --db "$c" up --dry-run
expect 0 "$bin/migrate" --db "$c" up
expect 64 "$bin/migrate" --bogus
expect 75 "$bin/migrate" --db "host=127.0.0.1 port=1 connect_timeout=2" status
expect 78 "$bin/migrate" --db "host='x" status
echo "valgrind: programs clean"
