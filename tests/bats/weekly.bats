#!/usr/bin/env bats
# engagement-weekly against the real test cluster.

load helpers

setup() {
	new_db
}

teardown() {
	drop_dbs
}

uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }

user() {
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('$(uid "$1")', '+5511$(printf %09d "$1")')" >/dev/null
}

# act NUM TIMESTAMP...: activity events for user NUM
act() {
	local n=$1 t
	shift
	for t in "$@"; do
		q "INSERT INTO engagement.activity_events (user_id, occurred_at) VALUES ('$(uid "$n")', '$t')" >/dev/null
	done
}

@test "users active in the last 7 days get one weekly review with their activity count" {
	user 1; user 2; user 3
	act 1 2026-11-16T10:00:00Z 2026-11-20T10:00:00Z 2026-11-22T08:00:00Z
	act 2 2026-11-10T10:00:00Z
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .week)" = 2026-W48 ]
	[ "$(sj .queued)" -eq 1 ]
	run q "SELECT message_type, template_key, params::text, idempotency_key, status,
	              expires_at = '2026-11-24T09:00:00Z'
	       FROM engagement.message_queue"
	[ "$output" = "weekly_review|weekly_review|{\"activity_count\": 3}|$(uid 1):weekly_review:2026-W48|queued|t" ]
	[ "$(q "SELECT event_type FROM engagement.outbox_events")" = message.queued ]
}

@test "the window is [now - 7 days, now)" {
	user 1; user 2; user 3
	act 1 2026-11-16T09:00:00Z          # exactly 7 days before: in
	act 2 2026-11-16T08:59:59.999999Z   # a microsecond earlier: out
	act 3 2026-11-23T09:00:00Z          # at now: out
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z
	[ "$status" -eq 0 ]
	[ "$(q "SELECT string_agg(user_id::text, ',') FROM engagement.message_queue")" = "$(uid 1)" ]
}

@test "--lookback-days widens the window" {
	user 1
	act 1 2026-11-10T10:00:00Z
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z --lookback-days 14
	[ "$(sj .queued)" -eq 1 ]
}

@test "opted-out users are excluded and counted as skipped" {
	user 1; user 2
	act 1 2026-11-20T10:00:00Z
	act 2 2026-11-20T10:00:00Z
	q "INSERT INTO engagement.user_preferences (user_id, reengagement_opt_out, reengagement_opt_out_updated_at, reengagement_opt_out_source)
	   VALUES ('$(uid 2)', true, now(), 'web')" >/dev/null
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .skipped)" -eq 1 ]
	[ "$(sj .queued)" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE user_id = '$(uid 2)'")" -eq 0 ]
}

@test "a second run in the same ISO week queues nothing" {
	user 1
	act 1 2026-11-20T10:00:00Z
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z
	[ "$(sj .queued)" -eq 1 ]
	eng engagement-weekly --db "$CONN" --now 2026-11-25T09:00:00Z
	[ "$status" -eq 0 ]
	[ "$(sj .queued)" -eq 0 ]
	[ "$(sj .already_queued)" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 1 ]
}

@test "ISO weeks at New Year: 2026-12-31 and 2027-01-01 are both 2026-W53" {
	user 1
	act 1 2026-12-30T10:00:00Z
	eng engagement-weekly --db "$CONN" --now 2026-12-31T09:00:00Z
	[ "$(sj .week)" = 2026-W53 ]
	[ "$(sj .queued)" -eq 1 ]
	eng engagement-weekly --db "$CONN" --now 2027-01-01T09:00:00Z
	[ "$(sj .week)" = 2026-W53 ]
	[ "$(sj .queued)" -eq 0 ]
	eng engagement-weekly --db "$CONN" --now 2027-01-04T09:00:00Z
	[ "$(sj .week)" = 2027-W01 ]
	[ "$(sj .queued)" -eq 1 ]
	[ "$(q "SELECT string_agg(split_part(idempotency_key, ':', 3), ',' ORDER BY id) FROM engagement.message_queue")" = "2026-W53,2027-W01" ]
}

@test "ISO weeks: 2024-12-30 is 2025-W01, 2021-01-03 is 2020-W53" {
	user 1
	act 1 2024-12-29T10:00:00Z 2021-01-02T10:00:00Z
	eng engagement-weekly --db "$CONN" --now 2024-12-30T09:00:00Z
	[ "$(sj .week)" = 2025-W01 ]
	eng engagement-weekly --db "$CONN" --now 2021-01-03T09:00:00Z
	[ "$(sj .week)" = 2020-W53 ]
}

@test "batches: every active user handled with a tiny batch size" {
	for i in $(seq 1 9); do user "$i"; act "$i" 2026-11-20T10:00:00Z; done
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z --batch-size 2
	[ "$status" -eq 0 ]
	[ "$(sj .processed)" -eq 9 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 9 ]
}

@test "one failing user does not stop the others: exit 1" {
	for i in $(seq 1 5); do user "$i"; act "$i" 2026-11-20T10:00:00Z; done
	q "CREATE FUNCTION engagement.test_fail() RETURNS trigger LANGUAGE plpgsql AS \$\$
	   BEGIN IF NEW.user_id = '$(uid 3)' THEN RAISE EXCEPTION 'injected'; END IF; RETURN NEW; END \$\$;
	   CREATE TRIGGER test_fail BEFORE INSERT ON engagement.message_queue
	   FOR EACH ROW EXECUTE FUNCTION engagement.test_fail()" >/dev/null
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z
	[ "$status" -eq 1 ]
	[ "$(sj .failed)" -eq 1 ]
	[ "$(sj .queued)" -eq 4 ]
	[ "$(jq -r .user_id <<<"$(log_events user_failed)")" = "$(uid 3)" ]
}

@test "--dry-run queues nothing" {
	user 1
	act 1 2026-11-20T10:00:00Z
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .queued)" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue")" -eq 0 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 0 ]
}

@test "bad options exit 64" {
	for args in "--lookback-days 0" "--lookback-days abc" "--batch-size -3" "--now 2026-11-23" "--frobnicate"; do
		# shellcheck disable=SC2086
		eng engagement-weekly --db "$CONN" $args
		[ "$status" -eq 64 ] || { echo "$args -> $status"; return 1; }
	done
}

@test "a second copy exits 75 while one runs" {
	q "INSERT INTO engagement.job_locks (job, run_id, holder, expires_at)
	   VALUES ('engagement-weekly', gen_random_uuid(), 'other host pid 7', now() + interval '10 minutes')" >/dev/null
	eng engagement-weekly --db "$CONN"
	[ "$status" -eq 75 ]
	[ "$(sj .status)" = skipped ]
}
