#!/usr/bin/env bats
# Black-box tests of wa-standin, the local WhatsApp Cloud API stand-in
# (tests/wa-standin). No database: of helpers.bash, only wait_for is loaded.
# Each test runs in its own subshell; run sets stderr and stderr_lines.
# shellcheck disable=SC2030,SC2031,SC2154,SC2016 # wait_for conditions are single-quoted
bats_require_minimum_version 1.5.0
# shellcheck disable=SC2034 # read by helpers.bash
ENG_HELPERS_NO_DB=1
load helpers

WA="${ENG_BIN:?run through ctest, or set ENG_BIN to the build dir}/tests/wa-standin/wa-standin"
# A receiver of Meta-style webhooks that checks signatures on its own.
HUB="$BATS_TEST_DIRNAME/../wa-standin/hub_receiver.py"

# A valid template send; tests change it with jq filters.
BODY='{"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"template","biz_opaque_callback_data":"mq:42","template":{"name":"engagement_goodbye","language":{"code":"pt_BR"},"components":[{"type":"body","parameters":[{"type":"text","text":"Ana"},{"type":"text","text":"30"}]}]}}'

setup() {
	TOKEN="standin-bats-token-${RANDOM}${RANDOM}-Zq9"
	printf '%s\n' "$TOKEN" >"$BATS_TEST_TMPDIR/token"
	PORTF="$BATS_TEST_TMPDIR/port"
	REC="$BATS_TEST_TMPDIR/requests.jsonl"
	SA_ERR="$BATS_TEST_TMPDIR/stderr"
	SA_PID=
	SECRET="app-secret-${RANDOM}${RANDOM}-f00d"
	printf '%s\n' "$SECRET" >"$BATS_TEST_TMPDIR/secret"
	HUB_OUT="$BATS_TEST_TMPDIR/hub.jsonl"
	HUB_PID=
}

teardown() {
	local rc=0
	if [ -n "$SA_PID" ] && kill -0 "$SA_PID" 2>/dev/null; then
		kill -TERM "$SA_PID" 2>/dev/null || true
		wait "$SA_PID" 2>/dev/null || rc=$?
	fi
	if [ -n "$HUB_PID" ]; then
		kill -TERM "$HUB_PID" 2>/dev/null || true
		wait "$HUB_PID" 2>/dev/null || true
	fi
	# A clean stop is exit 0 (under the sanitizers: no error, no leak).
	if [ "$rc" -ne 0 ]; then
		echo "wa-standin exited $rc on SIGTERM:" >&2
		cat "$SA_ERR" >&2
		return 1
	fi
}

# start_standin [OPTION]...: start wa-standin on a free port with a token
# file, --port-file and --record; sets SA_PID, BASE and URL.
start_standin() {
	"$WA" --token-file "$BATS_TEST_TMPDIR/token" --port 0 --port-file "$PORTF" \
		--record "$REC" "$@" 2>"$SA_ERR" 3>&- &
	SA_PID=$!
	wait_for 30 '[ -s "$PORTF" ] || ! kill -0 "$SA_PID" 2>/dev/null' || true
	if ! kill -0 "$SA_PID" 2>/dev/null; then
		echo "wa-standin died at start:" >&2
		cat "$SA_ERR" >&2
		return 1
	fi
	[ -s "$PORTF" ] || {
		echo "no port file after 30 s" >&2
		return 1
	}
	[ ! -e "$PORTF.tmp" ]
	BASE="http://127.0.0.1:$(cat "$PORTF")"
	URL="$BASE/v23.0/1234567890/messages"
}

# body [JQ FILTER]: the valid body, changed by the filter.
body() {
	jq -c "${1:-.}" <<<"$BODY"
}

# to NUMBER: the valid body sent to NUMBER.
to() {
	body ".to = \"$1\""
}

# raw CURL ARGS...: a request with nothing added; sets CODE, RESP and CTYPE.
raw() {
	CODE=$(curl -sS -o "$BATS_TEST_TMPDIR/resp" -D "$BATS_TEST_TMPDIR/headers" \
		-w '%{http_code}' "$@" 2>"$BATS_TEST_TMPDIR/curl_err") || true
	RESP=$(cat "$BATS_TEST_TMPDIR/resp" 2>/dev/null || true)
	CTYPE=$(sed -n 's/^[Cc]ontent-[Tt]ype: *//p' "$BATS_TEST_TMPDIR/headers" 2>/dev/null |
		tr -d '\r')
}

# post BODY [CURL ARGS...]: send BODY to URL with the token and JSON type.
post() {
	local b=$1
	shift
	raw -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		"$@" --data-binary "$b" "$URL"
}

# expect_error STATUS CODE: the last answer is a Graph error body.
expect_error() {
	if [ "$CODE" != "$1" ]; then
		echo "HTTP $CODE, expected $1: $RESP" >&2
		return 1
	fi
	jq -e --argjson c "$2" '.error.code == $c and (.error.message | type == "string")
		and (.error.type | type == "string") and (.error.fbtrace_id | type == "string")
		and (.error.error_subcode | type == "number")' <<<"$RESP" >/dev/null || {
		echo "not a Graph error with code $2: $RESP" >&2
		return 1
	}
}

# expect_invalid DETAIL: a 400 code 100 whose details mention DETAIL.
expect_invalid() {
	expect_error 400 100 || return 1
	jq -e --arg d "$1" '.error.message == "(#100) Invalid parameter" and
		.error.error_data.messaging_product == "whatsapp" and
		(.error.error_data.details | contains($d))' <<<"$RESP" >/dev/null || {
		echo "details do not mention '$1': $RESP" >&2
		return 1
	}
}

expect_success() {
	if [ "$CODE" != 200 ]; then
		echo "HTTP $CODE, expected 200: $RESP" >&2
		return 1
	fi
	jq -e '.messaging_product == "whatsapp" and (.messages[0].id | startswith("wamid."))
		and .messages[0].message_status == "accepted"' <<<"$RESP" >/dev/null || {
		echo "not a success body: $RESP" >&2
		return 1
	}
}

stats() {
	curl -sS "$BASE/_standin/stats"
}

@test "success: the real answer's shape, one unique wamid per message" {
	start_standin
	post "$(body)"
	expect_success
	[[ "$CTYPE" == application/json* ]]
	jq -e '.contacts == [{"input": "+5511987654321", "wa_id": "5511987654321"}]
		and (.messages | length) == 1 and (keys | sort) == ["contacts", "messages", "messaging_product"]' \
		<<<"$RESP"
	local ids=() i
	for i in $(seq 20); do
		post "$(to "+44770090$(printf '%04d' "$i")")"
		expect_success
		ids+=("$(jq -r '.messages[0].id' <<<"$RESP")")
	done
	[ "$(printf '%s\n' "${ids[@]}" | sort -u | wc -l)" -eq 20 ]
	# The trace id header is there, like Graph's.
	grep -qi '^x-fb-trace-id: ' "$BATS_TEST_TMPDIR/headers"
}

@test "success: group recipients, named parameters, charset, no components" {
	start_standin
	post "$(body '.recipient_type = "group" | .to = "Ez8abCdEf0123-group"')"
	expect_success
	jq -e '.contacts[0].input == "Ez8abCdEf0123-group"' <<<"$RESP"
	post "$(body '.template.components[0].parameters = [{"type":"text","parameter_name":"first_name","text":"Ana"},{"type":"text","parameter_name":"days","text":"30"}]')"
	expect_success
	post "$(body 'del(.template.components) | del(.recipient_type) | del(.biz_opaque_callback_data)')"
	expect_success
	raw -H "Authorization: Bearer $TOKEN" -H 'Content-Type: Application/JSON; charset=utf-8' \
		--data-binary "$(body '.template.language.code = "en"')" "$URL"
	expect_success
	post "$(body ".biz_opaque_callback_data = \"$(printf 'x%.0s' $(seq 512))\"")"
	expect_success
	post "$(body '.template.components += [{"type":"header","parameters":[{"type":"image","image":{"link":"https://example.com/a.png"}}]},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"x"}]}]')"
	expect_success
}

@test "keep-alive: one connection serves several requests" {
	start_standin
	run --separate-stderr curl -sv -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data-binary "$(body)" "$URL" "$URL" "$URL"
	[ "$status" -eq 0 ]
	[ "$(grep -c 'Re-using existing connection\|Reusing existing connection' <<<"$stderr")" -eq 2 ]
}

@test "401 code 190 for a missing or wrong token; the token is never recorded" {
	start_standin
	raw -H 'Content-Type: application/json' --data-binary "$(body)" "$URL"
	expect_error 401 190
	jq -e '.error.message == "Invalid OAuth access token - Cannot parse access token"
		and .error.type == "OAuthException"' <<<"$RESP"
	grep -qi '^www-authenticate: OAuth' "$BATS_TEST_TMPDIR/headers"
	raw -H "Authorization: Bearer ${TOKEN}x" -H 'Content-Type: application/json' \
		--data-binary "$(body)" "$URL"
	expect_error 401 190
	raw -H "Authorization: Bearer ${TOKEN:0:10}" -H 'Content-Type: application/json' \
		--data-binary "$(body)" "$URL"
	expect_error 401 190
	raw -H "Authorization: Basic $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "$(body)" "$URL"
	expect_error 401 190
	raw -H 'Authorization: Bearer' -H 'Content-Type: application/json' \
		--data-binary "$(body)" "$URL"
	expect_error 401 190
	post "$(body)"
	expect_success
	# A wrong token is checked before the body.
	raw -H 'Authorization: Bearer nope' -H 'Content-Type: text/plain' --data-binary 'x' "$URL"
	expect_error 401 190

	[ "$(jq -r .auth "$REC" | tr '\n' ' ')" = "missing invalid invalid invalid invalid ok invalid " ]
	run grep -F "$TOKEN" "$REC"
	[ "$status" -eq 1 ]
	run grep -F "${TOKEN:0:10}" "$REC" "$SA_ERR"
	[ "$status" -eq 1 ]
}

