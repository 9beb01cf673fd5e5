-- 0002_events: what happened (transitions, activity, audit), what must be
-- published (outbox), and the bookkeeping of job runs.

CREATE TABLE engagement.state_transitions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES engagement.users (id) ON DELETE CASCADE,
    from_state text NOT NULL,
    to_state   text NOT NULL,
    trigger    text NOT NULL
        CONSTRAINT state_transitions_trigger_check
        CHECK (trigger IN ('inactivity_14d', 'user_message', 'goodbye_response_1',
                           'goodbye_response_2', 'goodbye_response_3',
                           'goodbye_timeout', 'reminder_due')),
    run_id   uuid,
    metadata jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT state_transitions_metadata_check
        CHECK (jsonb_typeof(metadata) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX state_transitions_user_idx
    ON engagement.state_transitions (user_id, created_at);

CREATE TABLE engagement.activity_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES engagement.users (id) ON DELETE CASCADE,
    occurred_at timestamptz NOT NULL,
    kind text NOT NULL DEFAULT 'message'
        CONSTRAINT activity_events_kind_check CHECK (kind ~ '^[a-z][a-z0-9_]*$'),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX activity_events_user_idx
    ON engagement.activity_events (user_id, occurred_at);

-- The consent and delivery record: who did what, when, from where.
CREATE TABLE engagement.audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid REFERENCES engagement.users (id) ON DELETE CASCADE,
    message_id bigint,  -- no foreign key: audit outlives queue retention
    event text NOT NULL,
    source text,
    details jsonb NOT NULL DEFAULT '{}',
    run_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_user_idx ON engagement.audit_log (user_id, created_at);

-- Transactional outbox. Payloads carry ids and states, never phone numbers
-- or names. user_id (nullable) ties an event to its person for erasure.
CREATE TABLE engagement.outbox_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    aggregate_type text NOT NULL,
    aggregate_id   text NOT NULL,
    event_type     text NOT NULL,
    event_version  integer NOT NULL DEFAULT 1,
    payload jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT outbox_events_payload_check
        CHECK (jsonb_typeof(payload) = 'object'),
    correlation_id uuid,
    user_id uuid REFERENCES engagement.users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX outbox_events_unpublished_idx
    ON engagement.outbox_events (id) WHERE published_at IS NULL;
CREATE INDEX outbox_events_published_idx
    ON engagement.outbox_events (published_at) WHERE published_at IS NOT NULL;
CREATE INDEX outbox_events_user_idx
    ON engagement.outbox_events (user_id) WHERE user_id IS NOT NULL;

-- Erasing a user cascades away every row about them, and tells the
-- consumers of the outbox to do the same (the event carries only the id).
CREATE FUNCTION engagement.announce_user_erased() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO engagement.outbox_events
        (aggregate_type, aggregate_id, event_type, payload)
    VALUES ('user', OLD.id::text, 'user.erased',
            jsonb_build_object('user_id', OLD.id));
    RETURN OLD;
END
$$;
CREATE TRIGGER users_erased AFTER DELETE ON engagement.users
    FOR EACH ROW EXECUTE FUNCTION engagement.announce_user_erased();

CREATE TABLE engagement.job_runs (
    run_id uuid PRIMARY KEY,
    program text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    status text NOT NULL DEFAULT 'running'
        CONSTRAINT job_runs_status_check
        CHECK (status IN ('running', 'ok', 'partial', 'failed', 'skipped')),
    exit_code integer,
    summary jsonb
);
CREATE INDEX job_runs_program_idx ON engagement.job_runs (program, started_at DESC);

-- Single-run leases (see eng_guard.h): one row per job while it runs.
CREATE TABLE engagement.job_locks (
    job text PRIMARY KEY,
    run_id uuid NOT NULL,
    holder text,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
