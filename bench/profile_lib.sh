# Sourced by the profile benchmarks (bench/send_profile.sh,
# bench/apply_profile.sh): a throwaway server with pg_stat_statements, its
# CPU time, and its statements per unit of work. Run from the repository's
# root; as root, the server runs as the postgres user.

PGBIN=$(pg_config --bindir)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# prof_server DIR: a server in DIR/data (the test settings: fsync off; every
# statement tracked, nested ones too) on a free port of 127.0.0.1 and a Unix
# socket in DIR; sets PGP to its port.
prof_server() {
  [ "$(id -u)" != 0 ] || chown postgres "$1"
  PGP=$(free_port)
  as_pg "$PGBIN/initdb" -D "$1/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
  printf "port=$PGP\nlisten_addresses='127.0.0.1'\nunix_socket_directories='$1'\nfsync=off\nsynchronous_commit=off\nshared_buffers=512MB\nmax_connections=200\nshared_preload_libraries='pg_stat_statements'\npg_stat_statements.track=all\n" >>"$1/data/postgresql.auto.conf"
  as_pg "$PGBIN/pg_ctl" -D "$1/data" -l "$1/pg.log" -w start >/dev/null
}

prof_server_stop() { as_pg "$PGBIN/pg_ctl" -D "$1/data" -m immediate stop >/dev/null 2>&1 || true; }

# pg_ticks DATADIR: the server's CPU time so far, in clock ticks: the
# postmaster and every process it runs (backends, autovacuum, the writers),
# and what its children that ended had used (a run's backends end with it).
pg_ticks() {
  local pm; pm=$(head -1 "$1/postmaster.pid")
  # (a child may end between pgrep and cat: skipped, not a failure of the pipe)
  { cat "/proc/$pm/stat"; for p in $(pgrep -P "$pm"); do cat "/proc/$p/stat" 2>/dev/null || true; done; } |
    awk '{ sub(/^.*\) /, ""); t += $12 + $13; if (NR == 1) t += $14 + $15 } END { print t }'
}

# prof_statements CONNINFO N UNIT: the 25 statements that took the most
# time, per 1,000 UNITs (of N): milliseconds, calls, rows, WAL bytes per UNIT.
prof_statements() {
  psql -XAq "$1" -F ' | ' <<SQL
SELECT round(total_exec_time::numeric * 1000 / $2, 1) AS ms_per_1000, calls, round((total_exec_time/calls)::numeric, 2) AS ms_per_call, rows,
  round((wal_bytes / $2)::numeric) AS wal_b_per_$3, left(regexp_replace(query, '\s+', ' ', 'g'), 110)
FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25;
SQL
}

# prof_measure DIR N OUT LOG CMD...: CMD run under time (stdout to OUT,
# stderr to LOG), the server of DIR/data measured before and after (its
# backends given a second to end). Sets WALL (seconds), and SERVER_MS and
# PROGRAM_MS: the server's and CMD's CPU per 1,000 of N units.
prof_measure() {
  local dir=$1 n=$2 out=$3 log=$4 t0 t1 u s hz
  shift 4
  t0=$(pg_ticks "$dir/data")
  TIMEFORMAT='%R %U %S'
  { time "$@" >"$out" 2>"$log"; } 2>"$dir/time" || prof_failed "${1##*/}" "$log"
  sleep 1
  t1=$(pg_ticks "$dir/data")
  read -r WALL u s <"$dir/time"
  hz=$(getconf CLK_TCK)
  SERVER_MS=$(( (t1 - t0) * 1000 * 1000 / hz / n ))
  PROGRAM_MS=$(echo "($u + $s) * 1000000 / $n" | bc)
}

# prof_failed PROGRAM LOG: a measured run that failed is said, with the end
# of its log, rather than ending the script without a word (set -e).
prof_failed() {
  echo "$1 failed; the end of its log ($2):" >&2
  tail -5 "$2" >&2
  exit 1
}