@test "400 code 100 for every kind of invalid body" {
	start_standin
	local cases=(
		'del(.messaging_product)|messaging_product is required'
		'.messaging_product = "sms"|messaging_product must be'
		'.messaging_product = 1|messaging_product must be'
		'.recipient_type = "broadcast"|recipient_type must be'
		'.recipient_type = 7|recipient_type must be'
		'del(.to)|The parameter to is required'
		'.to = 5511987654321|to must be a string'
		'.to = "5511987654321"|to must be a phone number'
		'.to = "+0511987654321"|to must be a phone number'
		'.to = "+1234567"|to must be a phone number'
		'.to = "+1234567890123456"|to must be a phone number'
		'.to = "+55 11 98765 4321"|to must be a phone number'
		'.to = ""|to must be a phone number'
		'.recipient_type = "group" | .to = ""|non-empty group id'
		'del(.type)|The parameter type is required'
		'.type = "text"|type must be "template"'
		'del(.template)|The parameter template is required'
		'.template = "engagement_goodbye"|template must be an object'
		'del(.template.name)|template.name must be'
		'.template.name = ""|template.name must be'
		'.template.name = 3|template.name must be'
		'del(.template.language)|template.language must be'
		'.template.language = "pt_BR"|template.language must be'
		'del(.template.language.code)|template.language.code'
		'.template.language.code = "pt-BR"|template.language.code'
		'.template.language.code = "PT_BR"|template.language.code'
		'.template.language.code = "p"|template.language.code'
		'.template.language.code = "pt_BRAZL"|template.language.code'
		'.template.components = {}|template.components must be an array'
		'.template.components = [1]|template.components[0] must be an object'
		'.template.components = [{}]|template.components[0].type'
		'.template.components[0].parameters = {}|parameters must be an array'
		'.template.components[0].parameters[1] = "30"|parameters[1] must be an object'
		'.template.components[0].parameters[0].type = "currency"|parameters[0].type must be "text"'
		'del(.template.components[0].parameters[0].type)|parameters[0].type is required'
		'.template.components[0].parameters[1].text = 30|parameters[1].text must be a string'
		'del(.template.components[0].parameters[1].text)|parameters[1].text must be a string'
		'.template.components[0].parameters[0].parameter_name = "first_name"|mixes named and positional'
		'.template.components[0].parameters[0].parameter_name = ""|parameter_name must be a non-empty string'
		'.biz_opaque_callback_data = 42|biz_opaque_callback_data must be a string'
		"$(printf '.biz_opaque_callback_data = "%s"|at most 512' "$(printf 'y%.0s' $(seq 513))")"
	)
	local c filter detail
	for c in "${cases[@]}"; do
		filter=${c%|*}
		detail=${c##*|}
		post "$(body "$filter")"
		expect_invalid "$detail" || {
			echo "case: $filter" >&2
			return 1
		}
	done
	# Bodies that are not a JSON object at all.
	post '{"messaging_product": "whatsapp", "to": '
	expect_invalid 'not valid JSON'
	post '[1, 2]'
	expect_invalid 'must be a JSON object'
	post '"text"'
	expect_invalid 'must be a JSON object'
	raw -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -X POST "$URL"
	expect_invalid 'empty'
	# Wrong or missing Content-Type.
	local ct
	for ct in 'text/plain' 'application/x-www-form-urlencoded' 'application/jsonx' \
		'text/json' ''; do
		raw -H "Authorization: Bearer $TOKEN" -H "Content-Type:${ct:+ $ct}" \
			--data-binary "$(body)" "$URL"
		expect_invalid 'Content-Type' || {
			echo "Content-Type: $ct" >&2
			return 1
		}
	done
}

@test "413 for a body over 64 KiB, with and without Expect: 100-continue" {
	start_standin
	local big="$BATS_TEST_TMPDIR/big.json"
	printf '{"messaging_product":"whatsapp","pad":"%s"}' "$(head -c 70000 /dev/zero | tr '\0' a)" >"$big"
	raw -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "@$big" "$URL"
	expect_error 413 100
	raw -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		-H 'Expect: 100-continue' --data-binary "@$big" "$URL"
	expect_error 413 100
	# Exactly 64 KiB is still read (and then judged on its content).
	printf '{"messaging_product":"whatsapp","pad":"%s"}' \
		"$(head -c $((65536 - 41)) /dev/zero | tr '\0' a)" >"$big"
	[ "$(wc -c <"$big")" -eq 65536 ]
	raw -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "@$big" "$URL"
	expect_invalid 'The parameter to is required'
	post "$(body)"
	expect_success
}

@test "404 for other paths, 405 for other methods" {
	start_standin
	local p
	for p in / /v23.0/1234567890 /v23.0/1234567890/message /v23.0/1234567890/messages/x \
		/23.0/1234567890/messages /v23/1234567890/messages /v23.0/12a4/messages \
		/v23.0//messages /v.0/1/messages /_standin/nothing; do
		raw -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
			--data-binary "$(body)" "$BASE$p"
		expect_error 404 100 || {
			echo "path: $p" >&2
			return 1
		}
	done
	# Bytes that are not UTF-8 in the path keep the answer and record valid.
	raw "$BASE/x%ff%fe/messages"
	expect_error 404 100
	jq -se 'length == 11 and .[10].status == 404' "$REC"
	raw "$BASE/v25.0/1/messages" -H "Authorization: Bearer $TOKEN"
	expect_error 405 100
	grep -qi '^allow: POST' "$BATS_TEST_TMPDIR/headers"
	for p in PUT DELETE PATCH; do
		raw -X "$p" "$URL" -H "Authorization: Bearer $TOKEN"
		expect_error 405 100
	done
	raw -X POST "$BASE/_standin/stats"
	expect_error 405 100
	grep -qi '^allow: GET' "$BATS_TEST_TMPDIR/headers"
}

@test "--phone-number-id: other ids get 400 code 100" {
	start_standin --phone-number-id 1234567890
	post "$(body)"
	expect_success
	URL="$BASE/v23.0/999/messages"
	post "$(body)"
	expect_error 400 100
	jq -e '.error.message | contains("999")' <<<"$RESP"
}

@test "chosen errors by the last three digits of to" {
	start_standin
	local row suffix status code
	for row in 901:400:131026 902:429:130429 903:400:131056 904:400:131050 \
		905:404:132001 910:400:131000 911:400:131049 913:403:131031 \
		914:400:987654 915:503:2 916:400:131057 917:400:132015; do
		IFS=: read -r suffix status code <<<"$row"
		post "$(to "+5511987654$suffix")"
		expect_error "$status" "$code" || {
			echo "suffix $suffix" >&2
			return 1
		}
		jq -e --arg c "$code" '(.error.message | startswith("(#" + $c + ") "))
			and .error.type == "OAuthException"
			and .error.error_data.messaging_product == "whatsapp"
			and (.error.error_data.details | length) > 0
			and (.error | keys == ["code", "error_data", "error_subcode", "fbtrace_id", "message", "type"])' \
			<<<"$RESP" || {
			echo "suffix $suffix: $RESP" >&2
			return 1
		}
	done
	# Group ids ending in the digits behave the same.
	post "$(body '.recipient_type = "group" | .to = "grp-x-901"')"
	expect_error 400 131026
	# 905 names the template and language.
	post "$(to +5511987654905)"
	jq -e '.error.error_data.details == "template name (engagement_goodbye) does not exist in pt_BR"' <<<"$RESP"
	# A suffix outside the table succeeds.
	post "$(to +5511987654918)"
	expect_success
}

@test "906: 500 with a plain-text body" {
	start_standin
	post "$(to +5511987654906)"
	[ "$CODE" = 500 ]
	[ "$RESP" = "Internal Server Error" ]
	[[ "$CTYPE" == text/plain* ]]
	run jq . <<<"$RESP"
	[ "$status" -ne 0 ]
}

@test "907: 200 with an HTML body that is not JSON" {
	start_standin
	post "$(to +5511987654907)"
	[ "$CODE" = 200 ]
	[ "$RESP" = "<html>not json</html>" ]
	[[ "$CTYPE" == text/html* ]]
	run jq . <<<"$RESP"
	[ "$status" -ne 0 ]
}

@test "912: 200 JSON without messages" {
	start_standin
	post "$(to +5511987654912)"
	[ "$CODE" = 200 ]
	jq -e '(keys == ["contacts", "messaging_product"]) and .contacts[0].wa_id == "5511987654912"' <<<"$RESP"
	jq -se 'map(select(.to == "+5511987654912")) | length == 1 and .[0].status == 200
		and .[0].wamid == null' "$REC"
}

@test "909: the connection is closed without an answer" {
	start_standin
	run -52 curl -sS -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "$(to +5511987654909)" "$URL"
	# The stand-in goes on serving.
	post "$(body)"
	expect_success
	jq -se 'map(select(.to == "+5511987654909")) | length == 1 and .[0].status == 0
		and .[0].wamid == null' "$REC"
	stats | jq -e '.by_status["0"] == 1 and .by_status["200"] == 1'
}

