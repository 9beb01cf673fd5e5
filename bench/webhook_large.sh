#!/usr/bin/env bash
# One large delivery, and a person's opt-out right behind it (issue 20):
# engagement-webhook receives one signed delivery of MESSAGES messages from
# one number, then, at once, a delivery with another person's "parar
# lembretes"; prints how long the large one took to apply (the inbox's
# received_at to applied_at) and how long after its POST the opt-out was
# in force. Then the slow clients: CLIENTS connections from one address
# trickling a byte at a time, and how a normal delivery from another
# address fares meanwhile.
#
#   bench/webhook_large.sh [MESSAGES] [CLIENTS]      (defaults: 10000 4200)
#
# One line each:
#   large delivery: 10000 messages applied in N ms; opt-out behind it in force after N ms
#   slow clients: 4200 trickling from 127.0.0.1 (N accepted), a delivery from 127.0.0.2 answered 200 in N ms
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
clients=${2:-4200}
root=$PWD
work=$(mktemp -d /tmp/eng-bench-large.XXXXXX)
cleanup() {
	[ -n "${hook:-}" ] && kill "$hook" 2>/dev/null && wait "$hook" 2>/dev/null
	"$root/tests/pg/cluster.sh" stop "$work/pg" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 16384 2>/dev/null || true

scripts/deps.sh
cmake --preset default >/dev/null && cmake --build --preset default -j "$(nproc)" >/dev/null
bin=$root/build/default
"$root/tests/pg/cluster.sh" start "$work/pg" "$bin/migrate" >/dev/null
# shellcheck disable=SC1091
. "$work/pg/env"
createdb -T engagement_tmpl bench
psql -X -q -d bench -c "
  INSERT INTO engagement.users (id, phone_e164) VALUES
    ('00000000-0000-4000-8000-000000000001', '+5511987654321'),
    ('00000000-0000-4000-8000-000000000002', '+5511987654322');
  INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, state_changed_at)
  SELECT id, 'dormant', now() - interval '20 days', now() - interval '5 days' FROM engagement.users"
(umask 077 && echo "bench-app-secret" >"$work/secret" && echo "bench-verify" >"$work/token")
"$bin/engagement-webhook" --db "dbname=bench" --listen 127.0.0.1:0 --app-secret-file "$work/secret" \
	--verify-token-file "$work/token" --max-connections-per-ip 64 --max-body 8000000 >"$work/hook.json" 2>"$work/hook.log" &
hook=$!
for _ in $(seq 200); do
	port=$(jq -rn 'first(inputs | select(.event == "listening") | .port)' "$work/hook.log" 2>/dev/null || true)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { echo "engagement-webhook did not start" >&2; cat "$work/hook.log" >&2; exit 1; }

python3 - "$port" "$work/secret" "$n" <<'PY'
import hashlib, hmac, http.client, json, sys, time
port, secret_file, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
key = open(secret_file, "rb").read().strip()
t = int(time.time()) - 600
def env(value):
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "messages", "value": dict({"messaging_product": "whatsapp",
         "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1"}}, **value)}]}]}
big = env({"messages": [{"from": "5511987654321", "id": "wamid.LARGE%d" % i,
                         "timestamp": str(t + i // 100), "type": "text", "text": {"body": "hi %d" % i}}
                        for i in range(n)]})
stop = env({"messages": [{"from": "5511987654322", "id": "wamid.STOP", "timestamp": str(t + n // 100 + 1),
                          "type": "text", "text": {"body": "parar lembretes"}}]})
def post(body):
    raw = json.dumps(body).encode()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    c.request("POST", "/", raw, {"Content-Type": "application/json",
              "X-Hub-Signature-256": "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()})
    r = c.getresponse(); r.read(); c.close()
    return r.status
assert post(big) == 200
assert post(stop) == 200
PY
t_stop=$(date +%s%N)
for _ in $(seq 3000); do
	[ "$(psql -X -q -At -d bench -c "SELECT reengagement_opt_out FROM engagement.user_preferences
	       WHERE user_id = '00000000-0000-4000-8000-000000000002'")" = t ] && break
	sleep 0.01
done
t_in_force=$(( ($(date +%s%N) - t_stop) / 1000000 ))
for _ in $(seq 3000); do
	[ "$(psql -X -q -At -d bench -c "SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NULL")" = 0 ] && break
	sleep 0.01
done
applied_ms=$(psql -X -q -At -d bench -c "SELECT round(extract(epoch FROM applied_at - received_at) * 1000)
	FROM engagement.webhook_inbox ORDER BY id LIMIT 1")
acts=$(psql -X -q -At -d bench -c "SELECT count(*) FROM engagement.activity_events")
echo "large delivery: $n messages from one number applied in ${applied_ms} ms ($acts activities recorded); an opt-out posted right after it in force after ${t_in_force} ms"

python3 - "$port" "$work/secret" "$clients" <<'PY'
import hashlib, hmac, json, socket, sys, time, http.client
port, secret_file, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
key = open(secret_file, "rb").read().strip()
socks = []
for i in range(n):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    except OSError:
        pass
time.sleep(1)
alive = 0
for s in socks:
    try:
        s.setblocking(False)
        s.send(b"X")
        alive += 1
    except OSError:
        pass
raw = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
t0 = time.time()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=("127.0.0.2", 0))
c.request("POST", "/", raw, {"Content-Type": "application/json",
          "X-Hub-Signature-256": "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()})
r = c.getresponse(); r.read()
ms = (time.time() - t0) * 1000
print("slow clients: %d trickling from 127.0.0.1 (%d still connected after a second), "
      "a delivery from 127.0.0.2 answered %d in %.0f ms" % (n, alive, r.status, ms))
PY
