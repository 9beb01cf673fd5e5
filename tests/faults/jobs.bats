#!/usr/bin/env bats
# Fault injection for the jobs, the batch tools and migrate (issue 15):
# engagement-daily, engagement-weekly, engagement-event --batch (lines with
# ids and without), optout-set --batch and migrate up (from empty, and from
# version 8 with the CREATE INDEX CONCURRENTLY migrations pending), each
# interrupted at a random moment by kill -9, by the database restarted
# (pg_ctl restart -m fast) or by its server connections cut through
# PgBouncer; then run again as cron would, and the database compared with
# an uninterrupted run of the same command on a clone of the same starting
# database, and checked (DESIGN.md §2, §2.2, §3; DECISIONS.md "Interrupted
# runs and migrations").
#
# The whole file uses a private cluster (it restarts the server), started
# in setup_file. The trials live in lib.sh (the fj_ section), shared with
# bench/faults-jobs.sh, which runs many more of them; each prints one JSON
# line of figures, shown here as "# ..." lines. Every program runs as its
# own login (helpers.bash points ENG_BIN at the wrappers): a missing grant
# fails a trial.
#
# FAULTS_SEED sets the first seed (a trial is reproduced by its scenario,
# fault and seed: see the trial lines); FJ_KILLS, FJ_RESTARTS and
# FJ_BOUNCERS the number of trials.
bats_require_minimum_version 1.5.0

# the private cluster; tests/bats/helpers.bash reads ENG_PGSTATE/env
export ENG_PGSTATE="$BATS_FILE_TMPDIR/pg"
if [ -f "$ENG_PGSTATE/env" ]; then
	load ../bats/helpers
fi
# populations: many commits per run (a fault lands after one of them, placed
# by progress, with work still to do), small enough for CI; the quick tier
# runs fewer trials of the same size
export FJ_USERS=${FJ_USERS:-20000} FJ_BATCH_USERS=${FJ_BATCH_USERS:-16000} FJ_OPTOUT_USERS=${FJ_OPTOUT_USERS:-8000}
export FJ_ACTIVE_EVERY=${FJ_ACTIVE_EVERY:-10} FJ_MID_MESSAGES=${FJ_MID_MESSAGES:-100000}
export FJ_DIR="$BATS_FILE_TMPDIR/fj"
# shellcheck source=tests/faults/lib.sh
. "$BATS_TEST_DIRNAME/lib.sh"

# the quick tier: one trial each, of kill -9 for every scenario and of the
# other faults for engagement-daily and optout-set
KILLS=${FJ_KILLS:-$(fs_tier 10 1)}
RESTARTS=${FJ_RESTARTS:-$(fs_tier 3 1)}
BOUNCERS=${FJ_BOUNCERS:-$(fs_tier 3 1)}

setup_file() {
	: "${ENG_BIN:?run through ctest, or set ENG_BIN (the build directory)}"
	"$BATS_TEST_DIRNAME/../pg/cluster.sh" start "$ENG_PGSTATE" "$ENG_BIN/migrate" >&3
}

teardown_file() {
	fj_cleanup "$BATS_FILE_TMPDIR"
	"$BATS_TEST_DIRNAME/../pg/cluster.sh" stop "$ENG_PGSTATE"
}

setup() {
	# shellcheck disable=SC1091
	. "$ENG_PGSTATE/env"
	T="$BATS_TEST_TMPDIR"
}

teardown() {
	fj_cleanup "$BATS_TEST_TMPDIR"
	fj_drop_trial_dbs
}

# show TEXT: a TAP comment
show() { echo "# $1" >&3; }