@test "908: slow answers after --slow-ms and do not hold up others" {
	start_standin --slow-ms 10000
	local slow_out="$BATS_TEST_TMPDIR/slow"
	curl -sS -v -o "$slow_out.body" -w '%{http_code} %{time_total}' \
		-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "$(to +5511987654908)" "$URL" >"$slow_out" 2>"$slow_out.trace" 3>&- &
	local slow_pid=$!
	# the slow request (its body: "} [N bytes data]") is sent before the normal one
	wait_for 30 grep -sqE '^\} \[[0-9]+ bytes data\]|completely (sent|uploaded)' "$slow_out.trace"
	local t0 t1 fast
	t0=$(date +%s%N)
	post "$(body)"
	t1=$(date +%s%N)
	expect_success
	fast=$(((t1 - t0) / 1000000))
	# The slow one is still waiting when the fast one is answered: the
	# normal answer did not wait for it (a loaded machine may be slow, but
	# not 5 s slow for one request on loopback).
	kill -0 "$slow_pid"
	[ "$fast" -lt 5000 ] || {
		echo "a normal answer took $fast ms next to a slow one" >&2
		return 1
	}
	wait "$slow_pid"
	local code secs
	read -r code secs <"$slow_out" || true
	[ "$code" = 200 ]
	awk -v s="$secs" 'BEGIN { exit !(s >= 9.99 && s < 60) }' || {
		echo "slow answer after $secs s" >&2
		return 1
	}
	jq -e '.messages[0].id | startswith("wamid.")' "$slow_out.body"
}

@test "--latency-ms delays every answer" {
	start_standin --latency-ms 150
	local t0 t1
	t0=$(date +%s%N)
	post "$(body)"
	t1=$(date +%s%N)
	expect_success
	[ $(((t1 - t0) / 1000000)) -ge 140 ]
	t0=$(date +%s%N)
	post "$(to +5511987654901)"
	t1=$(date +%s%N)
	expect_error 400 131026
	[ $(((t1 - t0) / 1000000)) -ge 140 ]
}

@test "920: the first request for a recipient fails with 500 code 1, later ones succeed" {
	start_standin
	post "$(to +5511987654920)"
	expect_error 500 1
	post "$(to +5511987654920)"
	expect_success
	post "$(to +5511987654920)"
	expect_success
	post "$(to +4477009000920)"
	expect_error 500 1
	post "$(to +4477009000920)"
	expect_success
}

@test "record: one JSON line per request with the documented fields" {
	start_standin
	post "$(body)"
	expect_success
	local wamid
	wamid=$(jq -r '.messages[0].id' <<<"$RESP")
	post "$(body '.template.components[0].parameters = [{"type":"text","parameter_name":"first_name","text":"Ana"}]')"
	post "$(to +5511987654901)"
	post 'this is { not json'
	printf '\xff\xfe{' | curl -sS -o /dev/null -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data-binary @- "$URL"
	raw "$BASE/elsewhere"
	stats >/dev/null

	[ "$(wc -l <"$REC")" -eq 6 ]
	# Every line is a JSON object with every field; seq counts from 1.
	jq -se 'length == 6 and ([.[].seq] == [1, 2, 3, 4, 5, 6]) and
		all(.[]; has("seq") and has("ts") and has("method") and has("path")
			and has("auth") and has("status") and has("to")
			and has("recipient_type") and has("template") and has("language")
			and has("parameters") and has("biz_opaque_callback_data")
			and has("wamid") and has("body")
			and (.ts | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$")))' "$REC"
	# The success, field by field.
	jq -se --arg w "$wamid" --argjson b "$BODY" '.[0] | .method == "POST"
		and .path == "/v23.0/1234567890/messages" and .auth == "ok" and .status == 200
		and .to == "+5511987654321" and .recipient_type == "individual"
		and .template == "engagement_goodbye" and .language == "pt_BR"
		and .parameters == ["Ana", "30"] and .biz_opaque_callback_data == "mq:42"
		and .wamid == $w and .body == $b and .error_code == null' "$REC"
	jq -se '.[1] | .parameters == ["Ana"] and .parameter_names == ["first_name"]' "$REC"
	jq -se '.[2] | .status == 400 and .error_code == 131026 and .wamid == null' "$REC"
	# Bodies that are not JSON are kept as strings (bad UTF-8 replaced).
	jq -se '.[3] | .status == 400 and .body == "this is { not json" and .to == null' "$REC"
	jq -se '.[4] | .body == "\ufffd\ufffd{"' "$REC"
	jq -se '.[5] | .method == "GET" and .path == "/elsewhere" and .status == 404
		and .auth == "missing" and .body == null' "$REC"
}

@test "stats: counts by status and by error code, no token needed" {
	start_standin
	stats | jq -e '.requests == 0 and .by_status == {}'
	post "$(body)"
	post "$(body)"
	post "$(to +5511987654902)"
	post "$(to +5511987654901)"
	post "$(to +5511987654901)"
	post "$(body 'del(.to)')"
	raw "$URL"
	raw -H 'Content-Type: application/json' --data-binary "$(body)" "$URL"
	run -0 stats
	jq -e '.requests == 8 and .by_status == {"200": 2, "400": 3, "401": 1, "405": 1, "429": 1}
		and .by_code == {"130429": 1, "131026": 2, "100": 2, "190": 1}' <<<"$output"
	# Stats requests themselves are neither counted nor recorded.
	stats | jq -e '.requests == 8'
	[ "$(wc -l <"$REC")" -eq 8 ]
}

@test "SIGTERM and SIGINT stop it cleanly with exit 0" {
	start_standin --slow-ms 10000
	post "$(body)"
	expect_success
	kill -TERM "$SA_PID"
	local rc=0
	wait "$SA_PID" || rc=$?
	[ "$rc" -eq 0 ]
	grep -q 'stopped by SIGTERM' "$SA_ERR"
	[ ! -e "$PORTF" ]

	# SIGINT, with a slow request in flight: it does not wait for it.
	start_standin --slow-ms 60000
	curl -s -v -o /dev/null -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
		--data-binary "$(to +5511987654908)" "$URL" 2>"$BATS_TEST_TMPDIR/inflight.trace" 3>&- &
	local cpid=$! t0 t1
	wait_for 30 grep -sqE '^\} \[[0-9]+ bytes data\]|completely (sent|uploaded)' "$BATS_TEST_TMPDIR/inflight.trace"
	t0=$(date +%s%N)
	kill -INT "$SA_PID"
	rc=0
	wait "$SA_PID" || rc=$?
	[ "$rc" -eq 0 ]
	grep -q 'stopped by SIGINT' "$SA_ERR"
	t1=$(date +%s%N)
	# far less than the 60 s the answer would have taken
	[ $(((t1 - t0) / 1000000)) -lt 30000 ]
	wait "$cpid" || true
}

@test "bad options exit 64 with one line on stderr" {
	local t="$BATS_TEST_TMPDIR/token"
	local bad=(
		"--bogus"
		"--port"
		"--port abc"
		"--port 70000"
		"--port -1"
		"--slow-ms x"
		"--latency-ms 1.5"
		"--listen nowhere.example"
		"--phone-number-id 12ab"
		"--status-webhook ftp://example.com/hook"
		"--statuses sent,bounced"
		"--statuses sent,sent"
		"--statuses failed"
		"--status-delay-ms soon"
		"--webhook-retries 101"
		"--webhook-timeout-ms 0"
		"--waba-id abc"
		"--display-phone-number +1555"
		"extra-argument"
	)
	local args
	for args in "${bad[@]}"; do
		# shellcheck disable=SC2086
		run -64 --separate-stderr "$WA" --token-file "$t" $args
		[ -z "$output" ]
		[ "${#stderr_lines[@]}" -eq 1 ] || {
			echo "$args: $stderr" >&2
			return 1
		}
		[[ "$stderr" == wa-standin:* ]]
	done
	run -0 "$WA" --help
	[[ "$output" == *"--token-file"* ]]
}

@test "a missing token exits 78; WA_STANDIN_TOKEN works instead of a file" {
	run -78 --separate-stderr env -u WA_STANDIN_TOKEN "$WA" --port 0
	[ "${#stderr_lines[@]}" -eq 1 ]
	run -78 --separate-stderr "$WA" --token-file "$BATS_TEST_TMPDIR/nonexistent"
	[ "${#stderr_lines[@]}" -eq 1 ]
	: >"$BATS_TEST_TMPDIR/empty"
	run -78 --separate-stderr "$WA" --token-file "$BATS_TEST_TMPDIR/empty"
	[ "${#stderr_lines[@]}" -eq 1 ]
	run -78 --separate-stderr env WA_STANDIN_TOKEN= "$WA"
	[ "${#stderr_lines[@]}" -eq 1 ]

	WA_STANDIN_TOKEN="$TOKEN" "$WA" --port 0 --port-file "$PORTF" 2>"$SA_ERR" 3>&- &
	SA_PID=$!
	wait_for 30 test -s "$PORTF"
	BASE="http://127.0.0.1:$(cat "$PORTF")"
	URL="$BASE/v23.0/1/messages"
	post "$(body)"
	expect_success
	run grep -F "$TOKEN" "$SA_ERR"
	[ "$status" -eq 1 ]
}

# ---- Meta's webhook side ----

# start_hub [OPTION]...: hub_receiver.py on a free port, with the app
# secret; sets HUB_PID and HUB_URL. Each POST it gets is a line of $HUB_OUT.
start_hub() {
	rm -f "$BATS_TEST_TMPDIR/hubport"
	python3 "$HUB" --secret-file "$BATS_TEST_TMPDIR/secret" \
		--port-file "$BATS_TEST_TMPDIR/hubport" --out "$HUB_OUT" "$@" \
		2>"$BATS_TEST_TMPDIR/hub.err" 3>&- &
	HUB_PID=$!
	wait_for 30 test -s "$BATS_TEST_TMPDIR/hubport" || {
		echo "hub_receiver.py did not start" >&2
		cat "$BATS_TEST_TMPDIR/hub.err" >&2
		return 1
	}
	HUB_URL="http://127.0.0.1:$(cat "$BATS_TEST_TMPDIR/hubport")/hook"
}

# start_hooked [OPTION]...: wa-standin posting status webhooks to the hub.
start_hooked() {
	start_standin --status-webhook "$HUB_URL" \
		--app-secret-file "$BATS_TEST_TMPDIR/secret" "$@"
}

# wait_hub N: until the hub has received at least N POSTs (30 s at most).
wait_hub() {
	local want=$1
	wait_for 30 '[ "$(hub_count)" -ge "$want" ]' && return 0
	echo "the hub got $(hub_count) POSTs, expected $1:" >&2
	cat "$HUB_OUT" >&2 2>/dev/null
	return 1
}

hub_count() {
	if [ -f "$HUB_OUT" ]; then
		grep -c . "$HUB_OUT" || true
	else
		echo 0
	fi
}

# wait_stats FILTER: until the stats satisfy the jq filter (30 s at most).
wait_stats() {
	local filter=$1
	wait_for 30 'stats | jq -e "$filter" >/dev/null' && return 0
	echo "stats never satisfied $1: $(stats)" >&2
	return 1
}

# posts_for SUFFIX: the statuses of each POST the hub got for the recipient
# ending in SUFFIX, one JSON array a line, in arrival order.
posts_for() {
	jq -c --arg s "$1" '[.json.entry[].changes[].value.statuses[]?]
		| select(length > 0 and (.[0].recipient_id | endswith($s))) | map(.status)' "$HUB_OUT"
}

# webhook_out: the record's webhook lines.
webhook_out() {
	jq -c 'select(.kind == "webhook_out")' "$REC"
}

# ctl PATH JSON: a control request; sets CODE and RESP.
ctl() {
	raw -H 'Content-Type: application/json' --data-binary "$2" "$BASE/_standin/$1"
}

@test "status webhooks: sent, delivered, read, signed, in Meta's envelope" {
	start_hub
	start_hooked
	local t0
	t0=$(date +%s)
	post "$(body)"
	expect_success
	local wamid
	wamid=$(jq -r '.messages[0].id' <<<"$RESP")
	wait_hub 3
	wait_stats '.webhooks_pending == 0'
	# Every POST verified by the receiver (Python's hmac), JSON, Meta's agent.
	jq -se 'length == 3 and all(.[]; .valid and .answered == 200
		and .content_type == "application/json" and .user_agent == "facebookexternalua"
		and (.signature | test("^sha256=[0-9a-f]{64}$")))' "$HUB_OUT"
	# ... and once more here, with openssl.
	local first sig
	first=$(jq -r 'select(.n == 1) | .body' "$HUB_OUT")
	sig=$(printf '%s' "$first" | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1)
	[ "$(jq -r 'select(.n == 1) | .signature' "$HUB_OUT")" = "sha256=$sig" ]
	# The envelope.
	jq -se --arg w "$wamid" 'map(.json) | all(.[];
		.object == "whatsapp_business_account" and (.entry | length) == 1
		and .entry[0].id == "102290129340398" and (.entry[0].changes | length) == 1
		and .entry[0].changes[0].field == "messages"
		and (.entry[0].changes[0].value | .messaging_product == "whatsapp"
			and .metadata == {"display_phone_number": "15550783881",
				"phone_number_id": "1234567890"}
			and (.statuses | length) == 1 and (has("messages") | not)
			and (.statuses[0] | .id == $w and .recipient_id == "5511987654321"
				and .biz_opaque_callback_data == "mq:42"
				and (.timestamp | test("^[0-9]{10}$"))
				and (.conversation.id | length) > 0
				and .conversation.origin.type == "marketing"
				and .pricing.billable == true and .pricing.pricing_model == "PMP"
				and .pricing.category == "marketing")))' "$HUB_OUT"
	[ "$(jq -r '.json.entry[0].changes[0].value.statuses[0].status' "$HUB_OUT" | tr '\n' ' ')" = "sent delivered read " ]
	# The timestamp is the time of the send: after it began, not after now.
	local ts now
	ts=$(jq -r 'select(.n == 3) | .json.entry[0].changes[0].value.statuses[0].timestamp' "$HUB_OUT")
	now=$(date +%s)
	[ "$ts" -ge "$t0" ]
	[ "$ts" -le $((now + 2)) ]

	# The record: the send's line unchanged (no kind), one line per POST.
	jq -se '.[0] | has("kind") | not' "$REC"
	[ "$(webhook_out | wc -l)" -eq 3 ]
	webhook_out | jq -se --arg w "$wamid" --arg u "$HUB_URL" 'all(.[];
		.url == $u and .status == 200 and .attempt == 1 and .source == "status"
		and .error == null and (.statuses | length) == 1 and .statuses[0].id == $w)
		and (map(.statuses[0].status) == ["sent", "delivered", "read"])
		and (map(.seq) == [2, 3, 4])'
	stats | jq -e '.requests == 1 and .webhooks_posted == 3 and .webhooks_acknowledged == 3
		and .webhooks_failed == 0 and .webhooks_abandoned == 0'

	# No biz_opaque_callback_data: none echoed. Failed sends and 912: no statuses.
	post "$(body 'del(.biz_opaque_callback_data) | .to = "+5511987654322"')"
	expect_success
	post "$(to +5511987654901)"
	post "$(to +5511987654912)"
	post "$(body '.recipient_type = "group" | .to = "grp-abc"')"
	expect_success
	wait_hub 9
	# every status it will ever post was queued before its send was
	# answered: none queued, none on the way, so no tenth one to come
	wait_stats '.webhooks_pending == 0 and .webhooks_posted == 9'
	[ "$(hub_count)" -eq 9 ]
	jq -se '[.[].json.entry[0].changes[0].value.statuses[0]
		| select(.recipient_id == "5511987654322")] | length == 3
		and all(.[]; has("biz_opaque_callback_data") | not)' "$HUB_OUT"
	jq -se '[.[].json.entry[0].changes[0].value.statuses[0]
		| select(.recipient_id == "grp-abc")] | length == 3
		and all(.[]; .recipient_type == "group")' "$HUB_OUT"
	# The secret is never written anywhere.
	run grep -rF "$SECRET" "$REC" "$SA_ERR" "$HUB_OUT"
	[ "$status" -eq 1 ]
}

