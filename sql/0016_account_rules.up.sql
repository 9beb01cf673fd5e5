-- 0016_account_rules: WhatsApp's rules for the business, not only the
-- person's (DESIGN.md §2.3, queue-send "Account limits" and
-- engagement-webhook "Account changes"): templates as Meta reports them, the
-- messaging limit over the people reached in a moving 24 hours, the pair
-- rate, and what each message cost.

-- ---- tables ------------------------------------------------------------------------------
-- Templates as Meta reports them: status (APPROVED, PAUSED, DISABLED, ...;
-- NULL: never reported, sent as if approved) and quality (GREEN, YELLOW,
-- RED, UNKNOWN), each with the time of the event that set it.
ALTER TABLE engagement.message_templates
    ADD COLUMN provider_status text
        CONSTRAINT message_templates_provider_status_check
        CHECK (provider_status ~ '^[A-Z_]{1,40}$'),
    ADD COLUMN quality text
        CONSTRAINT message_templates_quality_check
        CHECK (quality IN ('GREEN', 'YELLOW', 'RED', 'UNKNOWN')),
    ADD COLUMN status_changed_at timestamptz,
    ADD COLUMN quality_changed_at timestamptz;

-- The messaging limit: how many different people the business may start
-- conversations with in any moving 24 hours. One row, '*': since October
-- 2025 the limit is the business portfolio's, shared by its numbers.
-- max_recipients_24h NULL: unlimited. changed_at: the event's time (Meta)
-- or the operator's, so that an older event never overwrites a newer one.
CREATE TABLE engagement.messaging_limits (
    phone_number_id text PRIMARY KEY
        CONSTRAINT messaging_limits_id_check
        CHECK (phone_number_id = '*' OR phone_number_id ~ '^[0-9]{1,32}$'),
    tier text NOT NULL
        CONSTRAINT messaging_limits_tier_check CHECK (tier ~ '^TIER_[A-Z0-9_]{1,20}$'),
    max_recipients_24h integer
        CONSTRAINT messaging_limits_max_check CHECK (max_recipients_24h > 0),
    source text NOT NULL
        CONSTRAINT messaging_limits_source_check CHECK (source IN ('meta', 'operator')),
    changed_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL DEFAULT session_user
);

-- Who was reached in the moving 24 hours: per person, when the request that
-- opened their latest window went out, and which message it was (a
-- request the API refused gives the place back).
CREATE TABLE engagement.limit_reached (
    user_id uuid PRIMARY KEY REFERENCES engagement.users (id) ON DELETE CASCADE,
    reached_at timestamptz NOT NULL,
    message_id bigint NOT NULL
);
CREATE INDEX limit_reached_at_idx ON engagement.limit_reached (reached_at);

-- What a message cost, from its statuses' pricing.
ALTER TABLE engagement.message_queue
    ADD COLUMN pricing_category text
        CONSTRAINT message_queue_pricing_category_check
        CHECK (pricing_category ~ '^[a-z_]{1,40}$'),
    ADD COLUMN billable boolean;

-- Goodbyes are claimed before other messages (their window is 48 hours).
CREATE INDEX message_queue_claim_goodbye_idx
    ON engagement.message_queue (next_attempt_at)
    WHERE status = 'queued' AND message_type = 'goodbye';

-- ---- helpers -------------------------------------------------------------------------------
-- The people a tier lets the business reach in 24 hours (NULL: unlimited);
-- p_max, Meta's max_daily_conversations_per_business ("2000", "unlimited"),
-- wins when given. -1 for a tier this build does not know or TIER_NOT_SET
-- (the limit stays as it was).
CREATE FUNCTION engagement.tier_recipients(p_tier text, p_max text) RETURNS integer
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE
        WHEN lower(p_max) = 'unlimited' THEN NULL
        WHEN p_max ~ '^[0-9]{1,9}$' AND p_max::integer > 0 THEN p_max::integer
        ELSE CASE p_tier WHEN 'TIER_50' THEN 50 WHEN 'TIER_250' THEN 250
            WHEN 'TIER_1K' THEN 1000 WHEN 'TIER_2K' THEN 2000 WHEN 'TIER_10K' THEN 10000
            WHEN 'TIER_100K' THEN 100000 WHEN 'TIER_UNLIMITED' THEN NULL ELSE -1 END
    END
$$;

