-- 0008_webhook: what WhatsApp tells us back (engagement-webhook), and the
-- identity of inbound events, so that each is applied at most once.

-- Where a sent message got to, from the delivery-status webhook. Only ever
-- moves forward: sent -> delivered -> read; failed with its error code.
ALTER TABLE engagement.message_queue
    ADD COLUMN delivery_status text
        CONSTRAINT message_queue_delivery_status_check
        CHECK (delivery_status IN ('sent', 'delivered', 'read', 'failed')),
    ADD COLUMN delivered_at timestamptz,
    ADD COLUMN read_at timestamptz,
    ADD COLUMN delivery_error_code text;

-- Every signed delivery, committed before Meta gets its 200 and applied
-- afterwards (by any receiver): a crash between the two loses nothing.
-- The body is kept as received (valid JSON: nothing else is stored).
CREATE TABLE engagement.webhook_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    body text NOT NULL,
    applied_at timestamptz,
    result jsonb
);
CREATE INDEX webhook_inbox_pending_idx
    ON engagement.webhook_inbox (id) WHERE applied_at IS NULL;
CREATE INDEX webhook_inbox_applied_idx
    ON engagement.webhook_inbox (applied_at) WHERE applied_at IS NOT NULL;

-- Inbound events that carried an identity (a WhatsApp message's wamid, a
-- batch line's "id", --id), with what they produced. One row per id and
-- kind of effect ('event': activity or a transition; 'preference': an
-- opt-out or opt-in), inserted in the transaction that applied it: an
-- event seen again is a duplicate and changes nothing.
CREATE TABLE engagement.inbound_events (
    event_id text NOT NULL
        CONSTRAINT inbound_events_id_check CHECK (length(event_id) BETWEEN 1 AND 512),
    kind text NOT NULL
        CONSTRAINT inbound_events_kind_check CHECK (kind IN ('event', 'preference')),
    user_id uuid REFERENCES engagement.users (id) ON DELETE CASCADE,
    outcome text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    run_id uuid,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, kind)
);
CREATE INDEX inbound_events_created_idx ON engagement.inbound_events (created_at);
CREATE INDEX inbound_events_user_idx ON engagement.inbound_events (user_id);
