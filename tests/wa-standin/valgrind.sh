#!/usr/bin/env bash
# Run wa-standin under valgrind memcheck and have it serve a handful of
# requests of every kind; any memory error or definite leak fails.
# valgrind.sh VALGRIND WA_STANDIN
set -euo pipefail
vg=$1
bin=$2
dir=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT

printf 'vg-token\n' >"$dir/token"
"$vg" --quiet --error-exitcode=99 --leak-check=full \
	--errors-for-leak-kinds=definite --show-leak-kinds=definite \
	--track-origins=yes \
	"$bin" --token-file "$dir/token" --port-file "$dir/port" \
	--record "$dir/record.jsonl" --slow-ms 200 2>"$dir/err" &
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
	+5511987654920 +5511987654920 12345; do
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
echo "valgrind.sh: clean ($lines requests served)"
