# Failover helpers (ff_): a primary and a streaming standby for the fault
# trials of tests/faults/failover.bats (issue 25), next to lib.sh (source
# lib.sh first; bash only, no bats).
#
# ff_setup turns the cluster of tests/pg/cluster.sh (ENG_PGSTATE/env) into
# the first node of a pair: node 1 is its data directory, node 2 a copy made
# with pg_basebackup -R (its own socket directory and port). The primary
# waits for the standby (synchronous_standby_names '*', synchronous_commit
# on): what it acknowledged is on the standby. The pair is described in
# ENG_PGSTATE/ff.env (sourced after env): FS_DB_HOSTS names both nodes
# (host=SOCK1,SOCK2 port=P1,P2 target_session_attrs=read-write), for the
# programs' --db (fs_conn); PGHOST and PGPORT name the primary alone, for
# psql and the helpers of lib.sh (which must not depend on what the
# programs are tested for); FF_PRIMARY is 1 or 2.
#
# ff_failover S: the primary stopped (-m immediate), the standby promoted S
# seconds later (pg_ctl promote -w); the new primary takes writes without a
# standby (as Patroni's synchronous_mode does when the standby is gone).
# ff_ready, before the next trial: a fresh standby of the new primary in the
# old node's place, synchronous again.

# shellcheck shell=bash

FF_ENV="${ENG_PGSTATE:?}/ff.env"

# (the server reads PGPORT: not the list of both nodes)
ff_pgctl() { fs_as_owner env -u PGPORT -u PGHOST "$ENG_PG_BIN/pg_ctl" "$@"; }

# ff_node N: sets FF_DIR, FF_SOCK, FF_PORT of node N
ff_node() {
	if [ "$1" = 1 ]; then
		FF_DIR=$ENG_PG_ROOT/data FF_SOCK=$ENG_PG_ROOT/sock FF_PORT=$FF_PORT1
	else
		FF_DIR=$ENG_PG_ROOT/data2 FF_SOCK=$ENG_PG_ROOT/sock2 FF_PORT=$FF_PORT2
	fi
}

# ff_write_env PRIMARY STANDBY_OK
ff_write_env() {
	local hosts="$ENG_PG_ROOT/sock,$ENG_PG_ROOT/sock2" ports="$FF_PORT1,$FF_PORT2"
	ff_node "$1"
	cat >"$FF_ENV.tmp" <<-ENV
	export FF_PORT1='$FF_PORT1' FF_PORT2='$FF_PORT2' FF_PRIMARY='$1' FF_STANDBY_OK='$2'
	export PGHOST='$FF_SOCK' PGPORT='$FF_PORT'
	export FS_DB_HOSTS='host=$hosts port=$ports target_session_attrs=read-write'
	ENV
	mv "$FF_ENV.tmp" "$FF_ENV"
	# shellcheck disable=SC1090
	. "$FF_ENV"
}

# ff_start N: start node N (its own port and socket directory, whatever
# the copied postgresql.conf says)
ff_start() {
	ff_node "$1"
	ff_pgctl -D "$FF_DIR" -l "$FF_DIR.log" -w -t 60 \
		-o "-p $FF_PORT -k $FF_SOCK" start >/dev/null
}

# ff_q N SQL: a query on node N itself
ff_q() {
	ff_node "$1"
	psql -X -q -At -v ON_ERROR_STOP=1 -h "$FF_SOCK" -p "$FF_PORT" \
		-d postgres -c "$2"
}

# ff_setup: (once, in setup_file) the pair, from the running cluster
ff_setup() {
	# shellcheck disable=SC1091
	. "$ENG_PGSTATE/env"
	FF_PORT1=$PGPORT FF_PORT2=$((PGPORT + 2))
	echo "local replication all trust" | fs_as_owner tee -a "$ENG_PG_ROOT/data/pg_hba.conf" >/dev/null
	ff_q 1 "ALTER SYSTEM SET synchronous_commit = on" >/dev/null
	ff_q 1 "SELECT pg_reload_conf()" >/dev/null
	ff_write_env 1 0
	ff_ready
}

