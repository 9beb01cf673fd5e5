-- 0005_delivery: undo.
DROP TABLE engagement.send_rate;
DROP FUNCTION engagement.quiet_until(timestamptz, text, time, time);