@test "--statuses and --status-delay-ms choose which statuses and when" {
	start_hub
	start_hooked --statuses read,sent --status-delay-ms 250
	local t0 t1
	t0=$(date +%s%N)
	post "$(body)"
	expect_success
	wait_hub 2
	t1=$(date +%s%N)
	[ "$(posts_for 321 | tr '\n' ' ')" = '["read"] ["sent"] ' ]
	# 250 ms to the first, 250 more to the second.
	[ $(((t1 - t0) / 1000000)) -ge 490 ]
	webhook_out | jq -se 'map(.ts | (.[0:19] + "Z" | fromdateiso8601) * 1000
		+ (.[20:23] | tonumber)) | .[1] - .[0] >= 230'
	# In the order given, the first happening first: timestamps do not go back.
	jq -se 'map(.json.entry[0].changes[0].value.statuses[0].timestamp | tonumber)
		| .[0] <= .[1]' "$HUB_OUT"
}

@test "--statuses '' posts no statuses" {
	start_hub
	start_hooked --statuses '' --status-delay-ms 0
	post "$(body)"
	expect_success
	# the statuses of a send are queued before it is answered: none queued,
	# so none will ever come
	stats | jq -e '.webhooks_pending == 0 and .webhooks_posted == 0'
	[ "$(hub_count)" -eq 0 ]
	stats | jq -e '.webhooks_posted == 0'
}

@test "chosen statuses by the last three digits of to (930-937)" {
	start_hub
	start_hooked --status-delay-ms 10
	local s
	for s in 930 931 932 933 934 935 936 937; do
		post "$(to "+5511987654$s")"
		expect_success
	done
	wait_hub 19
	wait_stats '.webhooks_pending == 0 and .webhooks_posted == 19'
	[ "$(posts_for 930 | tr '\n' ' ')" = '["sent"] ["failed"] ' ]
	[ "$(posts_for 931 | tr '\n' ' ')" = '["sent"] ["failed"] ' ]
	[ "$(posts_for 932 | tr '\n' ' ')" = '["sent"] ["delivered"] ' ]
	[ "$(posts_for 933 | tr '\n' ' ')" = '["sent"] ["sent"] ["delivered"] ["delivered"] ["read"] ["read"] ' ]
	[ "$(posts_for 934 | tr '\n' ' ')" = '["read"] ["delivered"] ["sent"] ' ]
	[ "$(posts_for 935 | tr '\n' ' ')" = '["sent"] ["failed"] ' ]
	[ "$(posts_for 936 | tr '\n' ' ')" = '["sent","delivered","read"] ' ]
	[ "$(posts_for 937 | tr '\n' ' ')" = '["failed"] ' ]
	jq -se 'all(.[]; .valid)' "$HUB_OUT"
	# A failed status carries errors[] with the code, and no pricing.
	local row suffix code
	for row in 930:131026 931:131050 935:131049 937:131026; do
		IFS=: read -r suffix code <<<"$row"
		jq -se --arg s "$suffix" --argjson c "$code" '[.[].json.entry[0].changes[0].value.statuses[]
			| select(.status == "failed" and (.recipient_id | endswith($s)))]
			| length == 1 and (.[0] | (.errors | length) == 1
				and .errors[0].code == $c and (.errors[0].title | length) > 0
				and (.errors[0].message | length) > 0
				and (.errors[0].error_data.details | length) > 0
				and (has("pricing") | not) and .biz_opaque_callback_data == "mq:42")' \
			"$HUB_OUT" || {
			echo "suffix $suffix" >&2
			return 1
		}
	done
	# 933: the repeat is the same delivery, byte for byte.
	[ "$(jq -r 'select(.body | contains("5511987654933")) | .body' "$HUB_OUT" | sort -u | wc -l)" -eq 3 ]
	# 934: out of order on the wire, in order in time.
	jq -se '[.[].json.entry[0].changes[0].value.statuses[0]
		| select(.recipient_id | endswith("934"))]
		| map(.timestamp | tonumber) | .[0] >= .[1] and .[1] >= .[2]' "$HUB_OUT"
	# 936: one POST, one entry, one change, three statuses of one message.
	jq -se '[.[].json | select(.entry[0].changes[0].value.statuses[0].recipient_id
		| endswith("936"))] | length == 1 and (.[0].entry | length) == 1
		and (.[0].entry[0].changes | length) == 1
		and (.[0].entry[0].changes[0].value.statuses | map(.id) | unique | length) == 1' "$HUB_OUT"
	# The record names the statuses of each POST.
	webhook_out | jq -se 'length == 19 and all(.[]; .status == 200 and .attempt == 1)
		and ([.[] | select(.statuses | length == 3)] | length) == 1'
}

