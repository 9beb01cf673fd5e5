#!/usr/bin/env bats
# optout-set: cross-channel preference sync (story 6.3) on the real cluster.

load helpers

setup() {
	new_db
	q "INSERT INTO engagement.users (id, phone_e164) VALUES
	   ('00000000-0000-4000-8000-000000000001', '+5511900000001'),
	   ('00000000-0000-4000-8000-000000000002', '+5511900000002')" >/dev/null
	U=00000000-0000-4000-8000-000000000001
	P=+5511900000001
}

teardown() {
	stop_standin
	drop_dbs
}

pref() {
	q "SELECT (CASE WHEN reengagement_opt_out THEN 't' ELSE 'f' END) || '|' || coalesce(reengagement_opt_out_source, '') ||
	          '|' || coalesce(to_char(reengagement_opt_out_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')
	   FROM engagement.user_preferences WHERE user_id = '$U'"
}

counts() {
	q "SELECT (SELECT count(*) FROM engagement.audit_log) || '/' ||
	          (SELECT count(*) FROM engagement.outbox_events)"
}

@test "opt out with a WhatsApp phrase: --show reports it at once" {
	eng optout-set --db "$CONN" --phone "$P" --text "parar lembretes" --locale pt-BR --source whatsapp
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = applied ]
	[ "$(sj .opt_out)" = true ]
	[ "$(sj .user_id)" = "$U" ]
	eng optout-set --db "$CONN" --phone "$P" --show
	[ "$status" -eq 0 ]
	[ "$(sj .preference.reengagement_opt_out)" = true ]
	[ "$(sj .preference.source)" = whatsapp ]
	[ "$(sj .preference.updated_at)" != null ]
	[[ "$output$stderr" != *"$P"* ]]
	[[ "$output$stderr" != *900000001* ]]
}

@test "--show for a user who never set a preference: the defaults" {
	eng optout-set --db "$CONN" --user "$U" --show
	[ "$status" -eq 0 ]
	[ "$(jq -c .preference <<<"$output")" = '{"user_id":"'"$U"'","reengagement_opt_out":false,"updated_at":null,"source":null,"locale":"en","timezone":"UTC","quiet_hours":null,"preferred_destination":"individual"}' ]
	[ "$(q "SELECT count(*) FROM engagement.user_preferences")" -eq 0 ]
}

@test "a change dated in the future is refused (65), nothing written" {
	future=$(q "SELECT to_char((now() + interval '1 day') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
	eng optout-set --db "$CONN" --user "$U" --opt-in --source web --at "$future"
	[ "$status" -eq 65 ]
	[ "$(grep -c '"level":"error"' <<<"$stderr")" -eq 1 ]
	[[ "$(sj .error)" == *"ahead of the database clock"* ]]
	[ "$(counts)" = "0/0" ]
	[ "$(q "SELECT count(*) FROM engagement.user_preferences WHERE reengagement_opt_out_updated_at IS NOT NULL")" -eq 0 ]
	# a stop without --at still works afterwards (nothing froze the row)
	eng optout-set --db "$CONN" --user "$U" --text "stop reminders" --source whatsapp
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = applied ]
	# a little clock skew is tolerated
	soon=$(q "SELECT to_char((now() + interval '1 minute') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
	eng optout-set --db "$CONN" --user "$U" --opt-in --source web --at "$soon"
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = applied ]
}

@test "an applied change writes the row, the consent record, an outbox event and a NOTIFY" {
	session_open listener
	session listener "LISTEN engagement_preferences;"
	eng optout-set --db "$CONN" --user "$U" --opt-out --source web --at 2026-11-22T10:00:00Z --reason "settings page"
	[ "$status" -eq 0 ]
	# psql prints the notifications that came meanwhile after its next
	# query (the server sends them before that query's end)
	session listener "SELECT 1;"
	session_close listener
	[ "$(pref)" = "t|web|2026-11-22T10:00:00Z" ]
	run q "SELECT event, source, details->>'old_value', details->>'new_value', details->>'reason', run_id IS NOT NULL
	       FROM engagement.audit_log WHERE user_id = '$U'"
	[ "$output" = "reengagement_opted_out|web|false|true|settings page|t" ]
	run q "SELECT event_type, payload->>'opt_out', payload->>'source', payload::text LIKE '%+55%'
	       FROM engagement.outbox_events WHERE user_id = '$U'"
	[ "$output" = "preferences.reengagement_changed|true|web|f" ]
	# the NOTIFY carries the outbox event's id and nothing personal
	id=$(q "SELECT id FROM engagement.outbox_events WHERE user_id = '$U'")
	grep -q "Asynchronous notification \"engagement_preferences\" with payload \"$id\"" \
		"$BATS_TEST_TMPDIR/listener.out"
	run grep -E "$U|opt_out|web" "$BATS_TEST_TMPDIR/listener.out"
	[ "$status" -eq 1 ]
}

@test "opt out on the web: the next daily and weekly runs skip the user" {
	q "INSERT INTO engagement.engagement_states (user_id, state, last_activity_at) VALUES
	     ('$U', 'active', '2026-11-01T00:00:00Z'), ('00000000-0000-4000-8000-000000000002', 'active', '2026-11-01T00:00:00Z');
	   INSERT INTO engagement.activity_events (user_id, occurred_at) VALUES
	     ('$U', '2026-11-20T00:00:00Z'), ('00000000-0000-4000-8000-000000000002', '2026-11-20T00:00:00Z')" >/dev/null
	eng optout-set --db "$CONN" --user "$U" --opt-out --source web
	[ "$status" -eq 0 ]
	eng engagement-daily --db "$CONN" --now 2026-11-22T06:00:00Z
	[ "$(sj .checks.inactivity.skipped)" -eq 1 ]
	[ "$(sj .checks.inactivity.succeeded)" -eq 1 ]
	eng engagement-weekly --db "$CONN" --now 2026-11-23T09:00:00Z
	[ "$(sj .skipped)" -eq 1 ]
	[ "$(q "SELECT count(*) FROM engagement.message_queue WHERE user_id = '$U'")" -eq 0 ]
	[ "$(q "SELECT state FROM engagement.engagement_states WHERE user_id = '$U'")" = active ]
}

@test "WhatsApp opt-out, web opt-in, WhatsApp opt-out in quick succession: the last wins" {
	eng optout-set --db "$CONN" --phone "$P" --text "stop reminders" --source whatsapp
	[ "$(sj .outcome)" = applied ]
	eng optout-set --db "$CONN" --user "$U" --opt-in --source web
	[ "$(sj .outcome)" = applied ]
	eng optout-set --db "$CONN" --phone "$P" --text "PARAR recordatorios" --source whatsapp
	[ "$(sj .outcome)" = applied ]
	[ "$(pref | cut -d'|' -f1,2)" = "t|whatsapp" ]
	[ "$(q "SELECT string_agg(event, ',' ORDER BY id) FROM engagement.audit_log")" = \
	  "reengagement_opted_out,reengagement_opted_in,reengagement_opted_out" ]
}

@test "twelve concurrent changes with shuffled timestamps: the newest wins, no lost update" {
	# minute m: opt_out when m is odd; the newest (minute 12) opts in
	pids=()
	for m in 7 3 12 1 9 5 11 2 8 4 10 6; do
		if [ $((m % 2)) -eq 1 ]; then v=--opt-out; else v=--opt-in; fi
		"$ENG_BIN/optout-set" --db "$CONN" --user "$U" $v --source api \
			--at "2026-11-22T10:$(printf %02d "$m"):00Z" >"$BATS_TEST_TMPDIR/o$m.json" 2>/dev/null &
		pids+=($!)
	done
	wait "${pids[@]}"
	[ "$(pref)" = "f|api|2026-11-22T10:12:00Z" ]
	for m in 7 3 12 1 9 5 11 2 8 4 10 6; do
		[ "$(jq .exit_code "$BATS_TEST_TMPDIR/o$m.json")" -eq 0 ]
	done
	# whatever the arrival order, the audit log's applied changes are in time order
	[ "$(q "SELECT count(*) FROM (SELECT (details->>'at')::timestamptz AS at,
	        lag((details->>'at')::timestamptz) OVER (ORDER BY id) AS prev
	        FROM engagement.audit_log) x WHERE prev > at")" -eq 0 ]
}

@test "an older change is stale: reported, nothing written" {
	eng optout-set --db "$CONN" --user "$U" --opt-out --source web --at 2026-11-22T10:00:00Z
	before=$(counts)
	eng optout-set --db "$CONN" --user "$U" --opt-in --source whatsapp --at 2026-11-22T09:59:59Z
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = stale ]
	[ "$(pref)" = "t|web|2026-11-22T10:00:00Z" ]
	[ "$(counts)" = "$before" ]
}

