#!/usr/bin/env bats
# Runs that die or lose their database (issue 15): the next run is not held
# up by the dead one's lease, the dead run is marked, engagement-status never
# shows it running, and a run cut off from the database still records how
# it ended once the database answers again.

load helpers

setup() {
	new_db
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid,
	          '+551190000' || lpad(g::text, 4, '0') FROM generate_series(1, 5) g;
	   INSERT INTO engagement.engagement_states (user_id, state, last_activity_at, state_changed_at)
	   SELECT id, 'active', '2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z' FROM engagement.users" >/dev/null
}

teardown() {
	stop_standin
	drop_dbs
}

# lock_states: hold an exclusive lock on engagement_states in a session of
# its own until unlock_states (however long the test takes), so that a daily
# run blocks on it.
lock_states() {
	session_open locker
	session locker "BEGIN; LOCK TABLE engagement.engagement_states IN ACCESS EXCLUSIVE MODE;"
}
unlock_states() { session_close locker; }

daily_waiting() {
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	          AND application_name = 'engagement-daily' AND wait_event_type = 'Lock'" 1
}

@test "kill -9 of a daily run holding its lease: the next run starts at once and marks the dead one died" {
	lock_states
	"$ENG_BIN/engagement-daily" --db "$CONN" --now 2026-11-20T07:00:00Z >/dev/null 2>&1 &
	pid=$!
	daily_waiting
	dead=$(q "SELECT run_id FROM engagement.job_runs WHERE status = 'running'")
	[ -n "$dead" ]
	[ "$(q "SELECT run_id FROM engagement.job_locks WHERE job = 'engagement-daily'")" = "$dead" ]
	kill -9 "$pid"
	wait "$pid" || true
	unlock_states
	# the server notices the client is gone when it next writes to it
	wait_q "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
	          AND application_name = 'engagement-daily'" 0
	# well inside the lease's 60 s: the lease noticed its holder's process is gone
	eng engagement-daily --db "$CONN" --now 2026-11-20T07:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .messages_queued)" -eq 5 ]
	[ "$(log_events dead_runs_marked | jq -r .runs)" -eq 1 ]
	[ "$(q "SELECT status FROM engagement.job_runs WHERE run_id = '$dead'")" = died ]
	[ "$(q "SELECT finished_at IS NOT NULL FROM engagement.job_runs WHERE run_id = '$dead'")" = t ]
	[ "$(q "SELECT count(*) FROM engagement.job_runs WHERE status = 'running'")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks")" -eq 0 ]
}

@test "a live holder keeps its lease: a second run exits 75 (already_running)" {
	lock_states
	"$ENG_BIN/engagement-daily" --db "$CONN" --now 2026-11-20T07:00:00Z >/dev/null 2>&1 &
	pid=$!
	daily_waiting
	eng engagement-daily --db "$CONN" --now 2026-11-20T07:00:00Z
	[ "$status" -eq 75 ]
	[ "$(sj .reason)" = already_running ]
	unlock_states
	wait "$pid"
	[ "$(q "SELECT count(*) FROM engagement.job_runs WHERE status = 'ok'")" -eq 1 ]
}

@test "a run whose connection is cut records its end (75) and frees its lease once the database answers" {
	lock_states
	"$ENG_BIN/engagement-daily" --db "$CONN" --now 2026-11-20T07:00:00Z >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" &
	pid=$!
	daily_waiting
	run_id=$(q "SELECT run_id FROM engagement.job_runs WHERE status = 'running'")
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()
	   AND application_name = 'engagement-daily'" >/dev/null
	rc=0
	wait "$pid" || rc=$?
	unlock_states
	[ "$rc" -eq 75 ]
	[ "$(q "SELECT status || ' ' || exit_code FROM engagement.job_runs WHERE run_id = '$run_id'")" = "failed 75" ]
	[ "$(q "SELECT count(*) FROM engagement.job_locks")" -eq 0 ]
	grep -q '"event":"reconnected"' "$BATS_TEST_TMPDIR/err"
	[ "$(jq -r .exit_code "$BATS_TEST_TMPDIR/out")" -eq 75 ]
}

@test "a run whose heartbeat stopped is not running for engagement-status, and the next queue-send marks it died" {
	q "INSERT INTO engagement.job_runs (run_id, program, started_at, status, heartbeat_at)
	   VALUES ('11111111-1111-4111-8111-111111111111', 'queue-send', now() - interval '10 minutes',
	           'running', now() - interval '3 minutes'),
	          ('22222222-2222-4222-8222-222222222222', 'queue-send', now() - interval '30 seconds',
	           'running', now() - interval '1 second')" >/dev/null
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$CONN" --format prometheus
	[ "$status" -eq 0 ]
	# the newest run is alive: running
	grep -qx 'engagement_job_running{program="queue-send"} 1' <<<"$output"
	q "DELETE FROM engagement.job_runs WHERE run_id = '22222222-2222-4222-8222-222222222222'" >/dev/null
	eng engagement-status --db "$CONN"
	[ "$(sj '.jobs["queue-send"].last_status')" = died ]
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$CONN" --format prometheus
	grep -qx 'engagement_job_running{program="queue-send"} 0' <<<"$output"
	grep -qx 'engagement_job_last_exit_code{program="queue-send"} -1' <<<"$output"
	start_standin
	eng queue-send --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(log_events dead_runs_marked | jq -r .runs)" -eq 1 ]
	[ "$(q "SELECT status || ' ' || (finished_at = heartbeat_at)
	        FROM engagement.job_runs WHERE run_id = '11111111-1111-4111-8111-111111111111'")" = "died true" ]
	# its own row is alive while it runs, and ends ok
	[ "$(q "SELECT status FROM engagement.job_runs WHERE run_id = '$(sj .run_id)'")" = ok ]
}
