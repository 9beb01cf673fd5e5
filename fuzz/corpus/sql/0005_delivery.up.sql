-- 0005_delivery: what queue-send needs besides the queue itself.

-- The end of the quiet window that contains `at`, in the user's time zone,
-- or NULL when `at` is outside quiet hours (or there are none). The window
-- [qstart, qend) may wrap midnight (22:00-07:00). Local wall-clock times are
-- turned into instants with the zone's rules for that date, so a window
-- ending at 07:00 ends at 07:00 local on the days daylight saving time
-- starts and ends, too.
CREATE FUNCTION engagement.quiet_until(at timestamptz, tz text, qstart time, qend time)
RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN qstart IS NULL OR qend IS NULL OR qstart = qend THEN NULL
        WHEN qstart < qend THEN
            CASE WHEN l.t >= qstart AND l.t < qend THEN (l.d + qend) AT TIME ZONE tz END
        ELSE
            CASE WHEN l.t >= qstart THEN ((l.d + 1) + qend) AT TIME ZONE tz
                 WHEN l.t < qend THEN (l.d + qend) AT TIME ZONE tz END
    END
    FROM (SELECT (at AT TIME ZONE tz)::date AS d, (at AT TIME ZONE tz)::time AS t) AS l
$$;

-- A token bucket per sending phone number, shared by every queue-send
-- process: --rate is a ceiling for all of them together, not for each.
CREATE TABLE engagement.send_rate (
    phone_number_id text PRIMARY KEY,
    tokens double precision NOT NULL DEFAULT 0,
    refreshed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