@test "the same value again, newer: unchanged, its time moves on, nothing published" {
	eng optout-set --db "$CONN" --user "$U" --opt-out --source web --at 2026-11-22T10:00:00Z
	eng optout-set --db "$CONN" --user "$U" --opt-out --source whatsapp --at 2026-11-22T11:00:00Z
	[ "$(sj .outcome)" = unchanged ]
	[ "$(pref)" = "t|whatsapp|2026-11-22T11:00:00Z" ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 1 ]
	[ "$(q "SELECT event FROM engagement.audit_log ORDER BY id DESC LIMIT 1")" = reengagement_reaffirmed ]
	# so an opt-in made between the two is now stale
	eng optout-set --db "$CONN" --user "$U" --opt-in --source web --at 2026-11-22T10:30:00Z
	[ "$(sj .outcome)" = stale ]
}

@test "phrases are matched ignoring case, accents and spacing" {
	for text in "Stop Reminders" "  stop   reminders  " "PARAR LEMBRETES!" "parar  recordatórios" "¡Parar recordatorios!"; do
		eng optout-set --db "$CONN" --user "$U" --text "$text" --source whatsapp
		[ "$status" -eq 0 ] || { echo "'$text' -> $status"; return 1; }
		[ "$(sj .opt_out)" = true ]
	done
	for text in "start reminders" "Ativar Lembretes" "ACTIVAR recordatorios" "ativar lembretes."; do
		eng optout-set --db "$CONN" --user "$U" --text "$text" --source whatsapp
		[ "$(sj .opt_out)" = false ] || { echo "'$text'"; return 1; }
	done
}

