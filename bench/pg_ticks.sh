# Sourced by the profile benchmarks. pg_ticks DATADIR: the server's CPU time
# so far, in clock ticks: the postmaster and every process it runs
# (backends, autovacuum, the writers), and what its children that ended
# had used (a run's backends end with it).
pg_ticks() {
  local pm; pm=$(head -1 "$1/postmaster.pid")
  { cat "/proc/$pm/stat"; for p in $(pgrep -P "$pm"); do cat "/proc/$p/stat" 2>/dev/null; done; } |
    awk '{ sub(/^.*\) /, ""); t += $12 + $13; if (NR == 1) t += $14 + $15 } END { print t }'
}
