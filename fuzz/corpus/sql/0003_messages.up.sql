-- 0003_messages: message templates (seeded) and the outgoing queue.

CREATE TABLE engagement.message_templates (
    template_key text NOT NULL
        CONSTRAINT message_templates_key_check
        CHECK (template_key ~ '^[a-z][a-z0-9_]*$'),
    locale text NOT NULL
        CONSTRAINT message_templates_locale_check
        CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    provider_name text NOT NULL,
    -- WhatsApp's codes are underscore-separated and case-sensitive: pt_BR.
    provider_language text NOT NULL
        CONSTRAINT message_templates_language_check
        CHECK (provider_language ~ '^[a-z]{2,3}(_[A-Za-z0-9]{2,8})?$'),
    -- Body parameters {{1}}, {{2}} ... are filled from params by these names.
    param_names text[] NOT NULL DEFAULT '{}',
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (template_key, locale)
);
CREATE TRIGGER message_templates_touch BEFORE UPDATE ON engagement.message_templates
    FOR EACH ROW EXECUTE FUNCTION engagement.touch_updated_at();

INSERT INTO engagement.message_templates
    (template_key, locale, provider_name, provider_language, param_names)
VALUES
    ('goodbye',       'en',    'engagement_goodbye',       'en',    '{}'),
    ('goodbye',       'pt-BR', 'engagement_goodbye',       'pt_BR', '{}'),
    ('goodbye',       'es',    'engagement_goodbye',       'es',    '{}'),
    ('weekly_review', 'en',    'engagement_weekly_review', 'en',    '{activity_count}'),
    ('weekly_review', 'pt-BR', 'engagement_weekly_review', 'pt_BR', '{activity_count}'),
    ('weekly_review', 'es',    'engagement_weekly_review', 'es',    '{activity_count}');

CREATE TABLE engagement.message_queue (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES engagement.users (id) ON DELETE CASCADE,
    message_type text NOT NULL
        CONSTRAINT message_queue_type_check
        CHECK (message_type ~ '^[a-z][a-z0-9_]*$'),
    template_key text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}'
        CONSTRAINT message_queue_params_check CHECK (jsonb_typeof(params) = 'object'),
    idempotency_key text NOT NULL,
    status text NOT NULL DEFAULT 'queued'
        CONSTRAINT message_queue_status_check
        CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'blocked',
                          'cancelled')),
    scheduled_for   timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts     integer NOT NULL DEFAULT 0
        CONSTRAINT message_queue_attempts_check CHECK (attempts >= 0),
    max_attempts integer NOT NULL DEFAULT 5
        CONSTRAINT message_queue_max_attempts_check CHECK (max_attempts > 0),
    expires_at   timestamptz,
    locked_by    text,
    locked_until timestamptz,
    quiet_hours_override boolean NOT NULL DEFAULT false,
    last_error_code text,
    last_error      text,
    provider_message_id text,
    run_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz,
    CONSTRAINT message_queue_idempotency_key_key UNIQUE (idempotency_key),
    CONSTRAINT message_queue_lease_check
        CHECK (status <> 'sending' OR (locked_by IS NOT NULL AND locked_until IS NOT NULL)),
    CONSTRAINT message_queue_sent_check
        CHECK (status <> 'sent' OR (provider_message_id IS NOT NULL AND sent_at IS NOT NULL))
);
CREATE TRIGGER message_queue_touch BEFORE UPDATE ON engagement.message_queue
    FOR EACH ROW EXECUTE FUNCTION engagement.touch_updated_at();

-- The claim: due queued messages in order.
CREATE INDEX message_queue_due_idx
    ON engagement.message_queue (next_attempt_at) WHERE status = 'queued';
-- Lease recovery: claims whose lease ran out.
CREATE INDEX message_queue_lease_idx
    ON engagement.message_queue (locked_until) WHERE status = 'sending';
-- The per-user hourly cap reads a user's recent sends. Only sent messages
-- have sent_at; keyed on that rather than on status, so that the retention
-- index below can never be chosen for this query (it was, from statistics
-- taken before anything was sent, and became a scan of every sent row).
CREATE INDEX message_queue_user_sent_idx
    ON engagement.message_queue (user_id, sent_at) WHERE sent_at IS NOT NULL;
-- Retention purge of finished rows.
CREATE INDEX message_queue_finished_idx
    ON engagement.message_queue (updated_at)
    WHERE status IN ('sent', 'failed', 'blocked', 'cancelled');
-- Erasure (ON DELETE CASCADE) and per-user lookups.
CREATE INDEX message_queue_user_idx ON engagement.message_queue (user_id);