-- How many people were reached in the last 24 hours.
CREATE FUNCTION engagement.reached_24h() RETURNS integer
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*)::integer FROM engagement.limit_reached r
    WHERE r.reached_at > clock_timestamp() - interval '24 hours'
$$;

-- Is a template status one that is sent? (NULL: never reported.)
CREATE FUNCTION engagement.template_sendable(p_status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_status IS NULL OR p_status IN ('APPROVED', 'REINSTATED')
$$;

-- A template status that ends it for good: its queued messages fail.
CREATE FUNCTION engagement.template_dead(p_status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p_status IN ('DISABLED', 'REJECTED', 'DELETED', 'PENDING_DELETION', 'ARCHIVED')
$$;

-- The template row a message of p_key is sent with, for a person of
-- p_locale: the locale, then its language, then English (the claim's rule).
CREATE FUNCTION engagement.template_for(p_key text, p_locale text)
    RETURNS engagement.message_templates
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT x.* FROM engagement.message_templates x
    WHERE x.template_key = p_key AND x.is_active
      AND x.locale IN (coalesce(p_locale, 'en'), split_part(coalesce(p_locale, 'en'), '-', 1), 'en')
    ORDER BY CASE x.locale WHEN coalesce(p_locale, 'en') THEN 0
        WHEN split_part(coalesce(p_locale, 'en'), '-', 1) THEN 1 ELSE 2 END
    LIMIT 1
$$;

-- What the pauses in force at p_at hold, once for a whole claim or fence
-- (engagement.is_paused asks it of one message): everything, these message
-- types, these template keys.
CREATE FUNCTION engagement.paused_now(p_at timestamptz, OUT all_paused boolean,
    OUT types text[], OUT templates text[])
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(bool_or(p.scope = 'all'), false),
        coalesce(array_agg(p.value) FILTER (WHERE p.scope = 'type'), '{}'),
        coalesce(array_agg(p.value) FILTER (WHERE p.scope = 'template'), '{}')
    FROM engagement.active_pauses(p_at) p
$$;

-- Meta paused a template (a PAUSED event, or the first 132015 answer):
-- pause its key for every queued message, 3 hours the first time and 6 the
-- times after, as Meta does, from p_at. Nothing when that is already over
-- or a Meta pause of the key is open.
CREATE FUNCTION engagement.meta_pause_template(p_key text, p_at timestamptz, p_why text)
    RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    before integer;
    until timestamptz;
BEGIN
    IF EXISTS (SELECT 1 FROM engagement.active_pauses(clock_timestamp()) p
               WHERE p.scope = 'template' AND p.value = p_key AND p.source = 'meta') THEN
        RETURN 0;
    END IF;
    SELECT count(*) INTO before FROM engagement.send_pauses p
    WHERE p.scope = 'template' AND p.value = p_key AND p.source = 'meta';
    until := p_at + CASE WHEN before = 0 THEN interval '3 hours' ELSE interval '6 hours' END;
    IF until <= clock_timestamp() THEN
        RETURN 0;
    END IF;
    PERFORM engagement.open_pause('template', p_key, until, p_why, 'meta');
    RETURN 1;
END
$$;

-- ---- the webhook: account changes and pricing -------------------------------------------
-- Apply Meta's account changes, in order of their time, each at most once
-- (one older than, or as old as, what stands changes nothing: a replay is
-- stale). p_changes: [{field, time, value}] as the webhook received them
-- (value: the change's "value" object; time: the entry's Unix seconds).
--   message_template_status_update: the templates of that name and
--     language (pt-BR and pt_BR alike) take the event as provider_status;
--     PAUSED pauses their keys (Meta's 3 h, then 6 h); APPROVED and
--     REINSTATED end Meta's pauses of them; DISABLED, REJECTED, DELETED,
--     PENDING_DELETION and ARCHIVED fail the queued messages that would be
--     sent with them (last_error_code template_disabled).
--   message_template_quality_update: their quality.
--   phone_number_quality_update: the messaging limit (current_limit, or
--     max_daily_conversations_per_business when given).
-- An audit row per change applied; one row back per change: position and
-- outcome (applied, stale, unknown: not a template of ours, or a tier this
-- build does not know, or a field it does not handle).
CREATE FUNCTION engagement.apply_account_changes(p_changes jsonb, p_run_id uuid)
    RETURNS TABLE (ord integer, outcome text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    c record;
    v jsonb;
    at timestamptz;
    lang text;
    n integer;
    keys text[];
    ev text;
    lim integer;
BEGIN
    IF jsonb_typeof(coalesce(p_changes, '[]')) <> 'array'
       OR jsonb_array_length(coalesce(p_changes, '[]')) > 10000 THEN
        RAISE EXCEPTION 'account changes are a JSON array of at most 10000' USING ERRCODE = '22023';
    END IF;
    FOR c IN SELECT x.ord::integer AS ord, x.e->>'field' AS field, x.e->'value' AS value,
                 x.e->>'time' AS t
             FROM jsonb_array_elements(coalesce(p_changes, '[]')) WITH ORDINALITY AS x(e, ord)
             ORDER BY CASE WHEN x.e->>'time' ~ '^[0-9]{1,12}$' THEN (x.e->>'time')::bigint END,
                 x.ord LOOP
        v := c.value;
        IF c.t IS NULL OR c.t !~ '^[0-9]{1,12}$' OR jsonb_typeof(v) <> 'object' THEN
            ord := c.ord; outcome := 'unknown'; RETURN NEXT; CONTINUE;
        END IF;
        at := to_timestamp(c.t::bigint);
        IF at > clock_timestamp() + interval '5 minutes' THEN
            ord := c.ord; outcome := 'future'; RETURN NEXT; CONTINUE;
        END IF;
        outcome := 'unknown';
        IF c.field IN ('message_template_status_update', 'message_template_quality_update') THEN
            lang := replace(v->>'message_template_language', '-', '_');
            IF c.field = 'message_template_status_update' THEN
                ev := upper(v->>'event');
                IF ev !~ '^[A-Z_]{1,40}$' THEN
                    ev := NULL;
                END IF;
                WITH u AS (
                    UPDATE engagement.message_templates t
                    SET provider_status = ev, status_changed_at = at
                    WHERE ev IS NOT NULL AND t.provider_name = v->>'message_template_name'
                      AND t.provider_language = lang
                      AND (t.status_changed_at IS NULL OR t.status_changed_at < at)
                    RETURNING t.template_key, t.locale)
                SELECT count(*), array_agg(DISTINCT u.template_key) INTO n, keys FROM u;
            ELSE
                ev := upper(v->>'new_quality_score');
                IF ev NOT IN ('GREEN', 'YELLOW', 'RED', 'UNKNOWN') THEN
                    ev := NULL;
                END IF;
                WITH u AS (
                    UPDATE engagement.message_templates t
                    SET quality = ev, quality_changed_at = at
                    WHERE ev IS NOT NULL AND t.provider_name = v->>'message_template_name'
                      AND t.provider_language = lang
                      AND (t.quality_changed_at IS NULL OR t.quality_changed_at < at)
                    RETURNING t.template_key)
                SELECT count(*), array_agg(DISTINCT u.template_key) INTO n, keys FROM u;
            END IF;
            IF n > 0 THEN
                outcome := 'applied';
                IF c.field = 'message_template_status_update' THEN
                    PERFORM engagement.template_status_effects(keys, ev, at,
                        v->>'message_template_name', lang, p_run_id);
                END IF;
            ELSIF ev IS NOT NULL AND EXISTS (SELECT 1 FROM engagement.message_templates t
                    WHERE t.provider_name = v->>'message_template_name'
                      AND t.provider_language = lang) THEN
                outcome := 'stale';
            END IF;
        ELSIF c.field = 'phone_number_quality_update' THEN
            lim := engagement.tier_recipients(v->>'current_limit',
                v->>'max_daily_conversations_per_business');
            IF lim IS DISTINCT FROM -1 THEN
                INSERT INTO engagement.messaging_limits AS l
                    (phone_number_id, tier, max_recipients_24h, source, changed_at)
                VALUES ('*', coalesce(CASE WHEN v->>'current_limit' ~ '^TIER_[A-Z0-9_]{1,20}$'
                        THEN v->>'current_limit' END,
                        CASE WHEN lim IS NULL THEN 'TIER_UNLIMITED' ELSE 'TIER_CUSTOM' END),
                    lim, 'meta', at)
                ON CONFLICT (phone_number_id) DO UPDATE SET tier = excluded.tier,
                    max_recipients_24h = excluded.max_recipients_24h, source = 'meta',
                    changed_at = excluded.changed_at, updated_at = now(),
                    updated_by = session_user
                WHERE l.changed_at < excluded.changed_at;
                GET DIAGNOSTICS n = ROW_COUNT;
                outcome := CASE WHEN n > 0 THEN 'applied' ELSE 'stale' END;
            END IF;
        END IF;
        IF outcome = 'applied' THEN
            PERFORM engagement.write_audit(jsonb_build_array(jsonb_build_object(
                'event', 'account_' || CASE c.field
                    WHEN 'message_template_status_update' THEN 'template_status'
                    WHEN 'message_template_quality_update' THEN 'template_quality'
                    ELSE 'messaging_limit' END,
                'source', 'whatsapp', 'run_id', p_run_id,
                'details', jsonb_strip_nulls(jsonb_build_object('at', at,
                    'template', v->>'message_template_name', 'language', lang,
                    'event', v->>'event', 'quality', v->>'new_quality_score',
                    'previous_quality', v->>'previous_quality_score',
                    'limit', v->>'current_limit', 'old_limit', v->>'old_limit',
                    'max_daily', v->>'max_daily_conversations_per_business')))));
        END IF;
        ord := c.ord;
        RETURN NEXT;
    END LOOP;
END
$$;

-- What a template's new status does to sending (apply_account_changes).
CREATE FUNCTION engagement.template_status_effects(p_keys text[], p_event text,
    p_at timestamptz, p_name text, p_language text, p_run_id uuid)
    RETURNS integer LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    k text;
    n integer := 0;
BEGIN
    FOREACH k IN ARRAY coalesce(p_keys, '{}') LOOP
        IF p_event = 'PAUSED' THEN
            n := n + engagement.meta_pause_template(k, p_at,
                'WhatsApp paused template ' || p_name || ' (' || p_language || ')');
        ELSIF p_event IN ('APPROVED', 'REINSTATED') THEN
            UPDATE engagement.send_pauses p SET resumed_at = clock_timestamp(),
                resumed_by = 'whatsapp'
            WHERE p.resumed_at IS NULL AND p.scope = 'template' AND p.value = k
              AND p.source = 'meta';
        END IF;
    END LOOP;
    IF engagement.template_dead(p_event) THEN
        n := n + engagement.fail_dead_template_messages(p_keys, p_run_id);
    END IF;
    RETURN n;
END
$$;

-- Fail the queued messages of p_keys that would be sent with a template
-- Meta ended (template_dead): last_error_code template_disabled, an audit
-- row each and message.failed. How many.
CREATE FUNCTION engagement.fail_dead_template_messages(p_keys text[], p_run_id uuid)
    RETURNS integer LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH d AS (
        SELECT m.id FROM engagement.message_queue m
        LEFT JOIN engagement.user_preferences p ON p.user_id = m.user_id
        WHERE m.status = 'queued' AND m.template_key = ANY (p_keys)
          AND engagement.template_dead(
              (engagement.template_for(m.template_key, p.locale)).provider_status)
        ORDER BY m.id FOR UPDATE OF m
    ), upd AS (
        UPDATE engagement.message_queue m
        SET status = 'failed', last_error_code = 'template_disabled',
            last_error = 'WhatsApp disabled, rejected or deleted the template'
        FROM d WHERE m.id = d.id
        RETURNING m.id, m.user_id, m.attempts
    ), audit AS (
        SELECT engagement.write_audit(jsonb_agg(jsonb_build_object(
            'user_id', u.user_id, 'message_id', u.id, 'event', 'message_failed',
            'source', 'whatsapp', 'run_id', p_run_id,
            'details', jsonb_build_object('attempts', u.attempts,
                'error_code', 'template_disabled')) ORDER BY u.id)) AS n
        FROM upd u
    ), ob AS (
        SELECT engagement.publish_message_events('message.failed',
            (SELECT array_agg(u.id ORDER BY u.id) FROM upd u), p_run_id) AS n
    ), counted AS (
        SELECT engagement.count_messages(array_agg('failed'::text), array_agg('template_disabled'::text)) AS n
        FROM upd
    ), forced AS MATERIALIZED (
        SELECT (SELECT n FROM audit) + (SELECT n FROM ob) + (SELECT n FROM counted) AS n
    )
    -- (audit, ob and counted only read: they run because they are read here)
    SELECT (SELECT count(*) FROM upd)::integer FROM forced
$$;

-- Record what each message costs, from its statuses' pricing: p_pricing
-- [{wamid, category, billable}] (the newest last; the last one of a message
-- wins). Only messages sent or being sent. Counted per category once a
-- message is first priced (kinds priced and billable). How many messages.
CREATE FUNCTION engagement.record_pricing(p_pricing jsonb, p_run_id uuid) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer;
    kinds text[];
    cats text[];
BEGIN
    IF jsonb_typeof(coalesce(p_pricing, '[]')) <> 'array' OR EXISTS (
            SELECT 1 FROM jsonb_to_recordset(coalesce(p_pricing, '[]'))
                AS x(wamid text, category text, billable boolean)
            WHERE x.wamid IS NULL OR length(x.wamid) > 512
               OR x.category IS NULL OR x.category !~ '^[a-z_]{1,40}$') THEN
        RAISE EXCEPTION 'a price is a wamid, a category (lowercase) and billable'
            USING ERRCODE = '22023';
    END IF;
    WITH x AS (
        SELECT DISTINCT ON (x.wamid) x.wamid, x.category, x.billable
        FROM ROWS FROM (jsonb_to_recordset(coalesce(p_pricing, '[]'))
                AS (wamid text, category text, billable boolean))
            WITH ORDINALITY AS x(wamid, category, billable, ord)
        ORDER BY x.wamid, x.ord DESC
    ), old AS (
        SELECT m.id, x.category, coalesce(x.billable, m.billable) AS billable,
            m.pricing_category IS NULL AS first_time
        FROM x JOIN engagement.message_queue m ON m.provider_message_id = x.wamid
        WHERE m.status IN ('sent', 'sending')
          AND (m.pricing_category IS DISTINCT FROM x.category
               OR m.billable IS DISTINCT FROM coalesce(x.billable, m.billable))
        ORDER BY m.id FOR UPDATE OF m
    ), upd AS (
        UPDATE engagement.message_queue m
        SET pricing_category = o.category, billable = o.billable
        FROM old o WHERE m.id = o.id
        RETURNING o.category, o.billable, o.first_time
    )
    SELECT count(*)::integer,
        coalesce(array_agg('priced'::text) FILTER (WHERE u.first_time), '{}')
            || coalesce(array_agg('billable'::text) FILTER (WHERE u.first_time AND u.billable), '{}'),
        coalesce(array_agg(u.category) FILTER (WHERE u.first_time), '{}')
            || coalesce(array_agg(u.category) FILTER (WHERE u.first_time AND u.billable), '{}')
    INTO n, kinds, cats FROM upd u;
    PERFORM engagement.count_messages(kinds, cats);
    RETURN n;
END
$$;

-- ---- the operator ---------------------------------------------------------------------------
-- Set the messaging limit by hand (a deployment whose webhook is not
-- subscribed to phone_number_quality_update). An audit row.
CREATE FUNCTION engagement.set_messaging_limit(p_tier text, p_reason text)
    RETURNS TABLE (tier text, max_recipients_24h integer, reached_24h integer)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    lim integer;
BEGIN
    IF p_tier IS NULL OR p_tier NOT IN ('TIER_250', 'TIER_2K', 'TIER_10K', 'TIER_100K',
                                        'TIER_UNLIMITED') THEN
        RAISE EXCEPTION 'a tier is TIER_250, TIER_2K, TIER_10K, TIER_100K or TIER_UNLIMITED'
            USING ERRCODE = '22023';
    END IF;
    IF length(p_reason) > 500 THEN
        RAISE EXCEPTION 'a reason is at most 500 characters' USING ERRCODE = '22023';
    END IF;
    lim := engagement.tier_recipients(p_tier, NULL);
    INSERT INTO engagement.messaging_limits AS l
        (phone_number_id, tier, max_recipients_24h, source, changed_at)
    VALUES ('*', p_tier, lim, 'operator', clock_timestamp())
    ON CONFLICT (phone_number_id) DO UPDATE SET tier = excluded.tier,
        max_recipients_24h = excluded.max_recipients_24h, source = 'operator',
        changed_at = excluded.changed_at, updated_at = now(), updated_by = session_user;
    PERFORM engagement.write_audit(jsonb_build_array(jsonb_build_object(
        'event', 'messaging_limit_set', 'source', 'operator',
        'details', jsonb_strip_nulls(jsonb_build_object('tier', p_tier,
            'max_recipients_24h', lim, 'reason', p_reason)))));
    RETURN QUERY SELECT p_tier, lim, engagement.reached_24h();
END
$$;

-- ---- the sender -------------------------------------------------------------------------
-- The claim: goodbyes first (their window is 48 hours: a burst of reviews
-- must not starve them under the messaging limit), then the rest, each
-- oldest next_attempt_at first; what a pause holds is skipped; and, for
-- each message, its template row's status and quality.
DROP FUNCTION engagement.claim_messages(text, timestamptz, integer, integer, integer);
CREATE FUNCTION engagement.claim_messages(p_owner text, p_now timestamptz,
    p_lease_s integer, p_limit integer, p_hourly_cap integer)
    RETURNS TABLE (id bigint, user_id uuid, message_type text, template_key text, params text,
        attempts integer, max_attempts integer, expired boolean, opted_out boolean,
        quiet_until_us bigint, recent_sends text, phone text, to_group boolean, group_id text,
        tpl_name text, tpl_language text, tpl_params text, locale text, state text,
        now_us bigint, tpl_status text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    all_paused boolean;
    types text[];
    templates text[];
    ids bigint[];
BEGIN
    PERFORM engagement.check_claim(p_owner, p_lease_s);
    IF p_limit NOT BETWEEN 1 AND 10000 OR p_hourly_cap NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a claim takes 1 to 10000 messages, with an hourly cap of 1 to 1000'
            USING ERRCODE = '22023';
    END IF;
    SELECT * INTO all_paused, types, templates FROM engagement.paused_now(clock_timestamp());
    IF all_paused THEN
        RETURN;
    END IF;
    ids := ARRAY(
        SELECT q.id FROM engagement.message_queue q
        WHERE q.status = 'queued' AND q.message_type = 'goodbye'
          AND q.next_attempt_at <= coalesce(p_now, now())
          AND NOT ('goodbye' = ANY (types)) AND q.template_key <> ALL (templates)
        ORDER BY q.next_attempt_at LIMIT p_limit
        FOR UPDATE SKIP LOCKED);
    IF cardinality(ids) < p_limit THEN
        ids := ids || ARRAY(
            SELECT q.id FROM engagement.message_queue q
            WHERE q.status = 'queued' AND q.message_type <> 'goodbye'
              AND q.next_attempt_at <= coalesce(p_now, now())
              AND q.message_type <> ALL (types) AND q.template_key <> ALL (templates)
            ORDER BY q.next_attempt_at LIMIT p_limit - cardinality(ids)
            FOR UPDATE SKIP LOCKED);
    END IF;
    RETURN QUERY
    WITH claimed AS (
        UPDATE engagement.message_queue m
        SET status = 'sending', locked_by = p_owner,
            locked_until = clock_timestamp() + make_interval(secs => p_lease_s),
            claimed_by = (m.claimed_by || p_owner)[greatest(1, cardinality(m.claimed_by) - 8):]
        WHERE m.id = ANY (ids)
        RETURNING m.*
    ), t AS (SELECT coalesce(p_now, now()) AS now)
    SELECT c.id, c.user_id, c.message_type, c.template_key, c.params::text, c.attempts,
        c.max_attempts,
        c.expires_at IS NOT NULL AND c.expires_at <= t.now,
        coalesce(p.reengagement_opt_out, false),
        (extract(epoch FROM CASE WHEN c.quiet_hours_override THEN NULL ELSE
            engagement.quiet_until(t.now, coalesce(p.timezone, 'UTC'),
                p.quiet_hours_start, p.quiet_hours_end) END) * 1000000)::bigint,
        (SELECT string_agg(y.id || ':' || y.us, ',' ORDER BY y.us) FROM (
            SELECT s.id, (extract(epoch FROM s.sent_at) * 1000000)::bigint AS us
            FROM engagement.message_queue s
            WHERE s.user_id = c.user_id
              AND s.sent_at > t.now - interval '1 hour' AND s.sent_at <= t.now
            ORDER BY s.sent_at DESC LIMIT p_hourly_cap) y),
        u.phone_e164,
        coalesce(p.preferred_destination, 'individual') = 'group',
        p.group_id, tp.provider_name, tp.provider_language, tp.param_names::text,
        coalesce(p.locale, 'en'), es.state,
        (extract(epoch FROM t.now) * 1000000)::bigint, tp.provider_status
    FROM claimed c CROSS JOIN t
    LEFT JOIN engagement.engagement_states es ON es.user_id = c.user_id
    JOIN engagement.users u ON u.id = c.user_id
    LEFT JOIN engagement.user_preferences p ON p.user_id = c.user_id
    LEFT JOIN LATERAL engagement.template_for(c.template_key, p.locale) tp ON true
    ORDER BY c.message_type <> 'goodbye', c.next_attempt_at, c.id;
END
$$;

-- The fence, with the account's rules: the verdicts of migration 0015,
-- then template_disabled (its template row was ended by Meta: failed),
-- template_held (its template row is not approved: it waits), pair (another
-- message to the same person was sent less than p_pair_ms ago, or another
-- sender holds an older one), and limit (a person not reached in the last
-- 24 hours, once the messaging limit is used up: it waits). People reached
-- take their place in limit_reached here, in the fence's transaction (one
-- fence at a time counts, under the limit's row lock), goodbyes first.
DROP FUNCTION engagement.send_fence(bigint[], text, timestamptz);
CREATE FUNCTION engagement.send_fence(p_ids bigint[], p_owner text, p_now timestamptz,
    p_pair_ms integer)
    RETURNS TABLE (id bigint, verdict text) LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    held bigint[];
    lim integer;
    used integer := 0;
BEGIN
    IF p_pair_ms IS NULL OR p_pair_ms NOT BETWEEN 0 AND 3600000 THEN
        RAISE EXCEPTION 'the pair interval is 0 to 3600000 ms' USING ERRCODE = '22023';
    END IF;
    SELECT coalesce(array_agg(q.id), '{}') INTO held FROM (
        SELECT m.id FROM engagement.message_queue m
        WHERE m.id = ANY (p_ids) AND m.status = 'sending'
          AND m.locked_by = p_owner
          AND m.locked_until > clock_timestamp() + interval '1 second'
        ORDER BY m.id
        FOR UPDATE SKIP LOCKED) q;
    SELECT l.max_recipients_24h INTO lim FROM engagement.messaging_limits l
    WHERE l.phone_number_id = '*';
    IF lim IS NOT NULL THEN
        PERFORM 1 FROM engagement.messaging_limits l WHERE l.phone_number_id = '*' FOR UPDATE;
        used := engagement.reached_24h();
    END IF;

    RETURN QUERY
    WITH v AS (
        SELECT i.id, m.user_id, m.message_type, CASE
            WHEN NOT (i.id = ANY (held)) THEN
                CASE WHEN m.status = 'sending' AND m.locked_by = p_owner
                          AND m.locked_until > clock_timestamp()
                     THEN 'busy' ELSE 'lost' END
            WHEN m.expires_at IS NOT NULL
                 AND m.expires_at <= coalesce(p_now, clock_timestamp()) THEN 'expired'
            WHEN coalesce(p.reengagement_opt_out, false) THEN 'opted_out'
            WHEN m.message_type = 'goodbye' AND s.state IS NOT NULL
                 AND s.state <> 'goodbye_sent' THEN 'user_returned'
            WHEN pz.all_paused OR m.message_type = ANY (pz.types)
                 OR m.template_key = ANY (pz.templates) THEN 'paused'
            WHEN engagement.template_dead(tp.provider_status) THEN 'template_disabled'
            WHEN NOT engagement.template_sendable(tp.provider_status) THEN 'template_held'
            WHEN p_pair_ms > 0 AND EXISTS (
                SELECT 1 FROM engagement.message_queue o
                WHERE o.user_id = m.user_id AND o.id <> m.id
                  AND (o.sent_at > clock_timestamp() - make_interval(secs => p_pair_ms / 1000.0)
                       OR o.status = 'sending' AND o.locked_by <> p_owner AND o.id < m.id))
                 THEN 'pair'
            ELSE 'send' END AS verdict
        FROM unnest(p_ids) AS i(id)
        LEFT JOIN engagement.message_queue m ON m.id = i.id
        LEFT JOIN engagement.engagement_states s ON s.user_id = m.user_id
        LEFT JOIN engagement.user_preferences p ON p.user_id = m.user_id
        LEFT JOIN LATERAL engagement.template_for(m.template_key, p.locale) tp ON true
        CROSS JOIN engagement.paused_now(clock_timestamp()) pz
    ), newp AS (
        -- people to reach who were not reached in 24 hours, goodbyes first
        SELECT v.user_id, min(v.id) AS mid,
            row_number() OVER (ORDER BY bool_or(v.message_type = 'goodbye') DESC,
                               min(v.id)) AS k
        FROM v WHERE v.verdict = 'send' AND lim IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM engagement.limit_reached r WHERE r.user_id = v.user_id
                          AND r.reached_at > clock_timestamp() - interval '24 hours')
        GROUP BY v.user_id
    ), ok AS (
        INSERT INTO engagement.limit_reached AS r (user_id, reached_at, message_id)
        SELECT np.user_id, clock_timestamp(), np.mid FROM newp np WHERE used + np.k <= lim
        ORDER BY np.user_id
        ON CONFLICT (user_id) DO UPDATE
            SET reached_at = excluded.reached_at, message_id = excluded.message_id
        RETURNING r.user_id
    )
    SELECT v.id, CASE WHEN v.verdict = 'send'
            AND EXISTS (SELECT 1 FROM newp np WHERE np.user_id = v.user_id)
            AND NOT EXISTS (SELECT 1 FROM ok WHERE ok.user_id = v.user_id) THEN 'limit'
        ELSE v.verdict END
    FROM v;
END
$$;

-- A request the API refused (or never made) gives its place under the
-- messaging limit back: the conversation did not open. record_send_outcomes
-- calls it for the messages refused with an HTTP 4xx or handed back.
CREATE FUNCTION engagement.release_reached(p_ids bigint[]) RETURNS integer
    LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH d AS (
        DELETE FROM engagement.limit_reached r WHERE r.message_id = ANY (p_ids)
        RETURNING 1)
    SELECT count(*)::integer FROM d
$$;

-- The sender's outcomes, with the account's rules first: a 132015 answer
-- (Meta paused the template) pauses that template for every queued message
-- (meta_pause_template); a request the API refused (HTTP 4xx) or never made
-- (handed back) gives its place under the messaging limit back. Then
-- record_outcomes (migration 0014), whose rules stay as they are.
CREATE FUNCTION engagement.record_send_outcomes(p_owner text, p_run_id uuid, p_rows jsonb)
    RETURNS TABLE (id bigint) LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    k text;
BEGIN
    PERFORM engagement.check_claim(p_owner, 5);
    IF jsonb_typeof(coalesce(p_rows, '[]')) <> 'array' THEN
        RAISE EXCEPTION 'outcomes are a JSON array' USING ERRCODE = '22023';
    END IF;
    FOR k IN SELECT DISTINCT m.template_key
             FROM jsonb_to_recordset(p_rows) AS x(id bigint, code text)
             JOIN engagement.message_queue m ON m.id = x.id
             WHERE x.code = '132015' AND p_owner = ANY (m.claimed_by)
             ORDER BY 1 LOOP
        PERFORM engagement.meta_pause_template(k, clock_timestamp(),
            'WhatsApp answered 132015: template ' || k || ' paused');
    END LOOP;
    PERFORM engagement.release_reached(ARRAY(
        SELECT x.id FROM jsonb_to_recordset(p_rows)
            AS x(id bigint, kind text, http_status integer)
        JOIN engagement.message_queue m ON m.id = x.id
        WHERE p_owner = ANY (m.claimed_by)
          AND (x.kind = 'handed_back' OR x.kind <> 'sent' AND x.http_status BETWEEN 400 AND 499)));
    RETURN QUERY SELECT r.id FROM engagement.record_outcomes(p_owner, p_run_id, p_rows) r;
END
$$;

-- ---- grants ---------------------------------------------------------------------------------
DELETE FROM engagement.program_grants
WHERE object IN ('FUNCTION engagement.claim_messages(text, timestamptz, integer, integer, integer)',
                 'FUNCTION engagement.send_fence(bigint[], text, timestamptz)',
                 'FUNCTION engagement.record_outcomes(text, uuid, jsonb)');
INSERT INTO engagement.program_grants (programs, privileges, object) VALUES
    ('sender', 'EXECUTE', 'FUNCTION engagement.claim_messages(text, timestamptz, integer, '
        'integer, integer)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.send_fence(bigint[], text, timestamptz, integer)'),
    ('sender', 'EXECUTE', 'FUNCTION engagement.record_send_outcomes(text, uuid, jsonb)'),
    ('webhook', 'EXECUTE', 'FUNCTION engagement.apply_account_changes(jsonb, uuid)'),
    ('webhook', 'EXECUTE', 'FUNCTION engagement.record_pricing(jsonb, uuid)'),
    ('operator', 'EXECUTE', 'FUNCTION engagement.set_messaging_limit(text, text)'),
    ('operator,status', 'SELECT', 'engagement.messaging_limits'),
    ('status', 'SELECT (reached_at)', 'engagement.limit_reached'),
    ('status', 'SELECT (template_key, locale, provider_name, provider_language, '
        'provider_status, quality, status_changed_at, quality_changed_at)',
        'engagement.message_templates');
