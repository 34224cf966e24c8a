-- A notification that could not be delivered is kept pending and retried with backoff until it
-- is delivered or its alert resolves (then abandoned, with why). Only a delivered one counts
-- towards its alert's cooldown (from `delivered_at`) and its rule's rate limit.
ALTER TABLE alert_notifications ADD COLUMN state text NOT NULL DEFAULT 'delivered'
    CHECK (state IN ('delivered', 'pending', 'abandoned'));
-- Tries made so far, the first included.
ALTER TABLE alert_notifications ADD COLUMN attempts bigint NOT NULL DEFAULT 1;
ALTER TABLE alert_notifications ADD COLUMN delivered_at timestamptz;
-- Pending: when the next try is due; while an evaluator holds it (claimed), when its claim
-- lapses. This value is the claim's token: only the claimer's write-back matches it.
ALTER TABLE alert_notifications ADD COLUMN next_try_at timestamptz;
ALTER TABLE alert_notifications ADD COLUMN abandoned_why text;
-- Failures recorded before this migration were never retried.
UPDATE alert_notifications
SET state = CASE WHEN delivered THEN 'delivered' ELSE 'abandoned' END,
    delivered_at = CASE WHEN delivered THEN at END,
    abandoned_why = CASE WHEN delivered THEN NULL
                         ELSE 'failed before vane retried undelivered notifications' END;
CREATE INDEX alert_notifications_due ON alert_notifications (next_try_at) WHERE state = 'pending';
CREATE INDEX alert_notifications_by_alert ON alert_notifications (alert_id, id);
CREATE INDEX alert_notifications_delivered ON alert_notifications (rule, delivered_at)
    WHERE state = 'delivered';
