#!/usr/bin/env bash
# Run wa-standin under valgrind memcheck and have it serve a handful of
# requests of every kind, posting webhooks (statuses with retries, inbound,
# raw) to hub_receiver.py; any memory error or definite leak fails.
# valgrind.sh VALGRIND WA_STANDIN
set -euo pipefail
vg=$1
bin=$2
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d)
pid=
hub=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	if [ -n "$hub" ]; then
		kill -TERM "$hub" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

printf 'vg-token\n' >"$dir/token"
printf 'vg-app-secret\n' >"$dir/secret"
# The receiver refuses its first two POSTs, so retries happen too.
python3 "$here/hub_receiver.py" --secret-file "$dir/secret" --port-file "$dir/hubport" \
	--out "$dir/hub.jsonl" --fail 2 2>"$dir/hub.err" &
hub=$!
for _ in $(seq 100); do
	[ -s "$dir/hubport" ] && break
	sleep 0.05
done
if [ ! -s "$dir/hubport" ]; then
	echo "valgrind.sh: hub_receiver.py did not start" >&2
	cat "$dir/hub.err" >&2
	exit 1
fi
hook="http://127.0.0.1:$(cat "$dir/hubport")/hook"
"$vg" --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--track-origins=yes \
	"$bin" --token-file "$dir/token" --port-file "$dir/port" \
	--record "$dir/record.jsonl" --slow-ms 200 \
	--status-webhook "$hook" --app-secret-file "$dir/secret" --status-delay-ms 10 \
	2>"$dir/err" &
pid=$!
for _ in $(seq 300); do
	[ -s "$dir/port" ] && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if [ ! -s "$dir/port" ]; then
	echo "valgrind.sh: wa-standin did not start" >&2
	cat "$dir/err" >&2
	exit 1
fi
base="http://127.0.0.1:$(cat "$dir/port")"
url="$base/v23.0/1234/messages"

send() { # send TO [CURL ARGS...]: one template message to TO
	local to=$1
	shift
	curl -sS -o /dev/null -H 'Authorization: Bearer vg-token' \
		-H 'Content-Type: application/json' "$@" --data-binary \
		"{\"messaging_product\":\"whatsapp\",\"to\":\"$to\",\"type\":\"template\",\"template\":{\"name\":\"t\",\"language\":{\"code\":\"pt_BR\"},\"components\":[{\"type\":\"body\",\"parameters\":[{\"type\":\"text\",\"text\":\"Ana\",\"parameter_name\":\"first_name\"}]}]},\"biz_opaque_callback_data\":\"mq:1\"}" \
		"$url" 2>/dev/null || true
}
for to in +5511987654321 +5511987654901 +5511987654905 +5511987654906 \
	+5511987654907 +5511987654908 +5511987654909 +5511987654912 \
	+5511987654920 +5511987654920 +5511987654930 +5511987654933 \
	+5511987654934 +5511987654936 12345; do
	send "$to"
done
# Several at once, on one keep-alive connection each.
senders=()
for _ in 1 2 3 4; do
	send +5511987654321 &
	senders+=($!)
done
wait "${senders[@]}"
curl -sS -o /dev/null -H 'Content-Type: application/json' -d '{}' "$url" || true
curl -sS -o /dev/null -H 'Authorization: Bearer vg-token' \
	-H 'Content-Type: application/json' -d '{"messaging_product":' "$url" || true
printf '\xff\xfe{bad' | curl -sS -o /dev/null -H 'Authorization: Bearer vg-token' \
	-H 'Content-Type: application/json' --data-binary @- "$url" || true
head -c 70000 /dev/zero | curl -sS -o /dev/null -H 'Authorization: Bearer vg-token' \
	-H 'Content-Type: application/json' --data-binary @- "$url" || true
curl -sS -o /dev/null "$base/nowhere" || true
curl -sS -o /dev/null "$url" || true
curl -sS -o /dev/null "$base/_standin/stats" || true

