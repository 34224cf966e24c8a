-- How far back claimed alert events have been forgotten. A key older than this may have been
-- claimed and then forgotten, so it is never claimed again: an evaluation that stalled past
-- another's cleanup must not alert twice on the same event.
ALTER TABLE alert_cursor ADD COLUMN forgotten_before TEXT;
