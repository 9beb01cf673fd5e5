#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and the demo.
#
#   cluster.sh start STATE_DIR [MIGRATE_BIN]   initdb + start; write STATE_DIR/env
#   cluster.sh stop  STATE_DIR                 stop and delete everything
#
# The data lives in a fresh /tmp folder. initdb and the server refuse to run
# as root, so as root they run as the "postgres" user. The server listens on
# a Unix socket in that folder (trust) and on 127.0.0.1 (SCRAM passwords,
# for the credential tests). With MIGRATE_BIN, a database "engagement_tmpl"
# is created and migrated, for tests to clone with CREATE DATABASE ... TEMPLATE,
# and every program gets a login of its own (DESIGN.md §5): eng_daily is
# granted engagement_daily, and so on. STATE_DIR/as-roles holds a wrapper per
# program that runs it as its login (migrate runs as the owner, postgres),
# next to a link to the build's tests/: point ENG_BIN there ($ENG_AS_ROLES)
# and every program runs as its role.
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop STATE_DIR [MIGRATE_BIN]}
state=${2:?usage: cluster.sh start|stop STATE_DIR [MIGRATE_BIN]}
migrate=${3:-}

pgbin() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return; }
  done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return; }
  echo "cluster.sh: no PostgreSQL server found (apt-get install postgresql)" >&2
  exit 1
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  [ -f "$state/env" ] || return 0
  # shellcheck disable=SC1091
  . "$state/env"
  if [ -n "${ENG_PG_ROOT:-}" ] && [ -f "$ENG_PG_ROOT/bouncer/pgbouncer.pid" ]; then
    kill "$(cat "$ENG_PG_ROOT/bouncer/pgbouncer.pid")" 2>/dev/null || true
  fi
  if [ -n "${ENG_PG_ROOT:-}" ] && [ -d "$ENG_PG_ROOT/data" ]; then
    as_owner "$(pgbin)/pg_ctl" -D "$ENG_PG_ROOT/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$ENG_PG_ROOT"
  fi
  rm -f "$state/env"
}

start() {
  local bin root port tries=0
  bin=$(pgbin)
  mkdir -p "$state"
  stop
  root=$(mktemp -d /tmp/engagement-pg.XXXXXX)
  chmod 755 "$root"
  mkdir -p "$root/sock"
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$root"; fi
  as_owner "$bin/initdb" -D "$root/data" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$root/initdb.log" 2>&1 || {
      cat "$root/initdb.log" >&2; exit 1; }
  cat >>"$root/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$root/sock'
unix_socket_permissions = 0777
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 256MB
work_mem = 16MB
maintenance_work_mem = 256MB
max_wal_size = 4GB
checkpoint_timeout = 30min
lc_messages = 'C'
log_min_messages = warning
log_line_prefix = '%m [%p] %d '
CONF
  cat >"$root/data/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
  while :; do
    port=$(( 20000 + (RANDOM % 20000) ))
    if as_owner "$bin/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
         -o "-p $port" start >/dev/null 2>&1; then
      break
    fi
    tries=$((tries + 1))
    if [ $tries -ge 8 ]; then
      echo "cluster.sh: the server did not start; its log:" >&2
      tail -n 30 "$root/server.log" >&2 || true
      exit 1
    fi
  done
  cat >"$state/env" <<ENV
export ENG_PG_ROOT='$root'
export ENG_PG_BIN='$bin'
export PGHOST='$root/sock'
export PGPORT='$port'
export PGUSER='postgres'
export PGDATABASE='postgres'
unset PGPASSWORD PGSERVICE DATABASE_URL

ENV
  # shellcheck disable=SC1091
  . "$state/env"
  psql -X -q -v ON_ERROR_STOP=1 -d postgres <<'SQL'
CREATE ROLE engagement_pw LOGIN PASSWORD 'correct-horse-battery';
CREATE ROLE engagement_noperm LOGIN;
SQL
  # PgBouncer in transaction-pooling mode in front of it, with one server
  # connection per database: whatever relies on session state breaks there.
  if command -v pgbouncer >/dev/null 2>&1; then
    local bport=$(( port + 1 ))
    mkdir -p "$root/bouncer"
    echo '"postgres" ""' >"$root/bouncer/users.txt"
    cat >"$root/bouncer/pgbouncer.ini" <<INI
[databases]
* = host=$root/sock port=$port
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $root/bouncer/users.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 500
logfile = $root/bouncer/pgbouncer.log
pidfile = $root/bouncer/pgbouncer.pid
INI
    if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$root/bouncer"; fi
    if as_owner pgbouncer -d "$root/bouncer/pgbouncer.ini" >/dev/null 2>&1; then
      echo "export ENG_PGBOUNCER_PORT='$bport'" >>"$state/env"
    fi
  fi
  if [ -n "$migrate" ]; then
    createdb engagement_tmpl
    if ! "$migrate" --db "dbname=engagement_tmpl" --log-level warn up >"$root/migrate.json"; then
      echo "cluster.sh: migrate up failed on the template database:" >&2
      cat "$root/migrate.json" >&2
      exit 1
    fi
    psql -X -q -d postgres -c "ALTER DATABASE engagement_tmpl WITH IS_TEMPLATE true"
    logins "$(cd "$(dirname "$migrate")" && pwd)"
  fi
  echo "cluster up: $root (port $port)"
}

# The program each role is for (program:login:role).
ROLES="engagement-daily:eng_daily:engagement_daily
engagement-weekly:eng_weekly:engagement_weekly
engagement-event:eng_event:engagement_event
queue-send:eng_sender:engagement_sender
optout-set:eng_optout:engagement_optout
outbox-relay:eng_relay:engagement_relay
engagement-status:eng_status:engagement_status
engagement-webhook:eng_webhook:engagement_webhook
engagement-ctl:eng_operator:engagement_operator"

# logins BUILD_DIR: a login per program role, the wrappers in as-roles/.
logins() {
  local build=$1 prog login role dir="$state/as-roles"
  rm -rf "$dir"
  mkdir -p "$dir"
  ln -s "$build/tests" "$dir/tests"
  ln -s "$build/migrate" "$dir/migrate"
  while IFS=: read -r prog login role; do
    psql -X -q -v ON_ERROR_STOP=1 -d postgres \
      -c "CREATE ROLE $login LOGIN IN ROLE $role" >/dev/null
    [ -f "$ENG_PG_ROOT/bouncer/users.txt" ] && echo "\"$login\" \"\"" >>"$ENG_PG_ROOT/bouncer/users.txt"
    printf '#!/bin/sh\n# %s as %s, granted %s only\nPGUSER=%s exec %s "$@"\n' \
      "$prog" "$login" "$role" "$login" "$build/$prog" >"$dir/$prog"
    chmod 755 "$dir/$prog"
  done <<<"$ROLES"
  if [ -f "$ENG_PG_ROOT/bouncer/pgbouncer.pid" ]; then
    kill -HUP "$(cat "$ENG_PG_ROOT/bouncer/pgbouncer.pid")" 2>/dev/null || true
  fi
  echo "export ENG_AS_ROLES='$dir'" >>"$state/env"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: cluster.sh start|stop STATE_DIR [MIGRATE_BIN]" >&2; exit 64 ;;
esac
