# queue-send's test helpers (send.bats, send_account.bats): people and
# queued messages as SQL rows, and a run at a fixed instant ($NOW).

uid() { printf '00000000-0000-4000-8000-%012d' "$1"; }
# phone NUM [SUFFIX]: the stand-in answers by the last three digits
phone() { printf '+55119%05d%s' "$1" "${2:-000}"; }

# user NUM [SUFFIX] [LOCALE] [TZ] [QUIET_START QUIET_END]
user() {
	local id qs=NULL qe=NULL
	id=$(uid "$1")
	if [ -n "${5:-}" ]; then qs="'$5'"; qe="'$6'"; fi
	q "INSERT INTO engagement.users (id, phone_e164) VALUES ('$id', '$(phone "$1" "${2:-000}")');
	   INSERT INTO engagement.user_preferences (user_id, locale, timezone, quiet_hours_start, quiet_hours_end)
	   VALUES ('$id', '${3:-en}', '${4:-UTC}', $qs, $qe)" >/dev/null
}

# msg NUM [TYPE] [more columns as SQL "col, ..." and values "v, ..."]
msg() {
	local type=${2:-goodbye}
	q "INSERT INTO engagement.message_queue (user_id, message_type, template_key, params,
	     idempotency_key, next_attempt_at${3:+, $3})
	   VALUES ('$(uid "$1")', '$type', '$type',
	     CASE WHEN '$type' = 'weekly_review' THEN '{\"activity_count\": 4}'::jsonb ELSE '{}'::jsonb END,
	     '$(uid "$1"):$type:$RANDOM$RANDOM', '2026-11-22T14:00:00Z'${4:+, $4})
	   RETURNING id"
}

row() { q "SELECT $2 FROM engagement.message_queue WHERE id = $1"; }
sent_count() { q "SELECT count(*) FROM engagement.message_queue WHERE status = 'sent'"; }

send() { eng queue-send --db "$CONN" --now "$NOW" "$@"; }
