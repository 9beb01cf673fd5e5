-- 0003_messages: undo.
DROP TABLE engagement.message_queue;
DROP TABLE engagement.message_templates;