@test "an unknown phrase exits 65 and changes nothing" {
	for text in "stop" "parar os lembretes" "stop reminders please" ""; do
		eng optout-set --db "$CONN" --user "$U" --text "$text" --source whatsapp
		[ "$status" -eq 65 ] || { echo "'$text' -> $status"; return 1; }
	done
	[ "$(counts)" = "0/0" ]
}

@test "an unknown user exits 67, by id and by phone" {
	eng optout-set --db "$CONN" --user 00000000-0000-4000-8000-0000000000ff --opt-out --source web
	[ "$status" -eq 67 ]
	eng optout-set --db "$CONN" --phone +5511999999999 --opt-out --source web
	[ "$status" -eq 67 ]
	[[ "$output$stderr" != *+5511999999999* ]]
	eng optout-set --db "$CONN" --phone +5511999999999 --show
	[ "$status" -eq 67 ]
	[ "$(counts)" = "0/0" ]
	[ "$(q "SELECT count(*) FROM engagement.user_preferences")" -eq 0 ]
}

@test "malformed phone, UUID and timestamp exit 65; an unknown source exits 64" {
	eng optout-set --db "$CONN" --phone 5511900000001 --opt-out --source web
	[ "$status" -eq 65 ]
	eng optout-set --db "$CONN" --user not-a-uuid --opt-out --source web
	[ "$status" -eq 65 ]
	eng optout-set --db "$CONN" --user "$U" --opt-out --source web --at yesterday
	[ "$status" -eq 65 ]
	eng optout-set --db "$CONN" --user "$U" --opt-out --source fax
	[ "$status" -eq 64 ]
	[ "$(stderr_lines)" -eq 1 ]
	[ "$(counts)" = "0/0" ]
}

@test "usage errors exit 64" {
	for args in "--opt-out --source web" "--user $U --phone $P --opt-out --source web" \
		"--user $U --opt-out --opt-in --source web" "--user $U --opt-out" \
		"--user $U --opt-out --source web --locale pt-BR" "--user $U --show --opt-out" \
		"--batch - --user $U" "--user $U --text" "--user $U --opt-out --source web --locale 'pt BR'"; do
		eval "eng optout-set --db \"\$CONN\" $args"
		[ "$status" -eq 64 ] || { echo "$args -> $status"; return 1; }
	done
}

@test "--dry-run reports the outcome and changes nothing" {
	eng optout-set --db "$CONN" --user "$U" --opt-out --source web --dry-run
	[ "$status" -eq 0 ]
	[ "$(sj .outcome)" = applied ]
	[ "$(counts)" = "0/0" ]
	[ "$(q "SELECT count(*) FROM engagement.user_preferences WHERE reengagement_opt_out")" -eq 0 ]
}

@test "a message queued before the opt-out is blocked by the opt-out itself, and never sent" {
	start_standin
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, next_attempt_at)
	   VALUES ('$U', 'goodbye', 'goodbye', 'k1', now() - interval '1 minute')" >/dev/null
	eng optout-set --db "$CONN" --phone "$P" --text "stop reminders" --source whatsapp
	# the queue tells the truth at once (DECISIONS.md, issue 9)
	[ "$(q "SELECT status || '/' || last_error_code FROM engagement.message_queue")" = blocked/opted_out ]
	[ "$(q "SELECT source FROM engagement.audit_log WHERE event = 'message_blocked'")" = whatsapp ]
	eng queue-send --db "$CONN"
	[ "$status" -eq 0 ]
	[ "$(sj .claimed)" -eq 0 ]
	[ "$(q "SELECT status FROM engagement.message_queue")" = blocked ]
	[ "$(requests)" -eq 0 ]
}

