# contrib/ tests' helpers (contrib.bats, contrib_report.bats): nginx, free ports.

# nginx_bin: nginx's path, installed from Debian if it is missing (as root or
# with sudo); empty when it cannot be.
nginx_bin() {
	local n
	n=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
	if [ -z "$n" ]; then
		if [ "$(id -u)" = 0 ]; then
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null 2>&1 || true
		elif command -v sudo >/dev/null; then
			sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null 2>&1 || true
		fi
		n=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)
	fi
	echo "$n"
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
