#!/usr/bin/env bash
# Run the programs under valgrind memcheck against a real database: any
# memory error or definite leak fails. programs.sh BIN_DIR
set -euo pipefail
umask 077 # secret files are readable by their owner only
bin=$1
db="vg_$$_$RANDOM"
createdb "$db"
trap 'psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
vg() {
  valgrind --quiet --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --track-origins=yes "$@"
}
expect() {
  local want=$1; shift
  local rc=0
  vg "$@" >/dev/null 2>"$TMPDIR_VG/err" || rc=$?
  if [ "$rc" != "$want" ]; then
    echo "valgrind: '$*' exited $rc, expected $want" >&2
    grep -v '^{' "$TMPDIR_VG/err" >&2 || true
    exit 1
  fi
}
TMPDIR_VG=$(mktemp -d)
standin=
trap '[ -n "$standin" ] && kill "$standin" 2>/dev/null; rm -rf "$TMPDIR_VG"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
c="dbname=$db"
expect 0 "$bin/migrate" --db "$c" up
expect 0 "$bin/migrate" --db "$c" status
expect 0 "$bin/migrate" --db "$c" verify
expect 0 "$bin/migrate" --db "$c" down --steps 2
expect 0 "$bin/migrate" --db "$c" up --dry-run
expect 0 "$bin/migrate" --db "$c" up
expect 64 "$bin/migrate" --bogus
expect 75 "$bin/migrate" --db "host=127.0.0.1 port=1 connect_timeout=2" status
expect 78 "$bin/migrate" --db "host='x" status
# the jobs and the event tool on a small population
psql -X -q -d "$db" -v n=300 -v now=2026-11-22T06:00:00Z -f "$(dirname "$0")/../../bench/gen_users.sql" >/dev/null
expect 0 "$bin/engagement-daily" --db "$c" --now 2026-11-22T06:00:00Z --batch-size 50
expect 0 "$bin/engagement-weekly" --db "$c" --now 2026-11-22T06:00:00Z
printf '%s\n' '{"user_id":"00000000-0000-4000-8000-000000000012","goodbye_reply":2}' \
  '{"phone":"+5511000000017","activity":true}' 'not json' >"$TMPDIR_VG/events"
expect 1 "$bin/engagement-event" --db "$c" --now 2026-11-22T07:00:00Z --batch "$TMPDIR_VG/events"
expect 65 "$bin/engagement-event" --db "$c" --user 00000000-0000-4000-8000-000000000017 --goodbye-reply 1

# queue-send against the stand-in: successes, failures, a 131050 opt-out
echo "vg-token" >"$TMPDIR_VG/token"
"$bin/tests/wa-standin/wa-standin" --token-file "$TMPDIR_VG/token" --port 0 \
  --port-file "$TMPDIR_VG/port" >/dev/null 2>&1 &
standin=$!
for _ in $(seq 100); do [ -s "$TMPDIR_VG/port" ] && break; sleep 0.05; done
psql -X -q -d "$db" -c "UPDATE engagement.users SET phone_e164 = '+55119' ||
    lpad(substr(id::text, 25)::bigint::text, 6, '0') ||
    (ARRAY['000', '901', '904', '910', '907'])[1 + (substr(id::text, 25)::bigint % 5)::int];
  UPDATE engagement.message_queue SET next_attempt_at = '2026-11-22T05:00:00Z'" >/dev/null
WHATSAPP_API_URL="http://127.0.0.1:$(cat "$TMPDIR_VG/port")" WHATSAPP_PHONE_NUMBER_ID=1234567890 \
  WHATSAPP_ACCESS_TOKEN_FILE="$TMPDIR_VG/token" \
  expect 0 "$bin/queue-send" --db "$c" --now 2026-11-22T15:00:00Z --rate 0 --max-messages 60
echo wrong >"$TMPDIR_VG/bad"
WHATSAPP_API_URL="http://127.0.0.1:$(cat "$TMPDIR_VG/port")" WHATSAPP_PHONE_NUMBER_ID=1234567890 \
  WHATSAPP_ACCESS_TOKEN_FILE="$TMPDIR_VG/bad" \
  expect 69 "$bin/queue-send" --db "$c" --now 2026-11-22T15:00:00Z
# preferences and the outbox (the webhook on the stand-in's receiver)
expect 0 "$bin/optout-set" --db "$c" --user 00000000-0000-4000-8000-000000000021 --text "Parar Lembretes" --source whatsapp
expect 0 "$bin/optout-set" --db "$c" --user 00000000-0000-4000-8000-000000000021 --show
printf '%s\n' '{"user_id":"00000000-0000-4000-8000-000000000022","opt_out":true,"source":"web"}' \
  '{"phone":"+5511000000023","opt_out":false,"source":"api","at":"2020-01-01T00:00:00Z"}' 'nope' >"$TMPDIR_VG/changes"
expect 1 "$bin/optout-set" --db "$c" --batch "$TMPDIR_VG/changes"
expect 65 "$bin/optout-set" --db "$c" --user 00000000-0000-4000-8000-000000000021 --text "whatever" --source web
# the operator's hands: each command, show's masking and an unknown person
expect 0 "$bin/engagement-ctl" --db "$c" pause --type weekly_review --until 2099-01-01T00:00:00Z --reason vg
expect 0 "$bin/engagement-ctl" --db "$c" pauses
expect 0 "$bin/engagement-ctl" --db "$c" resume --type weekly_review
expect 0 "$bin/engagement-ctl" --db "$c" requeue --status failed --error 131026 --error 130429 --dry-run
expect 0 "$bin/engagement-ctl" --db "$c" cancel --user 00000000-0000-4000-8000-000000000021 --reason vg
expect 0 "$bin/engagement-ctl" --db "$c" limit --tier TIER_10K
expect 0 "$bin/engagement-ctl" --db "$c" show --user 00000000-0000-4000-8000-000000000021
expect 67 "$bin/engagement-ctl" --db "$c" show --phone +5511000000999
expect 64 "$bin/engagement-ctl" --db "$c" cancel
echo "vg-secret" >"$TMPDIR_VG/secret"
expect 0 "$bin/outbox-relay" --db "$c" --webhook "http://127.0.0.1:$(cat "$TMPDIR_VG/port")/_webhook" \
  --secret-file "$TMPDIR_VG/secret" --batch 50
expect 0 "$bin/outbox-relay" --db "$c" --stdout
kill "$standin"
standin=
echo "valgrind: programs clean"
