#!/usr/bin/env bats
# migrate: black-box tests against the real test cluster.

load helpers

setup() {
	TMP=$(mktemp -d)
	# the number of migrations shipped in sql/ (the newest version)
	LATEST=$(ls "$ENG_SRC"/sql/*.up.sql | wc -l)
}

teardown() {
	drop_dbs
	rm -rf "$TMP"
}

# Write a migration pair into $TMP/m: mig VERSION NAME UP_SQL [DOWN_SQL]
mig() {
	mkdir -p "$TMP/m"
	printf '%s\n' "$3" >"$TMP/m/$1_$2.up.sql"
	if [ -n "${4:-}" ]; then printf '%s\n' "$4" >"$TMP/m/$1_$2.down.sql"; fi
}

tables() {
	q "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'engagement'"
}

# ---- command line -----------------------------------------------------

@test "--help prints usage on stdout and exits 0" {
	run --separate-stderr "$ENG_BIN/migrate" --help
	[ "$status" -eq 0 ]
	[[ "$output" == Usage:\ migrate* ]]
	[ -z "$stderr" ]
}

@test "--version prints NAME VERSION" {
	run --separate-stderr "$ENG_BIN/migrate" --version
	[ "$status" -eq 0 ]
	[[ "$output" =~ ^migrate\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
}

@test "an unknown option exits 64 with one JSON line" {
	eng migrate --bogus up
	[ "$status" -eq 64 ]
	[ "$(stderr_lines)" -eq 1 ]
	[ "$(jq -r .event <<<"$stderr")" = usage_error ]
	[[ "$(jq -r .error <<<"$stderr")" == *"'--bogus'"* ]]
	[ "$(sj .status)" = failed ]
}

@test "bad option values exit 64" {
	for args in "--lock-wait abc up" "--lock-wait -1 up" "--to x up" \
		"--lock-timeout 5parsecs up" "--steps 0 down" "--log-level loud up"; do
		# shellcheck disable=SC2086
		eng migrate $args
		[ "$status" -eq 64 ] || { echo "args: $args -> $status"; return 1; }
		[ "$(stderr_lines)" -eq 1 ]
	done
}

@test "a missing or unknown command exits 64" {
	eng migrate
	[ "$status" -eq 64 ]
	eng migrate sideways
	[ "$status" -eq 64 ]
	eng migrate up extra
	[ "$status" -eq 64 ]
	eng migrate down --steps 1 --to 2
	[ "$status" -eq 64 ]
}

# ---- connections ------------------------------------------------------

@test "an unreachable database exits 75 and still prints the summary" {
	eng migrate --db "host=127.0.0.1 port=1 dbname=x connect_timeout=3" status
	[ "$status" -eq 75 ]
	[ "$(sj .status)" = failed ]
	[[ "$(sj .error)" == *unreachable* ]]
}

@test "a wrong password exits 77 and the password appears nowhere" {
	eng migrate --db "host=127.0.0.1 port=$PGPORT dbname=postgres user=engagement_pw password=wrong-secret-pw" status
	[ "$status" -eq 77 ]
	[[ "$output$stderr" != *wrong-secret-pw* ]]
	[[ "$(sj .error)" == *credentials* ]]
}

@test "a URI whose password holds / @ or ?: no fragment of it in any message, whatever libpq makes of it" {
	local uri prog
	for uri in "postgresql://app:Qz7k/Wv9q@127.0.0.1:$PGPORT/eng" \
		"postgresql://app:Qz7k@Wv9q@127.0.0.1:1/eng" \
		"postgres://app:Qz7k?Wv9q@127.0.0.1:1/eng"; do
		for prog in migrate engagement-status; do
			if [ "$prog" = migrate ]; then
				eng migrate --db "$uri" status
			else
				eng "$prog" --db "$uri"
			fi
			[ "$status" -ne 0 ]
			[[ "$output$stderr" != *Qz7k* ]] || { echo "$prog $uri: $output $stderr" >&2; return 1; }
			[[ "$output$stderr" != *Wv9q* ]] || { echo "$prog $uri: $output $stderr" >&2; return 1; }
			# and through DATABASE_URL
			DATABASE_URL=$uri eng "$prog"
			[[ "$output$stderr" != *Qz7k* && "$output$stderr" != *Wv9q* ]] ||
				{ echo "$prog DATABASE_URL $uri: $output $stderr" >&2; return 1; }
		done
	done
}

@test "the right password through DATABASE_URL connects" {
	new_db
	q "GRANT USAGE ON SCHEMA engagement TO engagement_pw;
	   GRANT SELECT ON engagement.schema_migrations TO engagement_pw"
	DATABASE_URL="postgresql://engagement_pw:correct-horse-battery@127.0.0.1:$PGPORT/$DB" \
		eng migrate status
	[ "$status" -eq 0 ]
	[ "$(sj .current)" -eq "$LATEST" ]
}

@test "a role without privileges on the schema exits 77" {
	new_db
	eng migrate --db "$CONN user=engagement_noperm" status
	[ "$status" -eq 77 ]
	[[ "$(sj .error)" == *"permission denied"* ]]
}

@test "a connection string libpq cannot parse exits 78" {
	eng migrate --db "host='unterminated" status
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *"invalid connection string"* ]]
	DATABASE_URL="postgresql://[::1" eng migrate status
	[ "$status" -eq 78 ]
}

@test "a database that does not exist exits 78" {
	eng migrate --db "dbname=no_such_database_here" status
	[ "$status" -eq 78 ]
}

@test "the connection reports application_name migrate" {
	new_db
	eng migrate --db "$CONN application_name=other" status
	[ "$status" -eq 0 ]
	# Seen from the server while a lock makes migrate wait: the lock is held
	# until migrate's session has been seen.
	session_open holder
	session holder "SELECT pg_advisory_lock(7236251001)"
	"$ENG_BIN/migrate" --db "$CONN application_name=other" --lock-wait 120 up >/dev/null 2>&1 3>&- &
	pid=$!
	others="FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'
	        AND application_name <> 'holder' AND pid <> pg_backend_pid()"
	wait_q "SELECT count(*) $others" 1
	run q "SELECT application_name $others"
	session_close holder
	wait "$pid" || true
	[ "$output" = migrate ]
}

# ---- up ---------------------------------------------------------------

@test "up on an empty database builds the whole schema" {
	new_db empty
	eng migrate --db "$CONN" up
	[ "$status" -eq 0 ]
	[ "$(sj .current)" -eq "$LATEST" ]
	[ "$(sj '.applied | length')" -eq "$LATEST" ]
	[ "$(tables)" = "activity_events,audit_log,engagement_states,inbound_events,job_locks,job_runs,limit_reached,message_counts,message_queue,message_templates,messaging_limits,outbox_events,program_grants,schema_migrations,send_pauses,send_rate,state_machine,state_transitions,time_zones,user_preferences,users,webhook_inbox" ]
	[ "$(q "SELECT count(*) FROM engagement.schema_migrations")" -eq "$LATEST" ]
	[ "$(q "SELECT count(*) FROM engagement.schema_migrations WHERE checksum ~ '^[0-9a-f]{64}$'")" -eq "$LATEST" ]
	# one migration_applied line per migration
	[ "$(log_events migration_applied | wc -l)" -eq "$LATEST" ]
}

@test "up twice in a row: the second does nothing" {
	new_db empty
	eng migrate --db "$CONN" up
	[ "$status" -eq 0 ]
	before=$(q "SELECT string_agg(version || '@' || applied_at, ',') FROM engagement.schema_migrations")
	eng migrate --db "$CONN" up
	[ "$status" -eq 0 ]
	[ "$(sj '.applied | length')" -eq 0 ]
	[ "$(q "SELECT string_agg(version || '@' || applied_at, ',') FROM engagement.schema_migrations")" = "$before" ]
}

@test "four copies at once: each migration applied exactly once" {
	new_db empty
	for i in 1 2 3 4; do
		"$ENG_BIN/migrate" --db "$CONN" up >"$TMP/out$i" 2>"$TMP/err$i" &
	done
	codes=""
	for job in $(jobs -p); do
		wait "$job"
		codes="$codes$?"
	done
	[ "$codes" = "0000" ]
	total=0
	for i in 1 2 3 4; do
		check_log_lines "$(cat "$TMP/err$i")"
		n=$(jq '.applied | length' "$TMP/out$i")
		total=$((total + n))
	done
	[ "$total" -eq "$LATEST" ]
	[ "$(q "SELECT count(*) FROM engagement.schema_migrations")" -eq "$LATEST" ]
}

@test "up --to stops at the version asked" {
	new_db empty
	eng migrate --db "$CONN" up --to 2
	[ "$status" -eq 0 ]
	[ "$(sj .current)" -eq 2 ]
	[ "$(q "SELECT to_regclass('engagement.message_queue') IS NULL")" = t ]
	eng migrate --db "$CONN" up --to 99
	[ "$status" -eq 64 ]
}

@test "up --dry-run shows the SQL and changes nothing" {
	new_db empty
	eng migrate --db "$CONN" up --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj '.plan | length')" -eq "$LATEST" ]
	[[ "$(sj '.plan[0].sql')" == *"CREATE TABLE engagement.users"* ]]
	[ "$(sj .dry_run)" = true ]
	[ "$(q "SELECT to_regclass('engagement.schema_migrations') IS NULL")" = t ]
}

# ---- down -------------------------------------------------------------

@test "down then up for every migration restores the same schema" {
	new_db empty
	eng migrate --db "$CONN" up
	dump() { pg_dump --schema-only --schema=engagement -d "$DB" | grep -v -e '^--' -e '^$' -e '^\\'; }
	dump >"$TMP/before.sql"
	for v in $(seq "$LATEST" -1 1); do
		eng migrate --db "$CONN" down --to $((v - 1))
		[ "$status" -eq 0 ]
		[ "$(sj .current)" -eq $((v - 1)) ]
		[ "$(sj '.reverted | length')" -eq $((LATEST + 1 - v)) ]
		[ "$(sj '.reverted[-1].version')" -eq "$v" ]
		eng migrate --db "$CONN" up
		[ "$status" -eq 0 ]
		[ "$(sj .current)" -eq "$LATEST" ]
	done
	eng migrate --db "$CONN" down --to 0
	[ "$status" -eq 0 ]
	[ "$(sj .current)" -eq 0 ]
	[ "$(tables)" = schema_migrations ]
	eng migrate --db "$CONN" up
	dump >"$TMP/after.sql"
	diff "$TMP/before.sql" "$TMP/after.sql"
}

@test "0020 gives every finished message its finish time (when it last changed), its updated_at kept" {
	new_db empty
	eng migrate --db "$CONN" up --to 19
	[ "$status" -eq 0 ]
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('00000000-0000-4000-8000-000000000001', '+5511900000001');
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
	     status, provider_message_id, sent_at, updated_at)
	   SELECT '00000000-0000-4000-8000-000000000001', 'goodbye', 'goodbye', 'k' || g,
	     (ARRAY['queued', 'sent', 'failed', 'cancelled'])[g % 4 + 1],
	     CASE WHEN g % 4 = 1 THEN 'wamid.' || g END, CASE WHEN g % 4 = 1 THEN now() END,
	     now() - make_interval(days => g)
	   FROM generate_series(1, 25000) g" >/dev/null
	q "CREATE TABLE public.before AS SELECT id, status, updated_at FROM engagement.message_queue" >/dev/null
	eng migrate --db "$CONN" up
	[ "$status" -eq 0 ]
	# in batches across the whole id range; queued messages have none
	[ "$(q "SELECT count(*) FROM engagement.message_queue m JOIN public.before b USING (id)
	        WHERE m.updated_at = b.updated_at AND m.finished_at IS NOT DISTINCT FROM
	          CASE WHEN b.status <> 'queued' THEN b.updated_at END")" -eq 25000 ]
	# a status on a finished message keeps its finish time; a requeue clears it
	q "UPDATE engagement.message_queue SET delivery_status = 'read', read_at = now()
	   WHERE idempotency_key = 'k1';
	   UPDATE engagement.message_queue SET status = 'queued' WHERE idempotency_key = 'k2'" >/dev/null
	[ "$(q "SELECT string_agg(m.idempotency_key || ':' || (m.finished_at = b.updated_at)::text
	          || ':' || (m.updated_at > b.updated_at)::text, ',' ORDER BY m.id)
	        FROM engagement.message_queue m JOIN public.before b USING (id)
	        WHERE m.idempotency_key IN ('k1', 'k2')")" = "k1:true:true" ]
	[ "$(q "SELECT finished_at IS NULL FROM engagement.message_queue WHERE idempotency_key = 'k2'")" = t ]
}

@test "0022 writes the events and audit rows 0021 wrote; quiet_until answers as before, inlined" {
	# the same outcomes and statuses on a database at 21 and one at the newest
	scenario="
	  INSERT INTO engagement.users (id, phone_e164)
	  SELECT ('00000000-0000-4000-8000-00000000000' || g)::uuid, '+551190000000' || g
	  FROM generate_series(1, 4) g;
	  INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key,
	    status, locked_by, locked_until, claimed_by)
	  SELECT ('00000000-0000-4000-8000-00000000000' || g)::uuid, 'goodbye', 'goodbye', 'k' || g,
	    'sending', 'w1', now() + interval '1 hour', '{w1}'
	  FROM generate_series(1, 4) g;
	  SELECT count(*) FROM engagement.record_outcomes('w1', '00000000-0000-4000-8000-0000000000aa', '[
	    {\"id\": 1, \"kind\": \"sent\", \"charge\": 1, \"before\": 0, \"requested\": true,
	     \"wamid\": \"wamid.1\", \"sent_at\": \"2026-03-01T10:00:00Z\"},
	    {\"id\": 2, \"kind\": \"failed\", \"charge\": 1, \"before\": 0, \"requested\": true,
	     \"code\": \"131026\", \"error\": \"undeliverable\", \"http_status\": 400},
	    {\"id\": 3, \"kind\": \"retried\", \"charge\": 1, \"before\": 0, \"requested\": true,
	     \"next_attempt_at\": \"2026-03-01T10:05:00Z\", \"attempt\": 1, \"http_status\": 503},
	    {\"id\": 4, \"kind\": \"sent\", \"charge\": 1, \"before\": 0, \"requested\": true,
	     \"wamid\": \"wamid.4\", \"sent_at\": \"2026-03-01T10:00:01Z\"}]');
	  SELECT delivered, read, failed, priced FROM engagement.apply_delivery_statuses('[
	    {\"wamid\": \"wamid.1\", \"status\": \"delivered\", \"at\": \"2026-03-01T10:00:02Z\",
	     \"category\": \"utility\", \"billable\": true},
	    {\"wamid\": \"wamid.1\", \"status\": \"read\", \"at\": \"2026-03-01T10:00:03Z\"},
	    {\"wamid\": \"wamid.4\", \"status\": \"failed\", \"at\": \"2026-03-01T10:00:04Z\",
	     \"code\": \"131026\"}]', '00000000-0000-4000-8000-0000000000bb')"
	written="SELECT string_agg(event_type || ' ' || aggregate_id || ' ' || payload::text || ' '
	    || correlation_id, E'\n' ORDER BY id) FROM engagement.outbox_events
	  WHERE aggregate_type = 'message';
	  SELECT string_agg(event || ' ' || message_id || ' ' || source || ' ' || details::text
	    || ' ' || run_id, E'\n' ORDER BY id) FROM engagement.audit_log"
	# every half hour of four days when clocks change, in three zones, five windows
	quiet="SELECT md5(string_agg(coalesce(engagement.quiet_until(a, z, w.s, w.e)::text, '-'), ','
	    ORDER BY a, z, w.s, w.e))
	  FROM generate_series(timestamptz '2026-03-07 00:00Z', '2026-03-10 00:00Z', '30 minutes') a0
	  CROSS JOIN (VALUES (interval '0'), ('21 days'), ('238 days'), ('231 days')) d(x)
	  CROSS JOIN LATERAL (SELECT a0 + d.x AS a) t
	  CROSS JOIN (VALUES ('America/New_York'), ('Europe/Berlin'), ('UTC')) zz(z)
	  CROSS JOIN (VALUES (time '22:00', time '07:00'), ('01:30', '03:00'), ('09:00', '17:00'),
	    (NULL, '07:00'), ('08:00', '08:00')) w(s, e)"
	new_db empty
	eng migrate --db "$CONN" up --to 21
	[ "$status" -eq 0 ]
	old=$DB
	q "$scenario" >"$TMP/old.run"
	q "$written" >"$TMP/old.sql"
	q "$quiet" >"$TMP/old.quiet"
	new_db empty
	eng migrate --db "$CONN" up
	[ "$status" -eq 0 ]
	[ "$(q "SELECT max(version) FROM engagement.schema_migrations")" -ge 22 ]
	q "$scenario" >"$TMP/new.run"
	q "$written" >"$TMP/new.sql"
	q "$quiet" >"$TMP/new.quiet"
	diff "$TMP/old.run" "$TMP/new.run"
	diff "$TMP/old.sql" "$TMP/new.sql"
	diff "$TMP/old.quiet" "$TMP/new.quiet"
	# sent 1 and 4, failed 2; delivered and read 1, undelivered 4
	[ "$(q "SELECT string_agg(event_type || ':' || aggregate_id, ',' ORDER BY id)
	        FROM engagement.outbox_events WHERE aggregate_type = 'message'")" = \
		"message.sent:1,message.sent:4,message.failed:2,message.delivered:1,message.read:1,message.undelivered:4" ]
	[ "$(q "SELECT count(*) FROM engagement.audit_log")" -eq 5 ]
	grep -q '"provider_message_id": "wamid.1"' "$TMP/new.sql"
	# both functions are one expression the planner inlines
	! q "EXPLAIN (VERBOSE, COSTS OFF) SELECT engagement.quiet_until(now(), 'UTC', '22:00', '07:00')" |
		grep -q quiet_until
	! q "EXPLAIN (VERBOSE, COSTS OFF) SELECT engagement.message_event_payload('message.sent', m)
	     FROM engagement.message_queue m" | grep -q message_event_payload
}

@test "the fence locks its group through the primary key, however few claims the statistics expect" {
	new_db
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, '+55119' || lpad(g::text, 8, '0')
	   FROM generate_series(1, 3000) g;
	   INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key)
	   SELECT id, 'weekly_review', 'weekly_review', id::text FROM engagement.users;
	   ANALYZE engagement.message_queue" >/dev/null
	# statistics taken while nothing was claimed; then 2,000 claims in flight
	q "SELECT count(*) FROM engagement.claim_messages('w1', now(), 300, 2000, 10)" >/dev/null
	plans=$(psql -X -q -At -d "$DB" 2>&1 <<-'SQL'
		LOAD 'auto_explain';
		SET auto_explain.log_min_duration = 0;
		SET auto_explain.log_nested_statements = on;
		SET auto_explain.log_level = notice;
		SET client_min_messages = notice;
		BEGIN;
		SELECT count(*) FROM engagement.send_fence(ARRAY(SELECT id FROM engagement.message_queue
		    WHERE status = 'sending' ORDER BY id LIMIT 10), 'w1', NULL, 0);
		ROLLBACK;
	SQL
	)
	# the plan of the statement that locks the group: up to the next one
	held=$(awk '/FOR UPDATE SKIP LOCKED\) q/ {on = 1} on && /NOTICE/ {exit} on' <<<"$plans")
	[[ "$held" == *message_queue_pkey* ]] || { echo "$plans"; return 1; }
	[[ "$held" != *message_queue_lease_idx* ]]
	# and the fence answered for the ten
	[ "$(tail -1 <<<"$plans")" = 10 ]
}

@test "down --steps 2 reverts the two newest" {
	new_db empty
	eng migrate --db "$CONN" up
	eng migrate --db "$CONN" down --steps 2
	[ "$status" -eq 0 ]
	[ "$(sj '[.reverted[].version] | join(",")')" = "$LATEST,$((LATEST - 1))" ]
	[ "$(sj .current)" -eq $((LATEST - 2)) ]
}

@test "down without a down file exits 65 and reverts nothing" {
	mig 0001 a "CREATE TABLE engagement.a (x int);" "DROP TABLE engagement.a;"
	mig 0002 b "CREATE TABLE engagement.b (x int);"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 0 ]
	eng migrate --db "$CONN" --dir "$TMP/m" down --steps 2
	[ "$status" -eq 65 ]
	[[ "$(sj .error)" == *"no down file"* ]]
	[ "$(q "SELECT count(*) FROM engagement.schema_migrations")" -eq 2 ]
}

# ---- drift and order ---------------------------------------------------

@test "a changed applied file is drift: status shows it, up and verify exit 65" {
	cp "$ENG_SRC"/sql/*.sql "$TMP/" && mkdir -p "$TMP/m" && mv "$TMP"/*.sql "$TMP/m/"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 0 ]
	echo "-- an innocent-looking edit" >>"$TMP/m/0002_events.up.sql"
	eng migrate --db "$CONN" --dir "$TMP/m" status
	[ "$status" -eq 0 ]
	[ "$(sj '.drift | join(",")')" = 2 ]
	[ "$(sj '.migrations[1].state')" = drift ]
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 65 ]
	[[ "$(sj .error)" == *0002_events.up.sql*drift* ]]
	eng migrate --db "$CONN" --dir "$TMP/m" verify
	[ "$status" -eq 65 ]
}

@test "line endings do not count as drift" {
	mkdir -p "$TMP/m" && cp "$ENG_SRC"/sql/*.sql "$TMP/m/"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	sed -i 's/$/\r/' "$TMP/m/0001_core.up.sql"
	eng migrate --db "$CONN" --dir "$TMP/m" verify
	[ "$status" -eq 0 ]
	# and the built-in copy has the same checksums as the files on disk
	eng migrate --db "$CONN" verify
	[ "$status" -eq 0 ]
}

@test "a pending file numbered below the newest applied is out of order (65)" {
	mig 0001 a "CREATE TABLE engagement.a (x int);" "DROP TABLE engagement.a;"
	mig 0003 c "CREATE TABLE engagement.c (x int);" "DROP TABLE engagement.c;"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 0 ]
	mig 0002 b "CREATE TABLE engagement.b (x int);" "DROP TABLE engagement.b;"
	eng migrate --db "$CONN" --dir "$TMP/m" status
	[ "$status" -eq 0 ]
	[ "$(sj '.out_of_order | join(",")')" = 2 ]
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 65 ]
	[[ "$(sj .error)" == *"out of order"* ]]
	[ "$(q "SELECT to_regclass('engagement.b') IS NULL")" = t ]
	eng migrate --db "$CONN" --dir "$TMP/m" verify
	[ "$status" -eq 65 ]
}

@test "verify: 78 while migrations are pending, 0 when complete" {
	new_db empty
	eng migrate --db "$CONN" up --to 3
	eng migrate --db "$CONN" verify
	[ "$status" -eq 78 ]
	[[ "$(sj .error)" == *"migrate up"* ]]
	eng migrate --db "$CONN" up
	eng migrate --db "$CONN" verify
	[ "$status" -eq 0 ]
}

# ---- failures -----------------------------------------------------------

@test "a failing migration applies nothing of itself and names file and line" {
	mig 0001 ok "CREATE TABLE engagement.ok (x int);" "DROP TABLE engagement.ok;"
	mig 0002 bad "-- creates a table, then fails
CREATE TABLE engagement.half (x int);

INSERT INTO engagement.half VALUES (1);
SELECT x
  FROM engagement.no_such_table;
CREATE TABLE engagement.never (x int);" "DROP TABLE engagement.half;"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 65 ]
	[ "$(sj .failed.line)" -eq 6 ]
	[[ "$(sj .error)" == *"0002_bad.up.sql:6:"*"no_such_table"* ]]
	[ "$(sj .current)" -eq 1 ]
	[ "$(q "SELECT to_regclass('engagement.half') IS NULL")" = t ]
	[ "$(q "SELECT string_agg(version::text, ',') FROM engagement.schema_migrations")" = 1 ]
	[ "$(log_events run_failed | wc -l)" -eq 1 ]
}

@test "an error without a position names the statement's first line" {
	mig 0001 dup "CREATE TABLE engagement.d (x int PRIMARY KEY);
INSERT INTO engagement.d VALUES (1);

INSERT INTO engagement.d
VALUES (1);"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 65 ]
	[ "$(sj .failed.line)" -eq 4 ]
	[ "$(sj .failed.sqlstate)" = 23505 ]
}

@test "an unterminated string is reported with its line, nothing applied" {
	mig 0001 broken "CREATE TABLE engagement.x (y text);
INSERT INTO engagement.x VALUES ('oops);"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 65 ]
	[[ "$(sj .error)" == *"0001_broken.up.sql:2"* ]]
	[ "$(q "SELECT to_regclass('engagement.x') IS NULL")" = t ]
}

@test "no-transaction migrations run CREATE INDEX CONCURRENTLY; without the marker it fails" {
	mig 0001 t "CREATE TABLE engagement.t (x int);" "DROP TABLE engagement.t;"
	mig 0002 idx "CREATE INDEX CONCURRENTLY t_x_idx ON engagement.t (x);"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 65 ]
	[[ "$(sj .error)" == *"cannot run inside a transaction block"* ]]
	mig 0002 idx "-- migrate:no-transaction
CREATE INDEX CONCURRENTLY t_x_idx ON engagement.t (x);"
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 0 ]
	[ "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'engagement.t_x_idx'::regclass")" = t ]
}

@test "a CREATE INDEX CONCURRENTLY that failed leaves no invalid index behind: not recorded, rebuilt by the next up" {
	mig 0001 t "CREATE TABLE engagement.t (x int); INSERT INTO engagement.t VALUES (1), (1);" \
		"DROP TABLE engagement.t;"
	mig 0002 idx "-- migrate:no-transaction
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_x_idx ON engagement.t (x);"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 65 ]
	# PostgreSQL left the half-built index, invalid; the version is not recorded
	[ "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'engagement.t_x_idx'::regclass")" = f ]
	[ "$(q "SELECT coalesce(max(version), 0) FROM engagement.schema_migrations")" -eq 1 ]
	eng migrate --db "$CONN" --dir "$TMP/m" status
	[ "$(sj '.invalid_indexes | join(",")')" = engagement.t_x_idx ]
	eng migrate --db "$CONN" --dir "$TMP/m" verify
	[ "$status" -eq 65 ]
	# the data fixed, up drops the invalid index and builds it again
	q "DELETE FROM engagement.t WHERE ctid = (SELECT max(ctid) FROM engagement.t)" >/dev/null
	eng migrate --db "$CONN" --dir "$TMP/m" up
	[ "$status" -eq 0 ]
	[ "$(log_events invalid_index_dropped | jq -r .index)" = engagement.t_x_idx ]
	[ "$(q "SELECT indisvalid FROM pg_index WHERE indexrelid = 'engagement.t_x_idx'::regclass")" = t ]
	eng migrate --db "$CONN" --dir "$TMP/m" verify
	[ "$status" -eq 0 ]
	[ "$(sj '.invalid_indexes | length')" -eq 0 ]
}

@test "status and verify report an invalid index in a fully applied schema (65)" {
	new_db
	q "UPDATE pg_index SET indisvalid = false
	   WHERE indexrelid = 'engagement.message_queue_provider_id_idx'::regclass" >/dev/null
	eng migrate --db "$CONN" status
	[ "$status" -eq 0 ]
	[ "$(sj '.invalid_indexes | join(",")')" = engagement.message_queue_provider_id_idx ]
	[ "$(log_events invalid_index | jq -r .index)" = engagement.message_queue_provider_id_idx ]
	eng migrate --db "$CONN" verify
	[ "$status" -eq 65 ]
	[[ "$(sj .error)" == *"message_queue_provider_id_idx is invalid"* ]]
}

@test "the lock held longer than --lock-wait exits 75" {
	new_db empty
	# held until the end of the test
	session_open holder
	session holder "SELECT pg_advisory_lock(7236251001)"
	start=$(date +%s)
	eng migrate --db "$CONN" --lock-wait 1 up
	end=$(date +%s)
	session_close holder
	[ "$status" -eq 75 ]
	[[ "$(sj .error)" == *"--lock-wait"* ]]
	# it gave up after about --lock-wait, and did not wait for the holder
	# (bound far above 1 s: a loaded machine is slow)
	[ $((end - start)) -lt 30 ]
	[ "$(q "SELECT to_regclass('engagement.schema_migrations') IS NULL")" = t ]
}

@test "--lock-timeout bounds a migration statement waiting for a table lock (75)" {
	mig 0001 t "CREATE TABLE engagement.t (x int);" "DROP TABLE engagement.t;"
	mig 0002 alter "ALTER TABLE engagement.t ADD COLUMN y int;"
	new_db empty
	eng migrate --db "$CONN" --dir "$TMP/m" up --to 1
	# held until migrate has given up
	session_open holder
	session holder "BEGIN; LOCK TABLE engagement.t;"
	eng migrate --db "$CONN" --dir "$TMP/m" --lock-timeout 500ms up
	session_close holder
	[ "$status" -eq 75 ]
	[ "$(sj .failed.sqlstate)" = 55P03 ]
	[ "$(q "SELECT max(version) FROM engagement.schema_migrations")" -eq 1 ]
}

# ---- new ------------------------------------------------------------------

@test "new writes the next pair of files" {
	mig 0001 a "SELECT 1;" "SELECT 1;"
	mig 0007 b "SELECT 1;" "SELECT 1;"
	eng migrate --dir "$TMP/m" new add_widgets
	[ "$status" -eq 0 ]
	[ -f "$TMP/m/0008_add_widgets.up.sql" ]
	[ -f "$TMP/m/0008_add_widgets.down.sql" ]
	[ "$(sj .version)" -eq 8 ]
	eng migrate --dir "$TMP/m" new "Bad Name"
	[ "$status" -eq 64 ]
	eng migrate --dir "$TMP/nonexistent" new x
	[ "$status" -eq 78 ]
}
