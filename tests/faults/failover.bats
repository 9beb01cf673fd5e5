#!/usr/bin/env bats
# Fault trials with a real standby (issue 25, DESIGN.md §4 "High
# availability"): a primary and a synchronous streaming standby made with
# pg_basebackup -R (ff.sh), every program given the multi-host connection
# string of both (host=SOCK1,SOCK2 port=P1,P2 target_session_attrs=read-write);
# mid-run, placed by the program's progress, the primary is stopped
# (pg_ctl stop -m immediate) and the standby promoted (pg_ctl promote). The
# trials are those of send.bats, jobs.bats and delivery.bats (lib.sh) with
# the fault "failover": compared with an uninterrupted run as there, nothing
# lost, duplicates only the requests on the wire at the failure, no
# invariant violated. Before each trial a fresh standby of the new primary
# takes the old one's place (ff_ready), so every trial fails over.
#
# The whole file uses a private cluster (the pair), started in setup_file.
# Every program runs as its own login (helpers.bash). One trial of each
# (FAULTS_SEED sets the seed); the quick tier leaves out the promotion
# longer than the lease and engagement-event (optout-set is the batch
# tools' representative there). FF_PROMOTE_S: the seconds between the
# primary's stop and the promotion (1).
bats_require_minimum_version 1.5.0

export ENG_PGSTATE="$BATS_FILE_TMPDIR/pg"
if [ -f "$ENG_PGSTATE/env" ]; then
	load ../bats/helpers
fi
# the jobs' populations: smaller than jobs.bats (one trial each, and every
# trial makes a standby again), but engagement-daily's large enough that its
# run (about a second) outlasts a primary's stop on a loaded machine: with
# 6,000 users it took 170 ms, and under stress-ng --cpu 2 four failovers in
# a row landed after it (scripts/flaky)
export FJ_USERS=${FJ_USERS:-24000} FJ_BATCH_USERS=${FJ_BATCH_USERS:-6000} FJ_OPTOUT_USERS=${FJ_OPTOUT_USERS:-6000}
export FJ_ACTIVE_EVERY=${FJ_ACTIVE_EVERY:-10} FJ_DAILY_BATCH=${FJ_DAILY_BATCH:-25}
export FJ_DIR="$BATS_FILE_TMPDIR/fj"
# shellcheck source=tests/faults/lib.sh
. "$BATS_TEST_DIRNAME/lib.sh"
# shellcheck source=tests/faults/ff.sh
. "$BATS_TEST_DIRNAME/ff.sh"

# seconds between the primary's stop and the promotion (what an operator
# or Patroni takes to decide)
PROMOTE_S=${FF_PROMOTE_S:-1}

setup_file() {
	: "${ENG_BIN:?run through ctest, or set ENG_BIN (the build directory)}"
	"$BATS_TEST_DIRNAME/../pg/cluster.sh" start "$ENG_PGSTATE" "$ENG_BIN/migrate" >&3
	ff_setup
}

teardown_file() {
	fs_cleanup "$BATS_FILE_TMPDIR"
	fd_cleanup "$BATS_FILE_TMPDIR"
	ff_teardown
	"$BATS_TEST_DIRNAME/../pg/cluster.sh" stop "$ENG_PGSTATE"
}

setup() {
	# shellcheck disable=SC1091
	. "$ENG_PGSTATE/env"
	# shellcheck disable=SC1091
	. "$ENG_PGSTATE/ff.env"
	T="$BATS_TEST_TMPDIR"
	ff_ready
}

teardown() {
	# (a trial's failover rewrote ff.env in a subshell)
	# shellcheck disable=SC1091
	. "$ENG_PGSTATE/ff.env"
	fs_cleanup "$BATS_TEST_TMPDIR"
	fd_cleanup "$BATS_TEST_TMPDIR"
	fj_drop_trial_dbs
}

# show TEXT: a TAP comment
show() { echo "# $1" >&3; }

# ok RESULT [DIR]: the trial held; if not, say why and show its logs
ok() {
	[ "$(jq -r .ok <<<"$1")" = true ] && return 0
	echo "trial failed: $(jq -r .problems <<<"$1")"
	echo "$1"
	if [ -n "${2:-}" ]; then
		local f
		for f in "$2"/*.log "$2"/*/*.log; do
			[ -f "$f" ] || continue
			echo "--- $f (warnings and errors)"
			jq -c 'select(.level != "debug" and .level != "info")' "$f" 2>/dev/null | tail -n 20 || tail -n 20 "$f"
		done
	fi
	return 1
}

# -- queue-send ------------------------------------------------------------------------

