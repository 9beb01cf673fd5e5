-- 0010_message_counts: undo.
DROP TABLE engagement.message_counts;
