#!/usr/bin/env bash
# Benchmark engagement-status on a large database: is it "well under a
# second" at 10 million users, a million queued messages and a million
# unpublished outbox events?
#
#   bench/status.sh [USERS] [QUEUED] [OUTBOX]   (defaults 10000000 1000000 1000000)
#
# Environment: RUNS (timed runs per format, default 7), FINISHED (finished
# messages kept in the queue, default 2 x QUEUED), PUBLISHED (published
# outbox events, default OUTBOX), APPLIED (applied webhook deliveries,
# default 500000), ENG_BUILD (the build folder, default build/default, built
# if missing).
#
# A throwaway cluster (tests/pg/cluster.sh), the schema (migrate up), then:
# USERS users with engagement states (the shares of bench/gen_users.sql);
# QUEUED queued messages (70% goodbye, 30% weekly_review; 10% due in the
# last ten minutes, the rest scheduled over the next day), 500 being sent
# (5 of them with expired leases) and FINISHED finished ones (sent, failed,
# blocked, cancelled); OUTBOX unpublished outbox events (the oldest two
# minutes old) and PUBLISHED published ones; APPLIED applied webhook
# deliveries and 20 pending; 30 days of per-minute message counts; 30 days
# of job runs (queue-send and outbox-relay every minute, the daily and
# weekly jobs). ANALYZE, as autovacuum would have done.
#
# Then engagement-status is timed, --format json and --format prometheus,
# RUNS runs each (the median, wall clock and the program's own duration);
# first after ANALYZE only (the visibility map of freshly written rows not
# set, unless autovacuum got there first: index-only scans visit the heap,
# as on a busy queue), then after VACUUM, then after VACUUM with jit=off.
# In both states one run under auto_explain lists every statement's time
# and prints the EXPLAIN (ANALYZE, BUFFERS) of any that took over 100 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-10000000}
queued=${2:-1000000}
outbox=${3:-1000000}
runs=${RUNS:-7}
finished=${FINISHED:-$((2 * queued))}
published=${PUBLISHED:-$outbox}
applied=${APPLIED:-500000}
bin=${ENG_BUILD:-$PWD/build/default}
case $bin in /*) ;; *) bin=$PWD/$bin ;; esac
[ -x "$bin/engagement-status" ] ||
  { cmake --preset default >/dev/null && cmake --build --preset default -j "$(nproc)" >/dev/null; }
state=$PWD/build/bench-status-pg
tmp=$(mktemp -d)
tests/pg/cluster.sh start "$state" >/dev/null
trap 'tests/pg/cluster.sh stop "$state"; rm -rf "$tmp"' EXIT
# shellcheck disable=SC1091
. "$state/env"
db=status_bench

ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
sql() { psql -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
step() { # step LABEL SQL: run and time one generation step
  local t0
  t0=$(ms)
  sql -c "$2" >/dev/null
  printf '  %-44s %7d ms\n' "$1" $(( $(ms) - t0 ))
}

createdb "$db"
"$bin/migrate" --db "dbname=$db" --log-level warn up >/dev/null
echo "== generating: $users users, $queued queued, $finished finished messages, $outbox unpublished and $published published outbox events"
t_gen=$(ms)
step "users" "
  INSERT INTO engagement.users (id, phone_e164, created_at)
  SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
         '+5511' || lpad(i::text, 9, '0'), now() - interval '200 days'
  FROM generate_series(1, $users) i"
step "engagement states" "
  INSERT INTO engagement.engagement_states
    (user_id, state, last_activity_at, goodbye_sent_at, goodbye_expires_at, remind_at, state_changed_at)
  SELECT ('00000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
         CASE WHEN m IN (10, 12) THEN 'goodbye_sent' WHEN m IN (11, 16) THEN 'remind_later'
              WHEN m = 13 THEN 'help_flow' WHEN m IN (14, 15) THEN 'dormant' ELSE 'active' END,
         now() - make_interval(days => i % 30, secs => i % 86400),
         CASE WHEN m IN (10, 12) THEN now() - interval '1 day' END,
         CASE WHEN m IN (10, 12) THEN now() + interval '1 day' END,
         CASE WHEN m IN (11, 16) THEN now() + interval '2 days' END,
         now() - interval '2 days'
  FROM (SELECT i, i % 100 AS m FROM generate_series(1, $users) i) g"
step "queued messages" "
  INSERT INTO engagement.message_queue (user_id, message_type, template_key, params, idempotency_key,
    status, next_attempt_at, scheduled_for)
  SELECT ('00000000-0000-4000-8000-' || lpad((1 + (i::bigint * 7919) % $users)::text, 12, '0'))::uuid,
         t, t, CASE WHEN t = 'weekly_review' THEN '{\"activity_count\": 3}'::jsonb ELSE '{}' END,
         'q:' || i, 'queued', a, a
  FROM (SELECT i, CASE WHEN i % 10 < 7 THEN 'goodbye' ELSE 'weekly_review' END AS t,
               CASE WHEN i % 10 = 0 THEN now() - make_interval(secs => i % 600)
                    ELSE now() + make_interval(secs => i % 86400) END AS a
        FROM generate_series(1, $queued) i) g"
step "messages being sent (5 expired leases)" "
  INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
    status, next_attempt_at, locked_by, locked_until, attempts)
  SELECT ('00000000-0000-4000-8000-' || lpad((1 + (i::bigint * 104729) % $users)::text, 12, '0'))::uuid,
         'goodbye', 'goodbye', 's:' || i, 'sending', now() - interval '1 minute', 'bench:' || (i % 4),
         CASE WHEN i <= 5 THEN now() - interval '2 minutes' ELSE now() + interval '1 day' END, 1
  FROM generate_series(1, 500) i"
step "finished messages" "
  INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
    status, next_attempt_at, attempts, provider_message_id, sent_at, last_error_code,
    delivery_status, created_at, updated_at)
  SELECT ('00000000-0000-4000-8000-' || lpad((1 + (i::bigint * 15485863) % $users)::text, 12, '0'))::uuid,
         'goodbye', 'goodbye', 'f:' || i, st, t, 1,
         CASE WHEN st = 'sent' THEN 'wamid.bench' || i END, CASE WHEN st = 'sent' THEN t END,
         CASE WHEN st = 'failed' THEN '131026' END,
         CASE WHEN st = 'sent' THEN (ARRAY['sent', 'delivered', 'read'])[1 + i % 3] END, t, t
  FROM (SELECT i, CASE i % 20 WHEN 0 THEN 'failed' WHEN 1 THEN 'blocked' WHEN 2 THEN 'cancelled'
                  ELSE 'sent' END AS st,
               now() - make_interval(secs => i % (30 * 86400)) AS t
        FROM generate_series(1, $finished) i) g"
step "outbox events, published" "
  INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload, created_at, published_at)
  SELECT 'message', i::text, 'message.sent', jsonb_build_object('message_id', i),
         now() - interval '8 days' + make_interval(secs => i * 0.5), now() - interval '1 day'
  FROM generate_series(1, $published) i"
step "outbox events, unpublished" "
  INSERT INTO engagement.outbox_events (aggregate_type, aggregate_id, event_type, payload, created_at)
  SELECT 'message', i::text, 'message.sent', jsonb_build_object('message_id', i),
         now() - interval '2 minutes' + make_interval(secs => 120.0 * i / $outbox)
  FROM generate_series(1, $outbox) i"
step "webhook deliveries" "
  INSERT INTO engagement.webhook_inbox (received_at, body, applied_at, result)
  SELECT now() - make_interval(secs => i % (7 * 86400)), '{\"object\":\"whatsapp_business_account\"}',
         now() - make_interval(secs => i % (7 * 86400)), '{}'
  FROM generate_series(1, $applied) i;
  INSERT INTO engagement.webhook_inbox (received_at, body)
  SELECT now() - make_interval(secs => i), '{}' FROM generate_series(1, 20) i"
step "per-minute message counts, 30 days" "
  INSERT INTO engagement.message_counts (minute, kind, code, n)
  SELECT m, k.kind, k.code, 1 + (extract(epoch FROM m)::bigint % k.n)
  FROM generate_series(date_trunc('minute', now()) - interval '30 days', date_trunc('minute', now()), '1 minute') m,
       (VALUES ('sent', '', 60), ('failed', '131026', 3), ('failed', '131047', 2),
               ('retried', '131000', 2), ('deferred', '130429', 4), ('deferred', '132015', 1),
               ('delivered', '', 55), ('read', '', 40), ('undelivered', '131049', 2),
               ('opt_out', 'whatsapp', 2), ('opt_in', 'web', 1)) k(kind, code, n)"
step "job runs, 30 days" "
  INSERT INTO engagement.job_runs (run_id, program, started_at, finished_at, status, exit_code)
  SELECT gen_random_uuid(), p, t, t + interval '20 seconds',
         CASE WHEN extract(epoch FROM t)::bigint % 97 = 0 THEN 'failed' ELSE 'ok' END,
         CASE WHEN extract(epoch FROM t)::bigint % 97 = 0 THEN 75 ELSE 0 END
  FROM (VALUES ('queue-send'), ('outbox-relay')) j(p),
       generate_series(now() - interval '30 days', now() - interval '1 minute', '1 minute') t;
  INSERT INTO engagement.job_runs (run_id, program, started_at, finished_at, status, exit_code)
  SELECT gen_random_uuid(), 'engagement-daily', t, t + interval '3 minutes', 'ok', 0
  FROM generate_series(date_trunc('day', now()) - interval '30 days' + interval '6 hours',
                       now() - interval '1 hour', '1 day') t;
  INSERT INTO engagement.job_runs (run_id, program, started_at, finished_at, status, exit_code)
  SELECT gen_random_uuid(), 'engagement-weekly', t, t + interval '1 minute', 'ok', 0
  FROM generate_series(now() - interval '29 days', now() - interval '1 day', '7 days') t"
step "ANALYZE" "ANALYZE"
psql -X -q -d postgres -c CHECKPOINT
echo "  generated in $(( ($(ms) - t_gen) / 1000 )) s; database $(sql -At -c "SELECT pg_size_pretty(pg_database_size(current_database()))")"
sql -At -F ' ' -c "
  SELECT '  ' || relname, to_char(n_live_tup, 'FM999,999,999') || ' rows', pg_size_pretty(pg_total_relation_size(relid))
  FROM pg_stat_user_tables WHERE schemaname = 'engagement' AND n_live_tup > 10000 ORDER BY n_live_tup DESC"

# time_runs FORMAT LABEL: RUNS runs; the median wall clock and own duration
time_runs() {
  local fmt=$1 label=$2 t0 t own walls=() owns=()
  for _ in $(seq "$runs"); do
    t0=$(ms)
    "$bin/engagement-status" --db "dbname=$db" --format "$fmt" --log-level warn >"$tmp/out" 2>"$tmp/err" || {
      echo "engagement-status failed:" >&2; cat "$tmp/err" "$tmp/out" >&2; exit 1; }
    t=$(( $(ms) - t0 ))
    if [ "$fmt" = json ]; then
      own=$(jq .duration_ms "$tmp/out")
    else
      own=$(awk '$1 == "engagement_status_duration_seconds" { printf "%d", $2 * 1000 }' "$tmp/out")
    fi
    walls+=("$t"); owns+=("$own")
  done
  printf '  %-11s %-16s median %5s ms wall, %5s ms collecting   (runs: %s)\n' "$fmt" "$label" \
    "$(median "${walls[@]}")" "$(median "${owns[@]}")" "${walls[*]}"
}

# explain_run LABEL: one run under auto_explain; every statement's time, and
# the plans of those over 100 ms
explain_run() {
  echo "== each statement (auto_explain, one run $1)"
  # at LOG level: into the server's log (log_min_messages for this database),
  # not to the client
  sql -c "ALTER DATABASE $db SET session_preload_libraries = 'auto_explain'" \
    -c "ALTER DATABASE $db SET auto_explain.log_min_duration = 0" \
    -c "ALTER DATABASE $db SET auto_explain.log_analyze = on" \
    -c "ALTER DATABASE $db SET auto_explain.log_buffers = on" \
    -c "ALTER DATABASE $db SET auto_explain.log_level = log" \
    -c "ALTER DATABASE $db SET log_min_messages = log" >/dev/null
  log=$ENG_PG_ROOT/server.log
  from=$(wc -c <"$log")
  "$bin/engagement-status" --db "dbname=$db" --log-level warn >/dev/null 2>&1
  sql -c "ALTER DATABASE $db RESET ALL" >/dev/null
  tail -c +"$((from + 1))" "$log" >"$tmp/plans"
  : >"$tmp/slow"
  # a block per statement: "... LOG:  duration: N ms  plan:", a tab-indented
  # "Query Text: ..." line, then the tab-indented plan
  awk -v out="$tmp/slow" '
    function flush() {
      if (d == "") return
      gsub(/[ \t]+/, " ", q)
      printf "  %8.1f ms  %s\n", d, substr(q, 1, 100)
      if (d > 100) printf "---- %.1f ms: %s\n%s\n", d, q, body >>out
      d = ""
    }
    / duration: [0-9.]+ ms +plan:/ {
      flush(); match($0, /duration: [0-9.]+/); d = substr($0, RSTART + 10, RLENGTH - 10) + 0
      q = ""; body = ""; next
    }
    /^\tQuery Text: / { q = substr($0, 14); next }
    /^\t/ { if (d != "") body = body substr($0, 2) "\n"; next }
    { flush() }
    END { flush() }' "$tmp/plans"
  if [ -s "$tmp/slow" ]; then
    echo "== EXPLAIN (ANALYZE, BUFFERS) of the statements over 100 ms, $1"
    cat "$tmp/slow"
  else
    echo "  (no statement over 100 ms)"
  fi
}

echo "== engagement-status, $runs runs each"
"$bin/engagement-status" --db "dbname=$db" --log-level warn >/dev/null # warm the cache
time_runs json "after ANALYZE"
time_runs prometheus "after ANALYZE"
explain_run "after ANALYZE"
"$bin/engagement-status" --db "dbname=$db" --log-level warn | jq -c '{queue: .queue | {queued, oldest_due_seconds, expired_leases, finished_estimate}, users, outbox, webhook_inbox}'
step "VACUUM" "VACUUM"
time_runs json "after VACUUM"
time_runs prometheus "after VACUUM"
# the same without JIT compilation (PostgreSQL compiles plans whose cost is
# over jit_above_cost, branches that never run included)
PGOPTIONS="-c jit=off" time_runs json "jit=off"
PGOPTIONS="-c jit=off" time_runs prometheus "jit=off"
explain_run "after VACUUM"