@test "retries: a status POST not answered 2xx is retried, 100 ms doubling" {
	start_hub --fail 3
	start_hooked --statuses sent --status-delay-ms 0
	post "$(body)"
	expect_success
	wait_hub 4
	wait_stats '.webhooks_pending == 0'
	jq -se 'map(.answered) == [500, 500, 500, 200] and all(.[]; .valid)
		and (map(.body) | unique | length) == 1' "$HUB_OUT"
	webhook_out | jq -se 'map(.attempt) == [1, 2, 3, 4] and map(.status) == [500, 500, 500, 200]
		and all(.[]; .statuses[0].status == "sent")'
	# The waits between attempts: about 100, 200, 400 ms (the bound on the
	# whole is loose: a loaded machine is slow, but one of 1 s doubling
	# would take 7 s).
	webhook_out | jq -se 'map(.ts | (.[0:19] + "Z" | fromdateiso8601) * 1000
		+ (.[20:23] | tonumber)) as $t
		| ($t[1] - $t[0]) >= 90 and ($t[2] - $t[1]) >= 190 and ($t[3] - $t[2]) >= 390
		and ($t[3] - $t[0]) < 5000'
	stats | jq -e '.webhooks_posted == 4 and .webhooks_acknowledged == 1
		and .webhooks_failed == 3 and .webhooks_abandoned == 0'
}

@test "retries: given up after --webhook-retries; a receiver that hangs times out" {
	start_hub --hang
	start_hooked --statuses sent --status-delay-ms 0 --webhook-retries 1 \
		--webhook-timeout-ms 300
	post "$(body)"
	expect_success
	wait_stats '.webhooks_abandoned == 1'
	wait_hub 2
	stats | jq -e '.webhooks_posted == 2 and .webhooks_failed == 2
		and .webhooks_acknowledged == 0 and .webhooks_pending == 0'
	webhook_out | jq -se 'map(.attempt) == [1, 2] and all(.[]; .status == 0
		and (.error | test("[Tt]imeout|timed out")))'
}

@test "inbound: text, button, interactive and other types, in Meta's envelope" {
	start_hub
	start_hooked --statuses ''
	post "$(body)"
	expect_success
	local template_wamid
	template_wamid=$(jq -r '.messages[0].id' <<<"$RESP")

	ctl inbound '{"from":"5511987654321","text":"parar lembretes","timestamp":1763460000}'
	[ "$CODE" = 200 ]
	jq -e '.status == 200 and (.id | startswith("wamid.")) and .statuses == [200]
		and (.body.entry[0].changes[0].value | .metadata.phone_number_id == "1234567890"
			and .contacts == [{"profile": {"name": "Stand-in User"}, "wa_id": "5511987654321"}]
			and (.messages | length) == 1 and (has("statuses") | not))
		and .body.entry[0].changes[0].value.messages[0] == {"from": "5511987654321",
			"id": .id, "timestamp": "1763460000", "type": "text",
			"text": {"body": "parar lembretes"}}' <<<"$RESP"
	wait_hub 1
	# What the hub got is what the answer shows, signed.
	jq -se --argjson b "$(jq -c .body <<<"$RESP")" '.[0].json == $b and .[0].valid' "$HUB_OUT"

	# A quick-reply button: its context is the last template sent to that number.
	local t0 t1
	t0=$(date +%s)
	ctl inbound '{"from":"+5511987654321","button":"goodbye_2","button_text":"Busy","name":"Ana"}'
	t1=$(date +%s)
	[ "$CODE" = 200 ]
	jq -e --arg w "$template_wamid" '.body.entry[0].changes[0].value
		| .contacts[0].profile.name == "Ana"
		and (.messages[0] | .type == "button" and .from == "5511987654321"
			and .button == {"payload": "goodbye_2", "text": "Busy"}
			and .context == {"from": "15550783881", "id": $w})' <<<"$RESP"
	# The timestamp defaults to now: the time of the request.
	jq -e --argjson t0 "$t0" --argjson t1 "$t1" '.body.entry[0].changes[0].value.messages[0].timestamp
		| tonumber | . >= $t0 and . <= $t1' <<<"$RESP"

	ctl inbound '{"from":"5511987654321","interactive":"goodbye_1","title":"Yes","id":"wamid.GIVEN"}'
	jq -e '.id == "wamid.GIVEN" and (.body.entry[0].changes[0].value.messages[0]
		| .id == "wamid.GIVEN" and .type == "interactive"
		and .interactive == {"type": "button_reply", "button_reply": {"id": "goodbye_1", "title": "Yes"}}
		and (.context.id | startswith("wamid.")))' <<<"$RESP"

	ctl inbound '{"from":"5511999990000","type":"image"}'
	jq -e '.status == 200 and (.body.entry[0].changes[0].value.messages[0]
		| .type == "image" and (.image.mime_type | startswith("image/"))
		and (.image.id | test("^[0-9]+$")) and (has("context") | not))' <<<"$RESP"
	ctl inbound '{"from":"5511999990000","type":"reaction"}'
	jq -e '.body.entry[0].changes[0].value.messages[0] | .type == "reaction"
		and (.reaction.message_id | startswith("wamid.")) and (.reaction.emoji | length) > 0' <<<"$RESP"
	ctl inbound '{"from":"5511999990000","type":"unsupported"}'
	jq -e '.body.entry[0].changes[0].value.messages[0] | .type == "unsupported"
		and .errors[0].code == 131051' <<<"$RESP"

	wait_hub 6
	jq -se 'all(.[]; .valid and .answered == 200)' "$HUB_OUT"
	webhook_out | jq -se 'length == 6 and all(.[]; .source == "inbound" and .status == 200
		and .attempt == 1 and (.messages | length) == 1 and .statuses == null)'
	stats | jq -e '.webhooks_posted == 6 and .webhooks_acknowledged == 6 and .requests == 1'

	# Requests it cannot serve: 400 with a reason, nothing posted.
	local bad
	for bad in '{}' '{"text":"x"}' '{"from":"55119x","text":"x"}' '{"from":"5511","text":"x","button":"y"}' \
		'{"from":"5511","type":"text"}' '{"from":"5511"}' '{"from":"5511","text":"x","colour":1}' \
		'{"from":"5511","text":"x","repeat":0}' '{"from":"5511","text":"x","timestamp":"soon"}' \
		'{"from":"5511","text":"x","url":"ftp://x"}' '[1]' 'not json'; do
		ctl inbound "$bad"
		[ "$CODE" = 400 ] && jq -e '.error | length > 0' <<<"$RESP" >/dev/null || {
			echo "$bad: HTTP $CODE $RESP" >&2
			return 1
		}
	done
	raw "$BASE/_standin/inbound"
	[ "$CODE" = 405 ]
	[ "$(hub_count)" -eq 6 ]
}

@test "inbound: repeat posts the same delivery N times; the receiver's status is answered" {
	start_hub --fail 1 --fail-status 503
	start_hooked --statuses ''
	ctl inbound '{"from":"5511987654321","text":"oi","repeat":3}'
	[ "$CODE" = 200 ]
	jq -e '.statuses == [503, 200, 200] and .status == 200' <<<"$RESP"
	[ "$(hub_count)" -eq 3 ]
	jq -se 'all(.[]; .valid) and (map(.body) | unique | length) == 1' "$HUB_OUT"
	local id
	id=$(jq -r .id <<<"$RESP")
	webhook_out | jq -se --arg id "$id" 'map(.attempt) == [1, 2, 3]
		and map(.status) == [503, 200, 200] and all(.[]; .messages == [$id])'
	stats | jq -e '.webhooks_posted == 3 and .webhooks_failed == 1'
}

