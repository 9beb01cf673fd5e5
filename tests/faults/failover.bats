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
# Every program runs as its own login (helpers.bash).
bats_require_minimum_version 1.5.0

export ENG_PGSTATE="$BATS_FILE_TMPDIR/pg"
if [ -f "$ENG_PGSTATE/env" ]; then
	load ../bats/helpers
fi
# the jobs' populations: smaller than jobs.bats (one trial each, and every
# trial makes a standby again)
export FJ_USERS=${FJ_USERS:-6000} FJ_BATCH_USERS=${FJ_BATCH_USERS:-6000} FJ_OPTOUT_USERS=${FJ_OPTOUT_USERS:-6000}
export FJ_ACTIVE_EVERY=${FJ_ACTIVE_EVERY:-10} FJ_DAILY_BATCH=${FJ_DAILY_BATCH:-100}
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
	local r
	r=$(fs_trial_restart "$T/qslong" "failover:8" 30 4 500 5)
	show "queue-send, promoted after 8s, lease 5s: $r"
	ok "$r" "$T/qslong"
	[ "$(jq .outage_ms <<<"$r")" -gt "$(jq .lease_ms <<<"$r")" ]
	[ "$(jq .sent <<<"$r")" -eq 30 ]
	[ "$(jq .sent_twice <<<"$r")" -eq 0 ]
	[ "$(jq .outcomes_unrecorded <<<"$r")" -eq 0 ]
}
