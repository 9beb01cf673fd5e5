#!/usr/bin/env bash
# Where the webhook applier's time goes: N stored deliveries (the mix of
# bench/webhook/bodies.py: mostly delivery statuses, some inbound messages)
# put straight into the inbox, then applied by `engagement-webhook --drain`
# alone, with pg_stat_statements on the server (track = all: nested
# statements inside the database's functions too). One line first: the
# deliveries applied per second, and the CPU per 1,000 deliveries of the
# server and of the applier; then per statement: milliseconds per 1,000
# deliveries, calls, rows, WAL bytes per delivery, the top 25.
#
#   bench/apply_profile.sh [BINDIR] [N] [BATCH]   (defaults: build/release 100000 200)
#
# The database as bench/webhook.sh makes it (20,000 users, the sent
# messages the statuses are about), the server's test settings (fsync off):
# what it measures is CPU, not the disk. Needs the PostgreSQL server
# binaries; as root, the server runs as the postgres user.
#
# Environment: USERS (default 20000); PRE_SQL, SQL run on the database
# before the inbox is filled (an experiment: drop an index, change a
# setting, and see what it changes); KEEP=1 keeps the folder (the server's
# log with it: e.g. auto_explain's plans).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(cd "${1:-build/release}" && pwd); N=${2:-100000}; BATCH=${3:-200}
USERS=${USERS:-20000}
PGBIN=$(pg_config --bindir)
W=$(mktemp -d /tmp/apply-prof-XXXX); chmod 755 "$W"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" != 0 ] || chown postgres "$W"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PGP=$(free_port)
cleanup() {
  as_pg "$PGBIN/pg_ctl" -D "$W/data" -m immediate stop >/dev/null 2>&1
  if [ -n "${KEEP:-}" ]; then echo "kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
as_pg "$PGBIN/initdb" -D "$W/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
printf "port=$PGP\nlisten_addresses=''\nunix_socket_directories='$W'\nfsync=off\nsynchronous_commit=off\nshared_buffers=512MB\nshared_preload_libraries='pg_stat_statements'\npg_stat_statements.track=all\n" >>"$W/data/postgresql.auto.conf"
as_pg "$PGBIN/pg_ctl" -D "$W/data" -l "$W/pg.log" -w start >/dev/null
DB="host=$W port=$PGP user=postgres dbname=a"
psql -Xq "host=$W port=$PGP user=postgres dbname=postgres" -c "CREATE DATABASE a" >/dev/null
"$BIN/migrate" --db "$DB" up >/dev/null 2>&1
echo "bench-secret" >"$W/secret"
gen=$(python3 bench/webhook/bodies.py "$N" "$USERS" "$W/secret" "$W/bodies.txt")
cut -f2- "$W/bodies.txt" | sed 's/\\/\\\\/g' >"$W/inbox.txt"
nmsgs=$(jq .messages <<<"$gen")
psql -Xq "$DB" -v ON_ERROR_STOP=1 -v users="$USERS" -v nmsgs="$nmsgs" >/dev/null <<SQL
CREATE EXTENSION pg_stat_statements;
\\i bench/webhook/seed.sql
${PRE_SQL:-}
\copy engagement.webhook_inbox (body) FROM '$W/inbox.txt'
VACUUM ANALYZE;
CHECKPOINT;
SELECT pg_stat_statements_reset();
SQL
. bench/pg_ticks.sh
cpu0=$(pg_ticks "$W/data")
TIMEFORMAT='%R %U %S'
{ time "$BIN/engagement-webhook" --db "$DB" --drain --batch "$BATCH" --log-level warn >"$W/a.json"; } 2>"$W/time"
sleep 1
cpu1=$(pg_ticks "$W/data")
read -r wall au as <"$W/time"
hz=$(getconf CLK_TCK)
applied=$(jq .applied "$W/a.json")
left=$(psql -XAtq "$DB" -c "SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NULL")
echo "applied $applied deliveries ($(jq .status_items <<<"$gen") status items, $left left) in $wall s: $(echo "$applied / $wall" | bc) deliveries/s; CPU per 1,000 deliveries: the server $(( (cpu1 - cpu0) * 1000 * 1000 / hz / N )) ms, the applier $(echo "($au + $as) * 1000000 / $N" | bc) ms"
psql -XAq "$DB" -F ' | ' <<SQL
SELECT n_tup_upd AS queue_updates, n_tup_hot_upd AS hot FROM pg_stat_user_tables WHERE relname = 'message_queue';
SELECT round(total_exec_time::numeric * 1000 / $N, 1) AS ms_per_1000, calls, round((total_exec_time/calls)::numeric, 2) AS ms_per_call, rows,
  round((wal_bytes / $N)::numeric) AS wal_b_per_delivery, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25;
SQL
