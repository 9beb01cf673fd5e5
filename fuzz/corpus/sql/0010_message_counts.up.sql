-- 0010_message_counts: per-minute counts of what happened to messages and
-- preferences, written in the same statement as the change itself (by
-- queue-send's write-back, engagement-webhook's statuses and the opt-out
-- path), so that engagement-status can say what happened in the last hour
-- or day without scanning the queue.
--
-- kind: sent, failed, retried, deferred, blocked, cancelled, handed_back
-- (queue-send), delivered, read, undelivered (delivery statuses), opt_out,
-- opt_in (applied preference changes). code: the error code, or the
-- preference's source; '' when none.
CREATE TABLE engagement.message_counts (
    minute timestamptz NOT NULL,
    kind text NOT NULL,
    code text NOT NULL DEFAULT '',
    n bigint NOT NULL,
    PRIMARY KEY (minute, kind, code)
);