@test "raw: exact bytes, signed, mis-signed or unsigned, to a given url" {
	start_hub
	# No --status-webhook: the url comes with each request.
	start_standin --app-secret-file "$BATS_TEST_TMPDIR/secret"
	local b='{"object":"whatsapp_business_account","entry":[]}'
	ctl raw "$(jq -nc --arg b "$b" --arg u "$HUB_URL" '{body: $b, url: $u}')"
	[ "$CODE" = 200 ]
	jq -e '.status == 200 and (.body | fromjson | .received == 1)
		and (.signature | test("^sha256=[0-9a-f]{64}$"))' <<<"$RESP"
	ctl raw "$(jq -nc --arg b "$b" --arg u "$HUB_URL" '{body: $b, url: $u, signature: "sha256=deadbeef"}')"
	jq -e '.status == 401 and .signature == "sha256=deadbeef"' <<<"$RESP"
	ctl raw "$(jq -nc --arg b "$b" --arg u "$HUB_URL" '{body: $b, url: $u, signature: null}')"
	jq -e '.status == 401 and .signature == null' <<<"$RESP"
	ctl raw "$(jq -nc --arg u "$HUB_URL" '{body: "not { json", url: $u}')"
	jq -e '.status == 200' <<<"$RESP"
	wait_hub 4
	jq -se --arg b "$b" 'map(.body) == [$b, $b, $b, "not { json"]
		and map(.valid) == [true, false, false, true]
		and map(.signature) == [.[0].signature, "sha256=deadbeef", null, .[3].signature]
		and .[3].json == null' "$HUB_OUT"
	webhook_out | jq -se 'length == 4 and all(.[]; .source == "raw")
		and map(.status) == [200, 401, 401, 200]'
	# No url and no --status-webhook: refused. Nothing reachable: status 0.
	ctl raw '{"body":"{}"}'
	[ "$CODE" = 400 ]
	ctl inbound '{"from":"5511","text":"x"}'
	[ "$CODE" = 400 ]
	ctl raw '{"body":"{}","url":"http://127.0.0.1:1/nothing"}'
	[ "$CODE" = 200 ]
	jq -e '.status == 0 and (.error | length) > 0' <<<"$RESP"
	stats | jq -e '.webhooks_posted == 5 and .webhooks_acknowledged == 2 and .webhooks_failed == 3'
	[ "$(hub_count)" -eq 4 ]
}

@test "control endpoints without an app secret sign nothing" {
	start_hub
	start_standin
	ctl inbound "$(jq -nc --arg u "$HUB_URL" '{from: "5511987654321", text: "x", url: $u}')"
	[ "$CODE" = 400 ]
	jq -e '.error | contains("app-secret")' <<<"$RESP"
	ctl raw "$(jq -nc --arg u "$HUB_URL" '{body: "{}", url: $u}')"
	[ "$CODE" = 400 ]
	# An explicit signature (or none) needs no secret.
	ctl raw "$(jq -nc --arg u "$HUB_URL" '{body: "{}", url: $u, signature: null}')"
	jq -e '.status == 401' <<<"$RESP"
	[ "$(hub_count)" -eq 1 ]
}

@test "--status-webhook without an app secret exits 78; the secret file is checked" {
	run -78 --separate-stderr "$WA" --token-file "$BATS_TEST_TMPDIR/token" \
		--status-webhook http://127.0.0.1:9/hook
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == *app-secret-file* ]]
	run -78 --separate-stderr "$WA" --token-file "$BATS_TEST_TMPDIR/token" \
		--status-webhook http://127.0.0.1:9/hook --app-secret-file "$BATS_TEST_TMPDIR/nonexistent"
	[ "${#stderr_lines[@]}" -eq 1 ]
	: >"$BATS_TEST_TMPDIR/empty"
	run -78 --separate-stderr "$WA" --token-file "$BATS_TEST_TMPDIR/token" \
		--app-secret-file "$BATS_TEST_TMPDIR/empty"
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" != *"$SECRET"* ]]
}

@test "SIGTERM with a receiver that never answers: exits at once with 0" {
	start_hub --hang
	# its POSTs would give up only after a minute
	start_hooked --status-delay-ms 0 --webhook-timeout-ms 60000
	local i
	for i in 1 2 3 4 5; do
		post "$(to "+551198765432$i")"
		expect_success
	done
	wait_hub 1
	# An inbound request hangs on the receiver too.
	curl -s -o /dev/null -H 'Content-Type: application/json' \
		--data-binary '{"from":"5511987654321","text":"oi"}' "$BASE/_standin/inbound" 3>&- &
	local cpid=$!
	wait_hub 2
	stats | jq -e '.webhooks_pending >= 10'
	local t0 t1 rc=0
	t0=$(date +%s%N)
	kill -TERM "$SA_PID"
	wait "$SA_PID" || rc=$?
	t1=$(date +%s%N)
	[ "$rc" -eq 0 ]
	# far less than the minute it would have waited for its POSTs
	[ $(((t1 - t0) / 1000000)) -lt 30000 ] || {
		echo "took $(((t1 - t0) / 1000000)) ms to stop" >&2
		return 1
	}
	grep -q 'stopped by SIGTERM' "$SA_ERR"
	wait "$cpid" || true
	# What was in flight is recorded as cut short.
	webhook_out | jq -se 'length == 2 and all(.[]; .status == 0 and .error == "stopping")'
}

# ---- Meta's account rules (README "Meta's account rules") ----

# account: what the stand-in counted (GET /_standin/account).
account() {
	curl -sS "$BASE/_standin/account"
}

# tpl NAME LANG: the valid body with that template, to the default number.
tpl() {
	body ".template.name = \"$1\" | .template.language.code = \"$2\""
}

# sendto TO NAME: a send of template NAME (pt_BR) to TO.
sendto() {
	post "$(body ".to = \"$1\" | .template.name = \"$2\"")"
}

@test "account: a paused template answers 132015 exactly as Meta does, until approved again" {
	start_standin
	post "$(tpl engagement_goodbye pt_BR)"
	expect_success
	# Told with a hyphen; sends use the underscore: the same template.
	ctl template '{"name":"engagement_goodbye","language":"pt-BR","status":"PAUSED"}'
	[ "$CODE" = 200 ]
	jq -e '.name == "engagement_goodbye" and .language == "pt_BR" and .status == "PAUSED"
		and .category == "marketing" and .billable == true
		and (.message_template_id | tostring | test("^[1-9][0-9]{14}$"))' <<<"$RESP"
	local i
	for i in 1 2 3; do
		post "$(tpl engagement_goodbye pt_BR)"
		expect_error 400 132015
		jq -e '.error.message == "(#132015) Template is Paused"
			and .error.type == "OAuthException"
			and .error.error_data.messaging_product == "whatsapp"
			and (.error.error_data.details | test("paused"))
			and (keys == ["error"])' <<<"$RESP"
	done
	# Other templates, and the same name in another language, still go.
	post "$(tpl engagement_review pt_BR)"
	expect_success
	post "$(tpl engagement_goodbye en)"
	expect_success
	# Disabled: 132016. Approved (or reinstated) again: it sends.
	ctl template '{"name":"engagement_goodbye","language":"pt_BR","status":"DISABLED"}'
	post "$(tpl engagement_goodbye pt_BR)"
	expect_error 400 132016
	jq -e '.error.message == "(#132016) Template is disabled"' <<<"$RESP"
	ctl template '{"name":"engagement_goodbye","language":"pt_BR","status":"REINSTATED"}'
	jq -e '.status == "APPROVED"' <<<"$RESP"
	post "$(tpl engagement_goodbye pt_BR)"
	expect_success
	# A rule without a language holds for every language of the name; the
	# rule for an exact language wins over it.
	ctl template '{"name":"engagement_goodbye","status":"PAUSED"}'
	jq -e '.language == null and .status == "PAUSED"' <<<"$RESP"
	post "$(tpl engagement_goodbye en)"
	expect_error 400 132015
	ctl template '{"name":"engagement_goodbye","language":"pt_BR","status":"APPROVED"}'
	post "$(tpl engagement_goodbye pt_BR)"
	expect_success
	# What it counted, per template and language as sent.
	account | jq -e '.templates.engagement_goodbye.pt_BR == {"requests": 7, "accepted": 3,
			"by_code": {"132015": 3, "132016": 1}}
		and .templates.engagement_goodbye.en == {"requests": 2, "accepted": 1,
			"by_code": {"132015": 1}}
		and .templates.engagement_review.pt_BR.requests == 1
		and .refusals == {"132015": 4, "132016": 1}
		and (.rules | map([.name, .language, .status])
			== [["engagement_goodbye", "pt_BR", "APPROVED"],
			    ["engagement_goodbye", null, "PAUSED"]])'
	# The refusals are recorded and counted like any other answer.
	jq -se '[.[] | select(.error_code == 132015)] | length == 4' "$REC"
	stats | jq -e '.by_code["132015"] == 4 and .requests == 10'
}

@test "account: the pair rate is off by default; on, a second message within N ms gets 131056" {
	start_standin
	post "$(body)"
	expect_success
	post "$(body)"
	expect_success
	ctl limits '{"pair_interval_ms":60000}'
	[ "$CODE" = 200 ]
	jq -e '.pair_interval_ms == 60000 and .messaging_limit == null' <<<"$RESP"
	post "$(body)"
	expect_error 400 131056
	jq -e '.error.message == "(#131056) (Business Account, Consumer Account) pair rate limit hit"' <<<"$RESP"
	# Another person is not held up.
	post "$(to +5511987654322)"
	expect_success
	# A refused message does not restart the interval: once it has passed
	# since the last accepted one, the next goes.
	ctl limits '{"pair_interval_ms":300}'
	sleep 0.4
	post "$(body)"
	expect_success
	# Two at once to one person: exactly one is accepted.
	ctl limits '{"pair_interval_ms":60000}'
	local b i pids=()
	b=$(to +5511987654323)
	for i in 1 2; do
		curl -sS -o "$BATS_TEST_TMPDIR/par$i" -H "Authorization: Bearer $TOKEN" \
			-H 'Content-Type: application/json' --data-binary "$b" "$URL" 3>&- &
		pids+=($!)
	done
	wait "${pids[@]}"
	cat "$BATS_TEST_TMPDIR/par1" "$BATS_TEST_TMPDIR/par2" |
		jq -se 'map(if .messages then "ok" else .error.code end) | sort == [131056, "ok"]'
	account | jq -e '.refusals == {"131056": 2}
		and .recipients["+5511987654321"] == {"requests": 4, "accepted": 3,
			"by_code": {"131056": 1}}
		and .recipients["+5511987654323"].accepted == 1'
	# 0 turns it off again; --pair-interval-ms sets it at start.
	ctl limits '{"pair_interval_ms":0}'
	post "$(to +5511987654323)"
	expect_success
	kill -TERM "$SA_PID"
	wait "$SA_PID"
	start_standin --pair-interval-ms 6000
	account | jq -e '.pair_interval_ms == 6000'
	post "$(body)"
	expect_success
	post "$(body)"
	expect_error 400 131056
}