# Inbound messages and raw bodies, good and bad.
ctl() { # ctl PATH JSON
	curl -sS -o /dev/null -H 'Content-Type: application/json' --data-binary "$2" \
		"$base/_standin/$1" || true
}
ctl inbound '{"from":"5511987654321","text":"parar lembretes","repeat":2}'
ctl inbound '{"from":"+5511987654321","button":"goodbye_2","name":"Ana"}'
ctl inbound '{"from":"5511987654321","interactive":"goodbye_1","id":"wamid.X"}'
ctl inbound '{"from":"5511987654321","type":"image","timestamp":"1763460000"}'
ctl inbound '{"from":"5511987654321","type":"reaction"}'
ctl inbound '{"from":"5511987654321","type":"unsupported"}'
ctl inbound '{"from":"x"}'
ctl inbound 'not json'
ctl raw '{"body":"{\"object\":\"x\"}"}'
ctl raw '{"body":"{}","signature":"sha256=00"}'
ctl raw '{"body":"{}","signature":null}'
ctl raw '{"body":"{}","url":"http://127.0.0.1:1/"}'
ctl raw '{"body":1}'
# Meta's account rules: templates, limits, counters, account webhooks.
ctl template '{"name":"t","language":"pt-BR","status":"PAUSED","category":"utility"}'
ctl template '{"name":"t","status":"DISABLED","billable":false}'
ctl template '{"name":"t","status":"bad"}'
send +5511987654321
ctl template '{"name":"t","language":"pt_BR","status":"APPROVED"}'
ctl limits '{"pair_interval_ms":60000,"messaging_limit":1,"limit_code":130429,"reached":["+5511987650001"],"reached_ago_ms":10}'
ctl limits '{"reached":["x",1]}'
send +5511987654321
send +5511987654321
ctl limits '{"messaging_limit":null,"pair_interval_ms":0}'
ctl account_webhook '{"field":"message_template_status_update","time":1763460000,"apply":true,"value":{"event":"PAUSED","message_template_name":"t","message_template_language":"pt-BR","other_info":{"title":"FIRST_PAUSE"}}}'
ctl account_webhook '{"changes":[{"field":"message_template_quality_update","time":"1763460001","value":{"new_quality_score":"RED","message_template_name":"t","message_template_language":"en"}},{"field":"phone_number_quality_update","value":{"event":"DOWNGRADE","current_limit":"TIER_2K","max_daily_conversations_per_business":"2000"}}],"apply":true,"repeat":2}'
ctl account_webhook '{"field":"phone_number_quality_update","value":{"event":"SIDEWAYS"}}'
ctl account_webhook '{"changes":[{"field":"x","value":{}}]}'
curl -sS -o /dev/null "$base/_standin/account" || true
ctl reset '{"reached":true,"rules":true}'
ctl reset '{"x":1}'
# Until every queued status is posted (valgrind is slow).
for _ in $(seq 300); do
	curl -sS "$base/_standin/stats" 2>/dev/null | grep -q '"webhooks_pending":0' && break
	sleep 0.1
done
# A few more, left in the queue by the stop.
for to in +5511987654321 +5511987654322 +5511987654323; do
	send "$to"
done

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
if [ "$rc" != 0 ]; then
	echo "valgrind.sh: wa-standin under valgrind exited $rc, expected 0" >&2
	cat "$dir/err" >&2
	exit 1
fi
lines=$(wc -l <"$dir/record.jsonl")
if [ "$lines" -lt 20 ]; then
	echo "valgrind.sh: only $lines record lines" >&2
	exit 1
fi
hooks=$(grep -c . "$dir/hub.jsonl" || true)
unsigned=$(grep -c '"valid":false' "$dir/hub.jsonl" || true)
# Two raw bodies were sent mis-signed and unsigned on purpose.
if [ "$hooks" -lt 30 ] || [ "$unsigned" != 2 ]; then
	echo "valgrind.sh: the receiver got $hooks webhooks ($unsigned not validly" \
		"signed), expected at least 30 (2)" >&2
	exit 1
fi
echo "valgrind.sh: clean ($lines record lines, $hooks webhooks received)"