@test "an opt-in does not unblock what the opt-out blocked; an opt-in blocks nothing" {
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, next_attempt_at)
	   VALUES ('$U', 'goodbye', 'goodbye', 'k1', now() - interval '1 minute')" >/dev/null
	eng optout-set --db "$CONN" --user "$U" --opt-out --source web
	eng optout-set --db "$CONN" --user "$U" --opt-in --source web
	[ "$(sj .outcome)" = applied ]
	[ "$(q "SELECT status FROM engagement.message_queue WHERE idempotency_key = 'k1'")" = blocked ]
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, idempotency_key, next_attempt_at)
	   VALUES ('$U', 'goodbye', 'goodbye', 'k2', now() - interval '1 minute')" >/dev/null
	eng optout-set --db "$CONN" --user "$U" --opt-in --source web
	[ "$(sj .outcome)" = unchanged ]
	[ "$(q "SELECT status FROM engagement.message_queue WHERE idempotency_key = 'k2'")" = queued ]
}

@test "--batch: per-line outcomes, one broken line does not stop the rest" {
	cat >"$BATS_TEST_TMPDIR/changes" <<EOF
{"user_id": "$U", "opt_out": true, "source": "web", "at": "2026-11-22T10:00:00Z"}
{"phone": "+5511900000002", "opt_out": true, "source": "whatsapp", "at": "2026-11-22T10:00:00Z"}

{"user_id": "$U", "opt_out": false, "source": "api", "at": "2026-11-22T09:00:00Z"}
this is not json
{"user_id": "$U", "opt_out": false, "source": "fax"}
{"user_id": "00000000-0000-4000-8000-0000000000ff", "opt_out": true, "source": "web"}
{"user_id": "$U", "opt_out": false, "source": "api", "at": "2026-11-22T11:00:00Z", "reason": "support ticket 42"}
{"user_id": "$U", "opt_out": true, "source": "web", "extra": 1}
EOF
	eng optout-set --db "$CONN" --batch "$BATS_TEST_TMPDIR/changes"
	[ "$status" -eq 1 ]
	[ "$(sj .status)" = partial ]
	[ "$(sj .lines)" -eq 8 ]
	[ "$(sj .applied)" -eq 3 ]
	[ "$(sj .stale)" -eq 1 ]
	[ "$(sj .failed)" -eq 4 ]
	[ "$(sj .malformed)" -eq 3 ]
	[ "$(log_events line_failed | jq -s -c '[.[].line]')" = "[5,6,7,9]" ]
	[ "$(log_events line_result | jq -r 'select(.line == 4) | .outcome')" = stale ]
	[ "$(pref | cut -d'|' -f1,2)" = "f|api" ]
	[ "$(q "SELECT reengagement_opt_out FROM engagement.user_preferences WHERE user_id = '00000000-0000-4000-8000-000000000002'")" = t ]
	[ "$(q "SELECT details->>'reason' FROM engagement.audit_log WHERE source = 'api'")" = "support ticket 42" ]
}