@test "account: past the messaging limit a new recipient gets 131049 (or 130429); those reached still get theirs" {
	start_standin
	ctl limits '{"messaging_limit":3}'
	jq -e '.messaging_limit == 3 and .limit_code == 131049 and .limit_window_ms == 86400000
		and .limit_used == 0' <<<"$RESP"
	local n
	for n in 1 2 3; do
		post "$(to "+551198765400$n")"
		expect_success
	done
	# Reached already: sent again, not counted again.
	post "$(to +5511987654001)"
	expect_success
	post "$(to +5511987654004)"
	expect_error 400 131049
	jq -e '.error.message | startswith("(#131049) This message was not delivered")' <<<"$RESP"
	# Refused recipients are not reached: still refused.
	post "$(to +5511987654004)"
	expect_error 400 131049
	ctl limits '{"limit_code":130429}'
	post "$(to +5511987654005)"
	expect_error 429 130429
	jq -e '.error.error_subcode == 2494055' <<<"$RESP"
	account | jq -e '.limit_used == 3 and .refusals == {"131049": 2, "130429": 1}
		and .recipients["+5511987654001"] == {"requests": 2, "accepted": 2, "by_code": {}}
		and .recipients["+5511987654004"] == {"requests": 2, "accepted": 0,
			"by_code": {"131049": 2}}'
	# The window moves: once the reached ones are older than it, new ones go.
	ctl limits '{"limit_window_ms":300}'
	sleep 0.4
	post "$(to +5511987654005)"
	expect_success
	account | jq -e '.limit_used == 1'
	# Recipients reached before the stand-in started take a place.
	ctl limits '{"limit_window_ms":86400000,"messaging_limit":2,"reached":["+5511987654009"],"reached_ago_ms":3600000}'
	jq -e '.limit_used == 5' <<<"$RESP"
	post "$(to +5511987654009)"
	expect_success
	post "$(to +5511987654010)"
	expect_error 429 130429
	# No limit again: null.
	ctl limits '{"messaging_limit":null}'
	jq -e '.messaging_limit == null' <<<"$RESP"
	post "$(to +5511987654010)"
	expect_success
	# --messaging-limit at start; 0 refuses everyone.
	kill -TERM "$SA_PID"
	wait "$SA_PID"
	start_standin --messaging-limit 0
	post "$(body)"
	expect_error 400 131049
}

@test "account: statuses carry the template's pricing category (default marketing)" {
	start_hub
	start_hooked --statuses sent,delivered
	ctl template '{"name":"engagement_review","language":"pt-BR","category":"utility"}'
	jq -e '.status == "APPROVED" and .category == "utility"' <<<"$RESP"
	ctl template '{"name":"engagement_free","category":"service","billable":false}'
	post "$(body '.to = "+5511987654001" | .template.name = "engagement_review"')"
	expect_success
	post "$(body '.to = "+5511987654002" | .template.name = "engagement_goodbye"')"
	expect_success
	post "$(body '.to = "+5511987654003" | .template.name = "engagement_free" | .template.language.code = "en"')"
	expect_success
	wait_hub 6
	wait_stats '.webhooks_pending == 0'
	local s
	s=$(jq -sc '[.[].json.entry[0].changes[0].value.statuses[0]
		| {r: .recipient_id, p: .pricing, o: .conversation.origin.type}] | group_by(.r)
		| map({key: .[0].r, value: .}) | from_entries' "$HUB_OUT")
	jq -e '(.["5511987654001"] | length == 2 and all(.[]; .o == "utility"
			and .p == {"billable": true, "pricing_model": "PMP", "category": "utility",
				"type": "regular"}))
		and (.["5511987654002"] | all(.[]; .o == "marketing"
			and .p.category == "marketing" and .p.billable == true))
		and (.["5511987654003"] | all(.[]; .p == {"billable": false,
			"pricing_model": "PMP", "category": "service",
			"type": "free_customer_service"}))' <<<"$s"
}

@test "account webhooks: the three fields, signed, in Meta's envelope, at the chosen time" {
	start_hub
	start_hooked
	ctl template '{"name":"engagement_goodbye","language":"pt_BR"}'
	local id
	id=$(jq -r .message_template_id <<<"$RESP")
	ctl account_webhook '{"field":"message_template_status_update","time":1763460000,
		"value":{"event":"PAUSED","message_template_name":"engagement_goodbye",
			"message_template_language":"pt-BR",
			"other_info":{"title":"FIRST_PAUSE","description":"d"}}}'
	[ "$CODE" = 200 ]
	jq -e --argjson id "$id" '.status == 200 and .statuses == [200] and .error == null
		and .body == {"object": "whatsapp_business_account",
			"entry": [{"id": "102290129340398", "time": 1763460000,
				"changes": [{"field": "message_template_status_update",
					"value": {"event": "PAUSED", "message_template_id": $id,
						"message_template_name": "engagement_goodbye",
						"message_template_language": "pt-BR", "reason": "NONE",
						"other_info": {"title": "FIRST_PAUSE",
							"description": "d"}}}]}]}' <<<"$RESP"
	# Only posted: the template still sends (no "apply").
	post "$(body)"
	expect_success
	ctl account_webhook '{"field":"message_template_quality_update","time":"1763460001",
		"value":{"previous_quality_score":"GREEN","new_quality_score":"RED",
			"message_template_name":"engagement_goodbye","message_template_language":"en",
			"message_template_id":806312974732579}}'
	jq -e '.body.entry[0].time == 1763460001 and .body.entry[0].changes[0]
		== {"field": "message_template_quality_update",
			"value": {"previous_quality_score": "GREEN", "new_quality_score": "RED",
				"message_template_id": 806312974732579,
				"message_template_name": "engagement_goodbye",
				"message_template_language": "en"}}' <<<"$RESP"
	ctl account_webhook '{"field":"phone_number_quality_update",
		"value":{"event":"DOWNGRADE","old_limit":"TIER_10K","current_limit":"TIER_2K",
			"max_daily_conversations_per_business":"2000"}}'
	local t
	t=$(date +%s)
	jq -e --argjson t "$t" '(.body.entry[0].time - $t | fabs) <= 2
		and .body.entry[0].changes[0] == {"field": "phone_number_quality_update",
			"value": {"display_phone_number": "15550783881", "event": "DOWNGRADE",
				"old_limit": "TIER_10K", "current_limit": "TIER_2K",
				"max_daily_conversations_per_business": "2000"}}' <<<"$RESP"
	# Several changes in one POST, one entry each, in the order given (here
	# older last); a replay with repeat.
	ctl account_webhook '{"changes":[
		{"field":"message_template_status_update","time":1763460100,
		 "value":{"event":"APPROVED","message_template_name":"engagement_goodbye",
			  "message_template_language":"pt_BR"}},
		{"field":"message_template_status_update","time":1763460050,
		 "value":{"event":"PAUSED","message_template_name":"engagement_goodbye",
			  "message_template_language":"pt_BR","reason":"LOW_QUALITY"}}],
		"repeat":2}'
	jq -e --argjson id "$id" '.statuses == [200, 200]
		and (.body.entry | map(.time) == [1763460100, 1763460050])
		and (.body.entry | map(.changes[0].value | [.event, .reason, .message_template_id])
			== [["APPROVED", "NONE", $id], ["PAUSED", "LOW_QUALITY", $id]])' <<<"$RESP"
	# sent, delivered, read of the send, and 5 account POSTs
	wait_hub 8
	wait_stats '.webhooks_pending == 0'
	# Every POST signed with the app secret, as the receiver checked.
	jq -se 'all(.[]; .valid and .answered == 200)' "$HUB_OUT"
	jq -se '[.[] | select(.json.entry[0].changes[0].field != "messages")] | length == 5
		and (.[-1].body == .[-2].body)' "$HUB_OUT"
	webhook_out | jq -se '[.[] | select(.source == "account")]
		| map(.fields) == [["message_template_status_update"],
			["message_template_quality_update"], ["phone_number_quality_update"],
			["message_template_status_update", "message_template_status_update"],
			["message_template_status_update", "message_template_status_update"]]
		and map(.attempt) == [1, 1, 1, 1, 2]
		and all(.[]; .statuses == null and .messages == null)'
	# The account webhooks are not sends.
	stats | jq -e '.requests == 1'
}

@test "account webhooks: apply makes the stand-in play what it announced" {
	start_hub
	start_hooked --statuses ''
	ctl account_webhook '{"field":"message_template_status_update","apply":true,
		"value":{"event":"PAUSED","message_template_name":"engagement_goodbye",
			"message_template_language":"pt-BR"}}'
	[ "$CODE" = 200 ]
	post "$(body)"
	expect_error 400 132015
	# Events that are not a state change nothing.
	ctl account_webhook '{"field":"message_template_status_update","apply":true,
		"value":{"event":"FLAGGED","message_template_name":"engagement_goodbye",
			"message_template_language":"pt_BR"}}'
	post "$(body)"
	expect_error 400 132015
	ctl account_webhook '{"field":"message_template_status_update","apply":true,
		"value":{"event":"APPROVED","message_template_name":"engagement_goodbye",
			"message_template_language":"pt_BR"}}'
	post "$(body)"
	expect_success
	ctl account_webhook '{"field":"message_template_status_update","apply":true,
		"value":{"event":"DISABLED","message_template_name":"engagement_goodbye",
			"message_template_language":"pt_BR","disable_info":{"disable_date":1763460000}}}'
	jq -e '.body.entry[0].changes[0].value.disable_info == {"disable_date": 1763460000}' <<<"$RESP"
	post "$(body)"
	expect_error 400 132016
	# The limit, from current_limit or from max_daily_conversations_per_business.
	ctl account_webhook '{"field":"phone_number_quality_update","apply":true,
		"value":{"event":"ONBOARDING","current_limit":"TIER_250"}}'
	account | jq -e '.messaging_limit == 250'
	ctl account_webhook '{"field":"phone_number_quality_update","apply":true,
		"value":{"event":"UPGRADE","current_limit":"TIER_10K",
			"max_daily_conversations_per_business":"2000"}}'
	account | jq -e '.messaging_limit == 2000'
	ctl account_webhook '{"field":"phone_number_quality_update","apply":true,
		"value":{"event":"UPGRADE","max_daily_conversations_per_business":"unlimited"}}'
	account | jq -e '.messaging_limit == null'
	ctl account_webhook '{"field":"phone_number_quality_update","apply":true,
		"value":{"event":"DOWNGRADE","current_limit":"TIER_50"}}'
	account | jq -e '.messaging_limit == 50'
	# Without apply nothing changes.
	ctl account_webhook '{"field":"phone_number_quality_update",
		"value":{"event":"UPGRADE","current_limit":"TIER_UNLIMITED"}}'
	account | jq -e '.messaging_limit == 50'
	# Applied whatever the receiver answers (here none).
	ctl account_webhook '{"field":"message_template_status_update","apply":true,
		"url":"http://127.0.0.1:1/nothing",
		"value":{"event":"REINSTATED","message_template_name":"engagement_goodbye",
			"message_template_language":"pt_BR"}}'
	jq -e '.status == 0 and (.error | length) > 0' <<<"$RESP"
	post "$(body)"
	expect_success
}

