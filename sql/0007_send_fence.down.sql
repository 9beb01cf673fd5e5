-- 0007_send_fence: undo.
DROP FUNCTION engagement.send_fence(bigint[], text, timestamptz);
