-- engagement.quiet_until(): the end of the quiet window containing an
-- instant, in the user's zone, DST-correct.
BEGIN;
SELECT plan(16);

SELECT is(engagement.quiet_until('2026-11-22T12:00Z', 'UTC', NULL, NULL), NULL, 'no quiet hours: never quiet');
SELECT is(engagement.quiet_until('2026-11-22T12:00Z', 'UTC', '22:00', '07:00'), NULL, 'midday is outside 22:00-07:00');
SELECT is(engagement.quiet_until('2026-11-22T23:00Z', 'UTC', '22:00', '07:00'), '2026-11-23T07:00Z'::timestamptz, 'late evening: until 07:00 the next day');
SELECT is(engagement.quiet_until('2026-11-22T03:00Z', 'UTC', '22:00', '07:00'), '2026-11-22T07:00Z'::timestamptz, 'small hours: until 07:00 the same day');
SELECT is(engagement.quiet_until('2026-11-22T22:00Z', 'UTC', '22:00', '07:00'), '2026-11-23T07:00Z'::timestamptz, 'the start is inside the window');
SELECT is(engagement.quiet_until('2026-11-22T07:00Z', 'UTC', '22:00', '07:00'), NULL, 'the end is outside the window');
SELECT is(engagement.quiet_until('2026-11-22T14:00Z', 'UTC', '13:00', '15:00'), '2026-11-22T15:00Z'::timestamptz, 'a window within one day');
SELECT is(engagement.quiet_until('2026-11-22T15:00Z', 'UTC', '13:00', '15:00'), NULL, 'a window within one day ends exclusive');
SELECT is(engagement.quiet_until('2026-11-22T23:30Z', 'America/Sao_Paulo', '22:00', '07:00'), NULL, '20:30 in Sao Paulo is not quiet');
SELECT is(engagement.quiet_until('2026-11-23T01:30Z', 'America/Sao_Paulo', '22:00', '07:00'), '2026-11-23T10:00Z'::timestamptz, '22:30 in Sao Paulo: until 07:00 local, 10:00 UTC');

-- New York springs forward on 2026-03-08 at 02:00 (EST -5 -> EDT -4)
SELECT is(engagement.quiet_until('2026-03-08T05:00Z', 'America/New_York', '22:00', '07:00'), '2026-03-08T11:00Z'::timestamptz, 'New York, DST starts overnight: 07:00 EDT is 11:00 UTC');
-- and falls back on 2026-11-01 at 02:00 (EDT -4 -> EST -5)
SELECT is(engagement.quiet_until('2026-11-01T05:00Z', 'America/New_York', '22:00', '07:00'), '2026-11-01T12:00Z'::timestamptz, 'New York, DST ends overnight: 07:00 EST is 12:00 UTC');
-- Berlin springs forward on 2026-03-29 (CET +1 -> CEST +2)
SELECT is(engagement.quiet_until('2026-03-28T22:00Z', 'Europe/Berlin', '22:00', '07:00'), '2026-03-29T05:00Z'::timestamptz, 'Berlin, DST starts overnight: 07:00 CEST is 05:00 UTC');
-- and falls back on 2026-10-25 (CEST +2 -> CET +1)
SELECT is(engagement.quiet_until('2026-10-24T22:30Z', 'Europe/Berlin', '22:00', '07:00'), '2026-10-25T06:00Z'::timestamptz, 'Berlin, DST ends overnight: 07:00 CET is 06:00 UTC');
SELECT is(engagement.quiet_until('2026-10-25T00:30Z', 'Europe/Berlin', '01:00', '03:00'), '2026-10-25T02:00Z'::timestamptz, 'Berlin, inside the repeated hour: 03:00 CET is 02:00 UTC');
SELECT ok(engagement.quiet_until('2026-03-29T00:30Z', 'Europe/Berlin', '01:00', '02:30') >= '2026-03-29T00:30Z'::timestamptz, 'a window ending in the skipped hour still ends after now');

SELECT * FROM finish();
ROLLBACK;
