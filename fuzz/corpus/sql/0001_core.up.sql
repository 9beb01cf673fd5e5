-- 0001_core: users, their preferences and their engagement state.
-- Everything about a user hangs off engagement.users with ON DELETE CASCADE:
-- deleting the user row erases every row about them (right to erasure).

CREATE SCHEMA IF NOT EXISTS engagement;

-- Keeps updated_at honest for every writer, not only our programs.
CREATE FUNCTION engagement.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Valid IANA time zone names, as this server knows them. A foreign key to
-- this table is the "valid time zone" constraint: cheaper than asking
-- pg_timezone_names on every insert, and stricter than AT TIME ZONE, which
-- also accepts POSIX strings such as 'XYZ+3'.
CREATE TABLE engagement.time_zones (
    name text PRIMARY KEY
);
INSERT INTO engagement.time_zones (name)
SELECT DISTINCT name FROM pg_timezone_names;

CREATE TABLE engagement.users (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    phone_e164   text NOT NULL,
    display_name text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_phone_e164_key UNIQUE (phone_e164),
    CONSTRAINT users_phone_e164_check
        CHECK (phone_e164 ~ '^\+[1-9][0-9]{7,14}$'),
    CONSTRAINT users_display_name_check
        CHECK (display_name IS NULL OR length(display_name) <= 200)
);
CREATE TRIGGER users_touch BEFORE UPDATE ON engagement.users
    FOR EACH ROW EXECUTE FUNCTION engagement.touch_updated_at();

CREATE TABLE engagement.user_preferences (
    user_id uuid PRIMARY KEY
        REFERENCES engagement.users (id) ON DELETE CASCADE,
    locale text NOT NULL DEFAULT 'en'
        CONSTRAINT user_preferences_locale_check
        CHECK (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'),
    timezone text NOT NULL DEFAULT 'UTC'
        REFERENCES engagement.time_zones (name),
    quiet_hours_start time,
    quiet_hours_end   time,
    preferred_destination text NOT NULL DEFAULT 'individual'
        CONSTRAINT user_preferences_destination_check
        CHECK (preferred_destination IN ('individual', 'group')),
    group_id text,
    reengagement_opt_out boolean NOT NULL DEFAULT false,
    reengagement_opt_out_updated_at timestamptz,
    reengagement_opt_out_source text
        CONSTRAINT user_preferences_opt_out_source_check
        CHECK (reengagement_opt_out_source IN ('whatsapp', 'web', 'cli', 'api')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_preferences_quiet_hours_check
        CHECK ((quiet_hours_start IS NULL) = (quiet_hours_end IS NULL)),
    CONSTRAINT user_preferences_quiet_hours_nonempty_check
        CHECK (quiet_hours_start IS DISTINCT FROM quiet_hours_end
               OR quiet_hours_start IS NULL),
    CONSTRAINT user_preferences_group_check
        CHECK (preferred_destination <> 'group' OR group_id IS NOT NULL)
);
CREATE TRIGGER user_preferences_touch BEFORE UPDATE ON engagement.user_preferences
    FOR EACH ROW EXECUTE FUNCTION engagement.touch_updated_at();
-- The few who opted out: every job's "not opted out" test reads this small
-- index instead of the whole table.
CREATE INDEX user_preferences_opted_out_idx
    ON engagement.user_preferences (user_id) WHERE reengagement_opt_out;

CREATE TABLE engagement.engagement_states (
    user_id uuid PRIMARY KEY
        REFERENCES engagement.users (id) ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'active'
        CONSTRAINT engagement_states_state_check
        CHECK (state IN ('active', 'goodbye_sent', 'help_flow',
                         'remind_later', 'dormant')),
    last_activity_at   timestamptz NOT NULL DEFAULT now(),
    goodbye_sent_at    timestamptz,
    goodbye_expires_at timestamptz,
    remind_at          timestamptz,
    -- When and by which trigger the current state was entered. A late
    -- activity (it happened before) does not undo a state the user chose
    -- with a goodbye reply; it does undo one the system entered for lack
    -- of activity.
    state_changed_at   timestamptz NOT NULL DEFAULT now(),
    state_trigger      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT engagement_states_goodbye_check
        CHECK (state <> 'goodbye_sent'
               OR (goodbye_sent_at IS NOT NULL AND goodbye_expires_at IS NOT NULL)),
    CONSTRAINT engagement_states_remind_check
        CHECK (state <> 'remind_later' OR remind_at IS NOT NULL)
);
CREATE TRIGGER engagement_states_touch BEFORE UPDATE ON engagement.engagement_states
    FOR EACH ROW EXECUTE FUNCTION engagement.touch_updated_at();

-- The three checks of engagement-daily, each a range scan of its own state,
-- walked in batches by (time, user_id) keyset.
CREATE INDEX engagement_states_inactive_idx
    ON engagement.engagement_states (last_activity_at, user_id) WHERE state = 'active';
CREATE INDEX engagement_states_goodbye_due_idx
    ON engagement.engagement_states (goodbye_expires_at, user_id) WHERE state = 'goodbye_sent';
CREATE INDEX engagement_states_remind_due_idx
    ON engagement.engagement_states (remind_at, user_id) WHERE state = 'remind_later';