@test "queue-send: failover with requests in flight: each message sent once, every outcome kept, the new primary reached" {
	local r
	r=$(fs_trial_restart "$T/qs" "failover:$PROMOTE_S" 30 4 500 15)
	show "queue-send, promoted after ${PROMOTE_S}s: $r"
	ok "$r" "$T/qs"
	[ "$(jq .requests <<<"$r")" -eq 30 ]
	[ "$(jq .distinct <<<"$r")" -eq 30 ]
	[ "$(jq .sent <<<"$r")" -eq 30 ]
	[ "$(jq .sending <<<"$r")" -eq 0 ]
	[ "$(jq .rc <<<"$r")" -eq 0 ]
	[ "$(jq .reconnects <<<"$r")" -ge 1 ]
	[ "$(jq .outcomes_unrecorded <<<"$r")" -eq 0 ]
	[ "$(jq .reach_ms <<<"$r")" != null ]
}

@test "queue-send: a promotion that takes longer than the lease (8 s against 5): nothing sent twice, every outcome it holds recorded" {
	fs_full_only
	local r
	r=$(fs_trial_restart "$T/qslong" "failover:8" 30 4 500 5)
	show "queue-send, promoted after 8s, lease 5s: $r"
	ok "$r" "$T/qslong"
	[ "$(jq .outage_ms <<<"$r")" -gt "$(jq .lease_ms <<<"$r")" ]
	[ "$(jq .sent <<<"$r")" -eq 30 ]
	[ "$(jq .sent_twice <<<"$r")" -eq 0 ]
	[ "$(jq .outcomes_unrecorded <<<"$r")" -eq 0 ]
}

# -- the jobs and the batch tools --------------------------------------------------------

