-- 0013_run_liveness: runs that died say so, and a lease notices when its
-- holder's connection is gone.
--
-- job_runs.heartbeat_at: a run that records itself (engagement-daily,
-- engagement-weekly, outbox-relay, queue-send) touches it with every lease
-- or claim renewal. A 'running' row whose heartbeat is older than two
-- minutes belongs to a run that died (kill -9, a crash, the host lost):
-- engagement-status does not count it as running, and the program's next
-- run marks it 'died' (finished_at: its last heartbeat).
--
-- job_locks.holder_pid, holder_started: the holder's server process and
-- when it started, refreshed with every renewal. When that process is gone
-- (its client died and the server noticed), the lease is free at once
-- instead of after its time to live. Through PgBouncer's transaction
-- pooling the process is a pooled one that outlives the client: the lease
-- then lapses after its time to live, as before.
ALTER TABLE engagement.job_runs ADD COLUMN heartbeat_at timestamptz;
ALTER TABLE engagement.job_runs DROP CONSTRAINT job_runs_status_check;
ALTER TABLE engagement.job_runs ADD CONSTRAINT job_runs_status_check
    CHECK (status IN ('running', 'ok', 'partial', 'failed', 'skipped', 'died'));
ALTER TABLE engagement.job_locks ADD COLUMN holder_pid integer,
    ADD COLUMN holder_started timestamptz;

INSERT INTO engagement.program_grants (programs, privileges, object) VALUES
    ('daily,weekly,sender,relay', 'UPDATE (heartbeat_at)', 'engagement.job_runs'),
    ('daily,weekly,relay', 'UPDATE (holder_pid, holder_started)', 'engagement.job_locks');
SELECT engagement.apply_grants();
