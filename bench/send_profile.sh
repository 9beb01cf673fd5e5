#!/usr/bin/env bash
# Where queue-send's database time goes: N due messages (one per person,
# weekly_review) drained with --rate 0 against a fixed-answer nginx (the
# same setup as ../shared/bench/peer-send.sh), pg_stat_statements on the
# server (track = all: nested statements inside the database's functions
# too), then per statement: milliseconds per 1,000 messages, calls, rows
# and WAL bytes per message, the top 25. One line of totals first.
#
#   bench/send_profile.sh [BINDIR] [N] [CONCURRENCY]   (defaults: build/release 30000 64)
#
# Needs nginx and the PostgreSQL server binaries; run as root (the server
# runs as the postgres user). Everything lives under a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(cd "${1:-build/release}" && pwd); N=${2:-30000}; J=${3:-64}
. bench/profile_lib.sh
W=$(mktemp -d /tmp/prof-XXXX)
cleanup() { [ -f "$W/ng.pid" ] && kill "$(cat "$W/ng.pid")" 2>/dev/null; prof_server_stop "$W"; rm -rf "$W"; }
trap cleanup EXIT
prof_server "$W"
NGP=$(free_port)
DB="host=127.0.0.1 port=$PGP user=postgres"
cat >"$W/nginx.conf" <<CONF
worker_processes 1; pid $W/ng.pid; error_log $W/ng.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $W/ng;
  server { listen 127.0.0.1:$NGP;
    location / { default_type application/json;
      return 200 '{"messaging_product":"whatsapp","contacts":[{"input":"x","wa_id":"x"}],"messages":[{"id":"wamid.BENCH"}]}'; } } }
CONF
mkdir -p "$W/ng"; nginx -c "$W/nginx.conf"
echo bench >"$W/token"; chmod 600 "$W/token"
export WHATSAPP_API_URL=http://127.0.0.1:$NGP WHATSAPP_API_VERSION=v23.0 WHATSAPP_PHONE_NUMBER_ID=1 WHATSAPP_ACCESS_TOKEN_FILE=$W/token
psql -Xq "$DB dbname=postgres" -c "CREATE DATABASE q" >/dev/null
"$BIN/migrate" --db "$DB dbname=q" up >/dev/null 2>&1
psql -Xq "$DB dbname=q" -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION pg_stat_statements;
INSERT INTO engagement.users (id, phone_e164)
  SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, '+55' || (11900000000 + g)::text FROM generate_series(1, $N) g;
INSERT INTO engagement.message_queue (user_id, message_type, template_key, params, idempotency_key, next_attempt_at)
  SELECT id, 'weekly_review', 'weekly_review', '{"activity_count": 3}', id::text, now() - interval '1 minute' FROM engagement.users;
VACUUM ANALYZE;
SELECT pg_stat_statements_reset();
SQL
prof_measure "$W" "$N" "$W/q.json" "$W/q.log" \
  "$BIN/queue-send" --db "$DB dbname=q" --rate 0 --concurrency "$J" --log-level warn
echo "sent $(jq .sent "$W/q.json") in $WALL s; CPU per 1,000 messages: the server $SERVER_MS ms, queue-send $PROGRAM_MS ms"
prof_statements "$DB dbname=q" "$N" msg