# job SCENARIO: one failover trial (lib.sh fj_trial, fault "failover": the
# primary stopped once the run committed a random share of its work), then
# compared with the uninterrupted run of the same command on a clone; shown
job() {
	local sc=$1 seed=${FAULTS_SEED:-$((RANDOM * 100))} r f
	fj_trials 1 "$T/t" "$seed" 1 "$sc" failover >"$T/results" 2>"$T/trials.err" || {
		cat "$T/trials.err"
		return 1
	}
	r=$(cat "$T/results")
	show "$sc, failover (seed $seed): $(jq -c 'del(.db, .trials)' <<<"$r")"
	if [ "$(jq -r .ok <<<"$r")" != true ]; then
		echo "trial failed: $r"
		for f in "$T/t/$seed"/*.log; do
			[ -f "$f" ] || continue
			echo "--- $f (warnings and errors)"
			jq -c 'select(.level != "debug" and .level != "info")' "$f" 2>/dev/null | tail -n 15
		done
		return 1
	fi
	[ "$(jq .lost <<<"$r")" -eq 0 ]
	[ "$(jq .duplicated <<<"$r")" -eq 0 ]
	[ "$(jq .violations <<<"$r")" -eq 0 ]
	# the failover hit the run at work: it noticed (exit 75)
	[ "$(jq -r .mid_run <<<"$r")" = true ]
}

@test "engagement-daily: failover mid-run: exit 0 or 75, its end recorded on the new primary, the next run finishes as if uninterrupted" {
	job daily
}

@test "engagement-event --batch with ids: failover mid-run: each event applied once" {
	fs_full_only
	job event_ids
}

@test "optout-set --batch with ids: failover mid-run: each change applied once, last write wins as uninterrupted" {
	job optout
}

# -- outbox-relay --follow and engagement-webhook -------------------------------------------

# delivery TRIAL...: one trial of lib.sh's fd_ section, shown; fails when
# it found a problem
delivery() {
	local r
	r=$("$@")
	show "$(jq -c 'del(.db, .trials, .durations_ms)' <<<"$r")"
	[ "$(jq -r .violations <<<"$r")" = 0 ] || {
		echo "trial failed: $(jq -r .problems <<<"$r")"
		echo "$r"
		return 1
	}
	[ "$(jq .lost <<<"$r")" -eq 0 ]
	[ "$(jq .reach_ms <<<"$r")" != null ]
	R=$r
}

@test "outbox-relay --follow: failover mid-run: it reconnects to the new primary in the same run, LISTENs there, publishes every event" {
	local R
	delivery fd_trial_relay "$T/rl" "${FAULTS_SEED:-$((RANDOM * 100))}" webhook follow failover
	[ "$(jq .reconnects_run1 <<<"$R")" -ge 1 ]
	# the events committed after the reconnection came by NOTIFY on the
	# new primary (no re-run needed: --follow caught up by itself)
	[ "$(jq .unpublished_after_run1 <<<"$R")" -eq 0 ]
}

@test "engagement-webhook: failover while deliveries arrive: 503 meanwhile, every 200 committed and applied once on the new primary" {
	local R
	delivery fd_trial_webhook "$T/wh" "${FAULTS_SEED:-$((RANDOM * 100))}" failover 15
	[ "$(jq .rc <<<"$R")" -eq 0 ]
	[ "$(jq .unapplied <<<"$R")" -eq 0 ]
}

# -- engagement-status on the standby ---------------------------------------------------------

@test "engagement-status against the hot standby: read-only (nothing written), the same figures as on the primary" {
	local db=ff_status_$$ sb
	fs_db_new "$db"
	fs_seed "$db" 5 1
	# the standby alone (its socket and port), and then both hosts,
	# standby first, with target_session_attrs=prefer-standby
	sb=$((3 - FF_PRIMARY))
	ff_node "$sb"
	# synchronous_commit = on waits for the standby's flush, not its
	# replay: wait for the seed to be visible there
	wait_for 30 '[ "$(psql -X -At -h "$FF_SOCK" -p "$FF_PORT" -d "$db" -c "SELECT count(*) FROM engagement.message_queue" 2>/dev/null)" = 5 ]'
	[ "$(ff_q "$sb" "SELECT pg_is_in_recovery()")" = t ]
	# on the standby alone: a write there would fail (25006), so exit 0
	# means it wrote nothing
	run --separate-stderr "$ENG_BIN/engagement-status" --db "host=$FF_SOCK port=$FF_PORT dbname=$db"
	[ "$status" -eq 0 ] || { echo "$output"; echo "$stderr"; return 1; }
	[ "$(jq '.queue.queued | add' <<<"$output")" -eq 5 ]
	jq -c '{queued: .queue.queued, sending: .queue.sending, users, jobs, unpublished: .outbox.unpublished}' <<<"$output" >"$T/standby.json"
	# (the Prometheus exposition too)
	run --separate-stderr "$ENG_BIN/engagement-status" --db "host=$FF_SOCK port=$FF_PORT dbname=$db" --format prometheus
	[ "$status" -eq 0 ]
	grep -q '^engagement_queue' <<<"$output"
	# both hosts, the standby preferred (what monitoring would be given)
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$(fs_conn "$db" | sed 's/read-write/prefer-standby/')"
	[ "$status" -eq 0 ]
	# the primary says the same
	run --separate-stderr "$ENG_BIN/engagement-status" --db "$(fs_conn "$db")"
	[ "$status" -eq 0 ]
	[ "$(jq -c '{queued: .queue.queued, sending: .queue.sending, users, jobs, unpublished: .outbox.unpublished}' <<<"$output")" = "$(cat "$T/standby.json")" ]
	fs_db_drop "$db"
}

# -- a standby first in the list that refuses -------------------------------------------------

@test "a standby first in the list that refuses the login (not 'cannot connect now'): the programs still reach the primary behind it" {
	# libpq walks on only past hosts it cannot reach or that answer
	# 57P03; any other refusal ends its walk at the first host (a standby
	# that has not yet replayed a new database, out of connection slots,
	# a pg_hba.conf of its own). lib/db then tries each host on its own.
	local db=ff_walk_$$ sb p conn
	fs_db_new "$db"
	sb=$((3 - FF_PRIMARY))
	ff_node "$FF_PRIMARY"
	p="$FF_SOCK $FF_PORT"
	ff_node "$sb"
	conn="host=$FF_SOCK,${p% *} port=$FF_PORT,${p#* } target_session_attrs=read-write dbname=$db"
	cp "$FF_DIR/pg_hba.conf" "$T/pg_hba.conf.orig"
	{ echo "local all eng_daily,eng_status reject"; cat "$T/pg_hba.conf.orig"; } |
		fs_as_owner tee "$FF_DIR/pg_hba.conf" >/dev/null
	ff_q "$sb" "SELECT pg_reload_conf()" >/dev/null
	# libpq alone stops at the standby
	run psql -X -At -d "$conn" -U eng_daily -c "SELECT 1"
	[ "$status" -ne 0 ]
	[[ "$output" == *"pg_hba.conf rejects"* ]]
	run --separate-stderr "$ENG_BIN/engagement-daily" --db "$conn"
	[ "$status" -eq 0 ] || { echo "$output"; echo "$stderr"; return 1; }
	# and status, which would take the standby, takes the primary when
	# the standby will not have it
	run --separate-stderr "$ENG_BIN/engagement-status" --db "${conn/read-write/any}"
	[ "$status" -eq 0 ] || { echo "$output"; echo "$stderr"; return 1; }
	fs_as_owner tee "$FF_DIR/pg_hba.conf" <"$T/pg_hba.conf.orig" >/dev/null
	ff_q "$sb" "SELECT pg_reload_conf()" >/dev/null
	fs_db_drop "$db"
}