@test "--batch: a line dated in the future fails alone" {
	future=$(q "SELECT to_char((now() + interval '1 year') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
	cat >"$BATS_TEST_TMPDIR/changes" <<EOF
{"user_id": "$U", "opt_out": false, "source": "web", "at": "$future"}
{"user_id": "$U", "opt_out": true, "source": "whatsapp"}
{"phone": "+5511900000002", "opt_out": true, "source": "web"}
EOF
	eng optout-set --db "$CONN" --batch "$BATS_TEST_TMPDIR/changes"
	[ "$status" -eq 1 ]
	[ "$(sj .applied)" -eq 2 ]
	[ "$(sj .failed)" -eq 1 ]
	[ "$(sj .malformed)" -eq 0 ]
	[ "$(log_events line_failed | jq -r '"\(.line) \(.error_class)"')" = "1 data" ]
	[ "$(pref | cut -d'|' -f1,2)" = "t|whatsapp" ]
	[ "$(counts)" = "2/2" ]
}

@test "--batch --dry-run reports each line's outcome and changes nothing" {
	cat >"$BATS_TEST_TMPDIR/changes" <<EOF
{"user_id": "$U", "opt_out": true, "source": "web"}
{"phone": "+5511900000002", "opt_out": false, "source": "web"}
{"user_id": "00000000-0000-4000-8000-0000000000ff", "opt_out": true, "source": "web"}
EOF
	eng optout-set --db "$CONN" --batch "$BATS_TEST_TMPDIR/changes" --dry-run
	[ "$status" -eq 1 ]
	[ "$(sj .applied)" -eq 1 ]
	[ "$(sj .unchanged)" -eq 1 ]
	[ "$(sj .failed)" -eq 1 ]
	[ "$(log_events line_result | jq -s -c '[.[].outcome]')" = '["applied","unchanged"]' ]
	[ "$(counts)" = "0/0" ]
	[ "$(q "SELECT count(*) FROM engagement.user_preferences")" -eq 0 ]
}

@test "--batch from stdin, 3000 changes for 1000 users, in order per user" {
	q "INSERT INTO engagement.users (id, phone_e164)
	   SELECT ('00000000-0000-4000-9000-' || lpad(i::text, 12, '0'))::uuid, '+5512' || lpad(i::text, 9, '0')
	   FROM generate_series(1, 1000) i" >/dev/null
	for r in 1 2 3; do
		for i in $(seq 1 1000); do
			v=$([ $r -eq 2 ] && echo false || echo true)
			printf '{"user_id":"00000000-0000-4000-9000-%012d","opt_out":%s,"source":"api"}\n' "$i" "$v"
		done
	done >"$BATS_TEST_TMPDIR/many"
	eng_in "$BATS_TEST_TMPDIR/many" optout-set --db "$CONN" --batch - --log-level warn
	[ "$status" -eq 0 ]
	[ "$(sj .lines)" -eq 3000 ]
	[ "$(sj .applied)" -eq 3000 ]
	[ "$(q "SELECT count(*) FROM engagement.user_preferences WHERE reengagement_opt_out")" -eq 1000 ]
	[ "$(q "SELECT count(*) FROM engagement.outbox_events")" -eq 3000 ]
}

@test "--batch lines with the same \"id\" twice: the second is a duplicate and writes no audit row" {
	cat >"$BATS_TEST_TMPDIR/ids" <<EOF2
{"user_id": "$U", "opt_out": true, "source": "whatsapp", "at": "2026-11-22T10:00:00Z", "id": "wamid.OPT1"}
{"user_id": "$U", "opt_out": true, "source": "whatsapp", "at": "2026-11-22T10:05:00Z", "id": "wamid.OPT1"}
{"phone": "+5511900000002", "opt_out": true, "source": "whatsapp", "at": "2026-11-22T10:00:00Z", "id": "wamid.OPT2"}
EOF2
	eng optout-set --db "$CONN" --batch "$BATS_TEST_TMPDIR/ids"
	[ "$status" -eq 0 ] || { echo "exit $status: $output $stderr" >&2; return 1; }
	[ "$(sj .applied)" -eq 2 ]
	[ "$(sj .duplicates)" -eq 1 ]
	[ "$(sj .failed)" -eq 0 ]
	[ "$(log_events line_result | jq -s -c 'map(.outcome)')" = '["applied","duplicate","applied"]' ]
	[ "$(pref)" = "t|whatsapp|2026-11-22T10:00:00Z" ]
	[ "$(counts)" = "2/2" ]
	# the whole batch again: all three duplicates, nothing written
	eng optout-set --db "$CONN" --batch "$BATS_TEST_TMPDIR/ids"
	[ "$status" -eq 0 ]
	[ "$(sj .duplicates)" -eq 3 ]
	[ "$(sj .applied)" -eq 0 ]
	[ "$(counts)" = "2/2" ]
	[ "$(pref)" = "t|whatsapp|2026-11-22T10:00:00Z" ]
	# a newer opt-in under another id applies; the old id still changes nothing
	printf '{"user_id": "%s", "opt_out": false, "source": "web", "at": "2026-11-22T11:00:00Z", "id": "web-1"}\n' "$U" >"$BATS_TEST_TMPDIR/in"
	eng optout-set --db "$CONN" --batch "$BATS_TEST_TMPDIR/in"
	[ "$(sj .applied)" -eq 1 ]
	printf '{"user_id": "%s", "opt_out": true, "source": "whatsapp", "at": "2026-11-22T12:00:00Z", "id": "wamid.OPT1"}\n' "$U" >"$BATS_TEST_TMPDIR/again"
	eng optout-set --db "$CONN" --batch "$BATS_TEST_TMPDIR/again"
	[ "$status" -eq 0 ]
	[ "$(sj .duplicates)" -eq 1 ]
	[ "$(pref | cut -d'|' -f1,2)" = "f|web" ]
	[ "$(counts)" = "3/3" ]
}
