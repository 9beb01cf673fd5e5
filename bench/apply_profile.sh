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
. bench/profile_lib.sh
W=$(mktemp -d /tmp/apply-prof-XXXX); chmod 755 "$W"
cleanup() {
  prof_server_stop "$W"
  if [ -n "${KEEP:-}" ]; then echo "kept: $W" >&2; else rm -rf "$W"; fi
}
trap cleanup EXIT
prof_server "$W"
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
prof_measure "$W" "$N" "$W/a.json" "$W/a.log" \
  "$BIN/engagement-webhook" --db "$DB" --drain --batch "$BATCH" --log-level warn
applied=$(jq .applied "$W/a.json")
left=$(psql -XAtq "$DB" -c "SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NULL")
echo "applied $applied deliveries ($(jq .status_items <<<"$gen") status items, $left left) in $WALL s: $(echo "$applied / $WALL" | bc) deliveries/s; CPU per 1,000 deliveries: the server $SERVER_MS ms, the applier $PROGRAM_MS ms"
psql -XAq "$DB" -F ' | ' -c "SELECT n_tup_upd AS queue_updates, n_tup_hot_upd AS hot
  FROM pg_stat_user_tables WHERE relname = 'message_queue'"
prof_statements "$DB" "$N" delivery
