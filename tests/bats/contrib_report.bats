#!/usr/bin/env bats
# shellcheck disable=SC2154,SC2016 # bats sets $output and $status; wait_for conditions are single-quoted
# contrib/: the report page as a deployment serves it. engagement-status
# --html writes the page (as contrib/systemd/engagement-status.service
# does); nginx runs contrib/nginx/engagement-report.conf (adapted only in
# its address, folder and password file) and serves it behind a password,
# with a policy that lets the page load nothing. And the unit passes
# systemd-analyze verify.

load helpers
load contrib_helpers

SITE=$ENG_SRC/contrib/nginx/engagement-report.conf
UNIT=$ENG_SRC/contrib/systemd/engagement-status.service

setup() {
	NGINX_PID=
	W=$BATS_TEST_TMPDIR
}

teardown() {
	if [ -n "$NGINX_PID" ]; then
		kill "$NGINX_PID" 2>/dev/null || true
		wait_for 30 '! kill -0 "$NGINX_PID" 2>/dev/null' || true
	fi
	drop_dbs
}

# serve: nginx on a free port with the site, its root $W/www, its password
# oncall:$PASS. Sets PORT.
serve() {
	local user=
	PASS="pw-$RANDOM$RANDOM"
	printf 'oncall:%s\n' "$(openssl passwd -apr1 "$PASS")" >"$W/htpasswd"
	PORT=$(free_port)
	sed -e "s#listen 127.0.0.1:8091;#listen 127.0.0.1:$PORT;#" \
		-e "s#root /var/www/engagement;#root $W/www;#" \
		-e "s#auth_basic_user_file /etc/nginx/engagement-report.htpasswd;#auth_basic_user_file $W/htpasswd;#" \
		"$SITE" >"$W/site.conf"
	[ "$(diff "$SITE" "$W/site.conf" | grep -c '^>')" -eq 3 ]
	[ "$(id -u)" = 0 ] && user="user root;"
	mkdir -p "$W/temp"
	cat >"$W/nginx.conf" <<-CONF
		$user
		worker_processes 1;
		pid $W/nginx.pid;
		error_log $W/error.log warn;
		events { worker_connections 64; }
		http {
		    include /etc/nginx/mime.types;
		    access_log $W/access.log;
		    client_body_temp_path $W/temp/body;
		    proxy_temp_path $W/temp/proxy;
		    fastcgi_temp_path $W/temp/fastcgi;
		    uwsgi_temp_path $W/temp/uwsgi;
		    scgi_temp_path $W/temp/scgi;
		    include $W/site.conf;
		}
	CONF
	"$NGINX" -e "$W/error.log" -p "$W" -c "$W/nginx.conf" 3>&-
	wait_for 30 test -s "$W/nginx.pid"
	NGINX_PID=$(cat "$W/nginx.pid")
	wait_for 30 curl -s -o /dev/null "http://127.0.0.1:$PORT/"
}

@test "nginx serves the page engagement-status wrote: behind a password, nothing else, a policy that loads nothing" {
	NGINX=$(nginx_bin)
	[ -n "$NGINX" ] || skip "nginx is not installed and cannot be"
	new_db
	mkdir -p "$W/www"
	eng engagement-status --db "$CONN" --html "$W/www/index.html"
	[ "$status" -eq 0 ]
	serve
	run curl -s -o "$W/got" -D "$W/headers" -w '%{http_code}' -u "oncall:$PASS" "http://127.0.0.1:$PORT/"
	[ "$output" = 200 ]
	cmp "$W/got" "$W/www/index.html"
	grep -qi '^content-type: text/html' "$W/headers"
	grep -qi "^content-security-policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:" "$W/headers"
	# no password, a wrong one, another file: refused
	[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/")" = 401 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -u oncall:wrong "http://127.0.0.1:$PORT/")" = 401 ]
	echo secret >"$W/www/other.txt"
	[ "$(curl -s -o /dev/null -w '%{http_code}' -u "oncall:$PASS" "http://127.0.0.1:$PORT/other.txt")" = 404 ]
	# the next run replaces the page whole
	eng engagement-status --db "$CONN" --html "$W/www/index.html"
	[ "$status" -eq 0 ]
	curl -s -u "oncall:$PASS" "http://127.0.0.1:$PORT/index.html" | cmp - "$W/www/index.html"
}

@test "the status systemd unit passes systemd-analyze verify, and writes the page where the site reads it" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	sed "s#/usr/local/bin/engagement-status#$ENG_BIN/engagement-status#" "$UNIT" \
		>"$W/engagement-status.service"
	run systemd-analyze verify --man=no "$W/engagement-status.service"
	[ "$status" -eq 0 ] || { echo "$output" >&2; return 1; }
	[ -z "$output" ]
	grep -q -- '--html /var/www/engagement/index.html' "$UNIT"
	grep -q '^ReadWritePaths=.* /var/www/engagement$' "$UNIT"
	grep -q 'root /var/www/engagement;' "$SITE"
}
