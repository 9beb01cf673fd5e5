-- 0002_events: undo.
DROP TABLE engagement.job_locks;
DROP TABLE engagement.job_runs;
DROP TRIGGER users_erased ON engagement.users;
DROP FUNCTION engagement.announce_user_erased();
DROP TABLE engagement.outbox_events;
DROP TABLE engagement.audit_log;
DROP TABLE engagement.activity_events;
DROP TABLE engagement.state_transitions;
