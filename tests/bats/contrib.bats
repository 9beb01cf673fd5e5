#!/usr/bin/env bats
# shellcheck disable=SC2154,SC2016 # bats sets $output and $status; wait_for conditions are single-quoted
# contrib/: the nginx site in front of engagement-webhook, for real. nginx
# runs the site file (adapted only in its addresses, certificate and log
# paths: a self-signed certificate, free loopback ports) in a folder of its
# own; the receiver runs on another free port behind it; curl talks https to
# nginx. And the systemd unit passes systemd-analyze verify.

load helpers
load contrib_helpers

SITE=$ENG_SRC/contrib/nginx/engagement-webhook.conf
UNIT=$ENG_SRC/contrib/systemd/engagement-webhook.service
HOOK_PATH=/whatsapp/webhook # the site's location (the receiver's / behind it)

setup() {
	NGINX_PID=
	HOOK_PID=
	W=$BATS_TEST_TMPDIR
	case "$BATS_TEST_DESCRIPTION" in *systemd*) return 0 ;; esac
	NGINX=$(nginx_bin)
	[ -n "$NGINX" ] || skip "nginx is not installed and cannot be"
	new_db
	SECRET="app-secret-$RANDOM$RANDOM"
	TOKEN="verify-token-$RANDOM$RANDOM"
	printf '%s\n' "$SECRET" >"$W/app-secret"
	printf '%s\n' "$TOKEN" >"$W/verify-token"
	chmod 600 "$W/app-secret" "$W/verify-token"
	start_hook
	start_nginx
}

teardown() {
	if [ -n "$NGINX_PID" ]; then
		kill "$NGINX_PID" 2>/dev/null || true
		wait_for 30 '! kill -0 "$NGINX_PID" 2>/dev/null' || true
	fi
	if [ -n "$HOOK_PID" ]; then
		kill -TERM "$HOOK_PID" 2>/dev/null || true
		wait "$HOOK_PID" 2>/dev/null || true
	fi
	drop_dbs
}

# start_hook: engagement-webhook on a free loopback port, as the unit runs
# it (its default --path /).
start_hook() {
	"$ENG_BIN/engagement-webhook" --db "$CONN" --listen 127.0.0.1:0 \
		--app-secret-file "$W/app-secret" --verify-token-file "$W/verify-token" \
		>"$W/hook.out" 2>"$W/hook.log" 3>&- &
	HOOK_PID=$!
	HOOK_PORT=
	wait_for 30 '! kill -0 "$HOOK_PID" 2>/dev/null || grep -q "\"event\":\"listening\"" "$W/hook.log" 2>/dev/null' || true
	HOOK_PORT=$(grep '"event":"listening"' "$W/hook.log" 2>/dev/null | jq -r .port) || true
	if [ -z "$HOOK_PORT" ] || [ "$HOOK_PORT" = 0 ]; then
		echo "engagement-webhook did not start:" >&2
		cat "$W/hook.log" "$W/hook.out" >&2
		return 1
	fi
}

# start_nginx: the site file, with only what a deployment changes anyway
# changed: the certificate (self-signed for 127.0.0.1), the ports, the log
# folder and the receiver's address. Sets HTTPS_PORT and HTTP_PORT. A port
# found free may be taken by someone else before nginx binds it: then it
# tries again with others.
start_nginx() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$W/key.pem" -out "$W/cert.pem" 2>/dev/null
	local try
	for try in 1 2 3 4 5; do
		nginx_on_free_ports && return 0
		grep -q 'Address already in use' "$W/error.log" 2>/dev/null || return 1
		echo "nginx: a port was taken meanwhile (try $try), again" >&2
	done
	return 1
}

