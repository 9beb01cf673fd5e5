#!/usr/bin/env bats
# Fault injection for delivery (issue 15, part 1b): outbox-relay (--stdout
# and --webhook, one-shot and --follow) killed, its database restarted or
# cut off (also through PgBouncer), its receiver failing, slow, answering
# junk or dropping connections; engagement-webhook killed after answering,
# its database restarted or cut off while Meta keeps posting; queue-send
# against an API that drops connections (909) or stalls past --timeout
# (908), and killed among them.
#
# The contracts: DESIGN.md 2.3, docs/outbox-relay.1.scd,
# docs/engagement-webhook.1.scd, docs/queue-send.1.scd, docs/engagement.7.scd
# (dead runs, leases). Every test runs against a real server; some restart
# it, so the whole file uses a private cluster of its own (started in
# setup_file, stopped in teardown_file), as tests/faults/send.bats does.
# The trials live in lib.sh (fd_trial_*, shared with
# bench/faults-delivery.sh); each prints one JSON line of figures, shown
# here as "# ..." lines, with "violations" (what did not hold, listed in
# "problems").
bats_require_minimum_version 1.5.0

# the private cluster; tests/bats/helpers.bash reads ENG_PGSTATE/env
export ENG_PGSTATE="$BATS_FILE_TMPDIR/pg"
if [ -f "$ENG_PGSTATE/env" ]; then
	load ../bats/helpers
fi
# shellcheck source=tests/faults/lib.sh
. "$BATS_TEST_DIRNAME/lib.sh"

setup_file() {
	: "${ENG_BIN:?run through ctest, or set ENG_BIN (the build directory)}"
	"$BATS_TEST_DIRNAME/../pg/cluster.sh" start "$ENG_PGSTATE" "$ENG_BIN/migrate" >&3
}

teardown_file() {
	fd_cleanup "$BATS_FILE_TMPDIR"
	"$BATS_TEST_DIRNAME/../pg/cluster.sh" stop "$ENG_PGSTATE"
}

setup() {
	# shellcheck disable=SC1091
	. "$ENG_PGSTATE/env"
	T="$BATS_TEST_TMPDIR"
	SEED0=${FAULTS_SEED:-$((RANDOM * 100))}
}

teardown() {
	fd_cleanup "$BATS_TEST_TMPDIR"
	fs_standin_stop
	fd_sink_stop
}

# show LINE: a TAP comment
show() { echo "# $1" >&3; }

# brief RESULT: the figures that matter, on one line
brief() {
	jq -r '[.program, .fault, .sink // empty, .mode // empty, "seed \(.seed)",
	        (if .killed != null then "killed \(.killed) at \(.at_ms) ms" else empty end),
	        "lost \(.lost)", "duplicated \(.duplicated)",
	        (if .dup_explained != null then "(explained \(.dup_explained))" else empty end),
	        "violations \(.violations)", "rc \(.rc)", "\(.duration_ms) ms"]
	       | map(select(. != null) | tostring) | join(", ")' <<<"$1"
}

# all_held FILE: every result line in FILE held; show each, say what broke
# (with the warnings of the trial's logs) and fail otherwise
all_held() {
	local r failed=0 f
	while IFS= read -r r; do
		show "$(brief "$r")"
		if [ "$(jq -r .violations <<<"$r")" != 0 ]; then
			failed=$((failed + 1))
			echo "trial failed: $(jq -r .problems <<<"$r")"
			echo "$r"
		fi
	done <"$1"
	[ "$failed" -eq 0 ]
}

# sum FILE FIELD: the sum of a field over the result lines
sum() { jq -s "map(.$2 // 0) | add // 0" "$1"; }

# -- outbox-relay: kill -9 ------------------------------------------------------------