# ff_ready: the standby is up, streaming, and synchronous (made again
# after a failover); 1 when it cannot be
ff_ready() {
	# shellcheck disable=SC1090
	. "$FF_ENV"
	[ "$FF_STANDBY_OK" = 1 ] && return 0
	local p=$FF_PRIMARY s=$((3 - FF_PRIMARY)) psock pport i
	ff_node "$p"
	psock=$FF_SOCK pport=$FF_PORT
	ff_node "$s"
	ff_pgctl -D "$FF_DIR" -m immediate -w stop >/dev/null 2>&1 || true
	fs_as_owner rm -rf "$FF_DIR"
	fs_as_owner mkdir -p -m 755 "$FF_SOCK"
	fs_as_owner "$ENG_PG_BIN/pg_basebackup" -h "$psock" -p "$pport" -U postgres -D "$FF_DIR" \
		-R -X stream -c fast >"$FF_DIR.basebackup.log" 2>&1 || {
		echo "ff_ready: pg_basebackup failed: $(tail -n 3 "$FF_DIR.basebackup.log")" >&2
		return 1
	}
	# the copy waits for nobody once promoted
	fs_as_owner sed -i '/^synchronous_standby_names/d' "$FF_DIR/postgresql.auto.conf"
	ff_start "$s" || { echo "ff_ready: the standby did not start" >&2; return 1; }
	ff_q "$p" "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
	ff_q "$p" "SELECT pg_reload_conf()" >/dev/null
	for i in $(seq 300); do
		[ "$(ff_q "$p" "SELECT count(*) FROM pg_stat_replication
		                WHERE state = 'streaming' AND sync_state = 'sync'")" = 1 ] && break
		sleep 0.1
	done
	[ "$i" -lt 300 ] || { echo "ff_ready: the standby is not synchronous" >&2; return 1; }
	ff_write_env "$p" 1
}

# ff_failover S: stop the primary (-m immediate), promote the standby S
# seconds later; sets FF_T_STOP (the primary gone: pg_ctl stop returned)
# and FF_T_PROMOTED (pg_ctl promote returned), both fs_now_ms
ff_failover() {
	# shellcheck disable=SC1090
	. "$FF_ENV"
	local p=$FF_PRIMARY s=$((3 - FF_PRIMARY))
	ff_node "$p"
	ff_pgctl -D "$FF_DIR" -m immediate -w stop >/dev/null || return 1
	# shellcheck disable=SC2034 # (FF_T_STOP, FF_T_PROMOTED: read by lib.sh)
	FF_T_STOP=$(fs_now_ms)
	sleep "$1"
	ff_node "$s"
	ff_pgctl -D "$FF_DIR" -w -t 60 promote >/dev/null || return 1
	# shellcheck disable=SC2034
	FF_T_PROMOTED=$(fs_now_ms)
	ff_write_env "$s" 0
}

# ff_teardown: (teardown_file, before cluster.sh stop) stop node 2
ff_teardown() {
	[ -f "$FF_ENV" ] || return 0
	# shellcheck disable=SC1090
	. "$FF_ENV"
	ff_node 2
	ff_pgctl -D "$FF_DIR" -m immediate -w stop >/dev/null 2>&1 || true
	ff_node 1
	# cluster.sh stops the data directory of node 1 (if it still runs)
	ff_pgctl -D "$FF_DIR" -m immediate -w stop >/dev/null 2>&1 || true
}

# ff_reach_ms LOG EVENT T_STOP: ms from T_STOP (fs_now_ms) to the first
# EVENT logged after it (null if none)
ff_reach_ms() {
	jq -rn --argjson t0 "$3" --arg ev "$2" '
	  [inputs | select(.event == $ev) | .ts as $ts
	   | (($ts[0:19] + "Z") | fromdateiso8601) * 1000 + ($ts[20:23] | tonumber) | select(. >= $t0)]
	  | if length == 0 then null else (min - $t0) end' "$1" 2>/dev/null || echo null
}