# nginx_on_free_ports: one try of start_nginx (called in a condition, where
# a failed command does not end the test: each check returns)
nginx_on_free_ports() {
	rm -f "$W/error.log" "$W/nginx.pid"
	HTTPS_PORT=$(free_port)
	HTTP_PORT=$(free_port)
	sed -e "s#/etc/letsencrypt/live/webhook.example.com/fullchain.pem#$W/cert.pem#" \
		-e "s#/etc/letsencrypt/live/webhook.example.com/privkey.pem#$W/key.pem#" \
		-e "s#/var/log/nginx/#$W/#" \
		-e "s#^\( *\)listen 443 #\1listen 127.0.0.1:$HTTPS_PORT #" \
		-e "s#^\( *\)listen 80;#\1listen 127.0.0.1:$HTTP_PORT;#" \
		-e '/listen \[::\]:/d' \
		-e "s#server 127.0.0.1:8090;#server 127.0.0.1:$HOOK_PORT;#" \
		"$SITE" >"$W/site.conf"
	# the adaptation changed what it should, and only that
	{
		grep -q "listen 127.0.0.1:$HTTPS_PORT ssl" "$W/site.conf" &&
			grep -q "server 127.0.0.1:$HOOK_PORT;" "$W/site.conf" &&
			grep -q "ssl_certificate *$W/cert.pem" "$W/site.conf" &&
			[ "$(diff "$SITE" "$W/site.conf" | grep -c '^>')" -eq 7 ]
	} || {
		echo "the site file was not adapted as expected:" >&2
		diff "$SITE" "$W/site.conf" >&2
		return 1
	}
	local user=
	[ "$(id -u)" = 0 ] && user="user root;"
	mkdir -p "$W/temp" || return 1
	cat >"$W/nginx.conf" <<-CONF
		$user
		worker_processes 1;
		pid $W/nginx.pid;
		error_log $W/error.log warn;
		events { worker_connections 64; }
		http {
		    access_log $W/access.log;
		    client_body_temp_path $W/temp/body;
		    proxy_temp_path $W/temp/proxy;
		    fastcgi_temp_path $W/temp/fastcgi;
		    uwsgi_temp_path $W/temp/uwsgi;
		    scgi_temp_path $W/temp/scgi;
		    include $W/site.conf;
		}
	CONF
	run "$NGINX" -t -q -e "$W/error.log" -p "$W" -c "$W/nginx.conf"
	[ "$status" -eq 0 ] || { echo "nginx -t: $output" >&2; cat "$W/error.log" >&2; return 1; }
	"$NGINX" -e "$W/error.log" -p "$W" -c "$W/nginx.conf" 3>&- || return 1
	wait_for 30 test -s "$W/nginx.pid" || return 1
	NGINX_PID=$(cat "$W/nginx.pid")
	wait_for 30 curl -sk -o /dev/null "https://127.0.0.1:$HTTPS_PORT/" && return 0
	echo "nginx does not answer on $HTTPS_PORT:" >&2
	cat "$W/error.log" >&2
	return 1
}

# sign FILE: the X-Hub-Signature-256 value for FILE's bytes.
sign() {
	printf 'sha256=%s' "$(openssl dgst -sha256 -hmac "$SECRET" -r "$1" | cut -d' ' -f1)"
}

# post FILE SIGNATURE: POST the file through nginx; $output is "CODE BODY".
post() {
	run curl -sk -o "$W/answer" -w '%{http_code}' -X POST \
		-H 'Content-Type: application/json' -H "X-Hub-Signature-256: $2" \
		--data-binary "@$1" "https://127.0.0.1:$HTTPS_PORT$HOOK_PATH"
	output="$output $(cat "$W/answer")"
}

hex() { od -An -v -tx1 | tr -d ' \n'; }

# A delivery as Meta sends it: pretty-printed, a literal non-ASCII name and
# an escaped one, a trailing newline. Any change on the way (re-encoding,
# whitespace, a lost byte) would break the signature and show in the inbox.
delivery() {
	cat >"$1" <<-'JSON'
		{
		  "object": "whatsapp_business_account",
		  "entry": [{"id": "102290129340398", "changes": [{"field": "messages",
		    "value": {"messaging_product": "whatsapp",
		      "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
		      "contacts": [{"profile": {"name": "João \u00c9rica 👍"}, "wa_id": "5511987654321"}],
		      "messages": [{"from": "5511987654321", "id": "wamid.CONTRIB1", "timestamp": "1763460000",
		        "type": "text", "text": {"body": "olá, tudo bem?"}}]}}]}]
		}
	JSON
}

@test "a signed delivery goes through https to the receiver: 200, stored byte for byte" {
	delivery "$W/d.json"
	post "$W/d.json" "$(sign "$W/d.json")"
	[ "$output" = "200 ok" ]
	[ "$(q "SELECT count(*) FROM engagement.webhook_inbox")" = 1 ]
	[ "$(q "SELECT encode(convert_to(body, 'UTF8'), 'hex') FROM engagement.webhook_inbox")" = "$(hex <"$W/d.json")" ]
	# and it was applied (an unknown number: counted and ignored)
	wait_q "SELECT count(*) FROM engagement.webhook_inbox WHERE applied_at IS NOT NULL" 1
	[ "$(q "SELECT result->>'messages' FROM engagement.webhook_inbox")" = 1 ]
}