@test "account controls: bad input gets 400 with a clear error and changes nothing" {
	start_hub
	start_hooked --statuses ''
	# expect_refused PATH JSON WORDS: 400 {"error": ...mentioning WORDS}
	expect_refused() {
		ctl "$1" "$2"
		if [ "$CODE" != 400 ]; then
			echo "$1 $2: HTTP $CODE, expected 400: $RESP" >&2
			return 1
		fi
		jq -e --arg w "$3" '(keys == ["error"]) and (.error | contains($w))' <<<"$RESP" >/dev/null || {
			echo "$1 $2: the error does not mention '$3': $RESP" >&2
			return 1
		}
	}
	expect_refused template 'not json' 'JSON object'
	expect_refused template '[1]' 'JSON object'
	expect_refused template '{}' '"name"'
	expect_refused template '{"name":""}' '"name"'
	expect_refused template '{"name":"t","status":"paused"}' '"status"'
	expect_refused template '{"name":"t","status":"PENDING"}' '"status"'
	expect_refused template '{"name":"t","language":"Portuguese"}' '"language"'
	expect_refused template '{"name":"t","language":5}' '"language"'
	expect_refused template '{"name":"t","category":"Marketing"}' '"category"'
	expect_refused template '{"name":"t","billable":"yes"}' '"billable"'
	expect_refused template '{"name":"t","paused":true}' 'unknown member "paused"'
	expect_refused limits '{"pair_interval_ms":-1}' '"pair_interval_ms"'
	expect_refused limits '{"pair_interval_ms":"6000"}' '"pair_interval_ms"'
	expect_refused limits '{"pair_interval_ms":86400001}' '"pair_interval_ms"'
	expect_refused limits '{"messaging_limit":-5}' '"messaging_limit"'
	expect_refused limits '{"messaging_limit":"TIER_250"}' '"messaging_limit"'
	expect_refused limits '{"limit_code":131056}' '"limit_code"'
	expect_refused limits '{"limit_window_ms":0}' '"limit_window_ms"'
	expect_refused limits '{"reached":"+5511987654321"}' '"reached"'
	expect_refused limits '{"reached":["+5511987654321",7]}' '"reached"[1]'
	expect_refused limits '{"reached_ago_ms":1.5}' '"reached_ago_ms"'
	# One bad member: nothing of the request is taken.
	expect_refused limits '{"pair_interval_ms":6000,"messaging_limit":"x"}' '"messaging_limit"'
	expect_refused limits '{"pair":6000}' 'unknown member "pair"'
	expect_refused reset '{"reached":1}' '"reached"'
	expect_refused reset '{"all":true}' 'unknown member "all"'
	expect_refused reset '' 'JSON object'
	expect_refused account_webhook '{}' '"field" and "value" are required'
	expect_refused account_webhook '{"field":"messages","value":{}}' '"field" must be'
	expect_refused account_webhook '{"field":"message_template_status_update","value":[]}' '"value" must be a JSON object'
	expect_refused account_webhook '{"field":"message_template_status_update","value":{"event":"PAUSE","message_template_name":"t","message_template_language":"en"}}' 'value.event must be one of'
	expect_refused account_webhook '{"field":"message_template_status_update","value":{"event":"PAUSED","message_template_language":"en"}}' 'value.message_template_name'
	expect_refused account_webhook '{"field":"message_template_status_update","value":{"event":"PAUSED","message_template_name":"t"}}' 'value.message_template_language'
	expect_refused account_webhook '{"field":"message_template_status_update","value":{"event":"PAUSED","message_template_name":"t","message_template_language":"en","message_template_id":"x"}}' 'value.message_template_id'
	expect_refused account_webhook '{"field":"message_template_status_update","value":{"event":"PAUSED","message_template_name":"t","message_template_language":"en","other_info":"x"}}' 'value.other_info'
	expect_refused account_webhook '{"field":"message_template_quality_update","value":{"new_quality_score":"PURPLE","message_template_name":"t","message_template_language":"en"}}' 'new_quality_score'
	expect_refused account_webhook '{"field":"phone_number_quality_update","value":{"event":"SIDEWAYS"}}' 'value.event must be one of FLAGGED'
	expect_refused account_webhook '{"field":"phone_number_quality_update","value":{"event":"UPGRADE","current_limit":"TIER_3"}}' 'current_limit'
	expect_refused account_webhook '{"field":"phone_number_quality_update","value":{"event":"UPGRADE","max_daily_conversations_per_business":"lots"}}' 'max_daily_conversations_per_business'
	expect_refused account_webhook '{"field":"phone_number_quality_update","value":{"event":"UPGRADE","display_phone_number":"+1555"}}' 'display_phone_number'
	expect_refused account_webhook '{"field":"phone_number_quality_update","time":-1,"value":{"event":"UPGRADE"}}' '"time" must be Unix seconds'
	expect_refused account_webhook '{"field":"phone_number_quality_update","time":"soon","value":{"event":"UPGRADE"}}' '"time" must be Unix seconds'
	expect_refused account_webhook '{"field":"phone_number_quality_update","apply":"yes","value":{"event":"UPGRADE"}}' '"apply"'
	expect_refused account_webhook '{"field":"phone_number_quality_update","repeat":0,"value":{"event":"UPGRADE"}}' '"repeat"'
	expect_refused account_webhook '{"field":"phone_number_quality_update","url":"ftp://x/","value":{"event":"UPGRADE"}}' '"url"'
	expect_refused account_webhook '{"changes":[]}' '"changes" must be an array'
	expect_refused account_webhook '{"changes":[{"field":"phone_number_quality_update","value":{"event":"UPGRADE"}}],"field":"x"}' 'either "changes"'
	expect_refused account_webhook '{"changes":[{"field":"phone_number_quality_update","value":{"event":"UPGRADE"}},{"field":"phone_number_quality_update","value":{"event":"UP"}}]}' 'changes[1]: value.event'
	expect_refused account_webhook '{"changes":[{"field":"phone_number_quality_update","value":{"event":"UPGRADE"},"when":1}]}' 'changes[0]: unknown member "when"'
	expect_refused account_webhook '{"field":"phone_number_quality_update","value":{"event":"UPGRADE"},"x":1}' 'unknown member "x"'
	# A bad apply changes nothing either.
	expect_refused account_webhook '{"changes":[{"field":"phone_number_quality_update","value":{"event":"UPGRADE","current_limit":"TIER_50"}},{"field":"phone_number_quality_update","value":{}}],"apply":true}' 'changes[1]: value.event'
	# Other methods: 405.
	raw -X GET "$BASE/_standin/template"
	[ "$CODE" = 405 ]
	grep -qi '^Allow: POST' "$BATS_TEST_TMPDIR/headers"
	raw -X GET "$BASE/_standin/account_webhook"
	[ "$CODE" = 405 ]
	raw -X POST -d '{}' "$BASE/_standin/account"
	[ "$CODE" = 405 ]
	grep -qi '^Allow: GET' "$BATS_TEST_TMPDIR/headers"
	# Nothing changed, nothing posted, nothing counted.
	account | jq -e '.pair_interval_ms == 0 and .messaging_limit == null and .rules == []
		and .limit_code == 131049 and .limit_window_ms == 86400000 and .limit_used == 0
		and .refusals == {} and .templates == {} and .recipients == {}'
	[ "$(hub_count)" -eq 0 ]
	stats | jq -e '.requests == 0 and .webhooks_posted == 0'
	# Without an app secret an account webhook cannot be signed.
	kill -TERM "$SA_PID"
	wait "$SA_PID"
	start_standin
	expect_refused account_webhook "$(jq -nc --arg u "$HUB_URL" '{field: "phone_number_quality_update", value: {event: "UPGRADE"}, url: $u}')" 'app-secret'
	[ "$(hub_count)" -eq 0 ]
}

@test "account: reset zeroes the counters; reached and rules only when asked" {
	start_standin
	ctl template '{"name":"engagement_goodbye","language":"pt_BR","status":"PAUSED"}'
	ctl limits '{"pair_interval_ms":60000,"messaging_limit":5}'
	post "$(body)"
	expect_error 400 132015
	post "$(tpl engagement_review pt_BR)"
	expect_success
	ctl reset '{}'
	[ "$CODE" = 200 ]
	jq -e '. == {"reset": true}' <<<"$RESP"
	account | jq -e '.refusals == {} and .templates == {} and .recipients == {}
		and .limit_used == 1 and (.rules | length) == 1 and .pair_interval_ms == 60000'
	# Still reached: the pair rate holds.
	post "$(tpl engagement_review pt_BR)"
	expect_error 400 131056
	ctl reset '{"reached":true}'
	account | jq -e '.limit_used == 0 and .refusals == {}'
	post "$(tpl engagement_review pt_BR)"
	expect_success
	post "$(body)"
	expect_error 400 132015
	ctl reset '{"rules":true}'
	account | jq -e '.rules == [] and .pair_interval_ms == 0 and .messaging_limit == null
		and .limit_used == 1'
	post "$(body)"
	expect_success
	post "$(body)"
	expect_success
}