@test "outbox-relay killed with SIGKILL at random moments (12 trials: --webhook and --stdout, one-shot and --follow): nothing lost, duplicates only from the killed batch" {
	local specs=() combo k
	for combo in "webhook oneshot" "stdout oneshot" "webhook follow" "stdout follow"; do
		for k in $(fs_tier "1 2 3" 1); do specs+=("fd_trial_relay $combo kill9"); done
	done
	fs_trials 4 "$T/k9" "$SEED0" "${specs[@]}" >"$T/results"
	all_held "$T/results"
	[ "$(grep -c . "$T/results")" -eq ${#specs[@]} ]
	show "totals: $(sum "$T/results" events) events, lost $(sum "$T/results" lost), duplicated $(sum "$T/results" duplicated) (documented at-least-once: the batch accepted before the kill, unmarked), $(jq -s 'map(select(.killed == true)) | length' "$T/results") runs killed mid-run"
	[ "$(sum "$T/results" lost)" -eq 0 ]
	[ "$(sum "$T/results" dup_unexplained)" -eq 0 ]
	[ "$(sum "$T/results" lease_left)" -eq 0 ]
	[ "$(sum "$T/results" running_left)" -eq 0 ]
	# most trials must really have killed a run in the middle
	[ "$(jq -s 'map(select(.killed == true)) | length' "$T/results")" -ge $((${#specs[@]} / 2)) ]
}

# -- outbox-relay: the database restarted, its connections cut ------------------------

@test "outbox-relay with PostgreSQL restarted under it (pg_ctl restart -m fast): one-shot exits 0 or 75, --follow reconnects; nothing lost" {
	# one at a time: the whole cluster restarts
	local specs=("fd_trial_relay webhook follow restart")
	fs_quick || specs+=("fd_trial_relay webhook oneshot restart" \
		"fd_trial_relay stdout oneshot restart" "fd_trial_relay stdout follow restart")
	fs_trials 1 "$T/rs" "$SEED0" "${specs[@]}" >"$T/results"
	all_held "$T/results"
	[ "$(sum "$T/results" lost)" -eq 0 ]
	# --follow came back by itself, in the same run
	[ "$(jq -s 'map(select(.mode == "follow" and .reconnects_run1 >= 1)) | length' "$T/results")" -eq \
		"$(printf '%s\n' "${specs[@]}" | grep -c ' follow ')" ]
}

@test "outbox-relay with its sessions terminated (directly, and through PgBouncer for one-shot): nothing lost, nothing marked before accepted" {
	fs_full_only
	[ -n "${ENG_PGBOUNCER_PORT:-}" ] || skip "no PgBouncer in the test cluster"
	fs_trials 3 "$T/cut" "$SEED0" "fd_trial_relay webhook oneshot cut" "fd_trial_relay stdout oneshot cut" \
		"fd_trial_relay webhook follow cut" "fd_trial_relay stdout follow cut" \
		"fd_trial_relay webhook oneshot bouncer-cut" "fd_trial_relay stdout oneshot bouncer-cut" >"$T/results"
	all_held "$T/results"
	[ "$(grep -c . "$T/results")" -eq 6 ]
	[ "$(sum "$T/results" lost)" -eq 0 ]
	[ "$(sum "$T/results" marked_early)" -eq 0 ]
	[ "$(sum "$T/results" cuts)" -ge 6 ]
}

# -- outbox-relay: a misbehaving receiver ------------------------------------------------

@test "outbox-relay --webhook against a receiver that fails (5xx, 429, 408), refuses (400), is slow, answers junk or not HTTP, or drops connections" {
	fs_full_only
	local specs=() f
	for f in recv-5xx recv-4xx recv-slow recv-junk recv-garbage recv-drop recv-mix; do
		specs+=("fd_trial_relay webhook oneshot $f")
	done
	# --follow retries past --max-attempts, whatever the receiver does
	specs+=("fd_trial_relay webhook follow recv-mix")
	fs_trials 4 "$T/recv" "$SEED0" "${specs[@]}" >"$T/results"
	all_held "$T/results"
	[ "$(grep -c . "$T/results")" -eq 8 ]
	[ "$(sum "$T/results" lost)" -eq 0 ]
	# receiver faults before acceptance never duplicate: nothing was accepted twice
	[ "$(sum "$T/results" duplicated)" -eq 0 ]
	[ "$(sum "$T/results" marked_early)" -eq 0 ]
	r() { jq -c "select(.fault == \"$1\" and .mode == \"${2:-oneshot}\")" "$T/results"; }
	# 2xx accepts, whatever the body: published by the first run, no retry
	[ "$(r recv-junk | jq .rc)" -eq 0 ]
	[ "$(r recv-junk | jq .retries_run1)" -eq 0 ]
	[ "$(r recv-junk | jq .refused_posts)" -eq 0 ]
	# a 4xx other than 408/429 is a refusal: exit 69 at once, the batch unpublished
	[ "$(r recv-4xx | jq .rc)" -eq 69 ]
	[ "$(r recv-4xx | jq .unpublished_after_run1)" -gt 0 ]
	[ "$(r recv-4xx | jq .retries_run1)" -eq 1 ]
	# the others were retried
	for f in recv-5xx recv-slow recv-garbage recv-drop; do
		[ "$(r "$f" | jq .refused_posts)" -ge 1 ]
	done
}

# -- engagement-webhook -----------------------------------------------------------------

@test "engagement-webhook killed with SIGKILL after answering 200s (restarted, or --drain first): every 200 was committed and is applied once" {
	local specs=() i
	for i in $(fs_tier "1 2 3 4 5" 1); do specs+=("fd_trial_webhook kill9" "fd_trial_webhook kill9-drain"); done
	fs_trials 3 "$T/whk" "$SEED0" "${specs[@]}" >"$T/results"
	all_held "$T/results"
	[ "$(grep -c . "$T/results")" -eq ${#specs[@]} ]
	[ "$(sum "$T/results" lost_at_kill)" -eq 0 ]
	[ "$(sum "$T/results" unapplied)" -eq 0 ]
	[ "$(sum "$T/results" unapplied_after_drain)" -eq 0 ]
	[ "$(sum "$T/results" answered_at_kill)" -gt 0 ]
	show "answered 200 before the kills: $(sum "$T/results" answered_at_kill); deliveries stored twice (posted again after a kill cut their answer): $(sum "$T/results" stored_twice)"
}

@test "engagement-webhook with PostgreSQL restarted or its sessions terminated mid-stream (directly, and through PgBouncer): 503 while down, Meta's retries land, nothing lost or applied twice" {
	local specs_r=() specs_c=() i
	for i in $(fs_tier "1 2" 1); do
		specs_r+=("fd_trial_webhook restart")
		specs_c+=("fd_trial_webhook cut" "fd_trial_webhook bouncer-cut")
	done
	fs_trials 1 "$T/whr" "$SEED0" "${specs_r[@]}" >"$T/results"
	fs_trials 2 "$T/whc" $((SEED0 + 10)) "${specs_c[@]}" >>"$T/results"
	all_held "$T/results"
	[ "$(grep -c . "$T/results")" -eq $((${#specs_r[@]} + ${#specs_c[@]})) ]
	[ "$(sum "$T/results" lost)" -eq 0 ]
	[ "$(sum "$T/results" unapplied)" -eq 0 ]
	show "answered 503 while the database was away: $(sum "$T/results" answers_503), no answer: $(sum "$T/results" no_answer)"
}

@test "engagement-webhook told to stop (SIGTERM) while its database is down: exits 0 as documented, and nothing answered 200 is lost" {
	# DESIGN.md 2.3 and engagement-webhook(1): "SIGTERM: stop accepting,
	# finish the requests in hand, exit 0"; 75 is documented only for a
	# database unreachable at the start or lost by --drain
	fs_trials 1 "$T/wht" "$SEED0" "fd_trial_webhook term-db-down" >"$T/results"
	all_held "$T/results"
	[ "$(jq .term_rc_db_down "$T/results")" -eq 0 ]
	[ "$(sum "$T/results" lost)" -eq 0 ]
}

# -- queue-send against a misbehaving API --------------------------------------------------

@test "queue-send against an API that drops connections (909) or stalls past --timeout (908), and killed among them: nothing lost, repeats only from timeouts or the kill" {
	local specs=("fd_trial_send drop" "fd_trial_send stall" "fd_trial_send mix-kill9")
	fs_quick || specs+=("fd_trial_send drop" "fd_trial_send stall" "fd_trial_send mix-kill9" \
		"fd_trial_send mix-kill9" "fd_trial_send mix-kill9")
	fs_trials 4 "$T/qs" "$SEED0" "${specs[@]}" >"$T/results"
	all_held "$T/results"
	[ "$(grep -c . "$T/results")" -eq ${#specs[@]} ]
	[ "$(sum "$T/results" lost)" -eq 0 ]
	[ "$(sum "$T/results" dup_unexplained)" -eq 0 ]
	[ "$(sum "$T/results" sending)" -eq 0 ]
	# a dropped connection is never a sent message
	[ "$(jq -s 'map(select(.fault == "drop")) | map(.duplicated) | add' "$T/results")" -eq 0 ]
	show "accepted by the API more than once (documented at-least-once: requests that timed out after the API took them, or in flight at the kill): $(sum "$T/results" duplicated); re-sent by libcurl on a dropped keep-alive connection: $(sum "$T/results" curl_resends)"
}
