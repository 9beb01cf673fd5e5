-- 0013_run_liveness: undo.
DELETE FROM engagement.program_grants
WHERE (privileges, object) IN (('UPDATE (heartbeat_at)', 'engagement.job_runs'),
                               ('UPDATE (holder_pid, holder_started)', 'engagement.job_locks'));
UPDATE engagement.job_runs SET status = 'failed' WHERE status = 'died';
ALTER TABLE engagement.job_runs DROP CONSTRAINT job_runs_status_check;
ALTER TABLE engagement.job_runs ADD CONSTRAINT job_runs_status_check
    CHECK (status IN ('running', 'ok', 'partial', 'failed', 'skipped'));
ALTER TABLE engagement.job_runs DROP COLUMN heartbeat_at;
ALTER TABLE engagement.job_locks DROP COLUMN holder_pid, DROP COLUMN holder_started;