@test "a wrong signature comes back 401 through the proxy, and nothing is stored" {
	delivery "$W/d.json"
	local good
	good=$(sign "$W/d.json")
	post "$W/d.json" "sha256=$(printf '%064d' 0)"
	[ "${output%% *}" = 401 ]
	# the right signature over other bytes: one character changed
	sed 's/olá/ola/' "$W/d.json" >"$W/changed.json"
	post "$W/changed.json" "$good"
	[ "${output%% *}" = 401 ]
	# no signature at all
	run curl -sk -o /dev/null -w '%{http_code}' -X POST --data-binary "@$W/d.json" \
		"https://127.0.0.1:$HTTPS_PORT$HOOK_PATH"
	[ "$output" = 401 ]
	[ "$(q "SELECT count(*) FROM engagement.webhook_inbox")" = 0 ]
	grep -q '"reason":"bad_signature"' "$W/hook.log"
	grep -q '"reason":"no_signature"' "$W/hook.log"
}

@test "the subscription check passes through; the verify token is not logged" {
	run curl -sk "https://127.0.0.1:$HTTPS_PORT$HOOK_PATH?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=$TOKEN"
	[ "$output" = 1158201444 ]
	run curl -sk -o /dev/null -w '%{http_code}' \
		"https://127.0.0.1:$HTTPS_PORT$HOOK_PATH?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong"
	[ "$output" = 403 ]
	# nginx writes its access log line after the answer
	local log=$W/engagement-webhook.access.log
	wait_for 30 '[ "$(grep -c "GET $HOOK_PATH " "$log" 2>/dev/null)" = 2 ]' || true
	[ "$(grep -c "GET $HOOK_PATH " "$log")" = 2 ]
	[ "$(grep -c -e "$TOKEN" -e verify_token -e challenge "$log")" = 0 ]
}

@test "the proxy refuses what the receiver would: other paths, other methods, bodies over 1 MiB" {
	run curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$HTTPS_PORT/"
	[ "$output" = 404 ]
	run curl -sk -o /dev/null -w '%{http_code}' -X PUT --data x "https://127.0.0.1:$HTTPS_PORT$HOOK_PATH"
	[ "$output" = 403 ]
	head -c 1048577 /dev/zero | tr '\0' ' ' >"$W/big"
	post "$W/big" "$(sign "$W/big")"
	[ "${output%% *}" = 413 ]
	# exactly --max-body still reaches the receiver (and, being blanks, is
	# not a JSON object: 400 from the receiver, not from nginx)
	head -c 1048576 /dev/zero | tr '\0' ' ' >"$W/edge"
	post "$W/edge" "$(sign "$W/edge")"
	[ "${output%% *}" = 400 ]
	grep -q '"reason":"not_json"' "$W/hook.log"
	# plain http only redirects to https
	run curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:$HTTP_PORT$HOOK_PATH"
	[ "${output%% *}" = 301 ]
	[[ "$output" == *"https://127.0.0.1$HOOK_PATH" ]]
	[ "$(q "SELECT count(*) FROM engagement.webhook_inbox")" = 0 ]
}

@test "the systemd unit passes systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	# the binary where this build has it (systemd checks that it exists);
	# the man page is not installed in a build tree
	sed "s#/usr/local/bin/engagement-webhook#$ENG_BIN/engagement-webhook#" "$UNIT" \
		>"$W/engagement-webhook.service"
	run systemd-analyze verify --man=no "$W/engagement-webhook.service"
	[ "$status" -eq 0 ] || { echo "$output" >&2; return 1; }
	[ -z "$output" ]
	# what the deployment relies on
	grep -q '^ExecStart=/usr/local/bin/engagement-webhook --listen 127.0.0.1:8090 ' "$UNIT"
	grep -qx 'Restart=on-failure' "$UNIT"
	grep -qx 'KillSignal=SIGTERM' "$UNIT"
	grep -qx 'EnvironmentFile=/etc/engagement/engagement-webhook.env' "$UNIT"
	grep -qx 'NoNewPrivileges=yes' "$UNIT"
	grep -qx 'ProtectSystem=strict' "$UNIT"
	# the proxy's and the unit's addresses agree
	grep -q 'server 127.0.0.1:8090;' "$SITE"
}