# trials SCENARIO FAULT COUNT: COUNT trials (two at a time; restarts one at
# a time), each shown; then their totals. Fails when a trial found a
# problem (its logs are printed), or when too few kills hit a run at work.
trials() {
	local sc=$1 fault=$2 n=$3 seed0=${FAULTS_SEED:-$((RANDOM * 100))} seed f
	local count hit mid lost dup viol failed
	show "$sc, $fault: $n trials, seeds $seed0.. (FAULTS_SEED=$seed0 to repeat)"
	fj_trials 2 "$T/t" "$seed0" "$n" "$sc" "$fault" >"$T/results" 2>"$T/trials.err" || {
		cat "$T/trials.err"
		return 1
	}
	jq -r '"# " + (del(.db, .trials, .program) | tojson)' "$T/results" >&3
	read -r count hit mid lost dup viol failed < <(jq -rs '[length,
	    (map(select(.hit == true)) | length), (map(select(.mid_run == true)) | length),
	    (map(.lost // 0) | add // 0), (map(.duplicated // 0) | add // 0),
	    (map(.violations // 1) | add // 0), (map(select(.ok != true)) | length)] | @tsv' "$T/results")
	show "$sc, $fault: $count trials, $hit hit a running program, $mid mid-run; lost $lost, duplicated $dup, invariant violations $viol"
	for seed in $(jq -r 'select(.ok != true) | .seed' "$T/results"); do
		echo "trial failed: $(jq -c "select(.seed == $seed)" "$T/results")"
		for f in "$T/t/$seed"/*.log; do
			[ -f "$f" ] || continue
			echo "--- $f (warnings and errors)"
			jq -c 'select(.level != "debug" and .level != "info")' "$f" 2>/dev/null | tail -n 15 ||
				tail -n 15 "$f"
		done
	done
	[ "$count" -eq "$n" ]
	[ "$failed" -eq 0 ]
	[ "$lost" -eq 0 ]
	[ "$dup" -eq 0 ]
	[ "$viol" -eq 0 ]
	# the kills must mostly land in the middle of the work (they are
	# placed by the run's progress: nearly all do)
	if [ "$fault" = kill9 ]; then
		[ "$mid" -ge $(((n + 2) / 3)) ] || { echo "only $mid of $n kills landed mid-run"; return 1; }
	fi
}

# -- engagement-daily -------------------------------------------------------------

@test "engagement-daily: kill -9 at random moments, then the next run: as if uninterrupted, the killed run marked died, no lease to wait out" {
	trials daily kill9 "$KILLS"
}

@test "engagement-daily: the database restarted mid-run (pg_ctl restart -m fast): exit 75, then the next run finishes the job" {
	trials daily restart "$RESTARTS"
}

@test "engagement-daily: server connections cut through PgBouncer: exit 0 or 75, then the next run finishes the job" {
	trials daily bouncer "$BOUNCERS"
}

# -- engagement-weekly ------------------------------------------------------------

@test "engagement-weekly: kill -9 at random moments: no review lost or queued twice" {
	trials weekly kill9 "$KILLS"
}

@test "engagement-weekly: the database restarted mid-run" {
	fs_full_only
	trials weekly restart "$RESTARTS"
}

@test "engagement-weekly: server connections cut through PgBouncer" {
	fs_full_only
	trials weekly bouncer "$BOUNCERS"
}

# -- engagement-event --batch ------------------------------------------------------

@test "engagement-event --batch with ids: kill -9 at random moments: re-running the batch applies each event once" {
	trials event_ids kill9 "$KILLS"
}

@test "engagement-event --batch without ids: kill -9 at random moments: states as uninterrupted, only the committed activities replayed" {
	trials event_noid kill9 "$KILLS"
}

@test "engagement-event --batch with ids: the database restarted mid-run" {
	fs_full_only
	trials event_ids restart "$RESTARTS"
}

@test "engagement-event --batch with ids: server connections cut through PgBouncer" {
	fs_full_only
	trials event_ids bouncer "$BOUNCERS"
}

# -- optout-set --batch --------------------------------------------------------------

@test "optout-set --batch with ids: kill -9 at random moments: each change applied once, last write wins as uninterrupted" {
	trials optout kill9 "$KILLS"
}

@test "optout-set --batch with ids: the database restarted mid-run" {
	trials optout restart "$RESTARTS"
}

@test "optout-set --batch with ids: server connections cut through PgBouncer" {
	fs_full_only
	trials optout bouncer "$BOUNCERS"
}

# -- migrate up ------------------------------------------------------------------------

@test "migrate up from empty: kill -9 at random moments: no half-applied migration, verify passes" {
	trials migrate_empty kill9 "$KILLS"
}

@test "migrate up from version 8 (CREATE INDEX CONCURRENTLY pending): kill -9 at random moments: no invalid index" {
	trials migrate_mid kill9 "$KILLS"
}

@test "migrate up from empty: the database restarted mid-run" {
	fs_full_only
	trials migrate_empty restart "$RESTARTS"
}

@test "migrate up from version 8: the database restarted mid-run: an index build interrupted is built again" {
	fs_full_only
	trials migrate_mid restart "$RESTARTS"
}
